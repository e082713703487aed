"""Token-level API, usable without lm-eval: ``generate`` and ``loglikelihood``.

Both take every knob of the settings registry (:mod:`evalsuite.settings.knobs`) as a keyword
argument: ``generate`` the sampler's (``gen_length``, ``steps``, ``block_length``,
``temperature``, ``decoding``, ``threshold``, ``cache``, ``early_exit``, ...), ``loglikelihood``
the estimator's (``mc_num``, ``mc_batch_size``, ``cfg_scale``, ``estimator``, ``target_se``).
They are checked and completed by the same resolver as the CLI and ``model_args`` (source
``argument``, without a task's paper table): a ``gen_length`` alone gives pure diffusion at
that length, an unknown name is refused with the closest knob names.
"""

from __future__ import annotations

import secrets
from typing import Any

import torch

from evalsuite.diffusion.likelihood import LikelihoodResult, estimate_loglikelihood
from evalsuite.diffusion.sampler import GenerationResult, Generators, diffusion_generate
from evalsuite.errors import ConfigError
from evalsuite.models.llada import LLaDAModel
from evalsuite.models.loader import DiffusionLM
from evalsuite.models.tokens import SpecialTokens, resolve_special_tokens
from evalsuite.settings.config import EstimatorConfig, SamplerConfig
from evalsuite.settings.knobs import Owner, knobs_of, parse_knobs
from evalsuite.settings.resolve import Overrides, TaskInfo, resolve


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


def settings_from_kwargs(owner: Owner, kwargs: dict[str, Any], where: str) -> Any:
    """The :class:`SamplerConfig` (``owner="sampler"``) or :class:`EstimatorConfig` of keyword
    arguments: registry knobs only, each parsed and the whole resolved and validated."""
    values = parse_knobs(kwargs, f"{where} argument")
    other = sorted(set(values) - set(knobs_of(owner)))
    if other:
        raise ConfigError(
            f"{where}: {', '.join(other)} do(es) not apply to {owner} settings; the knobs of "
            f"{where} are {', '.join(knobs_of(owner))}")
    kind = "generate_until" if owner == "sampler" else "loglikelihood"
    config, _ = resolve(TaskInfo(None, kind), "base", {}, Overrides(values, "argument"),
                        use_paper_table=False)
    return config


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

    LLaDA, iLLaDA and LLaDA-MoE take LLaDA's sampler knobs; a family with its own sampler
    (LLaDA2: ``gen_length``, ``block_length``, ``steps`` per block, ``threshold``,
    ``minimal_topk``, ``eos_early_stop``, ``temperature``, ``cache``) is dispatched through its
    :class:`~evalsuite.families.FamilySpec`.

    ``input_ids`` ``[B, P]`` (left-padded, with ``attention_mask`` 0 on padding). ``settings``:
    any sampler knob (see the module docstring); those not given take the defaults of
    :class:`~evalsuite.settings.config.SamplerConfig`, the lengths derived from ``gen_length``.
    Randomness (``temperature > 0`` or ``remasking="random"``) comes from ``generator`` (one,
    or one per row) or a generator seeded with ``seed``. EOS/EoT ids come from the config and
    tokenizer.
    """
    own = _family_function(model, "generate")
    if own is not None:
        assert isinstance(model, DiffusionLM)
        input_ids = input_ids.to(model.device)
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if generator is None:
            generator = _generator(seed, model.device)
        return own(model.network, input_ids, attention_mask, tokens=model.tokens,
                   generator=generator, **settings)
    network, tokens = _parts(model)
    config: SamplerConfig = settings_from_kwargs("sampler", settings, "generate")
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
    seed: int | None = None,
    **settings: Any,
) -> LikelihoodResult:
    """Eq. 6 estimate of log p(answer | prompt): ``.value``, ``.stderr``, ``.nfe``.

    ``settings``: any estimator knob (``mc_num`` 128, ``mc_batch_size`` derived as the largest
    divisor of ``mc_num`` up to 16, ``cfg_scale``, ``estimator``, ``target_se``). Exact in one
    forward pass for a one-token answer, and exact in ``2^L - 1`` rows when that fits
    ``mc_num`` (default design); otherwise at most ``mc_num`` Monte Carlo rows, unbiased for
    the bound. ``estimator="reference"`` runs the official algorithm; ``target_se`` stops once
    the standard error reaches it.

    A family with its own likelihood (LLaDA2: the block-diffusion bound, settings
    ``block_length``, ``mc_num``, ``batch_size``) is dispatched through its
    :class:`~evalsuite.families.FamilySpec`.
    """
    own = _family_function(model, "loglikelihood")
    if own is not None:
        assert isinstance(model, DiffusionLM)
        return own(model.network, prompt_ids, answer_ids, tokens=model.tokens, seed=seed,
                   **settings)
    network, tokens = _parts(model)
    config: EstimatorConfig = settings_from_kwargs("estimator", settings, "loglikelihood")
    gen = torch.Generator().manual_seed(secrets.randbits(63) if seed is None else seed)
    return estimate_loglikelihood(
        network, [(prompt_ids, answer_ids)], config=config, mask_id=tokens.mask_id,
        generators=[gen], max_rows=config.batch_size,
    )[0]
