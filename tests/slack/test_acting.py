"""The account buttons, their modals and the "Look up a customer" shortcut, through signed
requests against the real Bolt app and the local Web API fake (the small CRM)."""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

from sqlalchemy import select

from crmbot.core.db import read_session
from crmbot.core.models import AuditLog, Follow, FollowUp, Snooze, Touch
from crmbot.reply.acting import FOLLOW, FOLLOW_UP, LOG_TOUCH, SNOOZE, UNFOLLOW
from crmbot.slack.acting import LOOKUP_FORM, LOOKUP_SHORTCUT, TOUCH_FORM, lookup_form
from tests.support.slack_bot import SECRET, Bot, text_of
from tests.support.slack_fake import Recorded
from tests.support.slack_requests import (
    action_body,
    shortcut_body,
    signed_headers,
    view_submission_body,
)
from tests.support.small_crm import SmallCrm

TOUCH = {
    "kind": {"type": "static_select", "selected_option": {"value": "meeting"}},
    "outcome": {"type": "static_select", "selected_option": {"value": "false_alarm"}},
    "note": {"type": "plain_text_input", "value": "Seasonal dip, all fine"},
}


def _send(bot: Bot, body: str) -> Any:
    return bot.dispatch(body, signed_headers(SECRET, body))


def _opened(bot: Bot, count: int = 1) -> dict[str, Any]:
    calls = bot.wait_for(lambda rs: [r for r in rs if r.method == "views.open"][count - 1 :])
    view = calls[-1].params["view"]
    return json.loads(view) if isinstance(view, str) else view


def _posted(bot: Bot, words: str) -> list[Recorded]:
    return bot.wait_for(
        lambda rs: [
            r
            for r in rs
            if r.method in ("chat.postMessage", "chat.postEphemeral")
            and words in json.dumps(r.params, ensure_ascii=False)
        ]
    )


def _rows(bot: Bot, model: Any) -> list[Any]:
    with read_session(bot.engine) as session:
        return list(session.execute(select(model)).scalars())


def test_a_touch_from_a_channel_card_is_confirmed_ephemerally_and_logged_once(
    bot: Bot, crm: SmallCrm
) -> None:
    _send(bot, action_body(LOG_TOUCH, "C002", channel_id="C0CRM", message_ts="1.000100"))
    view = _opened(bot)
    assert view["callback_id"] == TOUCH_FORM
    assert "Grace Hopper (C002)" in json.dumps(view["blocks"])
    submission = view_submission_body({**view, "id": "VTOUCH1"}, TOUCH)
    assert _send(bot, submission).status == 200
    [confirmed] = _posted(bot, "Logged: meeting with Grace Hopper (C002)")
    assert confirmed.method == "chat.postEphemeral" and confirmed.params["user"] == "UAM1"
    assert "not at risk — false alarm" in json.dumps(confirmed.params, ensure_ascii=False)
    # The same submission delivered again (a replay) logs nothing more.
    assert _send(bot, submission).status == 200
    time.sleep(0.5)
    touches = _rows(bot, Touch)
    assert [(t.kind, t.outcome, t.note) for t in touches] == [
        ("meeting", "false_alarm", "Seasonal dip, all fine")
    ]
    audited = [row for row in bot.audit_rows() if row.command == "log"]
    assert [(row.outcome, row.customer_ids) for row in audited] == [("ok", ["C002"])]


def test_wrong_fields_are_shown_in_the_modal_and_nothing_is_stored(bot: Bot) -> None:
    _send(bot, action_body(FOLLOW_UP, "C002", channel_id="C0CRM"))
    view = _opened(bot)
    response = _send(
        bot,
        view_submission_body(
            view,
            {
                "due": {"type": "datepicker", "selected_date": "2020-01-01"},
                "assignee": {"type": "users_select"},
                "note": {"type": "plain_text_input", "value": "x" * 2001},
            },
        ),
    )
    answer = json.loads(response.body)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"due", "assignee", "note"}
    assert "has passed" in answer["errors"]["due"]
    time.sleep(0.3)
    assert not _rows(bot, FollowUp)


