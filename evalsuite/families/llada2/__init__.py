"""LLaDA2.0 / 2.1 (inclusionAI/LLaDA2.0-mini, -flash): a Ling/BailingMoE-v2 mixture-of-experts
mask predictor trained for BLOCK diffusion (causal across blocks, bidirectional inside one).

- ``network.py``: the network, its three attention layouts and the KV-cache ``extend`` step;
- ``checkpoint.py``: the official checkpoint layout, checked against ``config.json`` before any
  weight loads;
- ``generate.py``: the official block-diffusion ``generate`` (argmax at temperature 0) with an
  exact block-level KV cache (default on), and ``sample``, the family's sampler entry point
  (engine and :func:`evalsuite.generate`: batch slots, early exit, per-row callbacks);
- ``likelihood.py``: the block-diffusion likelihood bound (this project's definition; no
  official estimator exists) and ``estimate``, the family's likelihood entry point;
- ``settings.py``: the typed view of LLaDA2's knobs (:class:`LLaDA2Settings`, validated by
  the one validator) and the family's (empty) per-task table;
- ``tiny.py``: the random tokenizer-equipped checkpoint of the end-to-end tests.
"""

from evalsuite.families.llada2.settings import LLaDA2Settings

__all__ = ["LLaDA2Settings"]
