"""Acting on an account, stored: touches, follow-ups, follows, snoozes and alert claims
(`crmbot.actions`), read back through `crmbot.queries`, on every database."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from crmbot import queries
from crmbot.actions import InvalidAction
from crmbot.actions.alerts import claim_alert
from crmbot.actions.follows import (
    follow,
    is_snoozed,
    snooze,
    snoozed_customers,
    unfollow,
    unsnooze,
)
from crmbot.actions.followups import (
    add_follow_up,
    complete_follow_up,
    due_follow_ups,
    mark_sent,
    release_sent,
)
from crmbot.actions.touches import log_touch, parse_kind, parse_outcome
from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import FollowUp, Touch
from crmbot.queries.scope import Scope
from crmbot.reply.card import touch_text
from tests.support.small_crm import TODAY as SMALL_TODAY
from tests.support.small_crm import ChatBot, SmallCrm, seed

NOW = datetime(2026, 7, 3, 9, 30)
TODAY = NOW.date()


@pytest.fixture
def small(storage_engine: Engine) -> SmallCrm:
    return seed(storage_engine)


def test_a_touch_is_stored_with_the_live_run_and_read_back_as_the_last(small: SmallCrm) -> None:
    ada = small.pks["C001"]
    with write_session(small.engine) as session:
        log_touch(
            session=session,
            customer_pk=ada,
            kind="call",
            author="UAM1",
            now=NOW - timedelta(days=3),
            note="  renewal talk  ",
            outcome="no answer",
        )
        log_touch(
            session=session,
            customer_pk=ada,
            kind="Phone",
            author="UAM1",
            now=NOW - timedelta(days=1),
            outcome="reached",
        )
        log_touch(
            session=session, customer_pk=small.pks["C002"], kind="email", author="U2", now=NOW
        )
    with read_session(small.engine) as session:
        last = queries.last_touch(session=session, customer_pk=ada)
        recent = queries.recent_touches(session=session, customer_pk=ada)
    assert last is not None
    assert (last.kind, last.outcome, last.author, last.run_id) == (
        "call",
        "reached",
        "UAM1",
        small.run_id,
    )
    assert last.created_at == NOW - timedelta(days=1)
    assert [t.outcome for t in recent] == ["reached", "no_answer"]
    assert recent[1].note == "renewal talk"


def test_a_touch_that_cannot_be_stored_says_why(small: SmallCrm) -> None:
    with write_session(small.engine) as session:
        with pytest.raises(InvalidAction, match="call, email, meeting, note"):
            log_touch(
                session=session, customer_pk=small.pks["C001"], kind="fax", author="U", now=NOW
            )
        with pytest.raises(InvalidAction, match="outcome is one of"):
            log_touch(
                session=session,
                customer_pk=small.pks["C001"],
                kind="call",
                author="U",
                now=NOW,
                outcome="maybe",
            )
        with pytest.raises(InvalidAction, match="too long"):
            log_touch(
                session=session,
                customer_pk=small.pks["C001"],
                kind="note",
                author="U",
                now=NOW,
                note="x" * 2001,
            )
    with read_session(small.engine) as session:
        assert session.execute(select(func.count()).select_from(Touch)).scalar_one() == 0


def test_kinds_and_outcomes_as_people_write_them() -> None:
    assert [parse_kind(w) for w in ("CALL", "emailed", "Meeting", "note", "fax")] == [
        "call",
        "email",
        "meeting",
        "note",
        None,
    ]
    assert [
        parse_outcome(w)
        for w in ("no-answer", "No answer", "false alarm", "not at risk", "SAVED", "soon")
    ] == ["no_answer", "no_answer", "false_alarm", "false_alarm", "saved", None]


def test_a_follow_up_for_today_is_taken_where_today_is_still_today(small: SmallCrm) -> None:
    # 02:00 UTC on 1 July is still 30 June in New York: "today" there has not passed.
    with write_session(small.engine) as session:
        follow_up = add_follow_up(
            session=session,
            customer_pk=small.pks["C001"],
            assignee="UAM1",
            due_on=date(2026, 6, 30),
            created_by="UAM1",
            now=datetime(2026, 7, 1, 2, 0),
            today=date(2026, 6, 30),
        )
    assert follow_up.id is not None


def test_follow_ups_due_are_claimed_exactly_once(small: SmallCrm) -> None:
    with write_session(small.engine) as session:
        due = add_follow_up(
            session=session,
            customer_pk=small.pks["C001"],
            assignee="UAM1",
            due_on=TODAY,
            created_by="UAM1",
            now=NOW,
            today=NOW.date(),
            note="send the renewal quote",
        )
        later = add_follow_up(
            session=session,
            customer_pk=small.pks["C002"],
            assignee="UAM1",
            due_on=TODAY + timedelta(days=3),
            created_by="UADMIN",
            now=NOW,
            today=NOW.date(),
        )
        with pytest.raises(InvalidAction, match="has passed"):
            add_follow_up(
                session=session,
                customer_pk=small.pks["C001"],
                assignee="UAM1",
                due_on=TODAY - timedelta(days=1),
                created_by="UAM1",
                now=NOW,
                today=NOW.date(),
            )
    assert due.id is not None and later.id is not None
    with read_session(small.engine) as session:
        assert [f.id for f in due_follow_ups(session=session, as_of=TODAY)] == [due.id]
        in_four_days = due_follow_ups(session=session, as_of=TODAY + timedelta(days=4))
        assert [f.id for f in in_four_days] == [due.id, later.id]
    with write_session(small.engine) as session:
        assert mark_sent(session=session, follow_up_id=due.id, now=NOW)
    with write_session(small.engine) as session:
        assert not mark_sent(session=session, follow_up_id=due.id, now=NOW + timedelta(hours=1))
    with read_session(small.engine) as session:
        assert due_follow_ups(session=session, as_of=TODAY) == []
        stored = session.get(FollowUp, due.id)
        assert stored is not None and stored.sent_at == NOW  # the first claim's time stays
    # A claim whose message could not go out is given back, and claimed again.
    with write_session(small.engine) as session:
        assert not release_sent(session=session, follow_up_id=due.id, sent_at=NOW - timedelta(1))
        assert release_sent(session=session, follow_up_id=due.id, sent_at=NOW)
    with write_session(small.engine) as session:
        assert mark_sent(session=session, follow_up_id=due.id, now=NOW + timedelta(hours=2))
    # Done follow-ups are neither due nor listed.
    with write_session(small.engine) as session:
        assert complete_follow_up(session=session, follow_up_id=later.id, now=NOW)
        assert not complete_follow_up(session=session, follow_up_id=later.id, now=NOW)
        assert not complete_follow_up(session=session, follow_up_id=999_999, now=NOW)
    with read_session(small.engine) as session:
        assert due_follow_ups(session=session, as_of=TODAY + timedelta(days=9)) == []


def test_two_schedulers_claim_a_follow_up_once(small: SmallCrm) -> None:
    """Two schedulers (threads, each with its own connection and transaction) race for
    the same due follow-ups: each is claimed by exactly one."""
    with write_session(small.engine) as session:
        ids = [
            add_follow_up(
                session=session,
                customer_pk=small.pks[cid],
                assignee="UAM1",
                due_on=TODAY,
                created_by="UAM1",
                now=NOW,
                today=NOW.date(),
            ).id
            for cid in ("C001", "C002", "C003", "C004")
        ]
    start = threading.Barrier(2)
    won: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def scheduler(name: str) -> None:
        try:
            start.wait()
            for follow_up_id in ids:
                assert follow_up_id is not None
                with write_session(small.engine) as session:
                    if mark_sent(session=session, follow_up_id=follow_up_id, now=NOW):
                        won[name].append(follow_up_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in won]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert None not in ids
    assert sorted(won["a"] + won["b"]) == sorted(i for i in ids if i is not None)


def test_follow_ups_for_a_person_within_their_scope(small: SmallCrm) -> None:
    with write_session(small.engine) as session:
        for cid, days, who in (
            ("C001", -0, "UAM1"),
            ("C002", 2, "UAM1"),
            ("C003", 0, "UAM2"),
            ("C011", 0, "UAM1"),  # erased: never listed
        ):
            add_follow_up(
                session=session,
                customer_pk=small.pks[cid],
                assignee=who,
                due_on=TODAY + timedelta(days=days),
                created_by="UADMIN",
                now=NOW,
                today=NOW.date(),
            )
    everyone = Scope.everyone()
    with read_session(small.engine) as session:
        mine = queries.follow_ups_for(
            session=session, scope=everyone, assignees=["UAM1"], as_of=TODAY
        )
        assert [(r.customer_id, r.name) for r in mine] == [("C001", "Ada Lovelace")]
        coming = queries.follow_ups_for(
            session=session, scope=everyone, assignees=["UAM1"], as_of=TODAY, due_only=False
        )
        assert [r.customer_id for r in coming] == ["C001", "C002"]
        assert (
            queries.count_follow_ups(
                session=session, scope=everyone, assignees=["UAM1"], after=TODAY
            )
            == 1
        )
        every = queries.follow_ups_for(session=session, scope=everyone, assignees=None, as_of=TODAY)
        assert sorted(r.customer_id for r in every) == ["C001", "C003"]
        booked = queries.follow_ups_for(
            session=session, scope=Scope.book(["nobody"]), assignees=None, as_of=TODAY
        )
        assert booked == []


def test_follow_unfollow_and_followers(small: SmallCrm) -> None:
    ada = small.pks["C001"]
    with write_session(small.engine) as session:
        assert follow(session=session, customer_pk=ada, user_id="UAM1", now=NOW)
        assert not follow(session=session, customer_pk=ada, user_id="UAM1", now=NOW)
        assert follow(session=session, customer_pk=ada, user_id="UAM2", now=NOW + timedelta(1))
        assert follow(session=session, customer_pk=small.pks["C002"], user_id="UAM1", now=NOW)
    with read_session(small.engine) as session:
        assert queries.followers_of(session=session, customer_pk=ada) == ["UAM1", "UAM2"]
        followed = queries.followed_by(session=session, user_id="UAM1", scope=Scope.everyone())
        assert [c.customer_id for c in followed] == ["C001", "C002"]
    with write_session(small.engine) as session:
        assert unfollow(session=session, customer_pk=ada, user_id="UAM1")
        assert not unfollow(session=session, customer_pk=ada, user_id="UAM1")
    with read_session(small.engine) as session:
        assert queries.followers_of(session=session, customer_pk=ada) == ["UAM2"]


def test_a_snooze_lasts_its_days_and_a_new_one_replaces_it(small: SmallCrm) -> None:
    ada = small.pks["C001"]
    with write_session(small.engine) as session:
        assert snooze(session=session, customer_pk=ada, user_id="UAM1", days=7, as_of=TODAY) == (
            TODAY + timedelta(days=7)
        )
        with pytest.raises(InvalidAction, match="1 to 365 days"):
            snooze(session=session, customer_pk=ada, user_id="UAM1", days=0, as_of=TODAY)
    with read_session(small.engine) as session:
        assert is_snoozed(session=session, customer_pk=ada, user_id="UAM1", as_of=TODAY)
        last_day = TODAY + timedelta(days=6)
        assert is_snoozed(session=session, customer_pk=ada, user_id="UAM1", as_of=last_day)
        back = TODAY + timedelta(days=7)
        assert not is_snoozed(session=session, customer_pk=ada, user_id="UAM1", as_of=back)
        assert not is_snoozed(session=session, customer_pk=ada, user_id="UAM2", as_of=TODAY)
        assert snoozed_customers(session=session, user_id="UAM1", as_of=TODAY) == {ada}
    with write_session(small.engine) as session:
        snooze(session=session, customer_pk=ada, user_id="UAM1", days=1, as_of=TODAY)
    with read_session(small.engine) as session:
        tomorrow = TODAY + timedelta(days=1)
        assert not is_snoozed(session=session, customer_pk=ada, user_id="UAM1", as_of=tomorrow)
    with write_session(small.engine) as session:
        assert unsnooze(session=session, customer_pk=ada, user_id="UAM1")
        assert not unsnooze(session=session, customer_pk=ada, user_id="UAM1")
    with read_session(small.engine) as session:
        assert snoozed_customers(session=session, user_id="UAM1", as_of=TODAY) == set()


def test_an_alert_is_claimed_once_per_run_customer_and_recipient(small: SmallCrm) -> None:
    ada = small.pks["C001"]
    with write_session(small.engine) as session:
        first = dict(session=session, run_id=small.run_id, customer_pk=ada, now=NOW)
        assert claim_alert(**first, recipient="UAM1", reason="risk up 20 pts")  # type: ignore[arg-type]
        assert not claim_alert(**first, recipient="UAM1")  # type: ignore[arg-type]
        assert claim_alert(**first, recipient="UAM2")  # type: ignore[arg-type]
    with write_session(small.engine) as session:
        assert not claim_alert(
            session=session, run_id=small.run_id, customer_pk=ada, recipient="UAM1", now=NOW
        )
        assert claim_alert(
            session=session, run_id=small.run_id + 1, customer_pk=ada, recipient="UAM1", now=NOW
        )


def test_due_day_and_as_of_are_dates_not_the_clock(small: SmallCrm) -> None:
    """Nothing reads the clock: a follow-up due in the past of `as_of` is due, whatever day
    the test runs on."""
    with write_session(small.engine) as session:
        add_follow_up(
            session=session,
            customer_pk=small.pks["C001"],
            assignee="UAM1",
            due_on=date(2030, 1, 1),
            created_by="UAM1",
            now=datetime(2029, 12, 1),
            today=date(2029, 12, 1),
        )
    with read_session(small.engine) as session:
        assert due_follow_ups(session=session, as_of=date(2029, 12, 31)) == []
        assert len(due_follow_ups(session=session, as_of=date(2030, 1, 1))) == 1


def test_the_card_shows_the_last_touch(small: SmallCrm, settings: Settings, tmp_path: Path) -> None:
    bot = ChatBot(small.engine, settings, tmp_path / "charts")
    assert "Last touch" not in bot.say("customer C001")
    with write_session(small.engine) as session:
        log_touch(
            session=session,
            customer_pk=small.pks["C001"],
            kind="call",
            author="maria",
            now=datetime.combine(SMALL_TODAY - timedelta(days=3), datetime.min.time()),
            outcome="reached",
        )
    card = bot.reply("customer C001")
    assert ("Last touch", "call by maria, 3 days ago — reached") in card.fields


def test_touch_text_reads_the_days_and_the_outcome() -> None:
    touch = Touch(customer_pk=1, kind="email", author="U1", created_at=NOW, outcome="false_alarm")
    assert touch_text(touch, TODAY) == "email by U1, today — not at risk — false alarm"
    touch.outcome = None
    assert touch_text(touch, TODAY + timedelta(days=1)) == "email by U1, yesterday"
    assert touch_text(None, TODAY) is None
