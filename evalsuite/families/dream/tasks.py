"""Dream's official per-task settings (DreamLM/Dream ``eval/*.sh`` and
``eval_instruct/eval.sh``; shared/FAMILIES.md), looked up by the same exact task names as the
LLaDA paper table (:mod:`evalsuite.settings.paper`) and checked through the knob registry.

* Base models: generation with Dream's sampler, ``alg`` entropy, ``alg_temp`` 0, ``top_p``
  0.95 and ``steps`` = ``gen_length`` (Dream's ``diffusion_steps`` = ``max_new_tokens``):
  GSM8K 256 tokens at temperature 0, MATH and BBH 512 at 0, HumanEval 512 at 0.2.
  Likelihood tasks (MMLU, PIQA): Dream's Monte Carlo estimator, ``mc_num`` 128 in batches of
  32, no guidance (Dream's ``cfg=1.0`` is our ``cfg_scale`` 0), ``nll_type`` mc.
* Instruct models (chat template; temperature 0.1, ``top_p`` 0.9, ``alg`` entropy,
  ``steps`` = ``gen_length``): MMLU (generative) 128, GSM8K 256, MATH 512, HumanEval 768.
  BBH has no instruct entry and likelihood tasks stay likelihood tasks: the base values apply
  (the convention of the LLaDA table).

Tasks Dream evaluates that this suite has no YAML for (mbpp, arc, hellaswag, winogrande, race,
gpqa, ifeval, mmlu_pro) have no entry; the LLaDA-only reversal poems have none either.
"""

from __future__ import annotations

from typing import Any, Final

from evalsuite.presets import Family
from evalsuite.settings.paper import Table, _parsed, benchmark_of, is_instruct_variant

#: The provenance source of a value from this table.
SOURCE: Final = "family_table"


def _generation(length: int, temperature: float, top_p: float) -> dict[str, Any]:
    return {"gen_length": length, "steps": length, "temperature": temperature, "top_p": top_p,
            "alg": "entropy", "alg_temp": 0.0}


_LIKELIHOOD: Final[dict[str, Any]] = {"mc_num": 128, "mc_batch_size": 32, "cfg_scale": 0.0,
                                      "nll_type": "mc"}
_BASE_RAW: Final[dict[str, dict[str, Any]]] = {
    "gsm8k": _generation(256, 0.0, 0.95),
    "math": _generation(512, 0.0, 0.95),
    "bbh": _generation(512, 0.0, 0.95),
    "humaneval": _generation(512, 0.2, 0.95),
    "mmlu": _LIKELIHOOD,
    "piqa": _LIKELIHOOD,
}
BASE: Final[Table] = _parsed(_BASE_RAW, "dream base")
INSTRUCT: Final[Table] = _parsed({
    **_BASE_RAW,
    "mmlu": _generation(128, 0.1, 0.9),
    "gsm8k": _generation(256, 0.1, 0.9),
    "math": _generation(512, 0.1, 0.9),
    "humaneval": _generation(768, 0.1, 0.9),
}, "dream instruct")
_LIKELIHOOD_BENCHMARKS: Final = frozenset({"mmlu", "piqa"})


def dream_settings(task_name: str, family: Family) -> dict[str, Any]:
    """Dream's settings of a task for a base or instruct model, by knob name; {} for a task
    without an entry."""
    benchmark = benchmark_of(task_name)
    if benchmark is None or benchmark not in BASE:
        return {}
    instruct = family == "instruct" or is_instruct_variant(task_name)
    if benchmark in _LIKELIHOOD_BENCHMARKS and not is_instruct_variant(task_name):
        instruct = False  # a likelihood task stays one: its estimator settings apply
    return dict((INSTRUCT if instruct else BASE)[benchmark])
