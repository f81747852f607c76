"""What the command line logs: crmbot's own lines at the configured level, libraries' lines
only when something is wrong, so none lands in the middle of a shell answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SampleCompany, copy_of_sample


def test_a_first_chart_in_the_shell_prints_no_library_log_line(
    sample_company: SampleCompany, tmp_path: Path
) -> None:
    engine = copy_of_sample(sample_company, tmp_path)
    engine.dispose()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
        # An empty matplotlib cache: the first chart builds its font list and says so at INFO.
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "CRMBOT_LOG_LEVEL": "INFO",
    }
    shell = subprocess.run(
        [sys.executable, "-c", "from crmbot.cli.main import main; main()", "shell"],
        input="/crm segments\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert "chart saved to" in shell.stdout
    assert "matplotlib" not in shell.stdout + shell.stderr
