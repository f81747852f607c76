"""Training and BG/NBD, each in a child process so its memory is its own: `crmbot.runs.train`
with seconds, CPU and peak memory per stage; the per-customer summary from the database
(beside the pandas one); crmbot's `fit_bgnbd` beside the `lifetimes` package's fitter."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from benchmarks.run_common import peak_rss_kib, reset_peak_rss, settings_for


def child_train(args: dict[str, Any]) -> dict[str, Any]:
    from crmbot.core.db import make_engine, read_session
    from crmbot.core.models import ModelRun
    from crmbot.runs import train
    from crmbot.training.pipeline import StageEvent

    url = args["url"]
    engine = make_engine(url)
    stage_peaks: dict[str, float] = {}
    # CPU seconds (every thread of the process) per stage: on a shared machine the wall
    # clock says as much about the neighbours as about crmbot.
    stage_cpu: dict[str, float] = {}
    stage_cpu_started: dict[str, float] = {}
    can_reset = reset_peak_rss()

    def progress(event: StageEvent) -> None:
        if event.state == "start":
            reset_peak_rss()
            stage_cpu_started[event.step] = time.process_time()
        elif event.state in ("done", "failed"):
            stage_peaks[event.step] = peak_rss_kib() / 1024
            if event.step in stage_cpu_started:
                stage_cpu[event.step] = time.process_time() - stage_cpu_started[event.step]

    started = time.perf_counter()
    cpu_started = time.process_time()
    from crmbot.analytics.source.sql_summary import summary_in_database

    settings = settings_for(url, summary_in_database=args.get("summary_in_database", "auto"))
    in_database = summary_in_database(engine, settings.summary_in_database)
    result = train(engine, settings, date.fromisoformat(args["as_of"]), progress=progress)
    seconds = time.perf_counter() - started
    stage_cpu["total"] = time.process_time() - cpu_started
    with read_session(engine) as session:
        run = session.get(ModelRun, result.run_id)
        stored_timings = dict(run.timings or {}) if run is not None else {}
    engine.dispose()
    peak_total = max(stage_peaks.values(), default=peak_rss_kib() / 1024)
    return {
        "status": result.status,
        "error": result.error,
        "summaries": "database" if in_database else "pandas over every order",
        "seconds": seconds,
        "timings": stored_timings,
        "stage_peak_rss_mib": stage_peaks if can_reset else {},
        "stage_cpu_seconds": stage_cpu,
        "peak_rss_mib": peak_total,
        "row_counts": result.row_counts,
        "clv_params": result.params.get("clv"),
    }


def child_summary(args: dict[str, Any]) -> dict[str, Any]:
    """The BG/NBD summary from the database (SQL), saved for the fits."""
    import numpy as np

    from crmbot.analytics.source.sql_summary import sql_customer_summary
    from crmbot.core.db import make_engine

    engine = make_engine(args["url"])
    started = time.perf_counter()
    summary = sql_customer_summary(engine, date.fromisoformat(args["as_of"]))
    sql_seconds = time.perf_counter() - started
    engine.dispose()
    buyers = summary[summary["frequency"] > 0]
    np.savez(
        args["npz"],
        x=buyers["repeat_purchases"].to_numpy(dtype=float),
        t_x=buyers["t_x_days"].to_numpy(dtype=float),
        T=buyers["age_days"].to_numpy(dtype=float),
    )
    result: dict[str, Any] = {
        "sql_summary_seconds": sql_seconds,
        "customers": len(summary),
        "buyers": len(buyers),
        "peak_rss_mib": peak_rss_kib() / 1024,
    }
    if args.get("compare_pandas"):
        from crmbot.analytics.base import load_training_data
        from crmbot.analytics.source.pandas_summary import customer_summary

        engine = make_engine(args["url"])
        started = time.perf_counter()
        data = load_training_data(engine, date.fromisoformat(args["as_of"]))
        loaded = time.perf_counter() - started
        pandas_summary = customer_summary(data)
        result["pandas_load_seconds"] = loaded
        result["pandas_summary_seconds"] = time.perf_counter() - started
        engine.dispose()
        del data
        import pandas as pd

        pd.testing.assert_frame_equal(
            summary, pandas_summary.sort_index(), check_dtype=False, rtol=1e-9, atol=1e-9
        )
        result["equal_to_pandas"] = True
    return result


def child_fit(args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    data = np.load(args["npz"])
    x, t_x, T = data["x"], data["t_x"], data["T"]
    if args["which"] == "crmbot":
        from crmbot.analytics.clv import fit_bgnbd

        started = time.perf_counter()
        params = fit_bgnbd(x, t_x, T)
        seconds = time.perf_counter() - started
        fitted = {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b}
        extra = {"log_likelihood": params.log_likelihood, "distinct_rows": params.distinct_rows}
    else:
        import warnings

        from lifetimes import BetaGeoFitter
        from lifetimes import __version__ as lifetimes_version

        fitter = BetaGeoFitter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            fitter.fit(x, t_x, T)
            seconds = time.perf_counter() - started
        fitted = {k: float(v) for k, v in fitter.params_.items()}
        extra = {"version": lifetimes_version}
    return {"seconds": seconds, "params": fitted, "customers": len(x), **extra}
