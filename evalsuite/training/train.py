"""Training of the two tiny models: the losses, the loop, the log and atomic checkpoints.

Both models have the same width, depth and parameter count and start from the same weights
(one seeded draw, mapped key by key); they see the same batches for the same number of
optimizer steps with the same AdamW schedule. They differ only where the paper's comparison
says they do:

* diffusion (our :class:`~evalsuite.models.llada.LLaDAModel`, bidirectional): pre-training
  loss = cross-entropy on the masked tokens, weighted 1/t, with a mask ratio t ~ U(0, 1] per
  row, divided by the number of tokens; SFT loss = the same on the answer region only (prompt
  never masked, EOS padding included), divided by the answer region's length (LLaDA's SFT).
  One adaptation to the tiny scale: each SFT row attends to a seeded number of its EOS padding
  tokens (0 up to all; the rest is key padding, see :mod:`~evalsuite.training.batches`). A
  1.4M-parameter bidirectional model does not carry over from answers always followed by a
  fixed EOS tail to the likelihood protocol's ``prompt + answer`` with nothing after (measured:
  a sum-fact SFT model at chance on that layout, 80% on the training layout); LLaDA gets this
  robustness at scale, helped by its 1% of random-length pre-training rows.
* autoregressive (transformers ``LlamaForCausalLM``, causal): next-token cross-entropy; in SFT
  on the answer tokens and the first EOS.

During SFT every step also takes a replay batch of pre-training rows with the pre-training
loss (for both models), so the couplets seen only in pre-training are not forgotten.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from evalsuite.models.llada import LLaDAConfig, LLaDAModel
from evalsuite.training.batches import SftBatch, pretraining_batches, sft_batches

Kind = Literal["llada", "arm"]
KINDS: tuple[Kind, ...] = ("llada", "arm")
LOG_NAME = "training_log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Architecture, data layout and optimisation of both tiny models."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_hidden_size: int = 384
    rope_theta: float = 10000.0
    seq_len: int = 96
    """Packed pre-training row length."""
    sft_len: int = 64
    """SFT row length (prompt + answer + EOS padding)."""
    batch_size: int = 16
    replay_batch_size: int = 8
    """Pre-training rows added to every SFT step."""
    pretrain_steps: int = 3000
    sft_steps: int = 4000
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    init_std: float = 0.02
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.sft_steps


@dataclass(frozen=True)
class Vocab:
    """Token ids the training needs."""

    size: int
    eos: int
    mask: int


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak, over all steps (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def llada_config(cfg: TrainConfig, vocab: Vocab) -> dict[str, Any]:
    """The native LLaDA ``config.json`` (OLMo-style keys) of the diffusion model."""
    return {
        "activation_type": "silu", "alibi": False, "architectures": ["LLaDAModelLM"],
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                     "AutoModel": "modeling_llada.LLaDAModelLM"},
        "block_type": "llama", "d_model": cfg.d_model, "embedding_size": vocab.size,
        "eos_token_id": vocab.eos, "pad_token_id": vocab.eos, "mask_token_id": vocab.mask,
        "include_bias": False, "include_qkv_bias": False, "layer_norm_type": "rms",
        "max_sequence_length": 4096, "mlp_hidden_size": cfg.mlp_hidden_size,
        "model_type": "llada", "n_heads": cfg.n_heads, "n_kv_heads": cfg.n_heads,
        "n_layers": cfg.n_layers, "rms_norm_eps": 1e-5, "rope": True,
        "rope_theta": cfg.rope_theta, "scale_logits": False, "torch_dtype": "float32",
        "vocab_size": vocab.size, "weight_tying": False,
    }


def llama_key(key: str) -> str:
    """The ``LlamaForCausalLM`` state-dict key of a :class:`LLaDAModel` key."""
    top = {"wte.weight": "model.embed_tokens.weight", "ln_f.weight": "model.norm.weight",
           "ff_out.weight": "lm_head.weight"}
    if key in top:
        return top[key]
    _, i, name, _ = key.split(".")
    sub = {"attn_norm": "input_layernorm", "ff_norm": "post_attention_layernorm",
           "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
           "v_proj": "self_attn.v_proj", "attn_out": "self_attn.o_proj",
           "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "ff_out": "mlp.down_proj"}[name]
    return f"model.layers.{i}.{sub}.weight"


def initial_weights(cfg: TrainConfig, vocab: Vocab) -> dict[str, torch.Tensor]:
    """One seeded draw of the shared initial weights, in :class:`LLaDAModel` keys:
    matrices N(0, init_std^2), norm weights 1."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_llada(cfg, vocab).state_dict().items()}
    g = torch.Generator().manual_seed(cfg.seed)
    return {k: (torch.ones(s) if len(s) == 1 else torch.randn(s, generator=g) * cfg.init_std)
            for k, s in sorted(shapes.items())}


