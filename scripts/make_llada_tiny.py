"""Build the embedded ``llada-tiny`` checkpoint: a real BPE tokenizer and a tiny LLaDA network.

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on the GSM8K train
questions and the LLaDA poems (so digits, English and the Chinese poem characters tokenize
sensibly), with LLaDA's special tokens and a Llama-3 style chat template like LLaDA Instruct's.
The network has random weights (seeded) in the official LLaDA checkpoint layout: config.json
with OLMo keys and safetensors keys ``model.transformer.*``. It exists to exercise the whole
pipeline offline in seconds, not to score well.

Usage: python scripts/make_llada_tiny.py --data ../shared/data --out evalsuite/assets/llada-tiny
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIALS = ["<|endoftext|>", "<|mdm_mask|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>", "<|begin_of_text|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
    "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def corpus(data: Path) -> list[str]:
    texts = []
    with open(data / "gsm8k" / "train.jsonl") as f:
        for line in f:
            row = json.loads(line)
            texts += [row["question"], row["answer"]]
    for pair in json.loads((data / "llada_poem" / "poem_data.json").read_text()):
        texts += [pair["first"] + "的下一句是什么？直接输出句子即可。", pair["second"]]
    return texts


def build_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer(corpus(args.data), args.vocab_size)
    tok.save(str(args.out / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    (args.out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "mask_token": "<|mdm_mask|>",
        "model_max_length": 4096, "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }, indent=2) + "\n")
    (args.out / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|begin_of_text|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "mask_token": "<|mdm_mask|>",
    }, indent=2) + "\n")

    d, heads, kv, layers, mlp = 64, 4, 2, 2, 192
    emb = (vocab + 63) // 64 * 64
    config = {
        "activation_type": "silu", "alibi": False, "architectures": ["LLaDAModelLM"],
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                     "AutoModel": "modeling_llada.LLaDAModelLM"},
        "block_type": "llama", "d_model": d, "embedding_size": emb,
        "eos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"],
        "mask_token_id": ids["<|mdm_mask|>"], "include_bias": False, "include_qkv_bias": False,
        "layer_norm_type": "rms", "max_sequence_length": 4096, "mlp_hidden_size": mlp,
        "model_type": "llada", "n_heads": heads, "n_kv_heads": kv, "n_layers": layers,
        "rms_norm_eps": 1e-5, "rope": True, "rope_theta": 500000.0, "scale_logits": False,
        "torch_dtype": "float32", "vocab_size": vocab, "weight_tying": False,
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    g = torch.Generator().manual_seed(args.seed)
    hd = d // heads

    def w(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    tensors = {"model.transformer.wte.weight": w(emb, d, scale=1.0),
               "model.transformer.ln_f.weight": torch.ones(d),
               "model.transformer.ff_out.weight": w(emb, d, scale=0.5)}
    for i in range(layers):
        p = f"model.transformer.blocks.{i}."
        tensors.update({
            p + "attn_norm.weight": torch.ones(d), p + "ff_norm.weight": torch.ones(d),
            p + "q_proj.weight": w(d, d, scale=d ** -0.5),
            p + "k_proj.weight": w(kv * hd, d, scale=d ** -0.5),
            p + "v_proj.weight": w(kv * hd, d, scale=d ** -0.5),
            p + "attn_out.weight": w(d, d, scale=d ** -0.5),
            p + "ff_proj.weight": w(mlp, d, scale=d ** -0.5),
            p + "up_proj.weight": w(mlp, d, scale=d ** -0.5),
            p + "ff_out.weight": w(d, mlp, scale=mlp ** -0.5),
        })
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(args.out / "model.safetensors"),
              metadata={"format": "pt"})
    print(f"wrote {args.out}: vocab {vocab}, embedding_size {emb}, special ids {ids}")


if __name__ == "__main__":
    main()
