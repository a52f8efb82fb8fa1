# Model selection: train the pool's members (checkpoints as shipped) -> results/pool/.
rule pool:
    input:
        stage_input("pool"),
    output:
        stage_output("pool"),
    params:
        values=stage_params("pool"),
    resources:
        **stage_resources("pool"),
    shell:
        stage_shell("pool")
