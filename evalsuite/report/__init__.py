"""HTML report over runs: a typed table model, then a Jinja2 template with inline SVG charts."""

from evalsuite.report.render import render_html, write_html
from evalsuite.report.table import Report, build_report

__all__ = ["Report", "build_report", "render_html", "write_html"]
