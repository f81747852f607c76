"""End to end on the trained sample company: the commands find what the generator planted,
through the shell and through the real Bolt app, and never fail on real data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import BoltRequest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.core.privacy import contains_pii
from crmbot.slack.app import build_app
from tests.conftest import copy_of_sample
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, signed_headers
from tests.support.small_crm import ChatBot


@pytest.fixture(scope="module")
def company_copy(sample_company: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A private copy of the shared sample company: commands write audit rows."""
    engine = copy_of_sample(sample_company, tmp_path_factory.mktemp("sample_copy"))
    yield engine
    engine.dispose()


@pytest.fixture
def bot(company_copy: Engine, sample_company: Any, tmp_path: Path) -> ChatBot:
    return ChatBot(company_copy, sample_company.settings, tmp_path)


def customer_ids(rows: list[list[str]], column: int = 1) -> list[str]:
    return [row[column].rsplit("(", 1)[1].rstrip(")") for row in rows]


def test_influencers_are_the_planted_hubs(bot: ChatBot, sample_company: Any) -> None:
    hubs = set(sample_company.truth.hub_customer_ids)
    reply = bot.reply(f"influencers {len(hubs)}")
    assert reply.table is not None
    assert set(customer_ids(reply.table.rows)) == hubs


def test_at_risk_is_mostly_the_planted_churners(bot: ChatBot, sample_company: Any) -> None:
    truth = sample_company.truth
    churners = set(truth.churning_customer_ids) | set(truth.churned_customer_ids)
    base_rate = len(churners) / truth.customers
    reply = bot.reply("at-risk 20")
    assert reply.table is not None and len(reply.table.rows) == 20
    found = sum(cid in churners for cid in customer_ids(reply.table.rows))
    assert found / 20 >= max(0.5, 1.5 * base_rate), (found, base_rate)
    assert all(row[-1] != "—" for row in reply.table.rows)  # every row has a reason


def test_a_hubs_card_shows_its_influence(bot: ChatBot, sample_company: Any) -> None:
    hub = sample_company.truth.hub_customer_ids[0]
    fields = dict(bot.reply(f"customer {hub}").fields)
    assert fields["Influence"].startswith("rank ")
    assert "referred" in fields["Influence"]
    assert fields["Segment"].split(" ")[0] in {
        "Champions",
        "Loyal",
        "Potential",
        "New",
        "Promising",
        "Need",
        "About",
        "At",
        "Can't",
        "Hibernating",
        "Lost",
        "Prospects",
    }


LINES = [
    "help",
    "customer {hub}",
    "why {hub}",
    "similar {hub}",
    "history {hub}",
    "at-risk",
    "at-risk 5 emea",
    "at-risk mine",
    "at-risk champions",
    "segment",
    "segment loyal",
    "influencers",
    "model",
    "customer {name}",
    "customer {typo}",
]


def test_no_command_fails_on_real_data(bot: ChatBot, sample_company: Any) -> None:
    hub = sample_company.truth.hub_customer_ids[0]
    name = bot.reply(f"customer {hub}").title.rsplit(" (", 1)[0]
    typo = name[:3] + name[4:]
    for line in LINES:
        reply = bot.reply(line.format(hub=hub, name=name, typo=typo), user="UADMIN")
        assert reply.outcome in ("ok", "usage", "not_found"), (line, reply.text)
        assert "failed on my side" not in reply.text


def test_slack_end_to_end_on_the_sample_company(company_copy: Engine, sample_company: Any) -> None:
    hub = sample_company.truth.hub_customer_ids[0]
    settings: Settings = sample_company.settings
    with SlackFake() as slack:
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, company_copy, client=client)
        paths = {}
        for n, text in enumerate([f"customer {hub}", f"customer {hub} --share", "at-risk"]):
            path = f"/respond/{n}"
            body = command_body(text, response_url=f"{slack.url}{path}")
            headers = signed_headers(settings.slack_signing_secret, body)
            started = time.perf_counter()
            assert app.dispatch(BoltRequest(body=body, headers=headers)).status == 200
            assert time.perf_counter() - started < 3
            paths[text] = path
        deadline = time.monotonic() + 15
        while len({r.path for r in slack.requests} & set(paths.values())) < len(paths):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        answers = {
            text: next(r.params for r in slack.requests if r.path == path)
            for text, path in paths.items()
        }
    private = json.dumps(answers[f"customer {hub}"], ensure_ascii=False)
    shared = json.dumps(answers[f"customer {hub} --share"], ensure_ascii=False)
    assert f"({hub})" in private and contains_pii(private)
    assert answers[f"customer {hub} --share"]["response_type"] == "in_channel"
    assert f"({hub})" in shared and not contains_pii(shared)
    assert "accounts at risk" in json.dumps(answers["at-risk"])
