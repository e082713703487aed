"""Special token ids, resolved from the model config and the tokenizer, never hard-coded."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from evalsuite.errors import CheckpointError

EOT_NAMES = ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>")
MASK_NAMES = ("<|mdm_mask|>", "<|mask|>", "[MASK]")


@dataclass(frozen=True)
class SpecialTokens:
    """The ids the sampler and estimator need; recorded with every result."""

    mask_id: int
    """Id of the mask token [M] that diffusion predicts."""
    eos_id: int | None
    """End of sequence (also LLaDA's padding id)."""
    eot_id: int | None = None
    """End of turn of the chat template (LLaDA Instruct: <|eot_id|>)."""
    pad_id: int | None = None
    """Id used to left-pad batched prompts."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _token_id(tokenizer: Any, names: tuple[str, ...]) -> int | None:
    if tokenizer is None:
        return None
    vocab = tokenizer.get_vocab()
    for name in names:
        if name in vocab:
            return int(vocab[name])
    return None


def resolve_special_tokens(config: Any, tokenizer: Any = None) -> SpecialTokens:
    """Take the mask id from the config (or a mask token of the tokenizer), EOS from the
    config or tokenizer, EoT from the tokenizer's chat tokens, pad from config or tokenizer."""
    mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        mask_id = _token_id(tokenizer, MASK_NAMES)
    if mask_id is None:
        raise CheckpointError(
            "config.json has no mask_token_id and the tokenizer has no mask token "
            f"({', '.join(MASK_NAMES)}); add mask_token_id to config.json"
        )
    eos_id = getattr(config, "eos_token_id", None)
    if eos_id is None and tokenizer is not None:
        eos_id = tokenizer.eos_token_id
    eot_id = _token_id(tokenizer, EOT_NAMES)
    if eot_id == eos_id:
        eot_id = None
    pad_id = getattr(config, "pad_token_id", None)
    if pad_id is None and tokenizer is not None:
        pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = eos_id
    vocab = getattr(config, "embedding_size", None)
    for name, value in (("mask", mask_id), ("eos", eos_id), ("eot", eot_id), ("pad", pad_id)):
        if value is not None and vocab is not None and not 0 <= int(value) < vocab:
            raise CheckpointError(f"{name} token id {value} is outside the vocabulary (size {vocab})")
    return SpecialTokens(
        mask_id=int(mask_id),
        eos_id=None if eos_id is None else int(eos_id),
        eot_id=None if eot_id is None else int(eot_id),
        pad_id=None if pad_id is None else int(pad_id),
    )
