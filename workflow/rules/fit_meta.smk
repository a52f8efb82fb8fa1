# Meta-models from all sweeps + meta-features, with leave-one-task-out evaluation -> results/meta/.
rule fit_meta:
    input:
        stage_input("fit_meta"),
    output:
        stage_output("fit_meta"),
    params:
        values=stage_params("fit_meta"),
    resources:
        **stage_resources("fit_meta"),
    shell:
        stage_shell("fit_meta")
