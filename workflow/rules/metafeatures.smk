# Per dataset: simple, statistical and landmarker meta-features -> results/metafeatures/<dataset>.json.
rule metafeatures:
    input:
        stage_input("metafeatures"),
    output:
        stage_output("metafeatures"),
    params:
        values=stage_params("metafeatures"),
    resources:
        **stage_resources("metafeatures"),
    shell:
        stage_shell("metafeatures")
