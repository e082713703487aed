"""Token-level API, usable without lm-eval: ``generate`` and ``loglikelihood``.

Both dispatch through the model's family (:mod:`evalsuite.families`) and take every knob of
the settings registry (:mod:`evalsuite.settings.knobs`) that the family has, as keyword
arguments: ``generate`` the sampler's (LLaDA ``gen_length``, ``steps``, ``block_length``,
``temperature``, ``remasking``, ``decoding``, ``threshold``, ``cache``, ``early_exit``, ...;
Dream ``steps``, ``gen_length`` (its ``max_new_tokens``), ``alg``, ``alg_temp``,
``temperature``, ``top_p``, ``top_k``, ``batch_schedule``, ``early_exit``; LLaDA2
``gen_length``, ``block_length``, ``steps`` per block, ``threshold``, ``minimal_topk``,
``eos_early_stop``, ``temperature``, ``top_p``, ``top_k``, ``cache`` exact or none),
``loglikelihood`` the estimator's (``mc_num``, ``mc_batch_size``, ``cfg_scale``,
``estimator``; LLaDA ``target_se``, Dream ``nll_type``; LLaDA2 ``mc_num``,
``mc_batch_size``, ``block_length``). They are checked and completed by
the same resolver as the CLI and ``model_args`` (source ``argument``, without a task's paper
table, with the family's defaults): a ``gen_length`` alone gives pure diffusion at that
length, an unknown name is refused with the closest knob names, and a setting of another
family raises :class:`~evalsuite.errors.ConfigError` naming it, the architecture and the
valid names.
"""

from __future__ import annotations

import secrets
from typing import Any

import torch

from evalsuite.diffusion.likelihood import LikelihoodResult
from evalsuite.diffusion.sampler import GenerationResult, Generators
from evalsuite.errors import ConfigError
from evalsuite.families import FamilySpec, check_settings, family_of_network
from evalsuite.models.loader import DiffusionLM
from evalsuite.models.tokens import SpecialTokens, resolve_special_tokens
from evalsuite.settings.config import EstimatorConfig, SamplerConfig
from evalsuite.settings.knobs import Owner, knobs_of, parse_knobs
from evalsuite.settings.resolve import Overrides, TaskInfo, resolve


def _parts(model: Any) -> tuple[torch.nn.Module, SpecialTokens, FamilySpec]:
    """The network, its special ids and its family, for a loaded model or a bare network."""
    if isinstance(model, DiffusionLM):
        return model.network, model.tokens, model.family or family_of_network(model.network)
    return model, resolve_special_tokens(model.config), family_of_network(model)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(secrets.randbits(63) if seed is None else seed)
    return gen


def settings_from_kwargs(owner: Owner, kwargs: dict[str, Any], where: str,
                         architecture: str = "llada") -> Any:
    """The :class:`SamplerConfig` (``owner="sampler"``) or :class:`EstimatorConfig` of keyword
    arguments: registry knobs of the family ``architecture`` only, each parsed and the whole
    resolved (with the family's defaults) and validated."""
    from evalsuite.families import family_named

    values = parse_knobs(kwargs, f"{where} argument")
    other = sorted(set(values) - set(knobs_of(owner)))
    if other:
        raise ConfigError(
            f"{where}: {', '.join(other)} do(es) not apply to {owner} settings; the knobs of "
            f"{where} are {', '.join(knobs_of(owner))}")
    check_settings(family_named(architecture), values,
                   "generate" if owner == "sampler" else "loglikelihood", f"{where} argument")
    kind = "generate_until" if owner == "sampler" else "loglikelihood"
    config, _ = resolve(TaskInfo(None, kind), "base", {}, Overrides(values, "argument"),
                        use_paper_table=False, architecture=architecture)
    return config


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

    ``input_ids`` ``[B, P]`` (left-padded, with ``attention_mask`` 0 on padding). ``settings``:
    any sampler knob of the family (see the module docstring); those not given take the
    family's defaults (Dream: ``alg="entropy"``, the setting of Dream's evaluation scripts),
    the lengths derived from ``gen_length``. Randomness comes from ``generator`` (one, or one
    per row) or a generator seeded with ``seed``. Special ids come from the config and
    tokenizer.
    """
    network, tokens, family = _parts(model)
    config: SamplerConfig = settings_from_kwargs("sampler", settings, "generate", family.name)
    input_ids = input_ids.to(network.device)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if attention_mask is not None:
        attention_mask = attention_mask.to(network.device)
        if attention_mask.dim() == 1:
            attention_mask = attention_mask[None]
    if generator is None:
        generator = _generator(seed, network.device)
    sample = family.resolve("sample")
    return sample(network, input_ids, attention_mask, config=config, mask_id=tokens.mask_id,
                  eos_id=tokens.eos_id, eot_id=tokens.eot_id, generator=generator,
                  logit_shift=family.logit_shift)


def loglikelihood(
    model: Any,
    prompt_ids: torch.Tensor,
    answer_ids: torch.Tensor,
    *,
    seed: int | None = None,
    **settings: Any,
) -> LikelihoodResult:
    """The family's estimate of log p(answer | prompt): ``.value``, ``.stderr``, ``.nfe``.

    ``settings``: any estimator knob of the family. LLaDA (Eq. 6; ``mc_num`` 128,
    ``mc_batch_size`` derived as the largest divisor of ``mc_num`` up to 16, ``cfg_scale``,
    ``estimator``, ``target_se``): exact in one pass for a one-token answer and in ``2^L - 1``
    rows when that fits ``mc_num``, otherwise Monte Carlo rows unbiased for the bound;
    ``estimator="reference"`` runs the official algorithm. Dream (``mc_num`` 128,
    ``mc_batch_size`` up to 32 as Dream's eval wrapper, ``cfg_scale``, ``estimator``,
    ``nll_type`` mc or ar_ftb): the EOS is appended inside (``answer_ids`` never includes
    it); the official estimator's expectation exactly when ``2^n - 1 <= mc_num``.
    """
    network, tokens, family = _parts(model)
    config: EstimatorConfig = settings_from_kwargs("estimator", settings, "loglikelihood",
                                                   family.name)
    gen = torch.Generator().manual_seed(secrets.randbits(63) if seed is None else seed)
    estimate = family.resolve("estimate")
    return estimate(network, [(prompt_ids, answer_ids)], config=config, tokens=tokens,
                    generators=[gen], max_rows=config.batch_size)[0]
