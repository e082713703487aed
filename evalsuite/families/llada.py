"""LLaDA's likelihood entry point for the family registry (the Eq. 6 estimator)."""

from __future__ import annotations

import torch

from evalsuite.diffusion.likelihood import LikelihoodResult, estimate_loglikelihood
from evalsuite.models.tokens import SpecialTokens
from evalsuite.settings.config import EstimatorConfig


def estimate(network: torch.nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], *,
             config: EstimatorConfig, tokens: SpecialTokens,
             generators: list[torch.Generator], max_rows: int) -> list[LikelihoodResult]:
    """The batched likelihood of LLaDA (Eq. 6), for the engine and
    :func:`evalsuite.loglikelihood`."""
    return estimate_loglikelihood(network, pairs, config=config, mask_id=tokens.mask_id,
                                  generators=generators, max_rows=max_rows)
