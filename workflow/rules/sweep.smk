# Per task (dataset x model family): grid + random search -> results/sweep/<task>.parquet (resumable).
rule sweep:
    input:
        stage_input("sweep"),
    output:
        stage_output("sweep"),
    params:
        values=stage_params("sweep"),
    resources:
        **stage_resources("sweep"),
    shell:
        stage_shell("sweep")
