# Model selection: the ground truth, every member fine-tuned on every target (resumable).
rule pool_finetune:
    input:
        stage_input("pool_finetune"),
    output:
        stage_output("pool_finetune"),
    params:
        values=stage_params("pool_finetune"),
    resources:
        **stage_resources("pool_finetune"),
    shell:
        stage_shell("pool_finetune")
