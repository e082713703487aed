"""The results store: atomic writes, no overwrites, concurrent writers, loading, bad inputs."""

from __future__ import annotations

import dataclasses

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from results_builder import GEN_TASK, MC_TASK, flags, lm_eval_output, make_run, meta, request_stats

from evalsuite.errors import ResultsError
from evalsuite.results import load_runs, read_run, read_runs, write_run, write_run_from_lm_eval

REPO = Path(__file__).resolve().parents[1]


def test_round_trip_keeps_every_recorded_field(tmp_path: Path) -> None:
    out = lm_eval_output({GEN_TASK: flags(5, 3), MC_TASK: flags(4, 1)})
    runner_meta = dataclasses.replace(meta(), status="failed", failure="RuntimeError: boom",
                                      requested_tasks=("a", "b"))
    run_dir = write_run_from_lm_eval(
        tmp_path, out, runner_meta, request_stats(out, nfe=7, seconds=0.5)
    )
    run = read_run(run_dir)
    rec = run.record
    assert run_dir.parent == tmp_path and run_dir.name == rec.run_id
    assert rec.model.preset == "llada-tiny" and rec.model.dtype == "float32"
    assert rec.tasks[GEN_TASK].settings["gen_length"] == 32
    assert rec.tasks[GEN_TASK].generation_kwargs == {"until": ["Question:"], "max_gen_toks": 32}
    assert rec.tasks[GEN_TASK].metrics["exact_match,strict-match"].value == pytest.approx(0.6)
    assert rec.tasks[MC_TASK].metrics["acc,none"].value == pytest.approx(0.25)
    assert rec.seeds.as_dict() == {"request_seed_base": 1234}
    assert rec.device == "cpu" and rec.limit == 20
    assert rec.speed.tokens_per_s == pytest.approx(320 / 12.5)
    assert (rec.status, rec.failure) == ("failed", "RuntimeError: boom")
    assert rec.requested_tasks == ("a", "b") and rec.extra == {}
    assert len(run.samples) == 9
    first = run.samples_of(GEN_TASK)[0]
    assert first.prompt.startswith("Question: What is 0 + 10?")
    assert set(first.extracted) == {"strict-match", "flexible-extract"}
    assert first.scores == {"exact_match,strict-match": 1.0, "exact_match,flexible-extract": 1.0}
    assert (first.nfe, first.seconds, first.generated_tokens) == (7, 0.5, 16)
    mc = run.samples_of(MC_TASK)[1]
    assert mc.target == "[1]  do B" and "log-likelihood" in mc.output
    # scores in the samples agree with the aggregate the run record holds
    for name, task in rec.tasks.items():
        key = next(iter(task.metrics))
        vals = [s.scores[key] for s in run.samples_of(name)]
        assert sum(vals) / len(vals) == pytest.approx(task.metrics[key].value)


def test_group_record_and_leaves(tmp_path: Path) -> None:
    run = read_run(
        make_run(
            tmp_path,
            {"llada_mmlu_anatomy": flags(4, 2), "llada_mmlu_astronomy": flags(6, 6)},
            with_group=True,
        )
    )
    units = [u.name for u in run.record.units()]
    assert units == ["llada_mmlu"]
    assert run.record.tasks["llada_mmlu"].n_samples == 10
    assert len(run.samples_of("llada_mmlu")) == 10


def test_runs_never_overwrite_and_leave_no_temp_dirs(tmp_path: Path) -> None:
    first = read_run(make_run(tmp_path, {MC_TASK: flags(3, 1)}))
    with pytest.raises(ResultsError, match="already exists"):
        write_run(tmp_path, first.record, first.samples)
    assert [p.name for p in tmp_path.iterdir()] == [first.record.run_id]
    assert read_run(first.path).samples == first.samples


WRITER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    from pathlib import Path
    from results_builder import make_run, flags, GEN_TASK, MC_TASK
    for i in range(6):
        make_run(Path(sys.argv[1]), {{GEN_TASK: flags(40, i), MC_TASK: flags(40, 2 * i)}},
                 preset=sys.argv[2])
