"""Task suite: lm-eval YAMLs under evalsuite/tasks/yaml (package data) and offline data loading
(the per-task diffusion settings of the paper live in :mod:`evalsuite.settings.paper`).

Public API::

    resolve_tasks(["gsm8k", "mmlu"], family="base")  # -> ["llada_gsm8k", "llada_mmlu"]
    task_manager()                                    # lm-eval TaskManager over the suite

Importing this package loads neither lm-eval nor torch.
"""

from evalsuite.tasks.data import DATA_DIR_ENV, data_dir
from evalsuite.tasks.registry import SHORT_NAMES, TASKS_DIR, resolve_tasks, task_manager, tasks_dir

__all__ = [
    "DATA_DIR_ENV",
    "SHORT_NAMES",
    "TASKS_DIR",
    "data_dir",
    "resolve_tasks",
    "task_manager",
    "tasks_dir",
]
