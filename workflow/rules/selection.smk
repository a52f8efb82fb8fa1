# Model selection: every selector on K examples of each target against the ground truth -> results/selection/.
rule selection:
    input:
        stage_input("selection"),
    output:
        stage_output("selection"),
    params:
        values=stage_params("selection"),
    resources:
        **stage_resources("selection"),
    shell:
        stage_shell("selection")
