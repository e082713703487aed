"""W&B logging for real: ``evalsuite run --wandb-args`` with the ``wandb`` package in offline
mode (``WANDB_MODE=offline``), reading back what the run wrote to its local ``.wandb`` log."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalsuite.cli import main

from conftest import FIXTURES

wandb = pytest.importorskip("wandb")


def _records(path: Path) -> Iterator[object]:
    """The protobuf records of a ``.wandb`` transaction log (a ``:W&B`` header, then LevelDB
    log blocks of 32 KiB: 7-byte headers ``crc, length, type`` with FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


@pytest.mark.slow
def test_run_logs_results_samples_costs_and_settings_to_wandb(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k", "--limit", "2",
                 "--data-dir", str(FIXTURES / "data"), "--output", str(tmp_path / "runs"),
                 "--gen-length", "8", "--steps", "8", "--block-length", "8", "--no-cache",
                 "--wandb-args", "project=evalsuite-test,name=offline-check"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    history: dict[str, str] = {}
    config: dict[str, str] = {}
    deadline = time.monotonic() + 60  # wandb's service process writes the log after finish()
    while "evalsuite/nfe" not in history:
        assert time.monotonic() < deadline, f"the offline run log has no evalsuite/nfe: {history}"
        time.sleep(0.5)
        history, config = {}, {}
        for r in _records(log):
            kind = r.WhichOneof("record_type")
            if kind == "history":
                history.update({i.key or "/".join(i.nested_key): i.value_json
                                for i in r.history.item})
            elif kind == "config":
                config.update({i.key: i.value_json for i in r.config.update})
    # lm-eval's logger: metrics and the per-sample table
    assert "llada_gsm8k/exact_match,strict-match" in history
    assert any(k.startswith("llada_gsm8k_eval_results/") for k in history)
    # evalsuite's costs, equal to the run record's
    assert int(history["evalsuite/nfe"]) == record["speed"]["nfe"] > 0
    assert int(history["evalsuite/generated_tokens"]) == record["speed"]["generated_tokens"]
    assert int(history["evalsuite/generation_nfe"]) == record["speed"]["generation_nfe"]
    # settings and their provenance, equal to the record's
    assert json.loads(config["evalsuite_settings"])["llada_gsm8k"] == \
        record["tasks"]["llada_gsm8k"]["settings"]
    provenance = json.loads(config["evalsuite_settings_provenance"])["llada_gsm8k"]
    assert provenance["sources"] == record["tasks"]["llada_gsm8k"]["provenance"]["sources"]
    assert provenance["sources"]["gen_length"] == "cli"
