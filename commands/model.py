"""`/crm model`: which model answers, how good it is, how old its data is."""

from __future__ import annotations

from typing import Any

from crmbot import runs
from crmbot.chat.commandkit import no_model_reply
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.core.models import ModelRun, Unreadable
from crmbot.core.timeouts import StatementTimeout
from crmbot.reply import Reply, Table
from crmbot.reply import format as fmt
from crmbot.reply.backtest import said_and_was
from crmbot.reply.outcomes import false_alarm_text, touched_text
from crmbot.runs import backtest as backtests
from crmbot.runs import outcomes

MAX_METRICS_PER_STAGE = 6
STALE_AFTER_DAYS = 7


@command("model", usage="model", aliases=("models", "freshness"))
def model_command(request: Request) -> Reply:
    """The active model run: its data date, age, metrics, and the recent runs.

    Shows what every answer is based on — the run id, the date its data stops, when it went
    live — the headline metrics of each model (churn ROC AUC, lift, …), and the last few
    runs with their status, so a failed or rejected retrain is visible. A run whose record
    is corrupt is shown with the values that cannot be read marked "unreadable". Once the
    whole horizon after an earlier run's day is in the data, a Backtest line says what that
    run predicted and what happened (`crmbot model backtest` has the detail).
    """
    with read_session(request.engine) as session:
        # Not `active_run`: this command must show a live run even when it cannot serve.
        run_id = runs.active_run_id(session=session)
        run = None if run_id is None else runs.get_run(session=session, run_id=run_id)
        if run is None:
            return no_model_reply(request)
        recent = runs.list_runs(session=session, limit=5)
    measured = _backtest(request)
    fields = [
        ("Run", str(run.id)),
        ("Data as of", _data_as_of(run, request)),
        ("Live since", f"{run.activated_at:%Y-%m-%d %H:%M} UTC" if run.activated_at else "—"),
        ("Customers scored", _customers(runs.run_json(run, "row_counts"))),
    ]
    timings = runs.run_json(run, "timings")
    if timings:
        steps = {k: v for k, v in timings.items() if isinstance(v, int | float)}
        # Training records a "total"; older runs only have the steps.
        total = steps.get("total", sum(v for k, v in steps.items() if k != "total"))
        fields.append(("Training time", f"{float(total):.1f} s"))
    recorded = (runs.run_json(run, "params") or {}).get("run")
    recorded = recorded if isinstance(recorded, dict) else {}
    rejected_because = recorded.get("rejected_because")
    if run.forced and rejected_because:
        # Forced only matters when the champion/challenger check would have refused it.
        fields.append(("Note", f"activated by force although {rejected_because}"))
    elif recorded.get("note"):
        fields.append(("Note", str(recorded["note"])))
    unreadable = runs.unreadable_fields(run)
    if unreadable:
        fields.append(("Record", "unreadable: " + ", ".join(unreadable) + " (corrupt)"))
    metrics = runs.run_json(run, "metrics")
    metric_lines = _metric_lines(metrics or {})
    flag = _purchase_model_flag(metrics or {})
    if flag:
        fields.append(("CLV", flag))
    if measured:
        fields.append(("Backtest", measured))
    fields += _touch_outcomes(request)
    if isinstance(metrics, Unreadable):
        text = "The metrics are unreadable (the run's record is corrupt)."
    else:
        text = "\n".join(metric_lines) if metric_lines else "No metrics were recorded."
    table = Table(
        columns=["Run", "As of", "Status", "Live"],
        rows=[
            [
                str(r.id),
                f"{r.as_of:%Y-%m-%d}",
                r.status + (f": {r.error[:40]}" if r.error else ""),
                "yes" if r.id == run.id else "",
            ]
            for r in recent
        ],
    )
    return Reply(title=f"Model run {run.id}", fields=fields, text=text, table=table)


