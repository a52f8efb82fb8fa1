# The self-contained HTML report -> results/report/index.html.
rule report:
    input:
        stage_input("report"),
    output:
        stage_output("report"),
    params:
        values=stage_params("report"),
    resources:
        **stage_resources("report"),
    shell:
        stage_shell("report")
