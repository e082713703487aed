"""The tokenizer both tiny models share: byte-level BPE trained on the miniature corpus.

Byte-level, so any text (the paper tasks' English, code, LaTeX) tokenizes; trained on the
couplets, the poem questions, the arithmetic and the sum facts, so that every character of
the poems is one token and a couplet line is a handful of tokens. Special tokens and their
ids are those of the earlier random llada-tiny (EOS 0, mask 1, ``<|eot_id|>`` 4), with a
Llama-3 style chat template like LLaDA Instruct's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIALS: Final = ("<|endoftext|>", "<|mdm_mask|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eot_id|>", "<|begin_of_text|>")
EOS: Final = "<|endoftext|>"
MASK: Final = "<|mdm_mask|>"
EOT: Final = "<|eot_id|>"
BOS: Final = "<|begin_of_text|>"
CHAT_TEMPLATE: Final = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
    "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
CJK_CHAR: Final = "[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]"
"""One CJK ideograph or full-width punctuation mark: isolated before byte-level BPE, so a
poem character is never merged with its neighbours into a word-sized token."""
POEM_WEIGHT: Final = 40
"""How many times the poem texts enter the BPE statistics: enough that every character's
byte merges outrank the English ones."""


def train_tokenizer(poem_texts: Iterable[str], other_texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE with :data:`SPECIALS` at ids 0-5 (deterministic for fixed inputs)."""
    poems = list(poem_texts)
    texts = [t for _ in range(POEM_WEIGHT) for t in poems] + list(other_texts)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CJK_CHAR), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def write_tokenizer_files(tok: Tokenizer, out: Path) -> None:
    """``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` in out."""
    tok.save(str(out / "tokenizer.json"))
    specials = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "mask_token": MASK}
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", **specials,
        "model_max_length": 4096, "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")


def multi_token_characters(tok: Tokenizer, texts: Iterable[str]) -> list[str]:
    """Non-ASCII characters of texts that the tokenizer splits into several tokens."""
    chars = sorted({c for t in texts for c in t if ord(c) > 127})
    return [c for c in chars if len(tok.encode(c).ids) != 1]
