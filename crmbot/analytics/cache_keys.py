"""The names of what stages share through `RunContext.cache` (freed by the pipeline after
the last stage that reads each, `crmbot.training.pipeline.STAGE_READS`). A leaf module.

* PURCHASE_DAYS: each customer's purchase days, left by the pandas source's summary as of
  the run's day (features) for the CLV calibration summary (clv);
* HASHED_TEXTS: the run's texts counted once (satisfaction -> churn);
* PURCHASE_PAIRS: each customer's first purchase of each product (graph -> recommend);
* SUMMARY: the per-customer summary as of the run's day (`RunContext.features`, and the
  database source's copy of it: features -> segments, clusters, clv, churn).
"""

PURCHASE_DAYS = "purchase_days"
HASHED_TEXTS = "hashed_texts"
PURCHASE_PAIRS = "purchase_pairs"
SUMMARY = "summary"