def _touch_outcomes(request: Request) -> list[tuple[str, str]]:
    """What came of the touches on the newest past at-risk list whose horizon is in the data
    (`crmbot.runs.outcomes`); nothing when no such list was acted on."""
    horizon = request.settings.churn_horizon_days
    latest = outcomes.latest_order_day(request.engine)
    with read_session(request.engine) as session:
        past = outcomes.measurable_run(
            session=session, latest_order=latest, default_horizon=horizon
        )
        if past is None:
            return []
        session.expunge(past)
    try:
        document = outcomes.touch_outcomes(request.engine, past, default_horizon=horizon)
    except outcomes.NotMeasurable:
        return []
    except StatementTimeout:
        text = f"run {past.id}'s at-risk list was acted on, but measuring it took too long here"
        return [("Touched vs not", text)]
    fields = [("Touched vs not", touched_text(document))]
    alarms = false_alarm_text(document)
    if alarms:
        fields.append(("False alarms", alarms))
    return fields


def _backtest(request: Request) -> str:
    """What the newest run whose whole horizon is in the data said, and what happened ("the
    run of <date> said X, reality was Y"); empty when no run has a future yet. Kept in that
    run's record once measured (1.3 to 3.2 s at 100,000 customers on SQLite the first
    time, a lookup after: see docs/models.md#backtest)."""
    latest_order = backtests.latest_order_day(request.engine)
    horizon = request.settings.churn_horizon_days
    with read_session(request.engine) as session:
        measured = backtests.latest_with_future(
            session=session, latest_order=latest_order, default_horizon=horizon
        )
        if measured is not None:
            session.expunge(measured)
    if measured is None:
        return ""
    detail = f"`crmbot model backtest {measured.id}`"
    try:
        document = backtests.kept_backtest(request.engine, measured, default_horizon=horizon)
    except backtests.NotBacktestable:
        return ""
    except StatementTimeout:
        return (
            f"the run of {measured.as_of:%Y-%m-%d} has a future in the data, but measuring it "
            f"took too long here; {detail} measures it and keeps the figures for this command"
        )
    return said_and_was(document) + f" ({detail} for the detail)"


def _data_as_of(run: ModelRun, request: Request) -> str:
    if isinstance(run.as_of, Unreadable):
        return "unreadable — this run cannot serve; an admin can `crmbot model activate` a good run"
    age = runs.age_days(run, today=request.today)
    freshness = f"{age} days old"
    if age > STALE_AFTER_DAYS:
        freshness += " — stale; an admin can `retrain`"
    return f"{run.as_of:%Y-%m-%d} ({freshness})"


def _customers(row_counts: dict[str, Any] | Unreadable) -> str:
    if isinstance(row_counts, Unreadable):
        return "unreadable"
    if not row_counts:
        return "—"
    for key in ("scores", "customers", "customer_score"):
        if isinstance(row_counts.get(key), int):
            return f"{row_counts[key]:,}"
    return "—"


def _purchase_model_flag(metrics: dict[str, Any]) -> str:
    """Said when BG/NBD's fit ran to its limit: the model that took over, or that dropout
    could not be estimated."""
    clv: dict[str, Any] = metrics["clv"] if isinstance(metrics.get("clv"), dict) else {}
    recorded = clv.get("purchase_model") or {}
    if recorded.get("model") == "MBG/NBD":
        return "BG/NBD's fit ran to its limit (nobody would ever drop out); MBG/NBD is used"
    if recorded.get("dropout_estimated") is False or (
        not recorded and "a->0" in ((clv.get("bgnbd") or {}).get("at_limit") or [])
    ):
        return (
            "dropout could not be estimated on this book: P(alive) is not shown and CLV "
            "assumes customers keep buying; churn risk says who is leaving"
        )
    return ""


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for stage, values in metrics.items():
        if not isinstance(values, dict) or stage == backtests.KEPT:
            continue
        shown = [
            f"{name} {_metric(value)}"
            for name, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ][:MAX_METRICS_PER_STAGE]
        if shown:
            lines.append(f"*{stage}*: " + ", ".join(shown))
    return lines


def _metric(value: float) -> str:
    """A count whole; a score to three decimals (ROC AUC 0.810), from 100 up whole."""
    whole = isinstance(value, int) or abs(value) >= 100
    return fmt.number(value, 0 if whole else 3)
