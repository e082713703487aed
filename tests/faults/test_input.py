"""Hostile and broken input: each refused with what, where and how to fix (exit 2), before
weights load where possible, and nothing already computed lost (the cache keeps it)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from evalsuite.cli import main

from .helpers import DATA, FAST, record, run_dirs

MC_TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
DOCS = [{"question": "2+3?", "choices": ["5", "6"], "label": 0},
        {"question": "1+1?", "choices": ["2", "3"], "label": 0}]


def _task_dir(tmp_path: Path, name: str, docs=DOCS, yaml_text: str | None = None) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{name}.yaml").write_text(yaml_text or MC_TASK.format(name=name, data=data))
    return folder


def _run(tmp_path: Path, tasks: str, *extra: str, data: Path = DATA) -> int:
    return main(["run", "--model", "llada-tiny", "--tasks", tasks, "--limit", "2",
                 "--data-dir", str(data), "--output", str(tmp_path / "runs"), *FAST, *extra])


def _refused(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_malformed_yaml_names_file_line_and_column(tmp_path, capsys):
    folder = _task_dir(tmp_path, "ok_task")
    (folder / "broken.yaml").write_text("task: broken\ndataset_path: json\n  doc_to_text: [x\n")
    code = _run(tmp_path, "ok_task", "--include-path", str(folder))
    _refused(capsys, code, "broken.yaml: line 3, column 14: malformed YAML", "fix the syntax")


def test_an_unknown_yaml_key_gets_the_closest_known_one(tmp_path, capsys):
    folder = _task_dir(tmp_path, "typo_task")
    path = folder / "typo_task.yaml"
    path.write_text(path.read_text() + "doc_to_targt: label\n")
    code = _run(tmp_path, "typo_task", "--include-path", str(folder))
    _refused(capsys, code, "typo_task.yaml: unknown key 'doc_to_targt'",
             "did you mean 'doc_to_target'?")


def test_non_utf8_bytes_in_a_yaml_name_the_line(tmp_path, capsys):
    folder = _task_dir(tmp_path, "latin_task")
    path = folder / "latin_task.yaml"
    path.write_bytes(path.read_bytes().replace(b"Q: ", b"Q\xe9: "))
    code = _run(tmp_path, "latin_task", "--include-path", str(folder))
    _refused(capsys, code, "latin_task.yaml: line 7: byte 0xe9 is not UTF-8", "save the file as UTF-8")


def _data_copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(DATA / "gsm8k", data / "gsm8k")
    return data


def test_non_utf8_bytes_in_a_data_file_name_the_file_and_line(tmp_path, capsys):
    data = _data_copy(tmp_path)
    lines = (data / "gsm8k" / "test.jsonl").read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"\"question\": \"", b"\"question\": \"\xff", 1)
    (data / "gsm8k" / "test.jsonl").write_bytes(b"".join(lines))
    code = _run(tmp_path, "gsm8k", data=data)
    _refused(capsys, code, "gsm8k/test.jsonl: line 2", "0xff is not UTF-8", "re-encode")


def test_a_missing_data_file_names_it(tmp_path, capsys):
    data = _data_copy(tmp_path)
    (data / "gsm8k" / "test.jsonl").unlink()
    code = _run(tmp_path, "gsm8k", data=data)
    _refused(capsys, code, "missing data file", "gsm8k/test.jsonl")


def test_a_data_file_with_a_wrong_field_says_which(tmp_path, capsys):
    data = _data_copy(tmp_path)
    path = data / "gsm8k" / "test.jsonl"
    path.write_text(path.read_text().replace('"answer"', '"solution"'))
    code = _run(tmp_path, "gsm8k", data=data)
    _refused(capsys, code, "task llada_gsm8k", "'answer' is undefined", "field names")


def test_an_empty_task_is_refused(tmp_path, capsys):
    folder = _task_dir(tmp_path, "empty_task", docs=[])
    code = _run(tmp_path, "empty_task", "--include-path", str(folder))
    _refused(capsys, code, "task empty_task", "no documents")


def test_a_zero_length_continuation_is_refused_before_weights_load(tmp_path, capsys):
    docs = [DOCS[0], {"question": "1+1?", "choices": ["2", ""], "label": 0}]
    folder = _task_dir(tmp_path, "zero_task", docs=docs)
    code = _run(tmp_path, "zero_task", "--include-path", str(folder))
    _refused(capsys, code, "task zero_task doc 1: answer '' is empty", "doc_to_choice")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- results directory


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 4 KiB tmpfs (as root), unmounted afterwards; None where mounting is not allowed."""
    point = tmp_path / "small"
    point.mkdir()
    if not _can_mount() or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(point)],
            capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_read_only_results_directory_fails_before_weights_load(tmp_path, capsys, tiny_tmpfs,
                                                                 monkeypatch):
    import evalsuite.runner as runner

    monkeypatch.setattr(runner, "build_lm", lambda _p: pytest.fail("weights loaded"))
    if tiny_tmpfs is not None:
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
        out = tiny_tmpfs
    else:  # not root: permissions hold
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o555)
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k", "--limit", "1",
                 "--data-dir", str(DATA), "--output", str(out / "runs"), *FAST])
    _refused(capsys, code, f"--output {out / 'runs'} is not writable", "pass a writable directory")


@pytest.mark.slow
def test_a_full_results_directory_keeps_every_answer_in_the_cache(tmp_path, capsys, tiny_tmpfs,
                                                                  monkeypatch):
    cache = tmp_path / "cache"
    args = ["--cache-dir", str(cache)]
    if tiny_tmpfs is None:  # not root: inject the error the kernel would give
        import evalsuite.results.store as store

        def full(path, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        monkeypatch.setattr(store, "_write_file", full)
        out = tmp_path / "out"
    else:
        out = tiny_tmpfs
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k,piqa", "--limit", "2",
                 "--data-dir", str(DATA), "--output", str(out), *FAST, *args])
    _refused(capsys, code, "No space left on device", "free space",
             "6 answered requests are kept in the request cache")
    assert run_dirs(out) == [] and not [p for p in out.iterdir() if p.name.startswith(".tmp")]
    monkeypatch.undo()
    good = tmp_path / "runs"
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k,piqa", "--limit", "2",
                 "--data-dir", str(DATA), "--output", str(good), *FAST, *args])
    assert code == 0, capsys.readouterr().err
    (run,) = run_dirs(good)
    cache_info = record(run)["reliability"]["cache"]
    assert cache_info["from_cache"] == 6 and cache_info["computed"] == 0
