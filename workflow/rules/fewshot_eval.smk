# Few-shot: every method on the same meta-test episodes -> results/fewshot/.
rule fewshot_eval:
    input:
        stage_input("fewshot_eval"),
    output:
        stage_output("fewshot_eval"),
    params:
        values=stage_params("fewshot_eval"),
    resources:
        **stage_resources("fewshot_eval"),
    shell:
        stage_shell("fewshot_eval")
