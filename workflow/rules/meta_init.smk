# Few-shot: meta-train each method's initialization -> results/meta_init/inits/ (resumable).
rule meta_init:
    input:
        stage_input("meta_init"),
    output:
        stage_output("meta_init"),
    params:
        values=stage_params("meta_init"),
    resources:
        **stage_resources("meta_init"),
    shell:
        stage_shell("meta_init")
