"""`crmbot model show` and `/crm model` flag a purchase model whose fit ran to its limit:
the model that took over, or that dropout could not be estimated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.config import Settings, get_settings
from tests.support.small_crm import ChatBot
from tests.test_customer_card import _book_engine, _trained


@pytest.fixture
def book_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'book.db'}")
    get_settings.cache_clear()
    yield tmp_path / "book.db"
    get_settings.cache_clear()


def _model_show() -> str:
    result = CliRunner().invoke(app, ["model", "show"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_model_show_and_crm_model_name_the_model_that_took_over(
    book_file: Path, settings: Settings, tmp_path: Path
) -> None:
    engine = _book_engine(book_file, one_time=300, regular=200, lapsed=10)
    _trained(engine, settings)
    shown = _model_show()
    assert "MBG/NBD (purchases," in shown and "not used" in shown  # (a table: wrapped)
    assert "Purchase model: BG/NBD's fit ran to the limit where nobody ever drops out" in shown
    assert "MBG/NBD, which lets a customer drop out after the first purchase too" in shown
    model = dict(ChatBot(engine, settings, tmp_path / "charts").reply("model").fields)
    assert "MBG/NBD is used" in model["CLV"]


def test_model_show_and_crm_model_say_when_dropout_cannot_be_estimated(
    book_file: Path, settings: Settings, tmp_path: Path
) -> None:
    engine = _book_engine(book_file, one_time=0, regular=200, lapsed=0)
    _trained(engine, settings)
    assert "Purchase model: dropout could not be estimated" in _model_show()
    model = dict(ChatBot(engine, settings, tmp_path / "charts").reply("model").fields)
    assert "dropout could not be estimated" in model["CLV"]