""")


def test_two_processes_writing_at_once(tmp_path: Path) -> None:
    script = WRITER.format(repo=str(REPO), tests=str(REPO / "tests"))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "runs"), preset])
        for preset in ("writer-a", "writer-b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    runs, skipped = read_runs([tmp_path / "runs"])
    assert skipped == [] and len(runs) == 12
    assert len({r.record.run_id for r in runs}) == 12
    assert sorted({r.record.model.preset for r in runs}) == ["writer-a", "writer-b"]
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]


def test_load_runs_one_row_per_run_task_metric(tmp_path: Path) -> None:
    make_run(tmp_path, {GEN_TASK: flags(5, 3), MC_TASK: flags(4, 1)})
    make_run(tmp_path, {MC_TASK: flags(4, 4)}, preset="other")
    df = load_runs(tmp_path)
    assert len(df) == 2 + 1 + 1  # gsm8k: two filters; piqa twice
    assert set(df["model"]) == {"llada-tiny", "other"}
    row = df[(df.model == "other") & (df.task == MC_TASK)].iloc[0]
    assert row["value"] == 1.0 and row["metric"] == "acc" and row["filter"] == "none"
    assert row.ci95_low == pytest.approx(row.value - 1.96 * row.stderr)
    assert not math.isnan(row.tokens_per_s)


# ---------------------------------------------------------------- bad inputs


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs", {GEN_TASK: flags(5, 3), MC_TASK: flags(4, 1)})


def test_truncated_run_json(run_dir: Path) -> None:
    path = run_dir / "run.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(ResultsError, match=r"run\.json: not valid JSON.*truncated"):
        read_run(run_dir)


def test_hand_edited_run_json(run_dir: Path) -> None:
    path = run_dir / "run.json"
    body = json.loads(path.read_text())
    body["tasks"][MC_TASK]["metrics"]["acc,none"]["value"] = 0.99
    path.write_text(json.dumps(body))
    with pytest.raises(ResultsError, match=r"run\.json: content does not match.*edited"):
        read_run(run_dir)


def test_truncated_samples(run_dir: Path) -> None:
    path = run_dir / "samples.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsError, match=r"samples\.jsonl: line \d+ is not valid JSON"):
        read_run(run_dir)
    path.write_bytes(b"".join(data.splitlines(keepends=True)[:3]))
    with pytest.raises(ResultsError, match=r"samples\.jsonl: does not match.*3 records, 9 written"):
        read_run(run_dir)


def test_hand_edited_samples(run_dir: Path) -> None:
    path = run_dir / "samples.jsonl"
    path.write_text(
        path.read_text().replace(
            '"exact_match,strict-match": 0.0', '"exact_match,strict-match": 1.0'
        )
    )
    with pytest.raises(ResultsError, match="edited after the run was written"):
        read_run(run_dir)


def test_unknown_schema_version(run_dir: Path) -> None:
    path = run_dir / "run.json"
    body = json.loads(path.read_text())
    body["schema_version"] = 99
    path.write_text(json.dumps(body))
    with pytest.raises(
        ResultsError, match=r"run\.json: unknown schema_version 99.*Upgrade evalsuite"
    ):
        read_run(run_dir)


def test_run_without_samples(run_dir: Path) -> None:
    (run_dir / "samples.jsonl").unlink()
    with pytest.raises(ResultsError, match=r"samples\.jsonl: missing; the run has no per-sample"):
        read_run(run_dir)
    assert read_run(run_dir, samples=False).record.tasks  # the record alone still loads
    (run_dir / "samples.jsonl").write_text("")
    with pytest.raises(ResultsError, match=r"samples\.jsonl: empty"):
        read_run(run_dir)


def test_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(ResultsError, match="not a run directory"):
        read_run(tmp_path / "empty")
    with pytest.raises(ResultsError, match="no such run directory"):
        read_run(tmp_path / "missing")


def test_read_runs_skips_bad_ones_and_names_them(tmp_path: Path) -> None:
    good = make_run(tmp_path, {MC_TASK: flags(3, 1)})
    bad = make_run(tmp_path, {MC_TASK: flags(3, 2)})
    (bad / "run.json").write_text("{")
    (tmp_path / ".tmp-in-progress").mkdir()  # a write in progress is not an input
    runs, skipped = read_runs([tmp_path], on_error="skip")
    assert [r.path for r in runs] == [good]
    assert len(skipped) == 1 and str(bad / "run.json") in skipped[0].message
    with pytest.raises(ResultsError):
        read_runs([tmp_path])
    df = load_runs(tmp_path, on_error="skip")
    assert len(df) == 1 and df.attrs["skipped"][0][0] == str(bad)


def test_lm_eval_output_without_samples_is_refused(tmp_path: Path) -> None:
    out = lm_eval_output({MC_TASK: flags(3, 1)})
    del out["samples"]
    with pytest.raises(ResultsError, match="log_samples=True"):
        write_run_from_lm_eval(tmp_path, out, meta(), {})
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_find_runs_searches_nested_directories(tmp_path: Path) -> None:
    a = make_run(tmp_path / "results" / "runs", {MC_TASK: flags(3, 1)})
    b = make_run(tmp_path / "results" / "baselines", {MC_TASK: flags(3, 2)})
    broken = tmp_path / "results" / "runs" / "lost-record"
    broken.mkdir()
    (broken / "samples.jsonl").write_text("")
    runs, skipped = read_runs([tmp_path / "results"], on_error="skip")
    assert sorted(r.path for r in runs) == sorted([a, b])
    assert [s.path for s in skipped] == [broken] and "not a run directory" in skipped[0].message
