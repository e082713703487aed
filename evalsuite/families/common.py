"""Pieces shared by the Hugging Face-layout families (LLaDA-MoE, LLaDA2).

* rotary embeddings with a partial rotary dimension and per-row position ids, computed in
  float32 as the official ``*RotaryEmbedding`` modules do (``inv_freq @ positions``, cos/sin of
  ``cat(freqs, freqs)``, rotate-half applied to the first ``rotary_dim`` features only);
* a SwiGLU MLP with the official ``gate_proj`` / ``up_proj`` / ``down_proj`` names;
* additive attention biases built from boolean "may attend" matrices (``finfo.min`` where not
  allowed, so a row with nothing to attend stays finite);
* checkpoint loading: the safetensors *headers* are checked against the network's expected
  keys and shapes before any weight is read (a family passes a ``describe`` callback that turns
  a mismatch into a message naming the config key and the fix), then the weights are loaded
  straight into the requested dtype.

The LLaDA network (:mod:`evalsuite.models.llada`) keeps its own helpers; RMSNorm is reused
from there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from evalsuite.errors import CheckpointError
from evalsuite.models.checkpoint import _finite, checkpoint_files, iter_tensors, parse_dtype


def inverse_frequencies(rotary_dim: int, theta: float, device: torch.device | None = None
                        ) -> torch.Tensor:
    """``[rotary_dim / 2]`` float32 inverse frequencies of the default RoPE."""
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64, device=device).float()
    return 1.0 / (theta ** (exponents / rotary_dim))


def rotary_cos_sin(position_ids: torch.Tensor, rotary_dim: int, theta: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin ``[B, T, rotary_dim]`` (float32) for integer ``position_ids`` ``[B, T]``."""
    inv = inverse_frequencies(rotary_dim, theta, position_ids.device)
    freqs = (inv[None, :, None].expand(position_ids.shape[0], -1, 1)
             @ position_ids[:, None, :].float()).transpose(1, 2)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` features of ``x`` ``[B, H, T, D]``; the rest pass.

    ``cos``/``sin`` ``[B, T, R]`` are cast to ``x``'s dtype first, as the official code does."""
    rot = cos.shape[-1]
    cos, sin = cos.to(x.dtype)[:, None], sin.to(x.dtype)[:, None]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = torch.cat([-x_rot[..., half:], x_rot[..., :half]], dim=-1)
    return torch.cat([x_rot * cos + rotated * sin, x_pass], dim=-1)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` with the official parameter names."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def additive_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where ``allowed``, ``finfo(dtype).min`` elsewhere (same shape)."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


def key_padding_allowed(attention_mask: torch.Tensor, queries: int) -> torch.Tensor:
    """``[B, 1, Tq, Tk]`` bool: every query may attend every non-padding key."""
    keys = attention_mask.to(torch.bool)[:, None, None, :]
    return keys.expand(-1, 1, queries, -1)


def read_header(files: list[Path]) -> dict[str, tuple[tuple[int, ...], Path]]:
    """Key -> (shape, file) from the safetensors headers only (no tensor data is read)."""
    from safetensors import safe_open

    out: dict[str, tuple[tuple[int, ...], Path]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    out[key] = (tuple(handle.get_slice(key).get_shape()), path)
        except Exception as exc:
            raise CheckpointError(
                f"{path}: cannot read safetensors header ({exc}); it may be truncated or "
                "corrupt, download it again") from None
    return out


#: ``describe(kind, key, found_shape, expected_shape) -> message`` for a mismatch; ``kind`` is
#: ``unexpected``, ``missing`` or ``shape``. Return None for the generic message.
Describe = Callable[[str, str, tuple[int, ...] | None, tuple[int, ...] | None], str | None]


def load_weights(module: nn.Module, ckpt_dir: Path, *, dtype: str | torch.dtype,
                 device: str | torch.device, describe: Describe,
                 ignore: Callable[[str], bool] = lambda key: False) -> nn.Module:
    """Load a checkpoint into ``module`` (built on the meta device; its state-dict keys are the
    checkpoint keys). Headers are validated first: nothing is loaded when a key is unexpected
    or missing or a shape differs. Non-persistent buffers (rotary tables) are not expected."""
    torch_dtype = parse_dtype(dtype)
    files = checkpoint_files(ckpt_dir)
    header = read_header(files)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    for key, (shape, path) in sorted(header.items()):
        if ignore(key):
            continue
        if key not in expected:
            raise CheckpointError(f"{path}: " + (describe("unexpected", key, shape, None) or
                                  f"unexpected key {key!r}; the checkpoint does not match "
                                  "config.json"))
        if shape != expected[key]:
            raise CheckpointError(f"{path}: " + (describe("shape", key, shape, expected[key]) or
                                  f"key {key!r} has shape {shape}, config.json implies "
                                  f"{expected[key]}"))
    missing = sorted(set(expected) - set(header))
    if missing:
        detail = describe("missing", missing[0], None, expected[missing[0]])
        raise CheckpointError(
            f"{ckpt_dir}: missing key(s) {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + ("; " + detail if detail else
               "; the checkpoint is incomplete or does not match config.json"))
    state: dict[str, torch.Tensor] = {}
    for key, path, tensor in iter_tensors(files):
        if ignore(key) or key not in expected:
            continue
        state[key] = _finite(tensor.to(device=device, dtype=torch_dtype), tensor, key, path,
                             torch_dtype)
    module.load_state_dict(state, assign=True, strict=True)
    module.eval().requires_grad_(False)
    return module


#: llada-tiny's tokenizer files copied into a tiny checkpoint (its ``tokenizer_config.json`` is
#: rewritten without the chat template: a tiny checkpoint is a base model).
TINY_TOKENIZER_FILES = ("tokenizer.json", "special_tokens_map.json")


def write_tiny_checkpoint(out_dir: Path, config: dict, network: nn.Module, tokenizer_dir: Path,
                          seed: int) -> Path:
    """Write ``network``'s state dict, with seeded random values, as ``model.safetensors`` in the
    official key layout, ``config`` as ``config.json`` and llada-tiny's tokenizer (no chat
    template) into ``out_dir``: a tokenizer-equipped checkpoint for end-to-end tests.

    Norm weights are 1, the embedding N(0, 0.5), every other tensor N(0, 0.08), drawn from one
    generator in sorted key order, so the files are rebuilt bit for bit."""
    import json
    import shutil

    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in sorted(network.state_dict().items()):
        if key.endswith("norm.weight") or key.endswith("layernorm.weight"):
            state[key] = torch.ones(value.shape, dtype=torch.float32)
        else:
            scale = 0.5 if "embed" in key else 0.08
            state[key] = (torch.randn(value.shape, generator=gen) * scale).contiguous()
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in TINY_TOKENIZER_FILES:
        shutil.copyfile(Path(tokenizer_dir) / name, out_dir / name)
    tok_cfg = json.loads((Path(tokenizer_dir) / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    return out_dir
