"""Task suite: lm-eval YAMLs under evalsuite/tasks/yaml (package data), offline data loading, per-task diffusion settings.

Public API::

    resolve_tasks(["gsm8k", "mmlu"], family="base")  # -> ["llada_gsm8k", "llada_mmlu"]
    task_manager()                                    # lm-eval TaskManager over the suite
    diffusion_settings("llada_gsm8k", "base")         # -> {"gen_length": 1024, ...}

Importing this package loads neither lm-eval nor torch.
"""

from evalsuite.tasks.data import DATA_DIR_ENV, data_dir
from evalsuite.tasks.registry import SHORT_NAMES, TASKS_DIR, resolve_tasks, task_manager, tasks_dir
from evalsuite.tasks.settings import DiffusionSettings, Family, benchmark_of, diffusion_settings, settings_for

__all__ = [
    "DATA_DIR_ENV",
    "SHORT_NAMES",
    "TASKS_DIR",
    "DiffusionSettings",
    "Family",
    "benchmark_of",
    "data_dir",
    "diffusion_settings",
    "resolve_tasks",
    "settings_for",
    "task_manager",
    "tasks_dir",
]
