"""The golden vectors in tests/fixtures are byte-identical to ../shared/golden (when present)."""

from __future__ import annotations

import hashlib

import pytest

from conftest import GOLDEN, SHARED

FILES = ["tiny-llada-golden.json", "tiny-llada-golden.safetensors",
         "tiny-llada/config.json", "tiny-llada/model.safetensors"]


@pytest.mark.skipif(not (SHARED / "golden").is_dir(), reason="../shared/golden is not present")
@pytest.mark.parametrize("name", FILES)
def test_fixture_copy_equals_shared(name):
    ours = hashlib.sha256((GOLDEN / name).read_bytes()).hexdigest()
    theirs = hashlib.sha256((SHARED / "golden" / name).read_bytes()).hexdigest()
    assert ours == theirs
