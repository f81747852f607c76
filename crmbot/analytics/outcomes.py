"""Did acting on the at-risk list help? Touched against comparable untouched accounts.

A past model run listed accounts at risk (predicted churn risk of `AT_RISK_FROM` or more).
Some were touched — a call, an email, a meeting, a note logged in crmbot — within a few
days after the run's day; the rest were not. Once the run's churn horizon has passed, the
real outcome of each is known (no purchase in the horizon: the label the churn model is
trained on). `compare_touched` sets the churn rate of the touched accounts against that of
untouched accounts *of the same predicted risk*: the at-risk list is cut into bands of
`BAND_WIDTH` of predicted risk, each band's untouched churn rate is weighted by how many
touched accounts the band holds, and only bands with both kinds count (exact
stratification on the prediction, the effect on the touched).

This is observational, not causal: account managers choose whom to call, from what they
see beyond the model (a complaint, a lost contact), and matching on predicted risk does
not remove that choice. A difference says "touched accounts did better than the model
expected of accounts like them", not "the call caused it".

Outcomes logged on the touches also say how good the list was: a "false alarm" (the
account was never at risk) by the account's top churn reason in that run shows which
reasons the model over-trusts.

Pure: a frame in, a JSON-ready dict out. `crmbot.runs.outcomes` reads the run's scores,
the touches and the orders.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

AT_RISK_FROM = 0.5
BAND_WIDTH = 0.1
# Touches logged this many days after the run's day count as acting on its list.
WINDOW_DAYS = 30
# A reason needs this many logged outcomes before its false-alarm rate is shown.
MIN_OUTCOMES_PER_REASON = 5
FALSE_ALARM = "false_alarm"
# The columns `compare_touched` reads, one row per account on the at-risk list.
COLUMNS = ["churn_risk", "touched", "churned", "top_reason", "outcome"]


def _rate(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def compare_touched(
    accounts: pd.DataFrame, *, band_width: float = BAND_WIDTH, from_risk: float = AT_RISK_FROM
) -> dict[str, Any]:
    """Churn of touched against comparable untouched accounts, and false alarms by reason.

    `accounts`: one row per account the run put at risk (`COLUMNS`): its predicted
    `churn_risk`, whether it was `touched` in the window, whether it `churned` (bought
    nothing in the horizon), its `top_reason` in the run and the latest `outcome` logged
    on it in the window (None when none).
    """
    frame = accounts[COLUMNS].copy()
    frame["touched"] = frame["touched"].astype(bool)
    frame["churned"] = frame["churned"].astype(bool)
    top = 1.0 - from_risk
    bands = max(1, int(round(top / band_width)))
    # A hair added so that a risk on a band's edge (0.6) falls in the band it starts, not in
    # the one below by a rounding error ((0.6 - 0.5) / 0.1 = 0.9999…).
    offset = (frame["churn_risk"].to_numpy(dtype=float) - from_risk) / band_width
    position = np.floor(offset + 1e-9)
    frame["band"] = np.clip(position, 0, bands - 1).astype(int)
    touched, untouched = frame[frame["touched"]], frame[~frame["touched"]]
    rows = []
    weighted, variance, matched = 0.0, 0.0, 0
    touched_churned = 0
    for band in range(bands):
        t = touched[touched["band"] == band]["churned"]
        u = untouched[untouched["band"] == band]["churned"]
        low = from_risk + band * band_width
        rows.append(
            {
                "from": round(low, 4),
                "to": round(min(low + band_width, 1.0), 4),
                "touched": int(len(t)),
                "touched_churn": _rate(t),
                "untouched": int(len(u)),
                "untouched_churn": _rate(u),
            }
        )
        if len(t) and len(u):
            matched += len(t)
            touched_churned += int(t.sum())
            p_u = float(u.mean())
            weighted += len(t) * p_u
            variance += len(t) ** 2 * p_u * (1 - p_u) / len(u)
    result: dict[str, Any] = {
        "from_risk": from_risk,
        "band_width": band_width,
        "accounts": int(len(frame)),
        "touched": int(len(touched)),
        "untouched": int(len(untouched)),
        "matched_touched": int(matched),
        "touched_churn": None,
        "untouched_churn": None,
        "difference": None,
        "margin": None,
        "bands": rows,
    }
    if matched:
        p_t = touched_churned / matched
        p_u = weighted / matched
        # Within-band binomial variance of both rates; 95% normal interval.
        var_t = p_t * (1 - p_t) / matched
        var_u = variance / matched**2
        result |= {
            "touched_churn": p_t,
            "untouched_churn": p_u,
            "difference": p_t - p_u,
            "margin": 1.96 * math.sqrt(var_t + var_u),
        }
    result["false_alarms"] = false_alarms(frame)
    return result


_COMPARISON = re.compile(r"\s*\([^)]*\)")
_FIGURE = re.compile(r"(?:\b(?:over|only|about)\s+)?\d+(?:[.,]\d+)*")


def reason_kind(reason: str | None) -> tuple[str, str]:
    """What a churn reason is about, without its figures: a key that groups "2 unresolved
    tickets" with "1 unresolved ticket" and "no unresolved tickets", and the reason as
    read ("purchase pattern: …% chance of no order in the next … days")."""
    if not reason:
        return "", "(no reason given)"
    shown = _FIGURE.sub("…", _COMPARISON.sub("", reason)).strip()
    key = re.sub(r"^no ", "… ", shown.lower())
    key = " ".join(
        word[:-1] if len(word) > 3 and word.endswith("s") else word for word in key.split()
    )
    return key, shown


def false_alarms(accounts: pd.DataFrame) -> dict[str, Any]:
    """Of the logged outcomes on touched accounts, the share that were "false alarm", over
    all and by the kind of the account's top reason (`reason_kind`; kinds with
    `MIN_OUTCOMES_PER_REASON` or more outcomes, the highest rate first)."""
    logged = accounts[accounts["touched"].astype(bool) & accounts["outcome"].notna()]
    logged = logged[logged["outcome"] != ""]
    alarms = logged["outcome"] == FALSE_ALARM
    by_reason: list[dict[str, Any]] = []
    kinds = [reason_kind(reason) for reason in logged["top_reason"]]
    keys = pd.Series([key for key, _ in kinds], index=logged.index, dtype=object)
    shown = pd.Series([text for _, text in kinds], index=logged.index, dtype=object)
    for key, group in alarms.groupby(keys):
        if len(group) >= MIN_OUTCOMES_PER_REASON:
            by_reason.append(
                {
                    "reason": str(shown[keys == key].mode().iloc[0]),
                    "outcomes": int(len(group)),
                    "false_alarms": int(group.sum()),
                    "rate": float(group.mean()),
                }
            )
    by_reason.sort(key=lambda row: (-row["rate"], -row["outcomes"], row["reason"]))
    return {
        "outcomes": int(len(logged)),
        "false_alarms": int(alarms.sum()),
        "rate": float(alarms.mean()) if len(logged) else None,
        "by_reason": by_reason,
    }
