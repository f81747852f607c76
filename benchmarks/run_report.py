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
    header, rows = training_comparison(results)
    if rows:
        lines.append("\n**Training, every database and size**\n")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in rows:
            lines.append("| " + " | ".join(cell or " " for cell in row) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Every database and size side by side


def _size_label(customers: int) -> str:
    if customers >= 1_000_000 and customers % 1_000_000 == 0:
        return f"{customers // 1_000_000}M"
    if customers >= 1_000 and customers % 1_000 == 0:
        return f"{customers // 1_000}k"
    return f"{customers:,}"


def _stage_cell(seconds: float | None, cpu: float | None, peak: float | None) -> str:
    """Seconds, CPU seconds and peak memory: "12.30 s, CPU 10.10 s, 450 MiB"."""
    parts = []
    if seconds is not None:
        parts.append(f"{seconds:.2f} s")
    if cpu is not None:
        parts.append(f"CPU {cpu:.2f} s")
    if peak is not None:
        parts.append(f"{peak:,.0f} MiB")
    return ", ".join(parts)


def _ratio(later: float | None, earlier: float | None) -> str:
    if later is None or earlier is None or earlier <= 0:
        return ""
    return f"{later / earlier:.2f}x"


def training_comparison(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): each trained size as a column (database, then size ascending), each
    training stage as a row (seconds, CPU seconds, peak memory), then the total, the peak
    and the machine reference; between consecutive sizes of one database, a column of the
    growth ratio (later / earlier) of time and, for the peak row, of memory."""
    trained = [
        size
        for size in results.get("sizes", [])
        if size.get("train", {}).get("status") == "succeeded"
    ]
    trained.sort(key=lambda size: (size["database"], size["customers"]))
    if not trained:
        return [], []
    header = ["stage"]
    columns: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    previous: dict[str, Any] | None = None
    for size in trained:
        same_database = previous is not None and previous["database"] == size["database"]
        label = f"{size['database']} {_size_label(size['customers'])}"
        header.append(label)
        columns.append(("size", size, None))
        if same_database and previous is not None:
            factor = size["customers"] / previous["customers"]
            header.append(f"{label} / {_size_label(previous['customers'])} (customers {factor:g}x)")
            columns.append(("ratio", size, previous))
        previous = size

    def seconds(size: dict[str, Any], step: str) -> float | None:
        train = size["train"]
        value = train.get("timings", {}).get(step)
        if step == "total" and value is None:
            value = train.get("seconds")
        return None if value is None else float(value)

    rows: list[list[str]] = []
    for step, name in [*STAGES, ("total", "training total")]:
        row = [name]
        for kind, size, earlier in columns:
            train = size["train"]
            if kind == "ratio":
                row.append(_ratio(seconds(size, step), seconds(earlier or {}, step)))
                continue
            peak = train.get("peak_rss_mib") if step == "total" else None
            peak = train.get("stage_peak_rss_mib", {}).get(step, peak)
            cpu = train.get("stage_cpu_seconds", {}).get(step)
            row.append(_stage_cell(seconds(size, step), cpu, peak))
        if any(cell for cell in row[1:]):
            rows.append(row)
    peak_row, reference_row = ["training peak memory"], ["machine reference (fixed work)"]
    for kind, size, earlier in columns:
        if kind == "ratio":
            assert earlier is not None
            peak_row.append(_ratio(size["train"]["peak_rss_mib"], earlier["train"]["peak_rss_mib"]))
            reference_row.append("")
            continue
        peak_row.append(f"{size['train']['peak_rss_mib']:,.0f} MiB")
        ref = size.get("reference", {})
        reference_row.append(
            f"Python {ref['python_ms']:.0f} ms, numpy {ref['numpy_ms']:.0f} ms, "
            f"SQLite {ref['sqlite_ms']:.0f} ms"
            if "python_ms" in ref
            else ""
        )
    rows.extend([peak_row, reference_row])
    return header, rows


def print_training_comparison(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = training_comparison(results)
    if not rows:
        return
    table = Table(title="Training, every database and size", show_lines=False)
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    Console(width=max(160, 40 * len(header))).print(table)
