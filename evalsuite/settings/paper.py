"""Per-task diffusion settings of the LLaDA protocol (values from the paper and the official
scripts, see shared/REFERENCE.md).

:func:`evalsuite.settings.resolve` looks these up by the exact task name (``Instance.task_name``)
and applies the task YAML's generation kwargs and the CLI / model_args overrides on top, so
running a task with no options reproduces the official setting:

* Base models, as the official lm-eval script ran them: generation tasks (GSM8K, MATH, BBH,
  HumanEval) ``gen_length = steps = block_length = 1024``, temperature 0, low-confidence
  remasking, no CFG; MMLU ``mc_num`` 1 (single-token answers: the bound is exact), no CFG;
  PIQA ``mc_num`` 128 with ``cfg_scale`` 0.5 (the command that gave 74.4; the paper's
  Table 1 value 73.6 is without CFG).
* Instruct models (the Instruct table; pure diffusion, block = gen_length = steps):
  MMLU 3, GSM8K 512 + ``confidence_eos_eot_inf``, MATH 512 + ``confidence_eos_eot_inf``,
  HumanEval 512 + ``logits_eos_inf``. BBH and PIQA have no instruct entry: the base values
  apply.
* Reversal poems (always the instruct protocol): 28 / 28 / 28, ``logits_eos_inf``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

from evalsuite.presets import Family
from evalsuite.settings.knobs import parse_knobs
from evalsuite.tasks.subjects import BBH_TASKS, MMLU_CATEGORIES, MMLU_SUBJECTS

__all__ = ["Benchmark", "Family", "benchmark_of", "diffusion_settings", "is_instruct_variant"]

Benchmark = Literal["gsm8k", "mmlu", "piqa", "math", "bbh", "humaneval", "poem"]

Table = Mapping[str, Mapping[str, Any]]


def _parsed(raw: Mapping[str, Mapping[str, Any]], name: str) -> Table:
    """A table whose entries are checked through the knob registry (an unknown knob or a bad
    value fails at import, naming the entry)."""
    return MappingProxyType({bench: MappingProxyType(parse_knobs(values, f"paper table {name}"
                                                                         f"[{bench}]"))
                             for bench, values in raw.items()})


def _generation(length: int, *, eos_inf: bool = False, eos_eot_last: bool = False) -> dict[str, Any]:
    return {"gen_length": length, "steps": length, "block_length": length, "temperature": 0.0,
            "remasking": "low_confidence", "cfg_scale": 0.0, "logits_eos_inf": eos_inf,
            "confidence_eos_eot_inf": eos_eot_last}


_BASE_RAW: Final[dict[str, dict[str, Any]]] = {
    "gsm8k": _generation(1024),
    "math": _generation(1024),
    "bbh": _generation(1024),
    "humaneval": _generation(1024),
    "mmlu": {"mc_num": 1, "cfg_scale": 0.0},
    "piqa": {"mc_num": 128, "cfg_scale": 0.5},
    "poem": _generation(28, eos_inf=True),
}
_BASE: Final[Table] = _parsed(_BASE_RAW, "base")
_INSTRUCT: Final[Table] = _parsed({
    **_BASE_RAW,
    "mmlu": _generation(3),
    "gsm8k": _generation(512, eos_eot_last=True),
    "math": _generation(512, eos_eot_last=True),
    "humaneval": _generation(512, eos_inf=True),
}, "instruct")
_LIKELIHOOD: Final[frozenset[Benchmark]] = frozenset({"mmlu", "piqa"})

#: MATH subtask suffixes of our YAMLs and of lm-eval's ``minerva_math_*``.
MATH_TASKS: Final[tuple[str, ...]] = (
    "algebra", "counting_and_prob", "geometry", "intermediate_algebra", "num_theory",
    "prealgebra", "precalc",
)


def _exact_names() -> dict[str, tuple[Benchmark, bool]]:
    """Every task or group name that has settings -> (benchmark, is an instruct variant).

    Exact names only: ours (``llada_*``) and lm-eval's built-in counterparts. A user's own
    task (``gsm8k_cot``, ``llada_gsm8k_long``) is not in the table and gets no paper
    settings; it can carry its own in its YAML ``generation_kwargs``.
    """
    mmlu = ("", *(f"_{s}" for s in (*MMLU_SUBJECTS, *MMLU_CATEGORIES)))
    table: dict[str, tuple[Benchmark, bool]] = {}
    for prefix in ("llada_", ""):
        for name in ("gsm8k", "humaneval", "piqa"):
            table[prefix + name] = (name, False)  # type: ignore[assignment]
        for name in ("gsm8k", "humaneval"):
            table[f"{prefix}{name}_instruct"] = (name, True)  # type: ignore[assignment]
        for suffix in mmlu:
            table[f"{prefix}mmlu{suffix}"] = ("mmlu", False)
    for suffix in mmlu:
        table[f"llada_mmlu_instruct{suffix}"] = ("mmlu", True)
    for math in ("llada_math", "minerva_math"):
        table[math] = ("math", False)
        table.update({f"{math}_{t}": ("math", False) for t in MATH_TASKS})
    for bbh in ("llada_bbh", "bbh_cot_fewshot"):
        table[bbh] = ("bbh", False)
        table.update({f"{bbh}_{t}": ("bbh", False) for t in BBH_TASKS})
    table["llada_poem_forward"] = table["llada_poem_backward"] = ("poem", False)
    return table


EXACT_NAMES: Final[dict[str, tuple[Benchmark, bool]]] = _exact_names()


def benchmark_of(task_name: str) -> Benchmark | None:
    """The benchmark of a task, subtask or group, by exact name: ours (``llada_mmlu_anatomy``,
    ``llada_gsm8k_instruct``) or lm-eval's built-in counterpart (``mmlu_anatomy``,
    ``minerva_math_algebra``, ``bbh_cot_fewshot_navigate``); None for any other name."""
    entry = EXACT_NAMES.get(task_name)
    return entry[0] if entry else None


def is_instruct_variant(task_name: str) -> bool:
    """Whether the task is one of the instruct-protocol variants of the table."""
    entry = EXACT_NAMES.get(task_name)
    return bool(entry and entry[1])


def diffusion_settings(task_name: str, family: Family) -> dict[str, Any]:
    """Per-task diffusion settings for a model family, by knob name (gen_length, steps,
    block_length, temperature, cfg_scale, remasking, logits_eos_inf, confidence_eos_eot_inf,
    mc_num). Any subtask name maps to its benchmark's settings (``llada_mmlu_abstract_algebra``
    -> MMLU's), by exact name. Unknown task -> {}."""
    benchmark = benchmark_of(task_name)
    if benchmark is None:
        return {}
    instruct = family == "instruct" or is_instruct_variant(task_name)
    if benchmark in _LIKELIHOOD and not is_instruct_variant(task_name):
        instruct = False  # a likelihood task stays one: its estimator settings apply
    return dict((_INSTRUCT if instruct else _BASE)[benchmark])
