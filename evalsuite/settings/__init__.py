"""Diffusion settings, one home: the config dataclasses and their defaults (:mod:`.config`),
the knob registry derived from them (:mod:`.knobs`), the one validator (:mod:`.validate`), the
paper's per-task tables (:mod:`.paper`, parsed through the registry) and the resolver
(:mod:`.resolve`)."""

from evalsuite.settings.config import EstimatorConfig, SamplerConfig
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

__all__ = ["DEFAULT_GEN_LENGTH", "EstimatorConfig", "Knob", "Overrides", "Provenance",
           "SamplerConfig", "Source", "TaskInfo", "describe", "knob_names", "knobs",
           "parse_knobs", "resolve", "settings_record"]
