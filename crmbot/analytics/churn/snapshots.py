"""Time-split snapshots: the cutoffs, each one's features as of then, and its churn labels."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from crmbot.analytics.base import StageFailed, TrainingData
from crmbot.analytics.churn.features import features_as_of
from crmbot.analytics.source import PandasSource, TrainingSource
from crmbot.analytics.text_sentiment import HashedTexts

log = logging.getLogger(__name__)

SNAPSHOT_STEP_DAYS = 30
MAX_TRAINING_SNAPSHOTS = 6
# A snapshot with fewer customers than this, or with too few of either outcome, teaches
# nothing reliable and is left out.
MIN_SNAPSHOT_CUSTOMERS = 30


def no_purchase_label(data: TrainingData, cutoff: date, horizon_days: int) -> pd.Series:
    """1 when the customer made no purchase in (cutoff, cutoff + horizon], else 0."""
    if cutoff + timedelta(days=horizon_days) > data.as_of:
        raise ValueError("a label window must end on or before the data's as_of")
    return labels(data.customers.index, PandasSource(data), cutoff, horizon_days)


def labels(
    customers: pd.Index, source: TrainingSource, cutoff: date, horizon_days: int
) -> pd.Series:
    """`no_purchase_label` of these customers, from who bought in the window (`source`)."""
    bought = source.buyers_between(cutoff, cutoff + timedelta(days=horizon_days))
    return pd.Series((~customers.isin(bought)).astype(int), index=customers)


@dataclass
class Snapshot:
    cutoff: date
    features: pd.DataFrame  # FEATURES, index customer_pk (customers with a purchase)
    facts: pd.DataFrame
    label: pd.Series | None = None  # 1 = churned in the window after the cutoff


def snapshot_at(
    data: TrainingData,
    source: TrainingSource,
    cutoff: date,
    *,
    horizon_days: int,
    seed: int,
    hashed: HashedTexts | None = None,
) -> Snapshot | None:
    """Features as of `cutoff` (nothing after it), labelled from the window after it.

    None when BG/NBD cannot be fitted on what was known then (e.g. no repeat purchase yet).
    `source`: the run's source narrowed to `data` (a sample of customers); it summarises
    them as of the cutoff and says who bought after it.
    `hashed`: the run's texts, counted once (see `text_sentiment.HashedTexts`).
    """
    seen = data.as_of_earlier(cutoff)
    summary = source.narrowed(seen).summary()
    try:
        features, facts = features_as_of(
            seen, horizon_days=horizon_days, seed=seed, summary=summary, hashed=hashed
        )
    except StageFailed as exc:
        log.info("churn snapshot %s left out: %s", cutoff, exc)
        return None
    label = labels(features.index, source, cutoff, horizon_days)
    return Snapshot(cutoff=cutoff, features=features, facts=facts, label=label)


def snapshot_cutoffs(as_of: date, horizon_days: int, first_purchase: date | None) -> list[date]:
    """Validation cutoff first, then older ones every 30 days, after the first purchase."""
    latest = as_of - timedelta(days=horizon_days)
    if first_purchase is None or latest <= first_purchase:
        return []
    count = (latest - first_purchase).days // SNAPSHOT_STEP_DAYS
    gap_steps = math.ceil(horizon_days / SNAPSHOT_STEP_DAYS)
    count = min(count, gap_steps - 1 + MAX_TRAINING_SNAPSHOTS)
    return [latest - timedelta(days=SNAPSHOT_STEP_DAYS * k) for k in range(count + 1)]


def is_usable(snapshot: Snapshot | None) -> bool:
    """Enough labelled customers, with at least two of either outcome, to learn from."""
    if snapshot is None:
        return False
    label = snapshot.label
    if label is None or len(label) < MIN_SNAPSHOT_CUSTOMERS:
        return False
    churned = int(label.sum())
    return min(churned, len(label) - churned) >= 2
