"""BG/NBD fit time: crmbot's beside the `lifetimes` package's BetaGeoFitter.

    python -m benchmarks.clv_bench --customers 100000,1000000 [--repeat 3] [--json out.json]

Data: per-customer (x, t_x, T) in whole days drawn from BG/NBD with the CDNOW parameters
(Fader, Hardie & Lee 2005; alpha converted to days), first purchases spread over four
years — the summary crmbot's training fits. Both fitters get the same arrays; the fitted
parameters are printed side by side. lifetimes is optional (`pip install lifetimes`, the
"bench" extra); without it only crmbot is timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np

from crmbot.analytics.clv import BgNbdParams, fit_bgnbd, simulate_bgnbd

TRUTH = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)


def summary(customers: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = rng.integers(30, 1460, customers).astype(float)
    x, t_x = simulate_bgnbd(TRUTH, T, rng)
    # Whole days, as training counts them: a repeat purchase is at least a day after the first.
    t_x = np.where(x > 0, np.clip(np.ceil(t_x), 1, T), 0.0)
    return x, t_x, T


def timed(function: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--no-lifetimes", action="store_true")
    args = parser.parse_args()

    try:
        if args.no_lifetimes:
            raise ImportError
        from lifetimes import BetaGeoFitter
    except ImportError:
        BetaGeoFitter = None  # noqa: N806

    results = []
    for size in (int(s) for s in args.customers.split(",")):
        x, t_x, T = summary(size, args.seed)
        ours_seconds, ours = timed(lambda x=x, t_x=t_x, T=T: fit_bgnbd(x, t_x, T), args.repeat)
        row: dict[str, Any] = {
            "customers": size,
            "distinct_rows": ours.distinct_rows,
            "crmbot_seconds": round(ours_seconds, 3),
            "crmbot_params": {k: getattr(ours, k) for k in ("r", "alpha", "a", "b")},
        }
        if BetaGeoFitter is not None:

            def fit_lifetimes(x=x, t_x=t_x, T=T) -> Any:
                return BetaGeoFitter().fit(x, t_x, T)

            theirs_seconds, theirs = timed(
                fit_lifetimes, max(1, args.repeat if size <= 100_000 else 1)
            )
            row["lifetimes_seconds"] = round(theirs_seconds, 3)
            row["lifetimes_params"] = {k: float(v) for k, v in theirs.params_.items()}
            row["speedup"] = round(theirs_seconds / ours_seconds, 2)
            row["max_relative_param_difference"] = max(
                abs(row["crmbot_params"][k] - row["lifetimes_params"][k])
                / abs(row["lifetimes_params"][k])
                for k in ("r", "alpha", "a", "b")
            )
        results.append(row)
        print(
            f"{size:>9,} customers ({ours.distinct_rows:,} distinct rows): crmbot "
            f"{ours_seconds:.2f}s"
            + (
                f", lifetimes {row['lifetimes_seconds']:.2f}s ({row['speedup']}x); params "
                f"differ by at most {row['max_relative_param_difference']:.1e} (relative)"
                if "lifetimes_seconds" in row
                else ", lifetimes not installed"
            )
        )
        for name in ("crmbot_params", "lifetimes_params"):
            if name in row:
                params = ", ".join(f"{k}={v:.5g}" for k, v in row[name].items())
                print(f"    {name.split('_')[0]:<9} {params}")
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
