"""`/crm log <customer> [kind] <note> [outcome:...]`: log a touch from the keyboard."""

from __future__ import annotations

from crmbot.actions import InvalidAction
from crmbot.actions.touches import log_touch, parse_kind, parse_outcome
from crmbot.chat.commandkit import (
    customer_to_act_on,
    request_now,
    split_customer,
    usage_reply,
)
from crmbot.chat.registry import Request, command
from crmbot.core.db import write_session
from crmbot.core.models import TOUCH_OUTCOME_WORDS
from crmbot.reply import Button, Reply
from crmbot.reply.format import clip

USAGE = "log <customer> [call | email | meeting | note] <what happened> [outcome:OUTCOME]"
OUTCOME_PREFIX = "outcome:"


@command("log", usage=USAGE, aliases=("touch",))
def log_command(request: Request) -> Reply:
    """Log a call, email, meeting or note on a customer, and how it went.

    The customer is the first word (an id, an email, a name) or a name in quotes:
    `log "Ada Lovelace" call renewal talk outcome:reached`. The kind (call, email,
    meeting, note) is optional and defaults to note. The outcome, also optional, is one
    of reached, no-answer, saved, lost, false-alarm (not at risk); it is what teaches
    `/crm model` which at-risk calls worked. The card shows the latest touch.
    """
    who, rest = split_customer(request.text)
    if not who:
        return usage_reply(request, USAGE, "Which customer, and what happened?")
    words = rest.split()
    kind = "note"
    if words and parse_kind(words[0]) is not None:
        kind = parse_kind(words.pop(0)) or kind
    outcome: str | None = None
    note_words = []
    for word in words:
        if word.lower().startswith(OUTCOME_PREFIX):
            outcome = parse_outcome(word[len(OUTCOME_PREFIX) :])
            if outcome is None:
                return usage_reply(
                    request,
                    USAGE,
                    f"'{clip(word, 40)}' is not an outcome: use outcome:reached, "
                    "outcome:no-answer, outcome:saved, outcome:lost or outcome:false-alarm.",
                )
        else:
            note_words.append(word)
    note = " ".join(note_words)
    if not note and outcome is None and kind == "note":
        return usage_reply(request, USAGE, "What happened? Add a note or an outcome.")
    found = customer_to_act_on(request, who, usage=USAGE, rest=rest)
    if isinstance(found, Reply):
        return found
    customer, pk = found
    try:
        with write_session(request.engine) as session:
            log_touch(
                session=session,
                customer_pk=pk,
                kind=kind,
                author=request.user_id,
                now=request_now(request),
                note=note,
                outcome=outcome,
            )
    except InvalidAction as problem:
        return usage_reply(request, USAGE, str(problem))
    name = clip(customer.name or customer.customer_id, 60)
    article = "an" if kind[0] in "aeiou" else "a"
    text = f"Logged {article} {kind} on *{name}* ({customer.customer_id})"
    if outcome is not None:
        text += f" — {TOUCH_OUTCOME_WORDS[outcome]}"
    text += "." + (f"\n> {clip(note, 300)}" if note else "")
    return Reply(
        title="",
        text=text,
        buttons=[Button("Customer card", "crm_customer", customer.customer_id)],
        customer_ids=[customer.customer_id],
    )
