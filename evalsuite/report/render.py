"""Render a :class:`~evalsuite.report.table.Report` to one self-contained HTML file.

Jinja2 with autoescaping on and ``StrictUndefined``: every model output, prompt and label is
escaped (a ``<script>`` in an output is shown as text), and a template typo fails loudly.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from evalsuite.report.table import Report
from evalsuite.resources import package_path

TEMPLATES = package_path("report", "templates")


def environment() -> jinja2.Environment:
    """The report's Jinja2 environment (autoescape on, StrictUndefined)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    """The report as an HTML string."""
    return environment().get_template("report.html.j2").render(report=report)


def write_html(report: Report, path: Path | str) -> Path:
    """Write the report atomically (temporary file, then rename) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render_html(report), encoding="utf-8")
    os.replace(tmp, path)
    return path
