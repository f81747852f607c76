"""The machine a run measured: what it is (`machine`), and how fast it is right now
(`child_reference`: the same fixed Python, numpy and SQLite work on every run, so figures
from runs whose references differ are known not to be comparable)."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.run_common import SEED


def child_reference(_args: dict[str, Any]) -> dict[str, Any]:
    """The same fixed work on every run (best of five): how fast the machine is right now."""
    import numpy as np

    def best(work: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return min(times) * 1000

    numbers = np.random.default_rng(SEED).random(2_000_000)
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    database.executemany("INSERT INTO t VALUES (?, ?)", ((n, str(n)) for n in range(200_000)))
    return {
        "python_ms": best(lambda: sum(i * i for i in range(1_000_000))),
        "numpy_ms": best(lambda: np.sort(numbers)),
        "sqlite_ms": best(lambda: database.execute("SELECT * FROM t").fetchall()),
    }


def machine() -> dict[str, Any]:
    memory_kib = 0
    with contextlib.suppress(OSError):
        match = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        memory_kib = int(match.group(1)) if match else 0
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }
