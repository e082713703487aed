"""LLaDA-MoE's published evaluation settings: the family's settings table.

Source: inclusionAI/dInfer ``evaluations/eval_llada_moe.sh`` (shared/FAMILIES.md, "LLaDA-MoE"):
GSM8K (``gsm8k_llada_moe``, 4-shot) and MBPP (``mbpp_sanitized_llada_moe``) run with
``gen_length`` 1024, ``block_length`` 64, parallel decoding at confidence ``threshold`` 0.76,
the dual KV cache, temperature 0 and the chat template. In evalsuite's knobs that is
``decoding="threshold"``, ``threshold=0.76``, ``cache="dual"``, ``steps`` 1024 (unused by
threshold decoding, kept a multiple of the 16 blocks). Deliberate differences: dInfer's
*hierarchy* decoder (its ``low_threshold`` 0.62) is not implemented, so the plain threshold
decoder runs; evalsuite's ``dual`` cache is Fast-dLLM's (refreshed at each block's first
pass), the same idea as dInfer's, not verified token for token against it. The suite has no
MBPP task, so the table covers the GSM8K tasks (``llada_gsm8k``, ``llada_gsm8k_instruct``,
lm-eval's ``gsm8k``). Every other task takes LLaDA's defaults and the task's own settings.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

from evalsuite.settings.knobs import parse_knobs

SOURCE: Final = "inclusionAI/dInfer evaluations/eval_llada_moe.sh"
"""Where the table's values come from."""

GSM8K: Final = MappingProxyType(parse_knobs({
    "gen_length": 1024, "block_length": 64, "steps": 1024, "decoding": "threshold",
    "threshold": 0.76, "cache": "dual", "temperature": 0.0, "remasking": "low_confidence",
    "cfg_scale": 0.0}, f"LLaDA-MoE settings table ({SOURCE})"))
"""dInfer's LLaDA-MoE GSM8K (and MBPP) generation settings, as knob values."""

TASKS: Final = frozenset({"llada_gsm8k", "llada_gsm8k_instruct", "gsm8k"})
"""Task names the table applies to (exact names)."""


def settings_table(task_name: str, protocol: str) -> dict[str, Any]:
    """The LLaDA-MoE family's ``settings_table`` (:mod:`evalsuite.families`): dInfer's settings
    for the GSM8K tasks (base and instruct protocol alike), nothing for other tasks."""
    del protocol  # dInfer evaluates the Instruct model with one setting
    return dict(GSM8K) if task_name in TASKS else {}
