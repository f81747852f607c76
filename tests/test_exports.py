"""Big answers as CSV ("Export all N as CSV", `--csv`) through the shell transport, on
SQLite, PostgreSQL and MariaDB: the button, every row in the list's order, contact details
for the asker alone, masked when shared, nothing that runs as a formula, nobody erased or
outside the book. And the names `/crm at-risk` and `/crm ask` match, read without a scan.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import Customer, CustomerScore, ModelRun
from crmbot.queries import LIST_EXPORT_COLUMNS, region_names, segment_names
from crmbot.queries.vocabulary import distinct_values, run_clusters
from crmbot.reply import Reply
from crmbot.reply.export import MAX_EXPORT_ROWS, export_label
from tests.support.small_crm import ChatBot, SmallCrm, seed

# The small CRM's accounts at risk, by value at risk (C011 is erased).
AT_RISK = ["C003", "C002", "C009", "C012", "C005", "C006", "C010", "C004", "C008", "C007", "C001"]


@pytest.fixture
def crm(storage_engine: Engine) -> SmallCrm:
    return seed(storage_engine)


@pytest.fixture
def bot(crm: SmallCrm, settings: Settings, tmp_path: Path) -> Iterator[ChatBot]:
    yield ChatBot(crm.engine, settings, tmp_path / "charts")


def rows_of(reply: Reply) -> list[dict[str, str]]:
    assert reply.attachment is not None, reply.text
    with open(reply.attachment.path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def at_risk_ids(bot: ChatBot) -> list[str]:
    """Every account at risk in the list's order, read page by page from the command."""
    reply = bot.reply("at-risk 50")
    assert reply.table is not None
    return reply.customer_ids


def test_a_full_at_risk_list_offers_every_row_as_csv(bot: ChatBot) -> None:
    reply = bot.reply("at-risk 4 emea")
    export = [b for b in reply.buttons if b.action_id == "crm_at_risk"]
    assert [(b.label, b.value) for b in export] == [("Export all as CSV", "emea --csv")]
    # A list that shows everything has nothing more to export.
    assert not [b for b in bot.reply("at-risk 50").buttons if b.action_id == "crm_at_risk"]


def test_the_at_risk_export_holds_every_account_in_order_with_contacts(
    bot: ChatBot, crm: SmallCrm
) -> None:
    expected = at_risk_ids(bot)
    reply = bot.reply("at-risk --csv")
    rows = rows_of(reply)
    assert list(rows[0]) == list(LIST_EXPORT_COLUMNS)
    assert [row["Customer"] for row in rows] == expected
    assert "C011" not in expected  # erased: in no list and no file
    assert reply.attachment is not None and reply.attachment.rows == len(expected)
    first = rows[0]
    # A phone number starting with "+" would be a formula: it keeps a leading quote.
    assert first["Email"] == "alan@bletchley.example" and first["Phone"] == "'+44 20 7946 0003"
    assert float(first["Value at risk"]) == pytest.approx(12500.0 * 0.64)
    assert first["Reasons"] == "spend down 60% on the previous quarter; NPS 3 (detractor)"
    assert f"{len(expected)} rows as CSV" in reply.text


def test_an_at_risk_export_keeps_the_filter(bot: ChatBot) -> None:
    shown = bot.reply("at-risk 50 emea").customer_ids
    rows = rows_of(bot.reply("at-risk emea --csv"))
    assert [row["Customer"] for row in rows] == shown
    assert {row["Region"] for row in rows} == {"EMEA"}
    mine = rows_of(bot.reply("at-risk mine --csv"))
    assert {row["Owner"] for row in mine} == {"UAM1"}


def test_a_shared_export_masks_emails_and_phones(bot: ChatBot) -> None:
    reply = bot.reply("at-risk --csv --share")
    assert not reply.private
    text = Path(reply.attachment.path).read_text(encoding="utf-8") if reply.attachment else ""
    assert "@bletchley.example" not in text and "7946 0003" not in text
    rows = rows_of(reply)
    assert rows[0]["Email"] == "a•••@b•••" and rows[0]["Phone"] == "•••03"
    assert "masked" in reply.text


def test_no_cell_runs_as_a_formula(bot: ChatBot, crm: SmallCrm) -> None:
    with write_session(crm.engine) as session:
        session.execute(
            update(Customer)
            .where(col(Customer.customer_id) == "C003")
            .values(name='=HYPERLINK("http://evil.example","x")', company="@SUM(A1)")
        )
    row = rows_of(bot.reply("at-risk --csv"))[0]
    assert row["Name"].startswith("'=") and row["Company"] == "'@SUM(A1)"


def test_the_shell_saves_the_file_and_prints_where(bot: ChatBot, tmp_path: Path) -> None:
    said = bot.say("at-risk --csv")
    saved = [line for line in said.splitlines() if line.startswith("[CSV saved to ")]
    assert saved, said
    path = Path(saved[0][len("[CSV saved to ") : -1])
    assert path.parent == tmp_path / "charts" and path.suffix == ".csv"
    assert path.read_text(encoding="utf-8").startswith("Customer,Name,Email")


def test_a_segment_exports_all_its_customers(bot: ChatBot, crm: SmallCrm) -> None:
    reply = bot.reply("segment champions 1")
    export = [b for b in reply.buttons if b.label == "Export all as CSV"]
    assert export and export[0].value == "Champions --csv"
    rows = rows_of(bot.reply("segment champions --csv"))
    assert [row["Customer"] for row in rows] == ["C010", "C001"]
    assert {row["Segment"] for row in rows} == {"Champions"}


