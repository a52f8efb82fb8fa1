# The learning-rate controller: meta-trained by evolution strategies on lr_control.meta_train_tasks (resumable).
rule lr_meta:
    input:
        stage_input("lr_meta"),
    output:
        stage_output("lr_meta"),
    params:
        values=stage_params("lr_meta"),
    resources:
        **stage_resources("lr_meta"),
    shell:
        stage_shell("lr_meta")
