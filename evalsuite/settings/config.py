"""Sampler and estimator settings: frozen dataclasses, one attribute docstring per field.

These two dataclasses are the one home of every diffusion knob: the registry
(:mod:`evalsuite.settings.knobs`) derives the CLI flags, the ``model_args`` / ``gen_kwargs``
keys, the API keyword arguments and the recorded settings from their fields, and the one
validator (:mod:`evalsuite.settings.validate`) checks them with the :class:`Rule` each field
carries in its metadata (``knob(default, rule)``, :mod:`.fields`). A family-specific knob (``top_p``,
``threshold``, ...) is one more field here, with its rule and docstring, and nothing else.

Validation happens in ``__post_init__`` so that an invalid setting is rejected, with a message
naming the value, where it came from and the fix, before any weight loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from evalsuite.errors import ConfigError
from evalsuite.settings.fields import NON_NEGATIVE, POSITIVE, POSITIVE_INT, PROBABILITY, Rule, knob
from evalsuite.settings.validate import check_config

Remasking = Literal["low_confidence", "random"]
Decoding = Literal["schedule", "threshold"]
Cache = Literal["none", "prefix", "dual", "exact"]
Estimator = Literal["auto", "stratified", "reference"]
Alg = Literal["origin", "maskgit_plus", "topk_margin", "entropy"]
BatchSchedule = Literal["per_row", "batch_mean"]
NllType = Literal["mc", "ar_ftb"]


DEFAULT_LENGTH = 256
"""gen_length, steps and block_length when nothing sets them (pure diffusion)."""


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of diffusion sampling (LLaDA paper, Algorithms 4-5; REFERENCE.md "Generation")."""

    gen_length: int = knob(DEFAULT_LENGTH, POSITIVE_INT)
    """Number of tokens generated after the prompt (the answer region, filled with mask ids)."""
    steps: int = knob(DEFAULT_LENGTH, POSITIVE_INT)
    """Total sampling steps (one forward pass each) over all blocks. LLaDA2 (block diffusion):
    steps PER BLOCK (the official ``steps``; default 32), capped at ``gen_length //
    minimal_topk``."""
    block_length: int = knob(DEFAULT_LENGTH, POSITIVE_INT)
    """Tokens per semi-autoregressive block; ``gen_length`` means pure diffusion (one block).
    LLaDA2: the block of block diffusion (default 32, the model's training block), counted
    from position 0 with the prompt; ``gen_length`` must be a multiple of it. LLaDA2's
    likelihood uses the same block (the estimator's ``block_length``)."""
    temperature: float = knob(0.0, NON_NEGATIVE)
    """Gumbel-noise temperature; 0 is greedy (plain argmax). LLaDA2: sample from
    ``softmax(logits / T)``; 0 is the argmax (the hub code samples with ``multinomial`` even
    at 0: a documented deviation, docs/families.md)."""
    cfg_scale: float = knob(0.0, NON_NEGATIVE)
    """Unsupervised classifier-free guidance scale w; 0 disables the unconditional pass."""
    remasking: Remasking = "low_confidence"
    """Which masked positions to commit: highest softmax confidence, or uniformly random."""
    logits_eos_inf: bool = False
    """Set the EOS logit to -inf so EOS is never predicted."""
    confidence_eos_eot_inf: bool = False
    """Give EOS/EoT predictions the lowest confidence so they are committed last."""
    decoding: Decoding = "schedule"
    """``schedule``: the paper's linear schedule (``steps`` passes). ``threshold``: Fast-dLLM's
    confidence-aware parallel decoding: each pass commits every masked position of the block
    whose confidence is at least ``threshold`` (at least one), so the number of passes adapts
    to the model's confidence; ``steps`` is then unused. Training-free and approximate: not
    the setting of the published numbers."""
    threshold: float = knob(0.9, PROBABILITY)
    """Confidence needed to commit a token in one pass under ``decoding="threshold"``.
    LLaDA2 (always on, default 0.95): a step commits every masked position of the block whose
    confidence is ABOVE it when at least the schedule's count are, else the schedule's count
    of the most confident; 1.0 is the pure schedule (the official scripts' 2.0)."""
    cache: Cache = "none"
    """Fast-dLLM's approximate KV cache, refreshed at the first pass of every block:
    ``prefix`` caches the positions left of the block, ``dual`` those left and right of it,
    so later passes compute only the block (and the suffix, for ``prefix``). Approximate:
    not the setting of the published numbers. ``exact`` (LLaDA2 only, its default): the
    exact block-level KV cache of block diffusion (the prompt and every finished block are
    computed once; identical tokens to ``none``, the official full recompute)."""
    early_exit: bool = True
    """Exact early exit (``--early-exit on|off``): stop sampling a row once every answer
    position up to the caller's cut (first stop string, EOS or EoT) is committed, and give its
    batch slot to a waiting request. Committed tokens are never remasked, so the returned
    answer is the same as with ``off``; only forward passes are saved."""
    alg: Alg | None = None
    """Dream's sampler (``diffusion_generate``): its timestep schedule (``linspace(1, 1e-3,
    steps + 1)``, ``int(n_masked * (1 - s / t))`` tokens per step, all on the last) and its
    commit rule: ``origin`` (each mask transfers with probability ``1 - s / t``, random),
    ``maskgit_plus`` (top probability), ``topk_margin`` (top-1 minus top-2 probability) or
    ``entropy`` (negative entropy). Unset: LLaDA's linear block schedule and ``remasking``.
    Dream models only."""
    alg_temp: float = knob(0.0, NON_NEGATIVE)
    """Dream: 0 commits the most confident positions; above 0 draws them from
    ``softmax(confidence / alg_temp)`` (random)."""
    top_p: float | None = knob(None, PROBABILITY)
    """Dream and LLaDA2: nucleus filter (0, 1] applied to the logits before the token choice and the
    confidence, also at temperature 0 (as Dream does). Unset: no filter."""
    top_k: int | None = knob(None, Rule(integer=True, low=0, low_open=True, example=50))
    """Dream and LLaDA2: keep the ``top_k`` largest logits before the token choice and the
    confidence. Unset: no filter."""
    batch_schedule: BatchSchedule = "per_row"
    """Dream: how many tokens a row commits per step. ``per_row`` (default): from the row's
    own masked count, so a row's output never depends on its batch-mates (each row is its
    official batch-of-one run). ``batch_mean``: Dream's official batched code, which uses the
    MEAN masked count of the batch, so a row can depend on the rows it was batched with; it
    reproduces the official code's padded batches token for token and turns early exit off."""
    minimal_topk: int | None = knob(None, POSITIVE_INT)
    """LLaDA2's block-diffusion sampler (official ``minimal_topk``, default 1): caps ``steps``
    per block at ``gen_length // minimal_topk``. Set, it selects LLaDA2's rules (``steps`` per
    block, ``threshold`` always on); unset: LLaDA's or Dream's sampler. LLaDA2 models only."""
    eos_early_stop: bool = False
    """LLaDA2 (official ``eos_early_stop``): stop once the answer up to its first EOS is
    committed. evalsuite always stops a row then (exact: committed tokens never change and later
    blocks cannot reach back), so the tokens are the same either way; accepted for the
    official setting names (the official return's prompt quirk is not reproduced)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "early_exit", parse_on_off(self.early_exit, "early_exit"))
        check_config(self, "sampler")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    def replace(self, **changes: Any) -> "SamplerConfig":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Text accepted for a boolean setting (model_args, gen_kwargs, ``--flag on|off``).
ON_OFF_TEXT: dict[str, bool] = {"on": True, "true": True, "1": True, "yes": True,
                                "off": False, "false": False, "0": False, "no": False}


def parse_on_off(value: Any, name: str, source: str = "argument") -> bool:
    """A boolean setting given as a bool or as on/off, true/false, 1/0 text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ON_OFF_TEXT:
        return ON_OFF_TEXT[text]
    flag = f"--{name.replace('_', '-')} on" if source == "cli" else f"{name}='on'"
    raise ConfigError(f"{name} {value!r} (from {source}) must be on or off; pass e.g. {flag}")


