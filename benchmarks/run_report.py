"""The benchmark suite's report: one table per size, each figure beside its target and a
verdict (met, NOT met, n/a), printed with rich or written as markdown."""

from __future__ import annotations

from typing import Any

# The stage names beside the training run's step names.
STAGES = [
    ("load", "load data"),
    ("features", "features"),
    ("segments", "segments"),
    ("clusters", "clusters"),
    ("clv", "CLV"),
    ("satisfaction", "satisfaction"),
    ("churn", "churn"),
    ("graph", "graph"),
    ("recommend", "rules"),
    ("write", "writing scores"),
]

TARGETS = {
    "import_rows_per_second": 200_000,
    "import_vs_executemany": 2.0,
    "train_seconds_1m": 120.0,
    "train_peak_gb_1m": 4.0,
    "train_seconds_100k": 15.0,
    "bgnbd_speedup": 3.0,
    "customer_p99_ms_1m": 10.0,
    "http_p99_ms": 100.0,
}


def same_to_3_sf(first: dict[str, float], second: dict[str, float]) -> bool:
    def sf(value: float) -> str:
        return f"{value:.2e}"

    return all(sf(first[k]) == sf(second[k]) for k in ("r", "alpha", "a", "b"))


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "met" if ok else "NOT met"


Row = tuple[str, str, str, str]


def rows_for(size: dict[str, Any]) -> list[Row]:
    """(measure, figure, target, verdict) rows for one size."""
    return [
        *data_rows(size),
        *import_rows(size),
        *training_rows(size),
        *summary_rows(size),
        *bgnbd_rows(size),
        *bot_rows(size),
    ]


def data_rows(size: dict[str, Any]) -> list[Row]:
    """The company's size, generating it, and the machine reference."""
    rows: list[Row] = []
    counts = size.get("rows", {})
    if counts:
        rows.append(
            (
                "data",
                f"{counts.get('customers', 0):,} customers, {counts.get('orders', 0):,} orders, "
                f"{counts.get('order-lines', 0):,} lines",
                "",
                "",
            )
        )
    gen = size.get("generate", {})
    if "seconds" in gen:
        rows.append(
            ("generate CSVs", f"{gen['seconds']:.1f} s, {gen['peak_rss_mib']:.0f} MiB", "", "")
        )
    reference = size.get("reference", {})
    if "python_ms" in reference:
        rows.append(
            (
                "machine reference (fixed work)",
                f"Python {reference['python_ms']:.0f} ms, numpy {reference['numpy_ms']:.0f} ms, "
                f"SQLite {reference['sqlite_ms']:.0f} ms",
                "",
                "",
            )
        )
    return rows


