"""Save and load the final meta-models; recommend configs for a new dataset's meta-features.

The sklearn surrogates go through skops (never bare pickle): loading trusts only the types that
skops reports AND that this allow-list names, so a tampered file fails instead of running code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from metahpo.artifacts import require_readable
from metahpo.errors import MetahpoError
from metahpo.io import read_json, write_json
from metahpo.meta.rankers import METHODS, FamilyMetaModel

META_MODEL_FILE = "meta_model.json"
FORMAT_VERSION = 3  # 3: the surrogate's calibration (interval, safe rule); 2: the grid carries the encoding

# Types the surrogates hold that skops does not trust by default: the fitted trees (all skops 0.16
# asks for) and GradientBoostingRegressor's loss objects (which older skops releases also ask for).
ALLOWED_SKOPS_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
    }
)


def save_meta_models(models: dict[str, FamilyMetaModel], model_dir: str | Path, seed: int) -> None:
    """Write ``<family>.skops`` per family and one ``meta_model.json`` into ``model_dir``.

    Callers pass a folder from ``metahpo.io.atomic_dir``, so the set appears all at once.
    """
    import skops.io  # slow to import; only fit and load need it

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    families = {}
    for family, model in models.items():
        skops.io.dump(model.surrogate, model_dir / f"{family}.skops")
        families[family] = {**model.to_json(), "surrogate_file": f"{family}.skops"}
    write_json(model_dir / META_MODEL_FILE, {"format": FORMAT_VERSION, "seed": seed, "families": families})


def load_surrogate(path: Path) -> Any:
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - ALLOWED_SKOPS_TYPES)
    if refused:
        raise MetahpoError(f"{path} holds types outside the allow-list, refusing to load: {', '.join(refused)}")
    return skops.io.load(path, trusted=untrusted)


def load_meta_model(model_dir: str | Path, family: str) -> FamilyMetaModel:
    model_dir = Path(model_dir)
    index_path = model_dir / META_MODEL_FILE
    require_readable(index_path, "run the fit_meta stage (again)")
    index = read_json(index_path)
    if index.get("format") != FORMAT_VERSION:
        raise MetahpoError(f"{index_path} has format {index.get('format')!r}, expected {FORMAT_VERSION}; rerun fit_meta")
    families = index["families"]
    if family not in families:
        fitted = ", ".join(sorted(families)) or "none"
        raise MetahpoError(f"no fitted meta-model for family {family!r}; fitted families: {fitted}")
    raw = families[family]
    surrogate_path = model_dir / raw["surrogate_file"]
    require_readable(surrogate_path, "rerun the fit_meta stage")
    return FamilyMetaModel.from_json(raw, load_surrogate(surrogate_path))


def recommendation(
    meta_model: FamilyMetaModel, metafeatures: dict[str, Any], top_k: int, method: str = "safe"
) -> dict[str, Any]:
    """The ``top_k`` best configs for a new dataset, with the method's verdict.

    ``{"method", "fallback", "reason", "configs": [{"config", "predicted", "lower", "upper"}]}``:
    ``predicted`` is the normalised score (1 = the task's best grid config) the method predicts,
    ``lower``/``upper`` its calibrated interval (None when the method has none); ``fallback`` is
    "default" when the safe rule put the family's default first, and ``reason`` says why.
    ``metafeatures`` is either the ``features`` mapping or a whole metafeatures JSON document.
    """
    if method not in METHODS:
        raise MetahpoError(f"unknown recommendation method {method!r}; valid names: {', '.join(METHODS)}")
    if isinstance(metafeatures.get("features"), dict):
        metafeatures = metafeatures["features"]
    ranking = meta_model.rank(method, metafeatures)
    configs = []
    for position, (index, score) in enumerate(zip(ranking.indices[:top_k], ranking.scores[:top_k])):
        lower, upper = ranking.interval(position)
        configs.append({"config": dict(meta_model.grid.configs[index]), "predicted": score, "lower": lower, "upper": upper})
    return {"method": method, "fallback": ranking.fallback, "reason": ranking.reason, "configs": configs}


def recommend(
    meta_model: FamilyMetaModel, metafeatures: dict[str, Any], top_k: int, method: str = "safe"
) -> list[tuple[dict[str, Any], Optional[float]]]:
    """``recommendation``'s configs as (config, predicted normalised score) pairs, best first."""
    return [(c["config"], c["predicted"]) for c in recommendation(meta_model, metafeatures, top_k, method)["configs"]]
