"""Files shipped inside the package (package data), found through :mod:`importlib.resources`.

Task YAMLs (``tasks/yaml``), the bundled tiny models and the miniature study's data
(``assets``), report templates (``report/templates``) and the published scores (``data``)
are package data (``[tool.setuptools.package-data]`` in pyproject.toml): a wheel installed
anywhere finds them here, a checkout finds them in its source tree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from evalsuite.errors import ConfigError


def package_path(*parts: str) -> Path:
    """The file or directory ``evalsuite/<parts...>`` on disk.

    lm-eval and the model loaders read real paths, so the package must be installed as files
    (any wheel or editable install; not a zip archive). Raises ConfigError otherwise.
    """
    target = files("evalsuite").joinpath(*parts)
    if not isinstance(target, Path):
        raise ConfigError(
            f"evalsuite/{'/'.join(parts)} is not a file on disk ({target!r}); install evalsuite "
            "from a wheel or a checkout (pip install .), not as a zip archive")
    return target.resolve()