def import_rows(size: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    imp = size.get("import", {})
    if "error" in imp:
        rows.append(("import", imp["error"], "", "NOT met"))
    elif imp:
        orders = imp["kinds"]["orders"]
        speed = orders["rows_per_second"]
        rows.append(
            (
                "import orders (crmbot import)",
                f"{speed:,.0f} rows/s ({orders['seconds']:.1f} s)",
                f">= {TARGETS['import_rows_per_second']:,} rows/s",
                verdict(speed >= TARGETS["import_rows_per_second"])
                if size["database"] == "sqlite"
                else "",
            )
        )
        base = imp.get("executemany")
        if base:
            ratio = orders["seconds"] / base["seconds"]
            rows.append(
                (
                    "  vs plain sqlite3 executemany",
                    f"{base['rows_per_second']:,.0f} rows/s; ratio {ratio:.2f}x",
                    f"<= {TARGETS['import_vs_executemany']:.0f}x",
                    verdict(ratio <= TARGETS["import_vs_executemany"]),
                )
            )
        total_rows = sum(k["rows"] for k in imp["kinds"].values())
        total_seconds = sum(k["seconds"] for k in imp["kinds"].values())
        rows.append(
            (
                "import all 7 files",
                f"{total_rows:,} rows in {total_seconds:.1f} s "
                f"({total_rows / total_seconds:,.0f}/s)",
                "",
                "",
            )
        )
    return rows


def training_rows(size: dict[str, Any]) -> list[Row]:
    """Seconds, CPU and peak memory per stage, the total against its target, and the
    training loading every order (PostgreSQL)."""
    customers = size["customers"]
    rows: list[Row] = []
    train = size.get("train", {})
    if train and train.get("status") != "succeeded":
        rows.append(("training", str(train.get("error")), "", "NOT met"))
    elif train:
        timings = train.get("timings", {})
        peaks = train.get("stage_peak_rss_mib", {})
        cpu = train.get("stage_cpu_seconds", {})
        for step, name in STAGES:
            if step in timings:
                used = f" (CPU {cpu[step]:.2f} s)" if step in cpu else ""
                peak = f", peak {peaks[step]:,.0f} MiB" if step in peaks else ""
                rows.append((f"  train: {name}", f"{timings[step]:.2f} s{used}{peak}", "", ""))
        seconds = timings.get("total", train["seconds"])
        peak_gb = train["peak_rss_mib"] / 1024
        if customers >= 1_000_000:
            target, ok = (
                f"<= {TARGETS['train_seconds_1m']:.0f} s",
                seconds <= TARGETS["train_seconds_1m"],
            )
        elif customers >= 100_000:
            target, ok = (
                f"<= {TARGETS['train_seconds_100k']:.0f} s",
                seconds <= TARGETS["train_seconds_100k"],
            )
        else:
            target, ok = "", None
        used = f" (CPU {cpu['total']:.1f} s)" if "total" in cpu else ""
        how = f"; summaries: {train['summaries']}" if "summaries" in train else ""
        rows.append(("training total", f"{seconds:.1f} s{used}{how}", target, verdict(ok)))
        rows.append(
            (
                "training peak memory",
                f"{peak_gb:.2f} GB",
                f"<= {TARGETS['train_peak_gb_1m']:.0f} GB" if customers >= 1_000_000 else "",
                verdict(peak_gb <= TARGETS["train_peak_gb_1m"]) if customers >= 1_000_000 else "",
            )
        )
    other = size.get("train_loading_orders", {})
    if "seconds" in other:
        other_seconds = other.get("timings", {}).get("total", other["seconds"])
        rows.append(
            (
                "training, loading every order",
                f"{other_seconds:.1f} s, peak {other['peak_rss_mib'] / 1024:.2f} GB "
                f"({other.get('status') or other.get('error')})",
                "",
                "",
            )
        )
    return rows


def summary_rows(size: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    summary = size.get("summary", {})
    if "sql_summary_seconds" in summary:
        note = f"{summary['sql_summary_seconds']:.2f} s for {summary['customers']:,} customers"
        if "pandas_summary_seconds" in summary:
            pandas_only = summary["pandas_summary_seconds"] - summary["pandas_load_seconds"]
            note += (
                f" (pandas: load {summary['pandas_load_seconds']:.1f} s + summary "
                f"{pandas_only:.1f} s; equal)"
            )
        rows.append(("summary in SQL", note, "", ""))
    return rows


def bgnbd_rows(size: dict[str, Any]) -> list[Row]:
    """crmbot's fit beside lifetimes': seconds, parameters, the speed-up at 1M."""
    customers = size["customers"]
    rows: list[Row] = []
    bgnbd = size.get("bgnbd")
    if bgnbd:
        ours, theirs = bgnbd["crmbot"], bgnbd["lifetimes"]

        def fmt(params: dict[str, float]) -> str:
            return ", ".join(f"{k}={params[k]:.4g}" for k in ("r", "alpha", "a", "b"))

        if "error" in ours:
            rows.append(("BG/NBD crmbot", ours["error"], "", "NOT met"))
        else:
            rows.append(
                ("BG/NBD crmbot", f"{ours['seconds']:.2f} s: {fmt(ours['params'])}", "", "")
            )
        if "error" in theirs:
            rows.append(("BG/NBD lifetimes", theirs["error"], "", ""))
        elif "error" not in ours:
            speedup = theirs["seconds"] / ours["seconds"]
            same = same_to_3_sf(ours["params"], theirs["params"])
            rows.append(
                ("BG/NBD lifetimes", f"{theirs['seconds']:.2f} s: {fmt(theirs['params'])}", "", "")
            )
            at_1m = customers >= 1_000_000
            rows.append(
                (
                    "  speed-up, same params (3 s.f.)",
                    f"{speedup:.1f}x, {'same' if same else 'different'}",
                    f">= {TARGETS['bgnbd_speedup']:.0f}x, same" if at_1m else "",
                    verdict(speedup >= TARGETS["bgnbd_speedup"] and same) if at_1m else "",
                )
            )
    return rows


def bot_rows(size: dict[str, Any]) -> list[Row]:
    """Commands through the Dispatcher, HTTP end to end, digests."""
    customers = size["customers"]
    rows: list[Row] = []
    for name, figures in size.get("commands", {}).items():
        target, ok = "", None
        if name == "customer" and customers >= 1_000_000:
            target = f"p99 <= {TARGETS['customer_p99_ms_1m']:.0f} ms"
            ok = figures["p99_ms"] <= TARGETS["customer_p99_ms_1m"]
        rows.append(
            (
                f"/crm {name} (server side)",
                f"p50 {figures['p50_ms']:.1f} / p95 {figures['p95_ms']:.1f} / "
                f"p99 {figures['p99_ms']:.1f} ms (n={figures['count']})",
                target,
                verdict(ok),
            )
        )
    http = size.get("http")
    if http:
        if "error" in http:
            rows.append(("HTTP end to end", http["error"], "", "NOT met"))
        else:
            ok = http["p99_ms"] <= TARGETS["http_p99_ms"] and http["errors"] == 0
            rows.append(
                (
                    f"HTTP ack, concurrency {http['concurrency']}",
                    f"p50 {http['p50_ms']:.1f} / p99 {http['p99_ms']:.1f} ms, "
                    f"{http['errors']} errors, {http['acks_per_second']:.0f} req/s, "
                    f"{http['answers_delivered']}/{http['requests']} answers delivered",
                    f"p99 <= {TARGETS['http_p99_ms']:.0f} ms, 0 errors",
                    verdict(ok),
                )
            )
    for name, figures in size.get("digests", {}).items():
        rows.append((f"digest: {name}", f"{figures['median_ms']:.1f} ms (median of 5)", "", ""))
    return rows


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for size in results["sizes"]:
        title = f"{size['customers']:,} customers on {size['database']}"
        table = Table(title=title, show_lines=False)
        table.add_column("measure")
        table.add_column("figure")
        table.add_column("target")
        table.add_column("verdict")
        for measure, figure, target, mark in rows_for(size):
            style = "red" if mark == "NOT met" else ("green" if mark == "met" else None)
            table.add_row(measure, figure, target, mark, style=style)
        console.print(table)


def markdown_table(results: dict[str, Any]) -> str:
    lines = []
    for size in results["sizes"]:
        lines.append(f"\n**{size['customers']:,} customers, {size['database']}**\n")
        lines.append("| measure | figure | target | verdict |")
        lines.append("|---|---|---|---|")
        for row in rows_for(size):
            lines.append("| " + " | ".join(cell.strip() or " " for cell in row) + " |")
    return "\n".join(lines) + "\n"