def test_follow_unfollow_and_snooze_act_at_once(bot: Bot, crm: SmallCrm) -> None:
    _send(bot, action_body(FOLLOW, "C003", channel_id=None))  # from the App Home
    _posted(bot, "You follow Alan Turing (C003)")
    assert [(f.customer_pk, f.user_id) for f in _rows(bot, Follow)] == [(crm.pks["C003"], "UAM1")]
    _send(bot, action_body(UNFOLLOW, "C003", channel_id=None))
    _posted(bot, "You no longer follow Alan Turing (C003)")
    assert not _rows(bot, Follow)
    _send(bot, action_body(SNOOZE, "C003 7", channel_id=None))
    _posted(bot, "is snoozed for you until")
    [snoozed] = _rows(bot, Snooze)
    assert snoozed.user_id == "UAM1" and snoozed.until > date(2026, 1, 1)
    commands = [row.command for row in bot.audit_rows()]
    assert commands.count("follow") == 1 and "unfollow" in commands and "snooze" in commands


def test_an_account_outside_the_own_book_is_answered_as_missing(bot: Bot) -> None:
    bot.settings.own_book_only = True
    _send(bot, action_body(LOG_TOUCH, "C004", channel_id=None))  # UAM2's customer
    _posted(bot, "No customer 'C004'")
    assert not bot.slack.calls("views.open")
    assert [row.outcome for row in bot.audit_rows() if row.command == "log"] == ["not_found"]


def test_the_lookup_shortcut_answers_with_the_card_in_the_askers_dm(bot: Bot) -> None:
    _send(bot, shortcut_body(LOOKUP_SHORTCUT))
    view = _opened(bot)
    assert view["callback_id"] == LOOKUP_FORM == lookup_form()["callback_id"]
    empty = _send(bot, view_submission_body(view, {"customer": {"type": "plain_text_input"}}))
    assert json.loads(empty.body)["errors"] == {"customer": "Give an id, an email or a name."}
    found = _send(
        bot,
        view_submission_body(
            view, {"customer": {"type": "plain_text_input", "value": "grace hoper"}}
        ),
    )
    assert found.status == 200 and not found.body
    [card] = _posted(bot, "Grace Hopper (C002)")
    assert card.method == "chat.postMessage" and card.params["channel"] in ("UAM1", "DAM1")
    # Only its reader sees the DM: the card keeps the email.
    assert "grace@cobol.example" in text_of(card.params)
    assert any(
        row.command == "customer" and row.outcome == "ok"
        for row in bot.audit_rows()
        if isinstance(row, AuditLog)
    )


def test_a_form_opened_too_late_says_so(bot: Bot) -> None:
    from tests.support.slack_fake import Reply

    bot.slack.script("views.open", Reply(200, {"ok": False, "error": "expired_trigger_id"}))
    _send(bot, action_body(LOG_TOUCH, "C002", channel_id=None))
    _posted(bot, "The form did not open in time")


def test_the_app_home_lists_your_follow_ups_due_and_to_come(bot: Bot, crm: SmallCrm) -> None:
    from datetime import datetime, timedelta

    from crmbot.actions.followups import add_follow_up
    from crmbot.core.db import write_session
    from tests.support.small_crm import TODAY

    with write_session(bot.engine) as session:
        for cid, due in (("C002", TODAY - timedelta(days=2)), ("C001", TODAY), ("C007", TODAY)):
            add_follow_up(
                session=session,
                customer_pk=crm.pks[cid],
                assignee="UAM1",
                due_on=due,
                created_by="UAM2",
                now=datetime(2026, 6, 30),
                today=date(2026, 6, 30),
                note=f"call {cid}",
            )
        add_follow_up(
            session=session,
            customer_pk=crm.pks["C010"],
            assignee="UAM1",
            due_on=TODAY + timedelta(days=5),
            created_by="UAM1",
            now=datetime(2026, 6, 30),
            today=date(2026, 6, 30),
        )
    bot.event({"type": "app_home_opened", "user": "UAM1", "tab": "home"})
    [published] = bot.wait_for(lambda rs: [r for r in rs if r.method == "views.publish"])
    home = json.dumps(published.params["view"], ensure_ascii=False)
    assert home.index("Your follow-ups") < home.index("Most at risk")
    assert "Grace Hopper* (C002) · overdue since 2026-07-01 — call C002" in home
    assert "(C001) · due today — call C001" in home
    assert (
        "1 more follow-up to come" in home
        and "Margaret Hamilton" not in home.split("Most at risk")[0]
    )
    assert home.count('"act_touch"') == 3
