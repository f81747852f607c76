"""What every part of the benchmark suite (`benchmarks.run`) shares: its constants, a log
line, percentiles, peak memory, and running one measurement in a child process."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SEED = 7
AS_OF = date(2026, 6, 30)
SIGNING_SECRET = "bench-signing-secret-0123456789"
BOT_TOKEN = "xoxb-bench-token-0123456789"
BENCH_USER = "UBENCH"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (nearest-rank on the sorted samples)."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
        return ordered[index] * 1000

    return {
        "p50_ms": rank(50),
        "p95_ms": rank(95),
        "p99_ms": rank(99),
        "max_ms": ordered[-1] * 1000,
        "count": len(ordered),
    }


def peak_rss_kib() -> int:
    """This process's RSS high-water mark (VmHWM) in KiB."""
    match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_command(mode: str, arguments: str, result_path: Path) -> list[str]:
    """`python -m benchmarks.run --child <mode>`: run from ROOT, which puts the project on
    sys.path, so the child imports `benchmarks` and `tests.support` like the parent."""
    command = [PYTHON, "-m", "benchmarks.run", "--child", mode, "--child-args", arguments]
    return command + ["--child-result", str(result_path)]


def child(mode: str, args: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    command = child_command(mode, json.dumps(args), result_path)
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        result_path.unlink(missing_ok=True)
        return {"error": f"did not finish within {timeout:.0f} s"}
    wall = time.perf_counter() - started
    if completed.returncode != 0 or not result_path.stat().st_size:
        result_path.unlink(missing_ok=True)
        return {"error": f"child {mode} exited with {completed.returncode}"}
    result = json.loads(result_path.read_text())
    result_path.unlink(missing_ok=True)
    result.setdefault("wall_seconds", wall)
    return result


def settings_for(url: str, **extra: Any) -> Any:
    from crmbot.core.config import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        admin_users=[BENCH_USER],
        log_level="WARNING",
        **extra,
    )
