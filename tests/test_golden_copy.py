"""The golden vectors in tests/fixtures are byte-identical to ../shared/golden (when present)."""

from __future__ import annotations

import hashlib

import pytest

from conftest import GOLDEN, SHARED

FILES = ["tiny-llada-golden.json", "tiny-llada-golden.safetensors",
         "tiny-llada/config.json", "tiny-llada/model.safetensors",
         "llada_moe/README.md", "llada_moe/tiny-llada-moe-golden.json",
         "llada_moe/tiny-llada-moe-golden.safetensors", "llada_moe/tiny-llada-moe/config.json",
         "llada_moe/tiny-llada-moe/model.safetensors",
         "llada2/README.md", "llada2/tiny-llada2-golden.json",
         "llada2/tiny-llada2-golden.safetensors", "llada2/tiny-llada2/config.json",
         "llada2/tiny-llada2/generation_config.json", "llada2/tiny-llada2/model.safetensors"]


@pytest.mark.skipif(not (SHARED / "golden").is_dir(), reason="../shared/golden is not present")
@pytest.mark.parametrize("name", FILES)
def test_fixture_copy_equals_shared(name):
    ours = hashlib.sha256((GOLDEN / name).read_bytes()).hexdigest()
    theirs = hashlib.sha256((SHARED / "golden" / name).read_bytes()).hexdigest()
    assert ours == theirs
