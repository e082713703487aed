"""Dream's protocol entry points: its sampler settings and its batched likelihood.

Settings use Dream's own names: ``steps``, ``gen_length`` (Dream's ``max_new_tokens``),
``alg``, ``alg_temp``, ``temperature``, ``top_p``, ``top_k``, plus ``batch_schedule``
(``per_row`` default, batch-invariant; ``batch_mean`` = the official batched code). Defaults
are those of Dream's evaluation scripts (``alg="entropy"``, temperature 0, no top_p/top_k,
``alg_temp`` 0), not those of a bare ``diffusion_generate`` call (``alg="origin"``, and
transformers' ``GenerationConfig`` default ``top_k=50`` leaks in when the caller gives no
``top_k``: pass ``top_k=50`` to reproduce such a call).
"""

from __future__ import annotations

from typing import Any

import torch

from evalsuite.settings.config import EstimatorConfig, SamplerConfig
from evalsuite.diffusion.likelihood import LikelihoodResult
from evalsuite.errors import CheckpointError, ConfigError
from evalsuite.families.dream.likelihood import estimate_dream_loglikelihood
from evalsuite.models.tokens import SpecialTokens

#: Dream's evaluation defaults (DreamLM/Dream eval scripts).
GENERATE_DEFAULTS: dict[str, Any] = {"alg": "entropy", "temperature": 0.0, "alg_temp": 0.0}


def sampler_config(**settings: Any) -> SamplerConfig:
    """Dream's settings as a :class:`SamplerConfig` (one block over the whole answer)."""
    missing = [k for k in ("steps", "gen_length") if k not in settings]
    if missing:
        raise ConfigError(f"generate on a dream model needs {', '.join(missing)} "
                          "(gen_length is Dream's max_new_tokens)")
    values = {**GENERATE_DEFAULTS, **settings}
    if values.get("alg") is None:
        raise ConfigError("alg must be one of origin, maskgit_plus, topk_margin, entropy for a "
                          "dream model, got None")
    if values.get("alg_temp") is None:  # Dream's own default is None, meaning 0
        values["alg_temp"] = 0.0
    return SamplerConfig(block_length=values["gen_length"], **values)


def estimate(network: torch.nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], *,
             config: EstimatorConfig, tokens: SpecialTokens,
             generators: list[torch.Generator], max_rows: int) -> list[LikelihoodResult]:
    """The batched likelihood of Dream (EOS appended to every answer) for the engine and
    :func:`evalsuite.loglikelihood`."""
    if tokens.eos_id is None:
        raise CheckpointError("Dream's likelihood appends the EOS token, but config.json and the "
                              "tokenizer give no eos_token_id: add eos_token_id to config.json")
    return estimate_dream_loglikelihood(network, pairs, config=config, mask_id=tokens.mask_id,
                                        eos_id=tokens.eos_id, generators=generators,
                                        max_rows=max_rows)
