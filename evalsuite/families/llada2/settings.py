"""LLaDA2's block-diffusion settings as the sampler reads them: a typed view of the knobs of
:class:`~evalsuite.settings.config.SamplerConfig` (``gen_length``, ``block_length``, ``steps``
per block, ``threshold``, ``minimal_topk``, ``eos_early_stop``, ``temperature``, ``top_k``,
``top_p``, ``cache``), validated by the one validator (:mod:`evalsuite.settings.validate`)
when built. Names are the official ``LLaDA2MoeModelLM.generate`` argument names; defaults are
its defaults (``gen_length`` apart: the official 2048 is a direct call's default, a task's
``max_gen_toks`` decides under lm-eval).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from evalsuite.errors import ConfigError
from evalsuite.settings.config import SamplerConfig


@dataclass(frozen=True)
class LLaDA2Settings:
    """Block-diffusion sampling of LLaDA2 (official ``generate``; golden/llada2/README.md).
    The meaning of each field is the docstring of the knob of the same name."""

    gen_length: int = 2048
    block_length: int = 32
    steps: int = 32
    threshold: float = 0.95
    minimal_topk: int = 1
    eos_early_stop: bool = False
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    cache: bool = True
    """The exact block-level KV cache (the knob ``cache="exact"``); False: ``cache="none"``,
    the official full recompute of ``x[:, :block_end]`` at every step."""

    def __post_init__(self) -> None:
        self.to_config()  # the one validator

    @property
    def effective_steps(self) -> int:
        return min(self.steps, self.gen_length // self.minimal_topk)

    def replace(self, **changes: Any) -> "LLaDA2Settings":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_config(self) -> SamplerConfig:
        """The :class:`SamplerConfig` of these settings (validated)."""
        values = self.as_dict()
        values["cache"] = "exact" if values["cache"] is True else (
            "none" if values["cache"] is False else values["cache"])
        return SamplerConfig(**values)

    @classmethod
    def from_config(cls, config: SamplerConfig) -> "LLaDA2Settings":
        """The view of a LLaDA2 :class:`SamplerConfig` (one with ``minimal_topk`` set)."""
        if config.minimal_topk is None:
            raise ConfigError("LLaDA2's sampler needs minimal_topk (its default 1 comes from the "
                              "LLaDA2 family's defaults); pass minimal_topk=1")
        names = [f.name for f in dataclasses.fields(cls) if f.name != "cache"]
        return cls(**{n: getattr(config, n) for n in names}, cache=config.cache == "exact")


def task_table(task_name: str, protocol: str) -> dict[str, Any]:
    """The LLaDA2 family's ``task_table`` (:mod:`evalsuite.families`): empty. LLaDA2 publishes
    no per-task evaluation table in text (its tech reports give figures); its official
    settings are the ``generate`` defaults, the family's ``sampler_defaults`` (block 32, steps
    32 per block, threshold 0.95, minimal_topk 1, cache exact)."""
    del task_name, protocol
    return {}
