# Glue between the stage table (metahpo.pipeline) and Snakemake's rule directives.
import re


wildcard_constraints:
    dataset="|".join(map(re.escape, PARAMS.datasets)) if PARAMS.datasets else "(?!)",
    task="|".join(map(re.escape, PARAMS.tasks)) if PARAMS.tasks else "(?!)",


def stage_input(name):
    stage = pipeline.STAGE_BY_NAME[name]
    if stage.over:
        return lambda w: pipeline.job_inputs(stage, RAW_PARAMS, w[stage.wildcard])
    return pipeline.job_inputs(stage, RAW_PARAMS)


def stage_output(name):
    stage = pipeline.STAGE_BY_NAME[name]
    outs = stage.all_outputs()
    if stage.over:
        outs = [o.replace("{key}", "{%s}" % stage.wildcard) for o in outs]
    return [directory(o) if pipeline.is_dir(o) else o for o in outs]


def stage_params(name):
    """The stage's params values: a change reruns the job (Snakemake's params rerun trigger)."""
    stage = pipeline.STAGE_BY_NAME[name]
    if stage.over:
        return lambda w: pipeline.job_params(stage, RAW_PARAMS, w[stage.wildcard])
    return pipeline.job_params(stage, RAW_PARAMS)


def stage_resources(name):
    """gpu (training rules), runtime and mem_mb from the stage table; a profile may override them."""
    return pipeline.STAGE_BY_NAME[name].resources()


def stage_shell(name):
    """The stage's command (as in dvc.yaml), then its record in dvc.lock (metahpo.toolsync)."""
    stage = pipeline.STAGE_BY_NAME[name]
    key = "{wildcards.%s}" % stage.wildcard if stage.over else None
    cmd = stage.command(key, PARAMS_FILE) if key else stage.command(params_file=PARAMS_FILE)
    address = f"{name}@{key}" if key else name
    return f"{cmd} && python -m metahpo.toolsync record {address} --params {PARAMS_FILE}"
