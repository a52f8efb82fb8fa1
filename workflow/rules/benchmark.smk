# Per family with >= 2 tasks: strategies replayed leave-one-task-out on its sweeps -> results/benchmark/.
rule benchmark:
    input:
        stage_input("benchmark"),
    output:
        stage_output("benchmark"),
    params:
        values=stage_params("benchmark"),
    resources:
        **stage_resources("benchmark"),
    shell:
        stage_shell("benchmark")
