"""`evalsuite tasks`: every task and group of the suite with its kind, local documents and
settings source; `--filter`; `--path`. (It used to print the eight short names only.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from evalsuite.cli import main
from evalsuite.tasks import registry
from evalsuite.tasks.catalog import build_catalog, documents, settings_source

DATA = FIXTURES / "data"


def _rows(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, list[str]], str]:
    assert main(["tasks", *argv]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "kind", "docs", "settings"]
    rows = {}
    for line in lines[1:]:
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[1] in ("task", "group"):
            rows[parts[0]] = parts[1:]
    return rows, out


def test_every_task_and_group_is_listed(capsys, monkeypatch):
    monkeypatch.delenv("EVALSUITE_DATA_DIR", raising=False)
    rows, out = _rows(capsys)
    assert set(rows) == set(registry.known_task_names())
    assert len(rows) > 150
    assert rows["llada_mmlu"][0] == rows["llada_bbh"][0] == "group"
    assert rows["llada_gsm8k"][0] == rows["llada_mmlu_anatomy"][0] == "task"
    for name in ("llada_arith", "llada_sum_choice", "llada_poem_forward_heldout",
                 "llada_poem_backward_heldout", "llada_mmlu_instruct_stem"):
        assert name in rows, name
    # the miniature study's data ships in the package: counted without a data directory
    assert rows["llada_sum_choice"][:2] == ["task", "200"]
    assert rows["llada_poem_backward_heldout"][1] == "94"
    # hub data is not counted (nothing is downloaded to list the suite)
    assert rows["llada_gsm8k"][1] == rows["llada_mmlu"][1] == "-"
    # where the settings come from
    assert rows["llada_gsm8k"][2] == rows["llada_mmlu"][2] == "paper table"
    assert rows["llada_arith"][2] == "YAML" and rows["llada_sum_choice"][2] == "default"
    assert "gsm8k -> llada_gsm8k" in out


def test_documents_are_counted_where_the_data_is_local(capsys, monkeypatch):
    monkeypatch.delenv("EVALSUITE_DATA_DIR", raising=False)
    rows, _ = _rows(capsys, "--data-dir", str(DATA))
    assert rows["llada_gsm8k"][1] == "8" and rows["llada_piqa"][1] == "16"
    assert rows["llada_mmlu_anatomy"][1] == "3" and rows["llada_mmlu"][1] == str(57 * 3)
    assert rows["llada_math"][1] == str(7 * 3) and rows["llada_bbh"][1] == str(27 * 3)
    monkeypatch.setenv("EVALSUITE_DATA_DIR", str(DATA))  # the CLI reads the variable too
    again, _ = _rows(capsys, "--filter", "gsm8k")
    assert again["llada_gsm8k"][1] == "8"


def test_a_data_directory_without_a_task_s_file_says_missing(tmp_path):
    catalog = build_catalog()
    assert documents(catalog, "llada_gsm8k", tmp_path) == "missing"
    assert documents(catalog, "llada_sum_choice", tmp_path) == 200


def test_filter_and_path(capsys, monkeypatch):
    monkeypatch.delenv("EVALSUITE_DATA_DIR", raising=False)
    rows, _ = _rows(capsys, "--filter", "POEM")
    assert set(rows) == {"llada_poem_forward", "llada_poem_backward",
                         "llada_poem_forward_heldout", "llada_poem_backward_heldout",
                         "llada_poem_train_forward"}
    assert main(["tasks", "--filter", "arth"]) == 0
    assert "did you mean 'llada_arith'" in capsys.readouterr().out
    assert main(["tasks", "--path"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == registry.tasks_dir() and (path / "llada_gsm8k" / "llada_gsm8k.yaml").is_file()


def test_unknown_task_names_keep_their_did_you_mean(capsys):
    assert main(["run", "--model", "llada-tiny", "--tasks", "llada_arth"]) == 2
    assert "did you mean 'llada_arith'" in capsys.readouterr().err


def test_group_settings_source_is_its_tasks():
    catalog = build_catalog()
    assert catalog.leaves("llada_mmlu_stem") and all(
        catalog.entries[leaf].kind == "task" for leaf in catalog.leaves("llada_mmlu"))
    assert len(catalog.leaves("llada_mmlu")) == 57
    assert settings_source(catalog, "llada_mmlu") == settings_source(catalog, "llada_mmlu_anatomy")
