"""Token-level API, usable without lm-eval: ``generate`` and ``loglikelihood``."""

from __future__ import annotations

import secrets
from typing import Any

import torch

from evalsuite.config import Estimator, EstimatorConfig, Remasking, SamplerConfig
from evalsuite.diffusion.likelihood import LikelihoodResult, estimate_loglikelihood
from evalsuite.diffusion.sampler import GenerationResult, Generators, diffusion_generate
from evalsuite.errors import ConfigError
from evalsuite.models.llada import LLaDAModel
from evalsuite.models.loader import DiffusionLM
from evalsuite.models.tokens import SpecialTokens, resolve_special_tokens


def _parts(model: DiffusionLM | LLaDAModel) -> tuple[LLaDAModel, SpecialTokens]:
    if isinstance(model, DiffusionLM):
        return model.network, model.tokens
    return model, resolve_special_tokens(model.config)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(secrets.randbits(63) if seed is None else seed)
    return gen


def _family_function(model: DiffusionLM | LLaDAModel, attribute: str) -> Any:
    """The family's own ``generate``/``loglikelihood`` (None: LLaDA's algorithms)."""
    family = getattr(model, "family", None)
    if family is None or getattr(family, attribute, None) is None:
        return None
    return family.resolve(attribute)


def generate(
    model: DiffusionLM | LLaDAModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    seed: int | None = None,
    generator: Generators = None,
    **settings: Any,
) -> GenerationResult:
    """Diffusion sampling with the family's own setting names; returns ``.tokens``
    ``[B, P + gen_length]`` and ``.nfe``.

    ``input_ids`` ``[B, P]`` (left-padded, with ``attention_mask`` 0 on padding). Randomness
    comes from ``generator`` (one, or one per row) or a generator seeded with ``seed``. Special
    ids come from the checkpoint. LLaDA, iLLaDA and LLaDA-MoE take LLaDA's settings
    (:func:`generate_llada`); a family with its own sampler (LLaDA2: ``gen_length``,
    ``block_length``, ``steps`` per block, ``threshold``, ``minimal_topk``, ``eos_early_stop``,
    ``temperature``) is dispatched through its :class:`~evalsuite.families.FamilySpec`.
    """
    own = _family_function(model, "generate")
    if own is None:
        return generate_llada(model, input_ids, attention_mask, seed=seed, generator=generator,
                              **settings)
    assert isinstance(model, DiffusionLM)
    input_ids = input_ids.to(model.device)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if generator is None:
        generator = _generator(seed, model.device)
    return own(model.network, input_ids, attention_mask, tokens=model.tokens,
               generator=generator, **settings)


def generate_llada(
    model: DiffusionLM | LLaDAModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    steps: int,
    gen_length: int,
    block_length: int,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: Remasking = "low_confidence",
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    seed: int | None = None,
    generator: Generators = None,
) -> GenerationResult:
    """LLaDA's diffusion sampling (LLaDA, iLLaDA, LLaDA-MoE).

    Randomness (``temperature > 0`` or ``remasking="random"``) comes from ``generator`` (one,
    or one per row) or a generator seeded with ``seed``. EOS/EoT ids come from the config and
    tokenizer.
    """
    network, tokens = _parts(model)
    config = SamplerConfig(
        gen_length=gen_length, steps=steps, block_length=block_length, temperature=temperature,
        cfg_scale=cfg_scale, remasking=remasking, logits_eos_inf=logits_eos_inf,
        confidence_eos_eot_inf=confidence_eos_eot_inf,
    )
    input_ids = input_ids.to(network.device)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if attention_mask is not None:
        attention_mask = attention_mask.to(network.device)
    if generator is None:
        generator = _generator(seed, network.device)
    return diffusion_generate(
        network, input_ids, attention_mask, config=config, mask_id=tokens.mask_id,
        eos_id=tokens.eos_id, eot_id=tokens.eot_id, generator=generator,
    )


def loglikelihood(
    model: DiffusionLM | LLaDAModel,
    prompt_ids: torch.Tensor,
    answer_ids: torch.Tensor,
    *,
    mc_num: int = 128,
    batch_size: int = 16,
    cfg_scale: float = 0.0,
    seed: int | None = None,
    estimator: Estimator = "auto",
    target_se: float | None = None,
    **settings: Any,
) -> LikelihoodResult:
    """Eq. 6 estimate of log p(answer | prompt): ``.value``, ``.stderr``, ``.nfe``.

    Exact in one forward pass for a one-token answer, and exact in ``2^L - 1`` rows when
    that fits ``mc_num`` (default design); otherwise at most ``mc_num`` Monte Carlo rows,
    unbiased for the bound. ``estimator="reference"`` runs the official algorithm;
    ``target_se`` stops once the standard error reaches it.

    A family with its own likelihood (LLaDA2: the block-diffusion bound, settings
    ``block_length``, ``mc_num``, ``batch_size``, ``seed``) is dispatched through its
    :class:`~evalsuite.families.FamilySpec`; LLaDA's options that it does not take are refused.
    """
    own = _family_function(model, "loglikelihood")
    if own is not None:
        assert isinstance(model, DiffusionLM)
        if cfg_scale or estimator != "auto" or target_se is not None:
            raise ConfigError(f"{model.family.name if model.family else 'this family'}: "
                              "cfg_scale, estimator and target_se are LLaDA estimator options "
                              "this family's likelihood does not take; leave them unset")
        return own(model.network, prompt_ids, answer_ids, tokens=model.tokens, mc_num=mc_num,
                   batch_size=batch_size, seed=seed, **settings)
    if settings:
        raise ConfigError(f"unknown likelihood setting(s) {', '.join(sorted(settings))} for "
                          "LLaDA's estimator (mc_num, batch_size, cfg_scale, seed, estimator, "
                          "target_se)")
    network, tokens = _parts(model)
    config = EstimatorConfig(mc_num=mc_num, batch_size=batch_size, cfg_scale=cfg_scale,
                             estimator=estimator, target_se=target_se)
    gen = torch.Generator().manual_seed(secrets.randbits(63) if seed is None else seed)
    return estimate_loglikelihood(
        network, [(prompt_ids, answer_ids)], config=config, mask_id=tokens.mask_id,
        generators=[gen], max_rows=batch_size,
    )[0]
