"""Checkpoint loading: sharded files, GQA + tied embeddings, dtypes, and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalsuite.errors import CheckpointError, HubUnreachableError
from evalsuite.models.checkpoint import load_llada
from evalsuite.models.llada import LLaDAConfig, LLaDAModel
from evalsuite.models.loader import load_model

from conftest import GOLDEN

PREFIX = "model.transformer."


def _copy_golden(tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(GOLDEN / "tiny-llada", target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def _write_random_checkpoint(path: Path, **overrides) -> LLaDAConfig:
    """A random LLaDA-format checkpoint (iLLaDA-like when n_kv_heads < n_heads, tied)."""
    raw = {"d_model": 32, "n_heads": 4, "n_kv_heads": 2, "n_layers": 2, "mlp_hidden_size": 48,
           "vocab_size": 64, "embedding_size": 64, "mask_token_id": 5, "eos_token_id": 1,
           "rope_theta": 10000.0, "weight_tying": True, "block_type": "llama",
           "layer_norm_type": "rms", "activation_type": "silu", **overrides}
    cfg = LLaDAConfig.from_dict(raw)
    torch.manual_seed(0)
    model = LLaDAModel(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    state = {PREFIX + k: v.contiguous() for k, v in model.state_dict().items()}
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(raw))
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half],
              "model-00002-of-00002.safetensors": keys[half:]}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(path / name))
    index = {"metadata": {}, "weight_map": {k: n for n, ks in shards.items() for k in ks}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    torch.save(model.state_dict(), path / "reference_state.pt")
    return cfg


def _manual_forward(state: dict, cfg: LLaDAConfig, ids: torch.Tensor) -> torch.Tensor:
    """Straightforward GQA forward (repeat_interleave, explicit softmax) as a cross-check."""
    x = state["wte.weight"][ids]
    t, hd = ids.shape[1], cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.outer(torch.arange(t).float(), inv)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rms(h, w):
        return w * h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps)

    def rot(h):
        a, b = h.chunk(2, -1)
        return h * cos + torch.cat([-b, a], -1) * sin

    for i in range(cfg.n_layers):
        p = lambda n: state[f"blocks.{i}.{n}.weight"]  # noqa: E731
        h = rms(x, p("attn_norm"))
        q = (h @ p("q_proj").T).view(1, t, cfg.n_heads, hd).transpose(1, 2)
        k = (h @ p("k_proj").T).view(1, t, cfg.n_kv_heads, hd).transpose(1, 2)
        v = (h @ p("v_proj").T).view(1, t, cfg.n_kv_heads, hd).transpose(1, 2)
        rep = cfg.n_heads // cfg.n_kv_heads
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = torch.softmax(rot(q) @ rot(k).transpose(-1, -2) / hd ** 0.5, -1) @ v
        x = x + att.transpose(1, 2).reshape(1, t, -1) @ p("attn_out").T
        h = rms(x, p("ff_norm"))
        x = x + (torch.nn.functional.silu(h @ p("ff_proj").T) * (h @ p("up_proj").T)) @ p("ff_out").T
    return rms(x, state["ln_f.weight"]) @ state["wte.weight"].T


def test_sharded_gqa_tied_checkpoint_loads_and_matches_manual_forward(tmp_path):
    cfg = _write_random_checkpoint(tmp_path / "illada")
    model, _ = load_llada(str(tmp_path / "illada"))
    assert model.ff_out is None and cfg.n_kv_heads == 2
    ids = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(1))
    state = torch.load(tmp_path / "illada" / "reference_state.pt")
    with torch.no_grad():
        ours = model(ids)
        manual = _manual_forward(state, cfg, ids)
    assert (ours - manual).abs().max().item() < 1e-4


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_loads_and_stays_close(dtype, golden, golden_model):
    model, _ = load_llada(str(GOLDEN / "tiny-llada"), dtype=dtype)
    assert model.wte.weight.dtype == getattr(torch, dtype)
    with torch.no_grad():
        logits = model(golden["logits.input_ids"]).float()
    ref = golden["logits.logits"]
    agree = (logits.argmax(-1) == ref.argmax(-1)).float().mean().item()
    assert agree > 0.9


def test_special_tokens_come_from_config_and_tokenizer(tiny_lm):
    tok = tiny_lm.tokenizer
    assert tiny_lm.tokens.mask_id == tok.convert_tokens_to_ids("<|mdm_mask|>")
    assert tiny_lm.tokens.eos_id == tok.eos_token_id
    assert tiny_lm.tokens.eot_id == tok.convert_tokens_to_ids("<|eot_id|>")
    golden_only = load_model(str(GOLDEN / "tiny-llada"), device="cpu")
    assert golden_only.tokenizer is None
    assert (golden_only.tokens.mask_id, golden_only.tokens.eos_id) == (1000, 999)


def test_missing_config_names_the_file(tmp_path):
    ckpt = _copy_golden(tmp_path)
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: not found"):
        load_llada(str(ckpt))


def test_truncated_safetensors_names_the_file(tmp_path):
    ckpt = _copy_golden(tmp_path)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read .*truncated"):
        load_llada(str(ckpt))


def test_missing_key_is_named(tmp_path):
    ckpt = _copy_golden(tmp_path)
    state = load_file(str(ckpt / "model.safetensors"))
    del state[PREFIX + "blocks.1.up_proj.weight"]
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing key\(s\) model\.transformer\.blocks\.1\.up_proj\.weight"):
        load_llada(str(ckpt))


def test_shape_mismatch_names_file_and_key(tmp_path):
    ckpt = _copy_golden(tmp_path)
    raw = json.loads((ckpt / "config.json").read_text())
    raw["mlp_hidden_size"] = 128
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: key 'model\.transformer\.blocks\.0\.ff_out\.weight' has shape \(64, 192\)"):
        load_llada(str(ckpt))


def test_unexpected_key_is_named(tmp_path):
    ckpt = _copy_golden(tmp_path)
    raw = json.loads((ckpt / "config.json").read_text())
    raw["n_layers"] = 1
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"unexpected key 'model\.transformer\.blocks\.1\."):
        load_llada(str(ckpt))


def test_missing_shard_is_named(tmp_path):
    _write_random_checkpoint(tmp_path / "sharded")
    (tmp_path / "sharded" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors: shard listed"):
        load_llada(str(tmp_path / "sharded"))


def test_unsupported_architecture_is_refused(tmp_path):
    ckpt = _copy_golden(tmp_path)
    raw = json.loads((ckpt / "config.json").read_text())
    raw["alibi"] = True
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="alibi=True is not supported"):
        load_llada(str(ckpt))


def test_unknown_dtype_is_named():
    with pytest.raises(CheckpointError, match="unknown dtype 'float8'"):
        load_llada(str(GOLDEN / "tiny-llada"), dtype="float8")


def test_unreachable_hub_says_how_to_run_from_a_local_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(HubUnreachableError, match="pass --model DIR"):
        load_llada("GSAI-ML/LLaDA-8B-Base")


def test_hub_download_failure_is_reported_as_unreachable(monkeypatch, tmp_path):
    """With the network closed (as here), a real download attempt fails and is explained."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed local port
    with pytest.raises(HubUnreachableError, match="To run offline"):
        load_llada("GSAI-ML/LLaDA-8B-Base")


def test_nonexistent_local_path_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        load_llada(str(tmp_path / "nope" / "deeper"))
