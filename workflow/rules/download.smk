# Each dataset named in params -> results/data/<dataset>/ (DatasetDict, train/validation/test).
rule download:
    input:
        stage_input("download"),
    output:
        stage_output("download"),
    params:
        values=stage_params("download"),
    resources:
        **stage_resources("download"),
    shell:
        stage_shell("download")