def test_an_answer_longer_than_its_message_offers_all_n(bot: ChatBot) -> None:
    reply = bot.reply("ask top 2 customers by CLV")
    export = [b for b in reply.buttons if b.action_id == "crm_ask"]
    assert len(export) == 1
    found = int(export[0].label.split()[2].replace(",", ""))
    assert export[0].label == f"Export all {found} as CSV" and found > 2
    assert export[0].value == "top 2 customers by CLV --csv"
    exported = bot.reply(f"ask {export[0].value}")
    rows = rows_of(exported)
    assert len(rows) == found
    assert [row["Customer"] for row in rows[:2]] == reply.customer_ids[:2]
    assert "Customers ·" in exported.text  # how the question was understood


def test_a_count_has_nothing_to_export(bot: ChatBot) -> None:
    reply = bot.reply("ask how many customers are in EMEA")
    assert not [b for b in reply.buttons if b.action_id == "crm_ask"]
    exported = bot.reply("ask how many customers are in EMEA --csv")
    assert exported.attachment is None and "No rows to export" in exported.text


def test_an_export_is_audited_as_one(bot: ChatBot, crm: SmallCrm) -> None:
    from crmbot.core.models import AuditLog

    bot.reply("at-risk emea --csv")
    with read_session(crm.engine) as session:
        row = session.execute(
            select(AuditLog).order_by(col(AuditLog.id).desc()).limit(1)
        ).scalar_one_or_none()
    assert row is not None and row.command == "at-risk" and row.arguments == "emea --csv"


def test_the_button_says_when_an_export_is_cut_short() -> None:
    assert export_label(12) == "Export all 12 as CSV"
    assert export_label(None) == "Export all as CSV"
    big = MAX_EXPORT_ROWS + 1
    assert export_label(big) == f"Export the first {MAX_EXPORT_ROWS:,} of {big:,} as CSV"


# -- the names matched, without reading every row -------------------------------------


def test_distinct_values_seek_each_value(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        people = session.execute(select(col(Customer.region), col(Customer.owner))).all()
        assert distinct_values(session, col(Customer.region)) == ["AMER", "APAC", "EMEA"]
        owners = distinct_values(session, col(Customer.owner), col(Customer.region) == "AMER")
        # In the database's own order (its collation): compared as sets of names.
        assert sorted(owners) == sorted({o for r, o in people if r == "AMER" and o}) and owners
        assert region_names(session=session) == ["AMER", "APAC", "EMEA"]


def test_segments_come_from_the_runs_record_or_else_its_scores(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        run = session.get(ModelRun, crm.run_id)
        assert run is not None and "segments" not in (run.metrics or {})  # none recorded
        from_scores = segment_names(session=session, run=run)
        in_scores = sorted(
            set(
                session.execute(
                    select(col(CustomerScore.segment)).where(
                        col(CustomerScore.run_id) == crm.run_id
                    )
                ).scalars()
            )
        )
        assert from_scores == in_scores
    with write_session(crm.engine) as session:
        session.execute(
            update(ModelRun)
            .where(col(ModelRun.id) == crm.run_id)
            .values(
                metrics={
                    **(run.metrics or {}),
                    "segments": {"sizes": {"Champions": 3, "Lost": 0, "New": 1}},
                },
                params={"clusters": {"clusters": [{"cluster": 0, "label": "frequent buyers"}]}},
            )
        )
    with read_session(crm.engine) as session:
        run = session.get(ModelRun, crm.run_id)
        assert run is not None
        assert segment_names(session=session, run=run) == ["Champions", "New"]
        assert run_clusters(run) == {0: "frequent buyers"}


def test_a_segments_accounts_at_risk_come_from_the_runs_ranking(
    crm: SmallCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime

    from crmbot.queries import lists
    from crmbot.queries.scope import Scope

    def listed(segment: str, limit: int) -> list[str]:
        with read_session(crm.engine) as session:
            run = session.get(ModelRun, crm.run_id)
            assert run is not None
            rows = lists.at_risk(
                session=session, run=run, scope=Scope.everyone(), limit=limit, segment=segment
            )
            return [row.customer.customer_id for row in rows]

    def in_full(segment: str, limit: int) -> list[str]:
        with read_session(crm.engine) as session:
            statement = lists._at_risk_statement(
                lists._scores_of(session.get(ModelRun, crm.run_id), Scope.everyone()),  # type: ignore[arg-type]
                segment=segment,
                region=None,
            )
            return [c.customer_id for c, _s in session.execute(statement.limit(limit)).all()]

    for segment in ("At risk", "Champions", "Can't lose them", "Prospects", "Nowhere"):
        for limit in (1, 2, 5):
            assert listed(segment, limit) == in_full(segment, limit)
    # A ranking cut short (here at one account) whose first account was erased since:
    # the list is read in full instead of coming up short.
    monkeypatch.setattr(lists, "TOP_OF_SEGMENT", 1)
    lists._segment_tops.clear()
    first = listed("At risk", 1)
    with write_session(crm.engine) as session:
        session.execute(
            update(Customer)
            .where(col(Customer.customer_id) == first[0])
            .values(erased_at=datetime(2026, 7, 2))
        )
    assert listed("At risk", 1) == in_full("At risk", 1) != first


def test_an_export_holds_only_the_askers_book(
    crm: SmallCrm, settings: Settings, tmp_path: Path
) -> None:
    settings.own_book_only = True
    own = ChatBot(crm.engine, settings, tmp_path / "charts")
    book = {"C001", "C002", "C007", "C010"}  # UAM1's live customers
    for line in ("at-risk --csv", "segment champions --csv", "ask customers by CLV --csv"):
        rows = rows_of(own.reply(line))
        assert {row["Customer"] for row in rows} <= book and rows, line
