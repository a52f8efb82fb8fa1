"""A trained initialization on disk: ``<name>.safetensors`` (the body's weights, and Meta-SGD's learning
rates) with its config in the file's metadata and beside it as ``<name>.json`` (readable, and what
the report reads: how it was trained, its meta-training curve and cost)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from metahpo.errors import MetahpoError
from metahpo.io import atomic_path, write_json

INIT_FORMAT = 1
CONFIG_KEY = "metahpo_init"  # the safetensors metadata key holding the config JSON


def save_init(folder: str | os.PathLike, name: str, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``folder/name.safetensors`` and ``folder/name.json`` atomically; ``config`` must be JSON."""
    folder = Path(folder)
    path = folder / f"{name}.safetensors"
    config = {"format": INIT_FORMAT, **config}
    tensors = {n: v.detach().cpu().contiguous() for n, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CONFIG_KEY: json.dumps({k: v for k, v in config.items() if k != "history"})})
    write_json(folder / f"{name}.json", config)
    return path


def load_init(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state, config) of a saved initialization; a clear error for a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise MetahpoError(f"{path}: no such initialization; the meta_init stage writes them under results/meta_init/")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise MetahpoError(f"{path}: not a safetensors file ({err})") from None
    if CONFIG_KEY not in metadata:
        raise MetahpoError(f"{path}: a safetensors file without a metahpo initialization config ({CONFIG_KEY})")
    config = json.loads(metadata[CONFIG_KEY])
    if config.get("format") != INIT_FORMAT:
        raise MetahpoError(f"{path}: initialization format {config.get('format')}, this metahpo reads {INIT_FORMAT}")
    return state, config
