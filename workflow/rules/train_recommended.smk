# Per task: full-budget training of its leave-one-task-out recommendation -> results/train/<task>/.
rule train_recommended:
    input:
        stage_input("train_recommended"),
    output:
        stage_output("train_recommended"),
    params:
        values=stage_params("train_recommended"),
    resources:
        **stage_resources("train_recommended"),
    shell:
        stage_shell("train_recommended")
