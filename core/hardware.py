"""What the machine offers to the engines: physical cores, threads, and the CPU's AMX units.

A bottom layer: imports only the standard library, so the engines, the embedder and
training can all ask it.
"""

from __future__ import annotations

import os
from pathlib import Path

AMX_MARKER = "AMX_INT8 = 1"
"""How ggml's system information line says that the CPU has AMX and ggml uses it."""


def default_threads() -> int:
    """Threads when the setting is 0: one per physical core this process may run on.

    llama.cpp's threads spin at every barrier, so two on the hyperthreads of one core
    slow each other down; on separate cores they help. Measured on an idle 2-core
    machine with no hyperthreads (``bench/threads.py``): prompt evaluation 133 tok/s
    with one thread, 261 with two; generation 52 vs 85 tok/s. The earlier rule (half
    the logical CPUs) took one thread there. On a busy machine fewer threads can be
    faster: the setting stays.
    """
    cores = physical_cores()
    return max(1, cores if cores else (os.cpu_count() or 2))


def physical_cores() -> int:
    """Physical cores among the CPUs this process may use (Linux sysfs), 0 when unknown."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 0))
    siblings = set()
    for cpu in allowed:
        path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            siblings.add(path.read_text("ascii").strip())
        except OSError:
            return 0
    return len(siblings)


def uses_amx(system_info: str) -> bool:
    """Whether ggml's system information (``llama_print_system_info``) reports AMX in use."""
    return AMX_MARKER in system_info
