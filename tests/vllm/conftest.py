"""Settings for the vLLM tests, which run inside .venv-vllm (``make test-vllm``).

vLLM's engine runs in this process (no engine subprocess), on one OpenMP thread without core
binding and with a 1 GiB KV cache: the machine's cores are shared. They must be set before
vllm or torch is imported, and only where vllm is installed (in the main venv this directory
is skipped and must not slow the rest of the suite down to one thread).
"""

from __future__ import annotations

import os

from evalsuite.models.arm import vllm_installed

if vllm_installed():
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
