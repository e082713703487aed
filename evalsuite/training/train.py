"""Training of the two tiny models: the losses, the loop, the log and atomic checkpoints.

Both models have the same width, depth and parameter count and start from the same weights
(one seeded draw, mapped key by key); they see the same batches for the same number of
optimizer steps with the same AdamW schedule. They differ only where the paper's comparison
says they do:

* diffusion (our :class:`~evalsuite.models.llada.LLaDAModel`, bidirectional): LLaDA's SFT
  loss on every row: cross-entropy on the masked tokens of the answer region (the answer and
  its visible EOS tail; the prompt is never masked), weighted 1/t with a mask ratio
  t ~ U(0, 1] per row, each row divided by its answer region's length. A document (a couplet)
  is a row with an empty prompt, so the same loss is LLaDA's pre-training loss on it. Each row
  attends only to its visible part (key padding beyond), in the layouts the harness evaluates
  with (:mod:`~evalsuite.training.batches`).
* autoregressive (transformers ``LlamaForCausalLM``, causal): next-token cross-entropy on the
  answer tokens and the first EOS (a document: every token but the first).

There are no separate pre-training and SFT phases: every step takes one pool's batch in a
fixed cycle (couplet documents, poem questions, arithmetic 0-shot and 2-shot, sum facts), so
what is seen only as text (the held-out couplets) is never forgotten while the question
formats are learned (mixed pre-training). One example per row, never packed: measured, a
bidirectional model trained on rows packed with unrelated documents memorises no couplet.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from evalsuite.models.llada import LLaDAConfig, LLaDAModel
from evalsuite.training.batches import SftBatch, mixed_batches

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
    fill: int = 32
    """Generation window after the prompt: a row's visible EOS tail reaches up to it."""
    cycle: str = "poem,couplet,poem,fewshot,poem,sum,fewshot,arith,poem,arith,fewshot,sum,arith"
    """The pool of each step, repeated (see :func:`~evalsuite.training.batches.mixed_batches`):
    per 13 steps 4 poem-question, 1 couplet-document, 3 two-shot and 3 zero-shot arithmetic and
    2 sum batches (measured against the 8-step cycle ``poem,couplet,poem,fewshot,poem,sum,
    fewshot,arith`` at 12,000 steps, whose diffusion model solved 38.5% of ``llada_arith``:
    docs/miniature-recipe.md)."""
    couplet_rows: int = 16
    """Rows per batch of each pool: small batches, many steps (measured: 16 rows a step
    memorise couplets in fewer epochs than 96; 8 are no better than 16)."""
    poem_rows: int = 16
    arith_rows: int = 16
    fewshot_rows: int = 16
    sum_rows: int = 16
    steps: int = 13000
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    init_std: float = 0.02
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.steps

    def rows(self) -> dict[str, int]:
        """Rows per batch of every pool."""
        return {name: getattr(self, f"{name}_rows") for name in
                ("couplet", "poem", "arith", "fewshot", "sum")}


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
    hidden = model.hidden_states(torch.where(masked, mask_id, ids), attention_mask=visible.long())
    # The vocabulary head on the masked positions only: the same logits there, without the
    # head's work (and a [B, T, V] gradient) on the positions the loss never reads.
    logits = model.head(hidden[masked])
    ce = torch.zeros(b, n)
    ce[masked] = F.cross_entropy(logits, ids[masked], reduction="none") / t[masked]
    return (ce.sum(1) / answer.sum(1).clamp(min=1)).mean()


def ar_sft_loss(model: Any, batch: SftBatch) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens and the first EOS."""
    ids = batch.ids
    target = ids[:, 1:]
    pos = torch.arange(1, ids.shape[1])[None, :]
    start = batch.prompt_len[:, None]
    keep = (pos >= start) & (pos < start + batch.answer_len[:, None])
    # The head on the predicting positions only (as in the diffusion loss).
    hidden = model.model(input_ids=ids).last_hidden_state[:, :-1]
    return F.cross_entropy(model.lm_head(hidden[keep]), target[keep])


# --- the loop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """The token data of one training run (ids already tokenized): the (prompt, answer)
    pairs of every pool (:func:`evalsuite.training.corpus.training_pools`)."""

    pools: dict[str, list[tuple[list[int], list[int]]]]


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
    batches = mixed_batches(stream.pools, cfg.rows(), cfg.cycle, vocab.eos, cfg.fill, cfg.seed)
    noise = torch.Generator().manual_seed(cfg.seed + 7)
    total = cfg.total_steps if steps is None else min(steps, cfg.total_steps)
    losses: list[float] = []
    for step in range(total):
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        started = time.perf_counter()
        pool, batch = next(batches)
        loss = (diffusion_sft_loss(model, batch, vocab.mask, noise) if kind == "llada"  # type: ignore[arg-type]
                else ar_sft_loss(model, batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        value = loss.detach().item()
        losses.append(value)
        if on_step is not None:
            on_step({"step": step, "pool": pool, "loss": round(value, 6), "lr": lr,
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
