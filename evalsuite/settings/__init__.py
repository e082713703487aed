"""Diffusion settings: the knob registry (:mod:`.knobs`) and the resolver (:mod:`.resolve`)."""

from evalsuite.settings.knobs import Knob, knob_names, knobs, parse_knobs
from evalsuite.settings.resolve import (
    DEFAULT_GEN_LENGTH,
    Overrides,
    Provenance,
    Source,
    TaskInfo,
    describe,
    resolve,
    settings_record,
)

__all__ = ["DEFAULT_GEN_LENGTH", "Knob", "Overrides", "Provenance", "Source", "TaskInfo",
           "describe", "knob_names", "knobs", "parse_knobs", "resolve", "settings_record"]
