"""LLaDA's protocol entry points for the family registry (sampler and Eq. 6 estimator)."""

from __future__ import annotations

from typing import Any

import torch

from evalsuite.config import EstimatorConfig, SamplerConfig
from evalsuite.diffusion.likelihood import LikelihoodResult, estimate_loglikelihood
from evalsuite.diffusion.sampler import GenerationResult, Generators, diffusion_generate
from evalsuite.errors import ConfigError
from evalsuite.models.tokens import SpecialTokens

REQUIRED_GENERATE = ("steps", "gen_length", "block_length")


def generate(network: torch.nn.Module, input_ids: torch.Tensor,
             attention_mask: torch.Tensor | None, *, tokens: SpecialTokens,
             generator: Generators, **settings: Any) -> GenerationResult:
    """LLaDA's sampler (Algorithms 4-5): ``steps``, ``gen_length`` and ``block_length`` are
    required, the other SamplerConfig settings optional."""
    missing = [k for k in REQUIRED_GENERATE if k not in settings]
    if missing:
        raise ConfigError(f"generate on a llada model needs {', '.join(missing)} "
                          "(steps, gen_length and block_length have no default)")
    config = SamplerConfig(**settings)
    return diffusion_generate(network, input_ids, attention_mask, config=config,
                              mask_id=tokens.mask_id, eos_id=tokens.eos_id, eot_id=tokens.eot_id,
                              generator=generator)


def loglikelihood(network: torch.nn.Module, prompt_ids: torch.Tensor, answer_ids: torch.Tensor,
                  *, tokens: SpecialTokens, generator: torch.Generator,
                  **settings: Any) -> LikelihoodResult:
    """LLaDA's Eq. 6 estimate (``mc_num`` 128 and ``batch_size`` 16 by default)."""
    settings = {"mc_num": 128, "batch_size": 16, **settings}
    config = EstimatorConfig(**settings)
    return estimate_loglikelihood(network, [(prompt_ids, answer_ids)], config=config,
                                  mask_id=tokens.mask_id, generators=[generator],
                                  max_rows=config.batch_size)[0]


def estimate(network: torch.nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], *,
             config: EstimatorConfig, tokens: SpecialTokens,
             generators: list[torch.Generator], max_rows: int) -> list[LikelihoodResult]:
    """The engine's batched likelihood for LLaDA (Eq. 6)."""
    return estimate_loglikelihood(network, pairs, config=config, mask_id=tokens.mask_id,
                                  generators=generators, max_rows=max_rows)
