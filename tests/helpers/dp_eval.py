"""Run the tiny tasks with llada-tiny through lm-eval; rank 0 writes per-sample outputs as JSON.

Used by tests/test_distributed.py, once plainly and once under `accelerate launch` with two
CPU processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from evalsuite.models.adapter import LLaDAEvalModel

TASKS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval_tasks"


def main(out_path: str) -> None:
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", batch_size=2, gen_length=8,
                        steps=8, block_length=8, mc_num=8, temperature=0.5)
    tm = TaskManager(include_defaults=False, include_path=str(TASKS_DIR))
    out = simple_evaluate(model=lm, tasks=["tiny_qa_gen", "tiny_qa_mc"], task_manager=tm,
                          log_samples=True)
    if lm.rank == 0:
        samples = {
            task: {str(s["doc_id"]): [r[0] if isinstance(r[0], str) else r[0][0] for r in s["resps"]]
                   for s in rows}
            for task, rows in out["samples"].items()
        }
        Path(out_path).write_text(json.dumps({"world_size": lm.world_size, "samples": samples}))


if __name__ == "__main__":
    main(sys.argv[1])
