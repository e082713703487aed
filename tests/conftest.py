"""Shared fixtures: the golden vectors and the tiny models (loaded once per session)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = FIXTURES / "golden"
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _private_request_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own request cache, so that no test reads another's answers."""
    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(tmp_path_factory.mktemp("request-cache")))


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    """Tensors of tiny-llada-golden.safetensors, keys without the ``tiny-llada.`` prefix."""
    from safetensors.torch import load_file

    tensors = load_file(str(GOLDEN / "tiny-llada-golden.safetensors"))
    return {k.removeprefix("tiny-llada."): v for k, v in tensors.items()}


@pytest.fixture(scope="session")
def golden_meta() -> dict[str, Any]:
    return json.loads((GOLDEN / "tiny-llada-golden.json").read_text())


@pytest.fixture(scope="session")
def golden_model():
    """The golden 2-layer checkpoint in float32, loaded through the real loader."""
    from evalsuite.models.checkpoint import load_llada

    model, _ = load_llada(str(GOLDEN / "tiny-llada"), dtype="float32", device="cpu")
    return model


@pytest.fixture(scope="session")
def tiny_lm():
    """The bundled llada-tiny (real BPE tokenizer) as a DiffusionLM."""
    from evalsuite.models.loader import load_model
    from evalsuite.presets import LLADA_TINY_DIR

    return load_model(str(LLADA_TINY_DIR), dtype="float32", device="cpu")
