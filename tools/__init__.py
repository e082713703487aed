"""Developer tools, not installed with the package: the task oracle and validator
(``python -m tools.validate_tasks``), the task YAML generator (``python -m tools.generate_tasks``)
and the tiny ARM test fixtures. Run them from the repository root."""
