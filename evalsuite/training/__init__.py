"""The miniature study: a tiny masked diffusion LM and a tiny autoregressive LM trained here.

``python -m evalsuite.training`` (``make tiny-models``) builds the data of
``evalsuite/assets/miniature``, the shared tokenizer and both checkpoints
(``evalsuite/assets/llada-tiny``, ``evalsuite/assets/arm-tiny``) from the same token stream
with the same number of optimizer steps. Modules:

* :mod:`evalsuite.training.corpus`: the seeded arithmetic / sum-choice data, the held-out
  poem split, pre-training documents and SFT examples (pure functions).
* :mod:`evalsuite.training.tokenizer`: the shared byte-level BPE tokenizer.
* :mod:`evalsuite.training.batches`: the token stream (identical for both models).
* :mod:`evalsuite.training.train`: the two losses, the loop, the log and atomic checkpoints.
"""
