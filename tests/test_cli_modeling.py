"""`crmbot train`, `crmbot model show|list|activate` and `crmbot scores export` on a real
SQLite file, through the typer app."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner
from value_data import END, START, build_company, insert_company

from crmbot.cli.main import app
from crmbot.core.config import get_settings
from crmbot.core.db import connect

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrated SQLite file with the small company, configured through DATABASE_URL."""
    path = tmp_path / "crm.db"
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    engine = connect(f"sqlite:///{path}")
    insert_company(engine, build_company())
    engine.dispose()
    yield path
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _flat(output: str) -> str:
    """Output with the terminal's line wrapping undone."""
    return " ".join(output.split())


def test_commands_before_any_training(database: Path) -> None:
    code, output = _invoke("model", "show")
    assert code == 1 and "no model is active yet; run `crmbot train` first" in _flat(output)
    code, output = _invoke("scores", "export", str(database.parent / "out.csv"))
    assert code == 1 and "no model is active yet" in output
    code, output = _invoke("model", "list")
    assert code == 0 and "No model runs yet" in output


def test_train_show_list_activate_and_export(database: Path) -> None:
    code, output = _invoke("train", "--as-of", END.isoformat())
    assert code == 0, output
    assert "Model run 1 as of 2025-12-31 is live: 40 customers scored" in _flat(output)
    for stage in ("features", "segments", "clusters", "clv"):
        assert f"✓ {stage}" in output

    code, output = _invoke("model", "show", "--json")
    assert code == 0, output
    document = json.loads(output)
    assert document["run"]["id"] == 1 and document["run"]["active"] is True
    assert set(document["clv"]["bgnbd"]) == {"r", "alpha", "a", "b", "time_unit"}
    assert set(document["clv"]["gamma_gamma"]) == {"p", "q", "gamma"}
    assert "log_likelihood" in document["clv"]["metrics"]["bgnbd"]
    assert document["segments"]["metrics"]["sizes"]["Prospects"] == 1
    assert document["clusters"]["metrics"]["k"] >= 1
    assert document["features"]["metrics"]["customers"] == 40

    code, output = _invoke("model", "show")
    assert code == 0, output
    for text in ("Model run 1", "Segments (RFM)", "Champions", "Behavioural clusters", "BG/NBD"):
        assert text in output

    code, output = _invoke("train", "--as-of", (END - timedelta(days=30)).isoformat())
    assert code == 0, output
    code, output = _invoke("model", "list")
    assert code == 0 and "(active)" in output and "2025-12-01" in output and "2025-12-31" in output

    code, output = _invoke("model", "activate", "1")
    assert code == 0 and "Model run 1 (as of 2025-12-31) is now active." in _flat(output)
    code, output = _invoke("model", "activate", "42")
    assert code == 1 and "there is no model run 42" in _flat(output)

    target = database.parent / "scores.csv"
    code, output = _invoke("scores", "export", str(target))
    assert code == 0 and "Wrote 40 customers of run 1" in _flat(output)
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40
    header = list(rows[0])
    assert header[:7] == [
        "customer_id",
        "segment",
        "cluster",
        "clv",
        "expected_purchases",
        "p_alive",
        "churn_risk",
    ]
    assert {"recency_days", "frequency", "monetary", "cluster_label", "previous_segment"} <= set(
        header
    )
    first = next(row for row in rows if row["customer_id"] == "C001")
    assert float(first["clv"]) >= 0 and first["segment"]
    assert first["cluster"].isdigit()  # integers stay integers


def test_a_failed_training_exits_non_zero_and_says_why(database: Path) -> None:
    code, output = _invoke("train", "--as-of", (START + timedelta(days=20)).isoformat())
    assert code == 1
    assert "Model run 1 failed: clv: BG/NBD" in _flat(output)
    assert "The previous model stays live." in _flat(output)


def test_bad_dates_are_refused(database: Path) -> None:
    code, output = _invoke("train", "--as-of", "31/12/2025")
    assert code == 1 and "is not a date; use YYYY-MM-DD" in _flat(output)
