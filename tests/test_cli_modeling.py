"""`crmbot train`, `crmbot model show|list|activate` and `crmbot scores export` on a real
SQLite file, through the typer app."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.config import get_settings
from crmbot.core.db import connect
from crmbot.core.models import ActiveRun, ModelRun
from tests.support.value_data import END, START, build_company, insert_company

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


def test_model_show_never_prints_scientific_notation(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large and tiny parameters and metrics read as plain numbers: 230,600, not 2.306e+05."""
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping inside the numbers
    now = datetime(2026, 1, 1, 2, 0)
    engine = connect(f"sqlite:///{database}")
    with Session(engine) as session:
        run = ModelRun(
            as_of=END,
            started_at=now,
            finished_at=now,
            activated_at=now,
            status="succeeded",
            row_counts={"scores": 230_600},
            timings={"total": 1.5},
            params={
                "clv": {
                    "horizon_months": 12,
                    "margin": 0.3,
                    "monthly_discount_rate": 0.00001,
                    "bgnbd": {
                        "r": 230600.0,
                        "alpha": 0.0000123,
                        "a": 1.5,
                        "b": 12345.678,
                        "time_unit": "days",
                    },
                    "gamma_gamma": {"p": 6.25, "q": 3.0, "gamma": 987654.3},
                },
            },
            metrics={
                "clv": {
                    "bgnbd": {"log_likelihood": -123456789.25, "customers": 40},
                    "gamma_gamma": {"log_likelihood": -2306000.5, "customers": 30},
                    "total_clv": 230600.0,
                    "mean_clv": 5765.0,
                    "median_p_alive": 0.000042,
                },
                "volume": {"orders": 230600.0, "tiny": 1.2e-7, "huge": 4.5e15},
            },
        )
        session.add(run)
        session.flush()
        session.add(ActiveRun(run_id=run.id, activated_at=now))
        session.commit()
    engine.dispose()

    code, output = _invoke("model", "show")
    assert code == 0, output
    assert not re.search(r"\de[+-]?\d", output), output
    flat = _flat(output)
    for shown in (
        "230,600 customers",  # the run's row count
        "r=230,600 alpha=0.0000123",  # BG/NBD parameters
        "gamma=987,654",
        "LL -123,456,789",
        "Total CLV 230,600",
        "median P(alive) 0.000042",
        "monthly discount 0.00001",
        "0.00000012",  # a stage metric of the generic table
        "4,500,000,000,000,000",
    ):
        assert shown in flat, shown
