"""Offline data loading: the local layout converted to the hub datasets' fields and splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.errors import ConfigError
from evalsuite.tasks import data

FIXTURES = Path(__file__).parent / "fixtures" / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(FIXTURES))
    return FIXTURES


def test_gsm8k(offline: Path) -> None:
    ds = data.load_gsm8k()
    assert set(ds) == {"train", "test"}
    assert ds["test"].column_names == ["question", "answer"]
    assert ds["test"][0]["answer"].endswith("#### 18")


def test_mmlu_csv_becomes_cais_layout(offline: Path) -> None:
    ds = data.load_mmlu(subset="abstract_algebra", version=1.0)  # metadata keys are ignored
    assert set(ds) == {"test", "dev"}
    row = ds["dev"][0]
    assert set(row) == {"question", "subject", "choices", "answer"}
    # HELM's check of the original data: the first dev item's answer is B (index 1)
    assert row["question"].startswith("Find all c in Z_3") and row["answer"] == 1
    assert len(row["choices"]) == 4 and row["subject"] == "abstract_algebra"
    assert data.load_mmlu(subset="anatomy")["dev"][0]["answer"] == 3  # D
    assert [r["answer"] for r in ds["test"]] == [1, 2, 3]  # B, C, D as in the original


def test_mmlu_rejects_a_headerless_csv(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("What?,a,b,c,d,A\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="header"):
        data.read_mmlu_csv(path, "x")


def test_unknown_subset_suggests(offline: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'anatomy'"):
        data.load_mmlu(subset="anatomyy")


def test_piqa_labels_joined(offline: Path) -> None:
    ds = data.load_piqa()
    assert set(ds) == {"train", "validation"} and len(ds["train"]) == 0
    labels = (FIXTURES / "piqa" / "valid-labels.lst").read_text().split()
    assert [r["label"] for r in ds["validation"]] == [int(x) for x in labels]
    assert ds["validation"].column_names == ["goal", "sol1", "sol2", "label"]


def test_math_filters_by_subject(offline: Path) -> None:
    ds = data.load_math(subset="counting_and_probability")
    assert {r["type"] for r in ds["test"]} == {"Counting & Probability"}
    assert ds["test"].column_names == ["problem", "level", "type", "solution"]


def test_bbh(offline: Path) -> None:
    ds = data.load_bbh(subset="navigate")
    assert ds["test"].column_names == ["input", "target"] and len(ds["test"]) == 3


def test_poems_need_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    with pytest.raises(ConfigError, match="EVALSUITE_DATA_DIR"):
        data.load_poems()


def test_poems(offline: Path) -> None:
    first = data.load_poems()["test"][0]
    assert (first["first"], first["second"]) == ("窈窕淑女", "君子好逑")


def test_missing_directory_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="is not a directory"):
        data.load_gsm8k()


def test_missing_file_names_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=r"gsm8k[/\\]train\.jsonl"):
        data.load_gsm8k()


def test_piqa_misaligned_labels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "piqa").mkdir()
    row = {"goal": "g", "sol1": "a", "sol2": "b"}
    (tmp_path / "piqa" / "valid.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (tmp_path / "piqa" / "valid-labels.lst").write_text("0\n1\n", encoding="utf-8")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="1 questions but 2 labels"):
        data.load_piqa()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")
def test_shared_data_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the full copies: every loader sees the published test-set sizes."""
    from tools.generate_tasks import MATH_TASKS
    from evalsuite.tasks.subjects import BBH_TASKS, MMLU_SUBJECTS

    monkeypatch.setenv(data.DATA_DIR_ENV, str(SHARED))
    assert len(data.load_gsm8k()["test"]) == 1319
    assert len(data.load_piqa()["validation"]) == 1838
    assert sum(len(data.load_math(subset=s)["test"]) for s in MATH_TASKS.values()) == 5000
    assert sum(len(data.load_bbh(subset=t)["test"]) for t in BBH_TASKS) == 6511
    assert sum(len(data.load_mmlu(subset=s)["test"]) for s in MMLU_SUBJECTS) == 14042
    assert len(data.load_poems()["test"]) == 469
    assert len(data.load_humaneval()["test"]) == 164
