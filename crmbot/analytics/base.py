"""What every model stage reads and writes during one training run.

A run loads its tables as of a date — rows dated after `as_of` are never read — into a
`TrainingData`, and asks a `TrainingSource` (`crmbot.analytics.source`) for what its orders
group into. Each stage (`def run(ctx: RunContext) -> None`) adds columns to `ctx.scores` (one
row per customer, index `customer_pk`, column names as in `crmbot.core.models.CustomerScore`)
and records what it fitted in `ctx.params[stage]` and how well in `ctx.metrics[stage]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from crmbot.analytics.cache_keys import HASHED_TEXTS, PURCHASE_DAYS, PURCHASE_PAIRS, SUMMARY
from crmbot.analytics.source import PandasSource, TrainingSource
from crmbot.analytics.source.frames import day_end
from crmbot.analytics.source.loading import load_training_data, paused_gc, read_frame
from crmbot.analytics.source.training_data import ReleasedTable, TrainingData
from crmbot.core.config import Settings


class StageFailed(RuntimeError):
    """A model could not be fitted; the message says which and why, for the run's record."""


@dataclass
class RunContext:
    data: TrainingData
    settings: Settings
    scores: pd.DataFrame
    # Where the stages ask for what the orders group into (`crmbot.analytics.source`): the
    # pandas source over `data`, or the database when `data` holds no orders and no lines.
    source: TrainingSource
    # The active run's scores before this run (index customer_pk), for migration and diffs:
    # the columns in `crmbot.training.pipeline.PREVIOUS_SCORE_COLUMNS`.
    previous_scores: pd.DataFrame | None = None
    # The per-customer summary the features stage asks the source for
    # (`TrainingSource.summary`), for later stages; index customer_pk. A run frees it
    # (None) once no stage still to run reads it (SUMMARY in the pipeline's STAGE_READS).
    features: pd.DataFrame | None = None
    # The run's offers (next best product), numbered by position: what a customer's
    # `next_products` numbers point at, written once per run (`RunOffer`).
    offers: list[dict[str, Any]] = field(default_factory=list)
    # Intermediate results one stage shares with later ones (`crmbot.analytics.cache_keys`);
    # the source's own cache, so what it keeps is freed with the rest.
    cache: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # The tables and cache entries the stages after the running one read, set by the
    # pipeline before each stage (`crmbot.training.pipeline.STAGE_READS`); None when not
    # known (a stage run on its own), and then nothing is freed early.
    read_later: frozenset[str] | None = None

    def done_reading(self, stage: str, *tables: str) -> None:
        """The running `stage` has read all it needs of these tables: free those no later
        stage reads now, before the stage's own peak, rather than after it."""
        if self.read_later is None:
            return
        for name in tables:
            if name not in self.read_later and not isinstance(
                getattr(self.data, name), ReleasedTable
            ):
                self.data.release(name, after=stage)

    @classmethod
    def start(
        cls,
        data: TrainingData,
        settings: Settings,
        previous_scores: pd.DataFrame | None = None,
        *,
        source: TrainingSource | None = None,
    ) -> RunContext:
        """A run over `data`; `source` None: pandas over `data`'s own orders."""
        source = PandasSource(data) if source is None else source
        scores = pd.DataFrame(index=data.customers.index.copy())
        scores.index.name = "customer_pk"
        return cls(
            data=data,
            settings=settings,
            scores=scores,
            source=source,
            previous_scores=previous_scores,
            cache=source.cache,
        )


# Besides the contract, where the run's loading helpers have always been imported from
# (their home is `crmbot.analytics.source`).
__all__ = [
    "HASHED_TEXTS",
    "PURCHASE_DAYS",
    "PURCHASE_PAIRS",
    "ReleasedTable",
    "SUMMARY",
    "RunContext",
    "StageFailed",
    "TrainingData",
    "day_end",
    "load_training_data",
    "paused_gc",
    "read_frame",
]
