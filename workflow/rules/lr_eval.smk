# Every learning-rate method on the held-out tasks against the learned controller (resumable).
rule lr_eval:
    input:
        stage_input("lr_eval"),
    output:
        stage_output("lr_eval"),
    params:
        values=stage_params("lr_eval"),
    resources:
        **stage_resources("lr_eval"),
    shell:
        stage_shell("lr_eval")
