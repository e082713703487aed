"""Loading official LLaDA-family checkpoints (``config.json`` + safetensors).

Accepts a local directory or a hub id. Single files (``model.safetensors``) and sharded ones
(``model.safetensors.index.json``) are supported. Every problem names the file and the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from evalsuite.errors import CheckpointError, HubUnreachableError
from evalsuite.models.llada import LLaDAConfig, LLaDAModel

KEY_PREFIX = "model.transformer."
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """Map a dtype name to a torch dtype; unknown names raise :class:`CheckpointError`."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[str(name).lower()]
    except KeyError:
        raise CheckpointError(
            f"unknown dtype {name!r}; use one of float32, bfloat16, float16"
        ) from None


def resolve_checkpoint_dir(path_or_hub_id: str, revision: str | None = None) -> Path:
    """Return a local directory for a path or hub id, downloading from the hub if needed.

    A hub id is first looked up in the local cache; if it is not there and the hub cannot be
    reached, :class:`HubUnreachableError` explains how to run from a local path.
    """
    local = Path(path_or_hub_id).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise CheckpointError(f"{local}: is a file; pass the checkpoint directory instead")
    looks_like_path = path_or_hub_id.startswith((".", "/", "~")) or path_or_hub_id.count("/") != 1
    if looks_like_path:
        raise CheckpointError(
            f"{path_or_hub_id}: no such directory; pass a local checkpoint directory "
            "(config.json + *.safetensors) or a hub id such as GSAI-ML/LLaDA-8B-Base"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                path_or_hub_id, revision=revision, allow_patterns=HUB_PATTERNS,
                local_files_only=True,
            )
        )
    except Exception:  # not cached: fall through to a download
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise HubUnreachableError(_hub_help(path_or_hub_id, "HF_HUB_OFFLINE=1 is set"))
    try:
        return Path(
            snapshot_download(path_or_hub_id, revision=revision, allow_patterns=HUB_PATTERNS)
        )
    except Exception as exc:  # network errors come in many types
        raise HubUnreachableError(_hub_help(path_or_hub_id, f"{type(exc).__name__}: {exc}")) from None


def _hub_help(hub_id: str, reason: str) -> str:
    return (
        f"could not get {hub_id!r} from the Hugging Face hub ({reason.splitlines()[0][:200]}). "
        f"To run offline, download the checkpoint on a machine with access "
        f"(`huggingface-cli download {hub_id} --local-dir DIR`), copy DIR here and pass "
        f"--model DIR (a local directory with config.json and *.safetensors)."
    )


def checkpoint_files(ckpt_dir: Path) -> list[Path]:
    """The safetensors files of a checkpoint, from the shard index when there is one."""
    index = ckpt_dir / INDEX_FILE
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f"{index}: unreadable shard index ({exc})") from None
        files = sorted({ckpt_dir / name for name in weight_map.values()})
        for f in files:
            if not f.exists():
                raise CheckpointError(f"{f}: shard listed in {index.name} is missing")
        return files
    single = ckpt_dir / SINGLE_FILE
    if single.exists():
        return [single]
    found = sorted(ckpt_dir.glob("*.safetensors"))
    if found:
        return found
    raise CheckpointError(
        f"{ckpt_dir}: no {SINGLE_FILE} or {INDEX_FILE}; a LLaDA checkpoint needs safetensors weights"
    )


def iter_tensors(files: list[Path]) -> Iterator[tuple[str, Path, torch.Tensor]]:
    """Yield (key, file, tensor) for every tensor, naming the file when it is unreadable."""
    from safetensors import safe_open

    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    yield key, path, handle.get_tensor(key)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(
                f"{path}: cannot read safetensors file ({exc}); it may be truncated or "
                "corrupt, download it again"
            ) from None


def load_llada(
    path_or_hub_id: str,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    revision: str | None = None,
) -> tuple[LLaDAModel, Path]:
    """Build the network on the meta device and load the weights straight into ``dtype``."""
    torch_dtype = parse_dtype(dtype)
    ckpt_dir = resolve_checkpoint_dir(path_or_hub_id, revision)
    cfg = LLaDAConfig.from_file(ckpt_dir / "config.json")
    with torch.device("meta"):
        model = LLaDAModel(cfg)
    expected = {KEY_PREFIX + k: v.shape for k, v in model.state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    for key, path, tensor in iter_tensors(checkpoint_files(ckpt_dir)):
        if key not in expected:
            if cfg.weight_tying and key == KEY_PREFIX + "ff_out.weight":
                continue
            raise CheckpointError(
                f"{path}: unexpected key {key!r}; the checkpoint does not match config.json "
                f"(n_layers {cfg.n_layers}, weight_tying {cfg.weight_tying})"
            )
        if tuple(tensor.shape) != tuple(expected[key]):
            raise CheckpointError(
                f"{path}: key {key!r} has shape {tuple(tensor.shape)}, config.json implies "
                f"{tuple(expected[key])}"
            )
        state[key[len(KEY_PREFIX):]] = _finite(tensor.to(device=device, dtype=torch_dtype),
                                               tensor, key, path, torch_dtype)
    missing = sorted(set(expected) - {KEY_PREFIX + k for k in state})
    if missing:
        raise CheckpointError(
            f"{ckpt_dir}: missing key(s) {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + "; the checkpoint is incomplete or does not match config.json"
        )
    model.load_state_dict(state, assign=True, strict=True)
    model.eval().requires_grad_(False)
    return model, ckpt_dir


def load_llada_network(ckpt_dir: Path, *, dtype: str | torch.dtype = "float32",
                       device: str | torch.device = "cpu") -> LLaDAModel:
    """The LLaDA family's ``load_network`` (:mod:`evalsuite.families`): a local directory."""
    return load_llada(str(ckpt_dir), dtype=dtype, device=device)[0]


def _finite(cast: torch.Tensor, original: torch.Tensor, key: str, path: Path,
            dtype: torch.dtype) -> torch.Tensor:
    """``cast`` when every value is finite; a weight with NaN/inf cannot give a valid score."""
    if bool(torch.isfinite(cast).all()):
        return cast
    bad = int((~torch.isfinite(original)).sum())
    if bad:
        raise CheckpointError(
            f"{path}: key {key!r} holds {bad} NaN or infinite value(s) of {original.numel()}; "
            "the file is corrupt or was saved after training diverged: download it again or "
            "use another checkpoint")
    raise CheckpointError(
        f"{path}: key {key!r} has values beyond the range of {str(dtype).removeprefix('torch.')} "
        f"(largest magnitude {float(original.abs().max()):.3g}); load it in bfloat16 or float32 "
        "(--dtype)")


FULL_HASH_LIMIT = 256 * 2**20


def fingerprint(ckpt_dir: Path) -> dict[str, str]:
    """A content fingerprint of a local checkpoint, recorded as its revision when it has none.

    Small checkpoints are hashed whole; large ones by ``config.json``, file sizes and the
    safetensors headers (names, dtypes, shapes, offsets), which reading 16 GB would not beat.
    """
    import hashlib

    files = [ckpt_dir / "config.json", *checkpoint_files(ckpt_dir)]
    whole = sum(f.stat().st_size for f in files) <= FULL_HASH_LIMIT
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with open(f, "rb") as handle:
            if whole or f.suffix == ".json":
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            else:
                size = int.from_bytes(handle.read(8), "little")
                digest.update(handle.read(min(size, 100 << 20)))
    return {"sha256": digest.hexdigest(), "method": "content" if whole else "config+headers"}
