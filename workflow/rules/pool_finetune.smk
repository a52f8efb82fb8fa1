# Model selection: the ground truth, every member fine-tuned on every target (resumable).
rule pool_finetune:
    input:
        stage_input("pool_finetune"),
    output:
        stage_output("pool_finetune"),
    params:
        values=stage_params("pool_finetune"),
    resources:
        gpu=1,
    shell:
        stage_shell("pool_finetune")
