"""`evalsuite.runner.evaluate` under a 2-process launch where rank 1 fails after joining the
process group (a stand-in for a rank-specific error: an out-of-memory GPU, a locked file).

Used by tests/test_distributed.py: every rank must exit (non-zero), none may wait forever.
"""

from __future__ import annotations

import sys
from pathlib import Path

from evalsuite import runner

_real_build_lm = runner.build_lm


def _build_lm_failing_on_rank_1(p: runner.Plan) -> object:
    lm = _real_build_lm(p)
    if lm.rank == 1:
        raise RuntimeError("rank 1 failed after joining the process group")
    return lm


if __name__ == "__main__":
    runner.build_lm = _build_lm_failing_on_rank_1
    runner.evaluate(runner.RunSpec(model="llada-tiny", tasks=("llada_sum_choice",), limit=4,
                                   device="cpu", output=Path(sys.argv[1])))
