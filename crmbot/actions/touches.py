"""Logging a touch: something done about a customer, and how it went."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from crmbot.actions import InvalidAction
from crmbot.core.models import TOUCH_KINDS, TOUCH_OUTCOMES, Touch
from crmbot.runs import active_run_id

# Other ways people write an outcome or a kind.
_OUTCOME_WORDS = {
    "noanswer": "no_answer",
    "unreached": "no_answer",
    "voicemail": "no_answer",
    "falsealarm": "false_alarm",
    "notatrisk": "false_alarm",
    "churned": "lost",
    "retained": "saved",
}
_KIND_WORDS = {
    "phone": "call",
    "called": "call",
    "mail": "email",
    "emailed": "email",
    "met": "meeting",
}
MAX_NOTE = 2000


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def parse_kind(text: str) -> str | None:
    """The touch kind `text` names ("call", "Phone", "emailed"), or None."""
    key = _key(text)
    for kind in TOUCH_KINDS:
        if key == kind:
            return kind
    return _KIND_WORDS.get(key)


def parse_outcome(text: str) -> str | None:
    """The outcome `text` names ("reached", "no answer", "no-answer", "false alarm",
    "not at risk"), or None."""
    key = _key(text)
    for outcome in TOUCH_OUTCOMES:
        if key == _key(outcome):
            return outcome
    return _OUTCOME_WORDS.get(key)


def log_touch(
    *,
    session: Session,
    customer_pk: int,
    kind: str,
    author: str,
    now: datetime,
    note: str = "",
    outcome: str | None = None,
) -> Touch:
    """Record a touch on customer `customer_pk` by `author` at `now` (naive UTC), tied to the
    model run live at that moment, so its outcome can be set against that run's prediction."""
    parsed_kind = parse_kind(kind)
    if parsed_kind is None:
        raise InvalidAction(f"A touch is one of {', '.join(TOUCH_KINDS)}; not '{kind[:40]}'.")
    parsed_outcome: str | None = None
    if outcome is not None and outcome.strip():
        parsed_outcome = parse_outcome(outcome)
        if parsed_outcome is None:
            raise InvalidAction(
                f"An outcome is one of {', '.join(TOUCH_OUTCOMES)}; not '{outcome[:40]}'."
            )
    author = author.strip()
    if not author:
        raise InvalidAction("A touch needs its author.")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidAction(f"That note is too long: keep it under {MAX_NOTE:,} characters.")
    touch = Touch(
        customer_pk=customer_pk,
        kind=parsed_kind,
        note=note,
        outcome=parsed_outcome,
        author=author[:120],
        created_at=now,
        run_id=active_run_id(session=session),
    )
    session.add(touch)
    session.flush()
    return touch
