"""`/crm ask` end to end on the trained sample company: through the shell transport
(Dispatcher + Shell rendering) and through the real Bolt app with signed requests against
the local fake of the Slack Web API. Answers are checked against the same numbers computed
independently with pandas from the tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.chat.dispatch import Dispatcher
from crmbot.core.config import Settings
from crmbot.core.db import make_engine, read_session
from crmbot.core.models import CustomerScore
from crmbot.reply import Reply
from crmbot.shell.repl import Shell
from crmbot.slack.app import build_app
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, event_body, signed_headers
from tests.test_ask_parse import CASES

SECRET = "test-signing-secret"


@dataclass
class Company:
    engine: Engine
    settings: Settings
    today: date
    dispatcher: Dispatcher
    shell: Shell
    scores: pd.DataFrame  # the active run's scores with the customer's columns
    orders: pd.DataFrame
    referrals: pd.DataFrame

    def ask(self, question: str, *, user: str = "UAM1") -> Reply:
        return self.dispatcher.handle(
            f"/crm ask {question}",
            user_id=user,
            channel_id="shell",
            transport="shell",
            today=self.today,
        )

    def shown(self, question: str) -> str:
        """The question answered and rendered as the shell prints it."""
        return self.shell.render(self.ask(question))


@pytest.fixture(scope="module")
def company(sample_company: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    # A private copy: these tests write audit rows, and the sample company is shared.
    directory = tmp_path_factory.mktemp("ask_company")
    source_path = sample_company.engine.url.database
    copy_path = directory / "crm.db"
    with sqlite3.connect(source_path) as source, sqlite3.connect(copy_path) as target:
        source.backup(target)
    engine = make_engine(f"sqlite:///{copy_path}")
    settings = sample_company.settings.model_copy(
        update={"database_url": f"sqlite:///{copy_path}", "chart_dir": str(directory / "charts")}
    )
    dispatcher = Dispatcher(engine, settings)
    with read_session(engine) as session:
        scores = queries.scores_frame(session=session).reset_index()
    with engine.connect() as connection:
        customers = pd.read_sql(
            text("SELECT id AS customer_pk, region, owner, company FROM customer"), connection
        )
        orders = pd.read_sql(
            text("SELECT customer_pk, ordered_at, amount FROM orders"),
            connection,
            parse_dates=["ordered_at"],
        )
        referrals = pd.read_sql(
            text("SELECT referrer_pk, referred_at FROM referral"),
            connection,
            parse_dates=["referred_at"],
        )
    yield Company(
        engine=engine,
        settings=settings,
        today=sample_company.as_of,
        dispatcher=dispatcher,
        shell=Shell(dispatcher, chart_dir=directory / "charts"),
        scores=scores.merge(customers, on="customer_pk"),
        orders=orders,
        referrals=referrals,
    )
    engine.dispose()


def found(reply: Reply) -> int:
    first_line = reply.text.splitlines()[0]
    assert first_line.endswith(" found"), first_line
    return int(first_line.rsplit(" · ", 1)[1].split()[0].replace(",", ""))


# -- the questions, checked against independent numbers ---------------------------


def test_champions_in_emea_with_high_churn_risk(company: Company) -> None:
    reply = company.ask("which champions in EMEA have churn risk over 20%?")
    s = company.scores
    expected = s[(s.segment == "Champions") & (s.region == "EMEA") & (s.churn_risk > 0.2)]
    assert reply.text.startswith(
        "Customers · segment = Champions · region = EMEA · churn risk > 20% ·"
    )
    assert found(reply) == len(expected) > 0
    assert set(reply.customer_ids) <= set(expected.customer_id)


def test_compare_churn_risk_by_region_has_a_table_and_a_bar_chart(company: Company) -> None:
    reply = company.ask("compare churn risk by region")
    expected = company.scores.groupby("region").churn_risk.mean().sort_values(ascending=False)
    assert reply.chart is not None and reply.chart.kind == "bar"
    assert reply.chart.labels == list(expected.index)
    assert reply.chart.values == pytest.approx(list(expected.values))
    assert reply.table is not None and len(reply.table.rows) == len(expected)
    shown = company.shell.render(reply)
    assert "[chart saved to " in shown
    chart_file = Path(shown.split("[chart saved to ")[1].split("]")[0])
    assert chart_file.read_bytes()[:4] == b"\x89PNG"


def test_average_order_value_of_hibernating_customers(company: Company) -> None:
    reply = company.ask("average order value of Hibernating customers")
    hibernating = company.scores[company.scores.segment == "Hibernating"].customer_pk
    orders = company.orders[company.orders.customer_pk.isin(hibernating)]
    purchases = orders[orders.amount > 0]
    assert f"Average order value: *{purchases.amount.mean():,.0f}*" in reply.text
    assert found(reply) == len(purchases)


def test_customers_of_maria_with_no_order_in_60_days(company: Company) -> None:
    reply = company.ask("customers of @maria with no order in 60 days")
    s = company.scores
    expected = s[(s.owner == "maria") & (s.recency_days > 60)]
    assert reply.text.startswith("Customers · owner = maria · last order more than 60 days ago")
    assert found(reply) == len(expected) > 0
    assert reply.table is not None
    assert {row[4] for row in reply.table.rows} == {"maria"}


def test_who_referred_the_most_new_customers_this_quarter(company: Company) -> None:
    reply = company.ask("who referred the most new customers this quarter?")
    r = company.referrals
    quarter = r[(r.referred_at >= datetime(2026, 4, 1)) & (r.referred_at < datetime(2026, 7, 1))]
    counts = quarter.referrer_pk.value_counts()
    assert found(reply) == len(quarter) > 0
    assert reply.table is not None
    assert int(reply.table.rows[0][3]) == counts.max()


def test_moves_since_last_week_need_a_run_from_then(company: Company) -> None:
    # The sample company has one model run (as of its as_of): nothing to compare with.
    reply = company.ask("how many customers moved to At risk since last week?")
    assert reply.outcome == "not_found"
    assert "no model run from on or before 2026-06-23" in reply.text
    undated = company.ask("how many customers moved to At risk?")
    moved = company.scores[
        company.scores.previous_segment.notna()
        & (company.scores.previous_segment != company.scores.segment)
        & (company.scores.segment == "At risk")
    ]
    assert f"Customers moved: *{len(moved)}*" in undated.text


def test_what_should_i_offer_routes_to_the_customer_cards_products(company: Company) -> None:
    with_offers = company.scores[company.scores.next_products.map(bool)]
    customer = with_offers.iloc[0]
    reply = company.ask(f"what should I offer customer {customer.customer_id}?")
    with read_session(company.engine) as session:
        run_id = runs.active_run_id(session=session)
        score = session.get(CustomerScore, (run_id, int(customer.customer_pk)))
        assert score is not None
        best = queries.customer_offers(session=session, score=score)[0]
    assert reply.table is not None
    assert reply.table.rows[0][1] == best["name"]
    assert reply.buttons[0].action_id == "crm_customer"
    assert reply.customer_ids == [customer.customer_id]


def test_retail_is_not_in_the_sample_company_and_it_says_so(company: Company) -> None:
    reply = company.ask("top 10 customers by CLV in retail")
    assert reply.outcome == "usage"
    assert "I couldn't place “retail”" in reply.text
    assert reply.text.count("• `/crm ask ") == 3
    cafes = company.ask("top 10 customers by CLV at cafes")
    cafe_rows = company.scores[company.scores.company.fillna("").str.endswith("Cafe")]
    assert found(cafes) == len(cafe_rows)
    assert cafes.table is not None and len(cafes.table.rows) == 10


# -- every phrasing of the parse table, answered on the sample company --------------------


@pytest.mark.parametrize("question", [q for q, _ in CASES])
def test_every_table_question_gets_an_answer_or_an_explanation(
    company: Company, question: str
) -> None:
    reply = company.ask(question)
    assert reply.outcome in ("ok", "usage", "not_found"), reply.text
    if reply.outcome == "ok":
        # Every answer opens with how it was understood.
        assert reply.text.split(" · ")[0] in (
            "Customers",
            "Orders",
            "Referrals",
            "Segment moves",
            "Next best products",
        )
    else:
        assert reply.text and "failed on my side" not in reply.text
    company.shell.render(reply)


# -- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "x" * 10_000,
        "champions " * 80,
        "<!channel> champions in EMEA",
        "<!here|here> <@U123|boss> compare churn risk by region",
        "'; DROP TABLE customer; --",
        "1 OR 1=1 UNION SELECT email FROM customer",
        "\u202echampions\u202c in \u200bEMEA \U0001f600",
        "ｃｈａｍｐｉｏｎｓ ｉｎ ＥＭＥＡ",
        "&lt;script&gt; champions",
    ],
)
def test_hostile_questions_get_an_escaped_reply(company: Company, question: str) -> None:
    reply = company.ask(question)
    assert reply.outcome in ("ok", "usage"), reply.text
    for part in (reply.title, reply.text, reply.footer):
        assert "<!" not in part and "<@" not in part and "<script" not in part
    with read_session(company.engine) as session:
        assert session.execute(text("SELECT count(*) FROM customer")).scalar_one() > 0


def test_wide_unicode_is_read_like_ascii(company: Company) -> None:
    assert company.ask("ｃｈａｍｐｉｏｎｓ ｉｎ ＥＭＥＡ").text.startswith(
        "Customers · segment = Champions · region = EMEA"
    )


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_question_text_is_answered_without_an_exception(
    company: Company, question: str
) -> None:
    reply = company.ask(question)
    assert reply.outcome in ("ok", "usage", "not_found"), reply.text
    assert "<!" not in reply.text and "<@" not in reply.text


# -- Slack: the real Bolt app, signed requests, a fake Web API -----------------------------


@dataclass
class SlackBot:
    app: App
    slack: SlackFake

    def command(self, question: str) -> str:
        path = f"/respond/ask-{abs(hash(question))}"
        body = command_body(f"ask {question}", response_url=f"{self.slack.url}{path}")
        response = self.app.dispatch(BoltRequest(body=body, headers=signed_headers(SECRET, body)))
        assert response.status == 200
        return path

    def answer(self, path: str) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for request in list(self.slack.requests):
                if request.path == path:
                    return request.params
            time.sleep(0.02)
        raise AssertionError(f"no answer on {path}")


@pytest.fixture
def slack_bot(company: Company) -> Iterator[SlackBot]:
    with SlackFake() as fake:
        client = WebClient(token=company.settings.slack_bot_token, base_url=fake.base_url)
        app = build_app(
            company.settings, company.engine, client=client, today=lambda: company.today
        )
        yield SlackBot(app=app, slack=fake)


def blocks_text(message: dict[str, Any]) -> str:
    import json

    return json.dumps(message.get("blocks"), ensure_ascii=False) + message.get("text", "")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("which champions in EMEA have churn risk over 20%?", "segment = Champions"),
        ("average order value of Hibernating customers", "Average order value"),
        ("customers of @maria with no order in 60 days", "owner = maria"),
        ("who referred the most new customers this quarter?", "by referrer"),
        ("compare churn risk by region", "average churn risk"),
        ("how many customers moved to At risk since last week?", "no model run"),
        ("top 10 customers by CLV in retail", "couldn't place"),
        ("<!channel> drop table customer", "couldn't place"),
    ],
)
def test_slash_command_answers_through_slack(
    slack_bot: SlackBot, question: str, expected: str
) -> None:
    message = slack_bot.answer(slack_bot.command(question))
    assert message["response_type"] == "ephemeral"
    shown = blocks_text(message)
    assert expected in shown
    assert "<!channel>" not in shown


def test_a_mention_in_free_words_is_asked_and_charted(slack_bot: SlackBot) -> None:
    import time

    body = event_body(
        {
            "type": "app_mention",
            "user": "UAM1",
            "channel": "C0CRM",
            "text": "<@UBOT> compare churn risk by region",
            "ts": "1.1",
        }
    )
    headers = signed_headers(SECRET, body, content_type="application/json")
    assert slack_bot.app.dispatch(BoltRequest(body=body, headers=headers)).status == 200
    deadline = time.monotonic() + 15
    methods: list[str] = []
    while time.monotonic() < deadline:
        methods = [r.method for r in list(slack_bot.slack.requests)]
        if "chat.postEphemeral" in methods and "files.completeUploadExternal" in methods:
            break
        time.sleep(0.02)
    posted = [r for r in slack_bot.slack.requests if r.method == "chat.postEphemeral"]
    assert posted and "Customers · average churn risk · by region" in blocks_text(posted[0].params)
    assert "files.completeUploadExternal" in methods
