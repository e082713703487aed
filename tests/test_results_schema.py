"""Every schema version on disk keeps loading; the migration chain is extensible."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalsuite.errors import ResultsError
from evalsuite.results import SCHEMA_VERSION, load_runs, read_run
from evalsuite.results.migrations import MIGRATIONS, upgrade

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "results"


def test_v1_fixture_loads() -> None:
    run = read_run(FIXTURES / "v1" / "20250101T000000Z-llada-tiny-v1fix")
    rec = run.record
    assert rec.schema_version == SCHEMA_VERSION and rec.source_format == "evalsuite"
    assert rec.model.preset == "llada-tiny"
    assert sorted(rec.tasks) == [
        "llada_gsm8k",
        "llada_mmlu",
        "llada_mmlu_anatomy",
        "llada_mmlu_astronomy",
        "llada_piqa",
    ]
    assert [u.name for u in rec.units()] == ["llada_gsm8k", "llada_mmlu", "llada_piqa"]
    assert rec.tasks["llada_gsm8k"].metrics["exact_match,strict-match"].value == pytest.approx(
        4 / 6
    )
    assert len(run.samples) == 6 + 6 + 4 + 4


def test_v0_lm_eval_layout_migrates() -> None:
    run = read_run(FIXTURES / "v0" / "toy-model")
    rec = run.record
    assert rec.schema_version == SCHEMA_VERSION and rec.source_format == "lm-eval"
    assert rec.model.preset == "Toy" and rec.model.backend == "Toy"
    assert rec.created_utc == "2025-01-02T03:04:05Z"
    assert rec.speed.wall_time_s == pytest.approx(4.2)
    assert rec.environment["lm_eval_version"]
    gen = rec.tasks["toy_gen"]
    assert gen.version == "1.0" and gen.output_type == "generate_until"
    assert set(gen.metrics) == {"exact_match,strict", "exact_match,loose"}
    samples = run.samples_of("toy_gen")
    assert [s.doc_id for s in samples] == [0, 1, 2]
    assert samples[0].extracted == {"strict": "2", "loose": " 2 <b>x</b>"}
    for key, mv in gen.metrics.items():
        assert sum(s.scores[key] for s in samples) / 3 == pytest.approx(mv.value)
    mc = run.samples_of("toy_mc")
    assert mc[1].target == "[1]  5" and mc[0].nfe is None


def test_v0_results_file_can_be_named_directly() -> None:
    results = next((FIXTURES / "v0" / "toy-model").glob("results_*.json"))
    assert read_run(results).record.tasks.keys() == {"toy_gen", "toy_mc"}


def test_v0_without_sample_files_is_refused(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "v0" / "toy-model", tmp_path / "m")
    for f in (tmp_path / "m").glob("samples_*"):
        f.unlink()
    with pytest.raises(ResultsError, match=r"results_.*\.json: no samples_.*--log_samples"):
        read_run(tmp_path / "m")


def test_every_fixture_version_in_one_frame() -> None:
    df = load_runs([FIXTURES / "v0" / "toy-model", FIXTURES / "v1"])
    assert set(df["source"]) == {"lm-eval", "evalsuite"}
    assert set(df["schema_version"]) == {SCHEMA_VERSION}


def test_migration_chain_reaches_a_future_version() -> None:
    """A future v3 adds MIGRATIONS[2]; v1 documents then pass through both steps."""

    def v2_to_v3(doc: dict) -> dict:
        run = dict(doc["run"], schema_version=3, renamed_created=doc["run"]["created_utc"])
        return {"schema_version": 3, "run": run, "samples": doc["samples"]}

    legacy_fixture = FIXTURES / "v0" / "toy-model"
    v1_doc = {"schema_version": 1, "run": {"created_utc": "t", "schema_version": 1}, "samples": []}
    v3 = upgrade(v1_doc, migrations={**MIGRATIONS, 2: v2_to_v3}, target=3)
    assert v3["schema_version"] == 3 and v3["run"]["renamed_created"] == "t"
    assert v3["run"]["status"] == "complete"  # the v1 -> v2 step ran first
    assert legacy_fixture.exists()
    with pytest.raises(ResultsError, match="no migration to 3"):
        upgrade(v1_doc, target=3)
    with pytest.raises(ResultsError, match="unknown schema_version 3"):
        upgrade({"schema_version": 3}, target=2)
    with pytest.raises(ResultsError, match="must be an integer"):
        upgrade({"schema_version": "1"})
