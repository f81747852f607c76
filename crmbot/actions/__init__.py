"""Acting on an account: the write side of what account managers do about a customer.

Touches (a call, an email, a meeting, a note, and how it went), follow-ups (something to do
on a day, sent to its assignee once), follows and snoozes, and the record that an alert
about a customer went to a person once per model run. The tables are in
`crmbot.core.models`; what reads them back is in `crmbot.queries.actions`.

Every function takes the session it writes in (the caller commits, usually through
`crmbot.core.db.write_session`) and the time as a parameter (`now`, `as_of`), never the
clock. A value a person typed that cannot be stored raises `InvalidAction`, whose message
says what to do.
"""

from __future__ import annotations


class InvalidAction(ValueError):
    """What a person asked for cannot be stored; the message is fit to show them."""
