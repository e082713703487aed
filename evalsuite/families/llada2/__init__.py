"""LLaDA2.0 / 2.1 (inclusionAI/LLaDA2.0-mini, -flash): a Ling/BailingMoE-v2 mixture-of-experts
mask predictor trained for BLOCK diffusion (causal across blocks, bidirectional inside one).

- ``network.py``: the network, its three attention layouts and the KV-cache ``extend`` step;
- ``checkpoint.py``: the official checkpoint layout, checked against ``config.json`` before any
  weight loads;
- ``generate.py``: the official block-diffusion ``generate`` (argmax at temperature 0) with an
  exact block-level KV cache (default on);
- ``likelihood.py``: the block-diffusion likelihood bound (this project's definition; no
  official estimator exists);
- ``settings.py``: the official setting names, validated (:class:`LLaDA2Settings`).
"""

from evalsuite.families.llada2.settings import LLaDA2Settings

__all__ = ["LLaDA2Settings"]
