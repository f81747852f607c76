"""`/crm retrain [--force] [YYYY-MM-DD]`: fit every model again now (admins only)."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

from crmbot.chat.commandkit import usage_reply
from crmbot.chat.registry import Request, command
from crmbot.reply import Reply
from crmbot.reply.format import clip

if TYPE_CHECKING:
    from crmbot.runs import RunResult
    from crmbot.training.pipeline import StageEvent

log = logging.getLogger(__name__)

USAGE = "retrain [--force] [YYYY-MM-DD]"


@command("retrain", usage=USAGE, admin_only=True, slow=True, aliases=("train",))
def retrain_command(request: Request) -> Reply:
    """Retrain every model now, in the background, and report progress and the result.

    Takes the training lock, so it never runs beside the nightly retrain; progress is
    reported as each model finishes. The new model goes live only when it is no worse
    than the active one, unless `--force` is given. A date trains as of that day.
    """
    force = False
    as_of = request.today
    for word in request.args:
        if word.lower() in ("--force", "force", "-f"):
            force = True
            continue
        try:
            as_of = date.fromisoformat(word)
        except ValueError:
            return usage_reply(request, USAGE, f"'{clip(word, 30)}' is not a date or --force.")
    if as_of > request.today:
        return usage_reply(request, USAGE, "Training cannot look into the future.")

    # Imported here: training pulls in pandas and scikit-learn, which the other commands
    # never need.
    from crmbot.runs import TrainingInProgress, default_holder, train_exclusively

    def report(event: StageEvent) -> None:
        if request.progress is None or event.state not in ("done", "failed"):
            return
        took = f" in {event.seconds:.1f} s" if event.seconds is not None else ""
        state = "failed" if event.state == "failed" else "done"
        request.progress(f"Retrain: step {event.index}/{event.total} ({event.step}) {state}{took}")

    if request.progress is not None:
        request.progress(f"Retrain as of {as_of:%Y-%m-%d} started" + (" (forced)" if force else ""))
    try:
        result = train_exclusively(
            request.engine,
            request.settings,
            holder=default_holder(f"retrain by {request.user_id}"),
            as_of=as_of,
            force=force,
            progress=report,
        )
    except TrainingInProgress as busy:
        return Reply(title="", text=busy.user_message, outcome="error")
    return _result_reply(result, request)


def _result_reply(result: RunResult, request: Request) -> Reply:
    timings = result.timings or {}
    seconds = timings.get("total", sum(v for k, v in timings.items() if k != "total"))
    fields = [
        ("Run", str(result.run_id)),
        ("As of", f"{result.as_of:%Y-%m-%d}"),
        ("Status", result.status + (" — live now" if result.activated else " — not activated")),
        ("Took", f"{seconds:.1f} s"),
    ]
    if result.status == "failed":
        return Reply(
            title=f"Retrain failed (run {result.run_id})",
            text=f"{clip(result.error, 600)}\nThe previous model stays active.",
            fields=fields,
            outcome="error",
        )
    text = (
        "The new model answers from now on."
        if result.activated
        else (
            f"{clip(result.error, 600) or 'It scored worse than the active model.'} "
            f"The active model stays; `{request.settings.slash_command} retrain --force` "
            "activates a new run anyway."
        )
    )
    if result.activated:
        fields.append(("Alerts", _send_alerts(request)))
    return Reply(title=f"Retrain finished: run {result.run_id}", text=text, fields=fields)


def _send_alerts(request: Request) -> str:
    """The new run's alerts to owners and followers, at once (as after the nightly
    retrain); without Slack, the `notify` job of a scheduler that has it sends them."""
    if request.poster is None:
        return "sent by the scheduler's next notify round"
    from crmbot.digests.direct import send_alerts
    from crmbot.scheduler import effective_schedule

    try:
        channel = effective_schedule(request.engine, request.settings, "notify").channel
        report = send_alerts(
            request.engine, request.settings, request.poster, channel=channel or ""
        )
    except Exception as exc:  # the run is live whatever happens to its alerts
        log.exception("alerts after /crm retrain failed")
        return f"not sent ({type(exc).__name__}); the next notify round tries again"
    return report.describe()