DEFAULT_MC_BATCH_SIZE = 16
"""The estimator's batch size when nothing sets it (the resolver derives the largest divisor
of ``mc_num`` up to it)."""


@dataclass(frozen=True)
class EstimatorConfig:
    """Settings of the Monte Carlo likelihood estimator (LLaDA paper Eq. 6, Algorithm 3)."""

    mc_num: int = knob(128, POSITIVE_INT)
    """Monte Carlo samples (masked copies of the sequence) per request."""
    batch_size: int = knob(DEFAULT_MC_BATCH_SIZE, Rule(integer=True, low=0, low_open=True,
                                                       example=DEFAULT_MC_BATCH_SIZE),
                           name="mc_batch_size")
    """Rows drawn as one stratified group; ``mc_num`` must be a multiple of it (the knob
    ``mc_batch_size``, so that it is not mistaken for the run's batch size)."""
    cfg_scale: float = knob(0.0, NON_NEGATIVE)
    """Unsupervised classifier-free guidance scale w for the likelihood."""
    estimator: Estimator = "auto"
    """Design of the Monte Carlo rows (:mod:`evalsuite.diffusion.designs`). ``auto``: exact
    enumeration when ``2^L - 1 <= mc_num``, else strata by mask count with small strata
    enumerated, Neyman allocation and common random numbers across the choices of a question.
    ``stratified``: the previous evalsuite design (groups of ``batch_size`` with exactly
    stratified counts). ``reference``: the official algorithm exactly (round-spread counts),
    for reproducing published numbers."""
    target_se: float | None = knob(None, POSITIVE)
    """Adaptive stopping: spend rows in rounds until the standard error is at most this (in
    nats), ``mc_num`` rows at most. None: always ``mc_num`` rows."""
    block_length: int = knob(32, POSITIVE_INT)
    """LLaDA2's likelihood: the block of the block-diffusion bound (the sampler's
    ``block_length``; the model's training block, 32). Other families: unused."""
    nll_type: NllType = "mc"
    """Dream's likelihood: ``mc`` (its Monte Carlo estimator; under ``auto`` its exact
    expectation by enumeration when ``2^n - 1 <= mc_num``, else count strata) or ``ar_ftb``
    (Dream's deterministic left-to-right unmasking, one pass per answer token plus EOS).
    Dream models only."""

    def __post_init__(self) -> None:
        check_config(self, "estimator")

    def replace(self, **changes: Any) -> "EstimatorConfig":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


__all__ = ["DEFAULT_LENGTH", "DEFAULT_MC_BATCH_SIZE", "NON_NEGATIVE", "ON_OFF_TEXT", "POSITIVE",
           "POSITIVE_INT", "PROBABILITY", "Alg", "BatchSchedule", "Cache", "Decoding",
           "Estimator", "EstimatorConfig", "NllType", "Remasking", "Rule", "SamplerConfig",
           "knob", "parse_on_off"]
