"""A run's backtest in words and rows (`crmbot.analytics.backtest`'s document): the
sentence `/crm model` shows ("the run of <date> said X, reality was Y") and the lines and
tables `crmbot model backtest` prints."""

from __future__ import annotations

from typing import Any

from crmbot.reply import format as fmt


def _churn(document: dict[str, Any]) -> dict[str, Any]:
    churn = document.get("churn")
    return churn if isinstance(churn, dict) else {}


def _auc(value: Any) -> str:
    return fmt.number(value, 3) if isinstance(value, int | float) else "—"


def no_future(document: dict[str, Any]) -> str:
    """Why a run has no backtest yet: how much of its horizon the data holds."""
    future = document.get("future") or {}
    window = future.get("window") or {}
    latest = future.get("latest_order")
    seen = f"the latest order is of {latest}" if latest else "there are no orders"
    return (
        f"No future yet: the run's {future.get('horizon_days')}-day horizon runs to "
        f"{window.get('until')}, and {seen} ({fmt.count(int(future.get('days_seen') or 0), 'day')}"
        f" of {future.get('horizon_days')} seen). A backtest needs the whole horizon."
    )


def said_and_was(document: dict[str, Any]) -> str:
    """One paragraph: what the run predicted and what happened, with its AUC beside the
    baselines'. "The run of 2026-03-31 said 53% of its 1,465 buying customers would not buy
    within 90 days; 49% did not. …"."""
    day = document.get("as_of")
    future = document.get("future") or {}
    if not future.get("complete"):
        return f"The run of {day}: " + no_future(document)
    churn = _churn(document)
    horizon = future.get("horizon_days")
    if not churn.get("scored"):
        return f"The run of {day} had no churn risk to check ({churn.get('note', 'none')})."
    said = (
        f"The run of {day} said {fmt.percent(churn.get('predicted_rate'))} of its "
        f"{fmt.count(int(churn['scored']), 'buying customer')} would not buy within "
        f"{horizon} days; {fmt.percent(churn.get('real_rate'))} did not."
    )
    listed = churn.get("at_risk_list") or {}
    if listed.get("customers"):
        said += (
            f" Its top {fmt.count(int(listed['customers']), 'account')} at risk: "
            f"{fmt.percent(listed.get('predicted_rate'))} predicted to leave, "
            f"{fmt.percent(listed.get('real_rate'))} did."
        )
    said += " " + ranking(churn) + "."
    return said


def ranking(churn: dict[str, Any]) -> str:
    """The run's churn ROC AUC against the real outcome beside the baselines'."""
    baselines = churn.get("baselines") or {}
    others = []
    if "recency" in baselines:
        others.append(f"recency alone {_auc(baselines['recency'].get('roc_auc'))}")
    if "bgnbd" in baselines:
        name = baselines["bgnbd"].get("model") or "BG/NBD"
        others.append(f"{name} alone {_auc(baselines['bgnbd'].get('roc_auc'))}")
    text = f"Ranking who left: ROC AUC {_auc(churn.get('roc_auc'))}"
    return text + (f" ({', '.join(others)})" if others else "")


def purchases_line(section: dict[str, Any] | None, what: str) -> str:
    """Predicted against real purchase days over a horizon, with the mean error."""
    if not section:
        return ""
    if section.get("note"):
        return f"Purchases in {section.get('horizon_days')} days: {section['note']}."
    return (
        f"Purchases in {section['horizon_days']} days ({what}): "
        f"{fmt.number(section.get('predicted'), 0)} purchase days expected, "
        f"{fmt.number(section.get('real'), 0)} made by the "
        f"{fmt.count(int(section.get('customers') or 0), 'customer')} who had bought; "
        f"mean absolute error {fmt.number(section.get('mae'), 2)} per customer."
    )


def calibration_rows(churn: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): each tenth of the customers by risk, predicted against real churn."""
    header = ["tenth", "customers", "risk from", "risk to", "predicted", "real"]
    rows = [
        [
            str(row["decile"]),
            fmt.number(row["customers"], 0),
            fmt.percent(row["risk_from"], 1),
            fmt.percent(row["risk_to"], 1),
            fmt.percent(row["predicted_rate"], 1),
            fmt.percent(row["real_rate"], 1),
        ]
        for row in churn.get("calibration") or []
    ]
    return header, rows


def segment_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): each segment's predicted and real churn, lowest real churn first."""
    header = ["segment", "customers", "predicted churn", "real churn"]
    rows = [
        [
            str(row["segment"]),
            fmt.number(row["customers"], 0),
            fmt.percent(row["predicted_rate"], 1),
            fmt.percent(row["real_rate"], 1),
        ]
        for row in document.get("segments") or []
    ]
    return header, rows
