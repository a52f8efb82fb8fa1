# Meta-learned hyperparameter tuning. Run: snakemake --cores 1 --resources gpu=1
# Another profile: snakemake --cores 1 --resources gpu=1 --config params=params/mirror-small.yaml
# Stages, paths and commands come from the stage table in src/metahpo/pipeline.py, which also
# renders dvc.yaml, so Snakemake and DVC run the same commands on the same paths; each job records
# itself in dvc.lock when it succeeds (metahpo.toolsync), so `dvc repro` afterwards runs nothing.
from metahpo import pipeline
from metahpo.config import load_params
from metahpo.errors import MetahpoError

PARAMS_FILE = config.pop("params", pipeline.PARAMS_FILE)
try:
    PARAMS = load_params(PARAMS_FILE)  # validated before any job is scheduled
except MetahpoError as err:
    raise WorkflowError(str(err)) from None
RAW_PARAMS = pipeline.read_raw_params(PARAMS_FILE)  # the values DVC hashes, so both tools rerun alike


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/metafeatures.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/fit_meta.smk"
include: "workflow/rules/train_recommended.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/meta_init.smk"
include: "workflow/rules/fewshot_eval.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/pool_finetune.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/lr_meta.smk"
include: "workflow/rules/lr_eval.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/report/index.html",
    default_target: True
