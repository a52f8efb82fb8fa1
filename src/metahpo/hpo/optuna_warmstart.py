"""Transfer for Optuna users: start a study with the meta-model's best configurations for a dataset.

    import optuna
    from metahpo.hpo.optuna_warmstart import warm_start_study

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    warm_start_study(study, "results/meta/model", "mlp", metafeatures, n=5)
    study.optimize(objective, n_trials=30)  # the first 5 trials are the enqueued configurations

Enqueued trials run first, whatever the sampler; TPESampler then models them like any other
completed trial, so the warm start also shapes its density estimates. Keep TPE's
``n_startup_trials`` (10 by default) above ``n`` if you still want some random exploration, or
lower it to let TPE exploit the transferred configurations sooner. The objective must suggest the
hyperparameters under the family's names (``lr``, ``hidden``, ...), with ranges that include the
meta-model's grid values; Optuna warns about and skips an enqueued value outside a distribution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metahpo.meta import load_meta_model, recommendation


def warm_start_study(
    study: Any,
    meta_model_dir: str | Path,
    family: str,
    metafeatures: dict[str, Any],
    n: int,
    method: str = "safe",
) -> list[dict[str, Any]]:
    """Enqueue the meta-model's top-``n`` configurations; return them, best first.

    ``metafeatures`` is the dataset's ``features`` mapping or the whole metafeatures JSON document
    (``metahpo.metafeatures.compute_metafeatures``). Each enqueued trial carries user attributes
    ``metahpo_rank`` (1 = best) and ``metahpo_predicted`` (the meta-model's predicted normalised
    score, or None), ``metahpo_interval`` (its calibrated [lower, upper], or None) and
    ``metahpo_fallback`` (the safe rule's reason for putting the family's default first, or "")
    so the warm-start trials can be told apart afterwards. A configuration already in the study is
    not enqueued twice (``skip_if_exists``).
    """
    meta_model = load_meta_model(meta_model_dir, family)
    result = recommendation(meta_model, metafeatures, n, method)
    for rank, entry in enumerate(result["configs"], start=1):
        interval = None if entry["lower"] is None else [entry["lower"], entry["upper"]]
        attrs = {"metahpo_rank": rank, "metahpo_predicted": entry["predicted"], "metahpo_interval": interval,
                 "metahpo_fallback": result["reason"] if result["fallback"] else ""}  # fmt: skip
        study.enqueue_trial(entry["config"], user_attrs=attrs, skip_if_exists=True)
    return [entry["config"] for entry in result["configs"]]