def build_llada(cfg: TrainConfig, vocab: Vocab) -> LLaDAModel:
    return LLaDAModel(LLaDAConfig.from_dict(llada_config(cfg, vocab)))


def build_llama(cfg: TrainConfig, vocab: Vocab) -> Any:
    """A ``LlamaForCausalLM`` of the same shape as the diffusion model."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab.size, hidden_size=cfg.d_model, intermediate_size=cfg.mlp_hidden_size,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_theta=cfg.rope_theta, tie_word_embeddings=False, bos_token_id=None,
        eos_token_id=vocab.eos, pad_token_id=vocab.eos, attention_bias=False, mlp_bias=False,
        torch_dtype="float32",
    )
    return LlamaForCausalLM(config)


def build_model(kind: Kind, cfg: TrainConfig, vocab: Vocab) -> torch.nn.Module:
    """The model of ``kind`` with the shared initial weights loaded."""
    init = initial_weights(cfg, vocab)
    if kind == "llada":
        model: torch.nn.Module = build_llada(cfg, vocab)
        model.load_state_dict(init, strict=True)
    else:
        model = build_llama(cfg, vocab)
        model.load_state_dict({llama_key(k): v for k, v in init.items()}, strict=True)
    return model.train()


# --- losses ---------------------------------------------------------------------------------


def _mask_ratio(rows: int, gen: torch.Generator, eps: float = 1e-3) -> torch.Tensor:
    """t ~ U(eps, 1] per row (LLaDA's forward process; eps keeps 1/t finite)."""
    return (1 - eps) * (1 - torch.rand(rows, generator=gen)) + eps


def diffusion_pretrain_loss(model: LLaDAModel, ids: torch.Tensor, mask_id: int,
                            gen: torch.Generator) -> torch.Tensor:
    """Masked-token cross-entropy weighted 1/t, summed and divided by B * L."""
    b, n = ids.shape
    t = _mask_ratio(b, gen)[:, None].expand(b, n)
    masked = torch.rand(b, n, generator=gen) < t
    logits = model(torch.where(masked, mask_id, ids))
    ce = F.cross_entropy(logits[masked], ids[masked], reduction="none")
    return (ce / t[masked]).sum() / (b * n)


def diffusion_sft_loss(model: LLaDAModel, batch: SftBatch, mask_id: int,
                       gen: torch.Generator) -> torch.Tensor:
    """As pre-training, on the answer region only (prompt never masked); each row's sum is
    divided by its answer region's length (answer plus EOS padding), then averaged."""
    ids = batch.ids
    b, n = ids.shape
    pos = torch.arange(n)[None, :]
    visible = pos < batch.visible_len[:, None]
    answer = (pos >= batch.prompt_len[:, None]) & visible
    t = _mask_ratio(b, gen)[:, None].expand(b, n)
    masked = (torch.rand(b, n, generator=gen) < t) & answer
    logits = model(torch.where(masked, mask_id, ids), attention_mask=visible.long())
    ce = torch.zeros(b, n)
    ce[masked] = F.cross_entropy(logits[masked], ids[masked], reduction="none") / t[masked]
    return (ce.sum(1) / answer.sum(1).clamp(min=1)).mean()


def ar_pretrain_loss(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over every position."""
    logits = model(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def ar_sft_loss(model: Any, batch: SftBatch) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens and the first EOS."""
    ids = batch.ids
    logits = model(input_ids=ids).logits[:, :-1]
    target = ids[:, 1:]
    pos = torch.arange(1, ids.shape[1])[None, :]
    start = batch.prompt_len[:, None]
    keep = (pos >= start) & (pos < start + batch.answer_len[:, None])
    return F.cross_entropy(logits[keep], target[keep])


# --- the loop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """The token data of one training run (ids already tokenized)."""

    docs: list[list[int]]
    sft: list[tuple[list[int], list[int]]]


def step_losses(kind: Kind, cfg: TrainConfig, vocab: Vocab, stream: Stream,
                steps: int | None = None,
                on_step: Callable[[dict[str, Any]], None] | None = None) -> tuple[torch.nn.Module, list[float]]:
    """Train ``kind`` for ``steps`` (default all) optimizer steps; returns the model and the
    loss of every step. Deterministic for a fixed config and thread count."""
    torch.manual_seed(cfg.seed)
    model = build_model(kind, cfg, vocab)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    pre: Iterator[torch.Tensor] = pretraining_batches(stream.docs, vocab.eos, cfg.seq_len, cfg.batch_size, cfg.seed)
    replay: Iterator[torch.Tensor] = pretraining_batches(stream.docs, vocab.eos, cfg.seq_len,
                                                         cfg.replay_batch_size, cfg.seed + 1)
    sft = sft_batches(stream.sft, vocab.eos, cfg.sft_len, cfg.batch_size, cfg.seed)
    noise = torch.Generator().manual_seed(cfg.seed + 7)
    total = cfg.total_steps if steps is None else min(steps, cfg.total_steps)
    losses: list[float] = []
    for step in range(total):
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        phase = "pretrain" if step < cfg.pretrain_steps else "sft"
        started = time.perf_counter()
        if phase == "pretrain":
            ids = next(pre)
            loss = (diffusion_pretrain_loss(model, ids, vocab.mask, noise) if kind == "llada"  # type: ignore[arg-type]
                    else ar_pretrain_loss(model, ids))
        else:
            batch, extra = next(sft), next(replay)
            if kind == "llada":
                loss = (diffusion_sft_loss(model, batch, vocab.mask, noise)  # type: ignore[arg-type]
                        + diffusion_pretrain_loss(model, extra, vocab.mask, noise))  # type: ignore[arg-type]
            else:
                loss = ar_sft_loss(model, batch) + ar_pretrain_loss(model, extra)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        value = loss.detach().item()
        losses.append(value)
        if on_step is not None:
            on_step({"step": step, "phase": phase, "loss": round(value, 6), "lr": lr,
                     "seconds": round(time.perf_counter() - started, 4)})
    return model.eval(), losses


# --- atomic output --------------------------------------------------------------------------


def partial_dir(out: Path) -> Path:
    """Where a checkpoint is written before it is renamed to ``out``."""
    return out.parent / f".{out.name}.partial"


def publish(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``tmp`` with renames only (no half-written ``out``)."""
    old = out.parent / f".{out.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)


def save_llada(model: LLaDAModel, cfg: TrainConfig, vocab: Vocab, directory: Path) -> None:
    from safetensors.torch import save_file

    (directory / "config.json").write_text(json.dumps(llada_config(cfg, vocab), indent=2) + "\n")
    tensors = {"model.transformer." + k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})


def save_llama(model: Any, directory: Path) -> None:
    model.save_pretrained(str(directory), safe_serialization=True)


def train_config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)
