"""LLaDA-MoE (inclusionAI/LLaDA-MoE-7B-A1B-Base / -Instruct): an OLMoE-style bidirectional
mixture-of-experts mask predictor.

It is sampled and scored with LLaDA's algorithms unchanged (:mod:`evalsuite.diffusion.sampler`,
:mod:`evalsuite.diffusion.likelihood`): the network has LLaDA's interface
(``network(input_ids, attention_mask=None, positions=None)``, ``hidden_states``, ``head``,
``reference_padding``, and ``forward_cached`` for the sampler's approximate prefix/dual KV
cache). See ``network.py`` for the architecture, ``checkpoint.py`` for the official
checkpoint layout, ``protocol.py`` for the family's per-task table (dInfer's GSM8K settings)
and ``tiny.py`` for the random tokenizer-equipped checkpoint of the end-to-end tests.
"""

__all__: list[str] = []  # the pieces are reached through the family registry
