"""Token-level API, usable without lm-eval: ``generate`` and ``loglikelihood``.

Both dispatch through the model's family (:mod:`evalsuite.families`) and take that family's
own setting names: LLaDA ``steps``, ``gen_length``, ``block_length``, ``remasking``, ...;
Dream ``steps``, ``gen_length`` (its ``max_new_tokens``), ``alg``, ``alg_temp``,
``temperature``, ``top_p``, ``top_k``. A setting of another family raises
:class:`~evalsuite.errors.ConfigError` naming it, the architecture and the valid names.
"""

from __future__ import annotations

import secrets
from typing import Any

import torch

from evalsuite.diffusion.likelihood import LikelihoodResult
from evalsuite.diffusion.sampler import GenerationResult, Generators
from evalsuite.families import FamilySpec, check_settings, family_of_network
from evalsuite.models.loader import DiffusionLM
from evalsuite.models.tokens import SpecialTokens, resolve_special_tokens


def _parts(model: Any) -> tuple[torch.nn.Module, SpecialTokens, FamilySpec]:
    """The network, its special ids and its family, for a loaded model or a bare network."""
    if isinstance(model, DiffusionLM):
        return model.network, model.tokens, model.family or family_of_network(model.network)
    return model, resolve_special_tokens(model.config), family_of_network(model)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(secrets.randbits(63) if seed is None else seed)
    return gen


def generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    seed: int | None = None,
    generator: Generators = None,
    **settings: Any,
) -> GenerationResult:
    """Diffusion sampling with the family's sampler; returns ``.tokens`` ``[B, P + gen_length]``
    and ``.nfe``.

    ``input_ids`` ``[B, P]`` (left-padded, with ``attention_mask`` 0 on padding). Randomness
    comes from ``generator`` (one, or one per row) or a generator seeded with ``seed``.
    Special ids come from the config and tokenizer. LLaDA needs ``steps``, ``gen_length`` and
    ``block_length``; Dream needs ``steps`` and ``gen_length`` (``alg`` defaults to
    ``entropy``, the setting of Dream's evaluation scripts).
    """
    network, tokens, family = _parts(model)
    check_settings(family, settings, "generate", "evalsuite.generate")
    input_ids = input_ids.to(network.device)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if attention_mask is not None:
        attention_mask = attention_mask.to(network.device)
        if attention_mask.dim() == 1:
            attention_mask = attention_mask[None]
    if generator is None:
        generator = _generator(seed, network.device)
    return family.resolve("generate")(network, input_ids, attention_mask, tokens=tokens,
                                      generator=generator, **settings)


def loglikelihood(
    model: Any,
    prompt_ids: torch.Tensor,
    answer_ids: torch.Tensor,
    *,
    seed: int | None = None,
    **settings: Any,
) -> LikelihoodResult:
    """The family's estimate of log p(answer | prompt): ``.value``, ``.stderr``, ``.nfe``.

    LLaDA (Eq. 6; ``mc_num`` 128, ``batch_size`` 16, ``cfg_scale``, ``estimator``,
    ``target_se``): exact in one pass for a one-token answer and in ``2^L - 1`` rows when that
    fits ``mc_num``, otherwise Monte Carlo rows unbiased for the bound. Dream (``mc_num`` 128,
    ``batch_size`` 32, ``cfg_scale``, ``estimator``, ``nll_type`` mc or ar_ftb): the EOS is
    appended inside (``answer_ids`` never includes it); the official estimator's expectation
    exactly when ``2^n - 1 <= mc_num``.
    """
    network, tokens, family = _parts(model)
    check_settings(family, settings, "loglikelihood", "evalsuite.loglikelihood")
    gen = torch.Generator().manual_seed(secrets.randbits(63) if seed is None else seed)
    return family.resolve("loglikelihood")(network, prompt_ids, answer_ids, tokens=tokens,
                                           generator=gen, **settings)
