# Per task: tune.strategy and tune.baseline, tune.trials real trainings each -> results/tune/<task>.parquet.
rule tune:
    input:
        stage_input("tune"),
    output:
        stage_output("tune"),
    params:
        values=stage_params("tune"),
    resources:
        **stage_resources("tune"),
    shell:
        stage_shell("tune")
