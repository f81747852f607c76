"""Why a customer matters, in one sentence an account manager reads (from score columns)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from crmbot.reply.format import money_short


def _get(row: Any, key: str) -> Any:
    getter = getattr(row, "get", None)
    value = getter(key) if getter is not None else getattr(row, key, None)
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def influence_reason(row: Mapping[str, Any] | Any) -> str:
    """Why a customer is influential, in one sentence built from the counts.

    `row` is anything with the score columns as keys or attributes (a dict, a pandas row, a
    `CustomerScore`); `region` and `community_hub` (the customer is their community's most
    influential member) are used when present. E.g. "referred 14 customers who spent $38k;
    11 still active; hub of a 40-customer community; based in EMEA".
    """
    referred = int(_get(row, "referred_customers") or 0)
    spent = float(_get(row, "referred_spend") or 0.0)
    active = int(_get(row, "referred_active") or 0)
    influence = float(_get(row, "influence") or 0.0)
    community_size = _get(row, "community_size")
    region = _get(row, "region")
    parts: list[str] = []
    if referred:
        who = "customer who" if referred == 1 else "customers who"
        parts.append(f"referred {referred} {who} spent {money_short(spent)}")
        if referred == 1:
            parts.append("still active" if active else "no longer active")
        else:
            parts.append(f"{active} still active")
    elif influence > 0:
        parts.append(
            "no referrals of their own; customers who bought the same products soon "
            "after them carry their influence"
        )
    else:
        parts.append("no referrals or shared purchases yet")
    if community_size and int(community_size) > 1:
        role = "hub of" if _get(row, "community_hub") else "part of"
        parts.append(f"{role} a {int(community_size)}-customer community")
    if region:
        parts.append(f"based in {region}")
    return "; ".join(parts)
