"""The family registry: architecture recognised from config.json, unknown ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.errors import CheckpointError
from evalsuite.families import FAMILIES, detect_family, read_config

from conftest import GOLDEN


def test_llada_checkpoint_is_recognised() -> None:
    assert detect_family(read_config(GOLDEN / "tiny-llada")).name == "llada"


def test_unknown_model_type_names_it_and_the_supported_ones() -> None:
    with pytest.raises(CheckpointError) as err:
        detect_family({"model_type": "mamba"}, source="x/config.json")
    text = str(err.value)
    assert "'mamba'" in text and "x/config.json" in text
    for family in FAMILIES:
        for model_type in family.model_types:
            assert model_type in text


def test_load_model_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    from evalsuite.models.loader import load_model

    (tmp_path / "config.json").write_text('{"model_type": "mamba"}')
    with pytest.raises(CheckpointError, match="model_type 'mamba'"):
        load_model(str(tmp_path), device="cpu")
