"""Fixtures for the Bolt app tests, replacing the suite's `crm` and `bot` in this
directory: `slack` (a `SlackFake`), `crm` (the small CRM in a database file) and `bot`
(the real Bolt app over both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import SQLModel

from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from tests.support.slack_bot import Bot, make_bot
from tests.support.slack_fake import SlackFake
from tests.support.small_crm import SmallCrm, seed


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[SmallCrm]:
    # A database file, as in production: lazy listeners run on several threads at once,
    # each with its own connection (the in-memory fixture shares one connection).
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    SQLModel.metadata.create_all(engine)
    yield seed(engine)
    engine.dispose()


@pytest.fixture
def bot(settings: Settings, crm: SmallCrm, slack: SlackFake) -> Bot:
    return make_bot(settings, crm.engine, slack)
