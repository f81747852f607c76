"""`crmbot influencers`: the active run's ranking with the why, through the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.config import get_settings
from crmbot.core.db import connect

runner = CliRunner()


@pytest.fixture
def trained_url(sample_company, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The trained sample company, configured through DATABASE_URL (read-only use)."""
    url = str(sample_company.engine.url)
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_lists_the_planted_hubs_first_with_the_why(trained_url: str, sample_company) -> None:
    result = runner.invoke(app, ["influencers", "5"])
    assert result.exit_code == 0, result.output
    assert "Top 5 influencers" in result.output
    for hub in sample_company.truth.hub_customer_ids:
        assert f"({hub})" in result.output
    assert "referred " in result.output and "still active" in result.output
    assert "hub of a " in result.output


def test_filters_by_segment_and_region(trained_url: str) -> None:
    result = runner.invoke(app, ["influencers", "50", "--region", "emea"])
    assert result.exit_code == 0, result.output
    assert "based in EMEA" in result.output
    assert not any(f"based in {other}" in result.output for other in ("NA", "APAC", "LATAM"))
    result = runner.invoke(app, ["influencers", "--segment", "champions", "--region", "NA"])
    assert result.exit_code == 0, result.output
    assert "Champions" in result.output and "Loyal " not in result.output


def test_unknown_segment_or_region_says_what_exists(trained_url: str) -> None:
    result = runner.invoke(app, ["influencers", "--region", "Mars"])
    assert result.exit_code == 1
    assert "there is no region 'Mars'; known regions: APAC, EMEA, LATAM, NA" in result.output
    result = runner.invoke(app, ["influencers", "--segment", "Heroes"])
    assert result.exit_code == 1
    assert "known segments:" in result.output and "Champions" in result.output


def test_before_any_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    connect(url).dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["influencers"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "no model is active yet; run `crmbot train` first" in result.output
