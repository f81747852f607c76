"""`crmbot train`, `crmbot model show|list|activate|pin|unpin|prune|backtest` and
`crmbot scores export`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from crmbot import queries, runs
from crmbot.cli import common
from crmbot.core.db import DatabaseUnavailable, read_session
from crmbot.core.models import ModelRun, Unreadable
from crmbot.reply import format as fmt

# The stages whose parameters and metrics `model show` explains itself; any other stage's
# numbers are listed as they are.
OWN_SECTIONS = ("features", "segments", "clusters", "clv", "churn", "recommend", "backtest")


model_app = typer.Typer(
    help="Inspect and switch model runs; pin the ones to keep.", no_args_is_help=True
)
scores_app = typer.Typer(help="Export the active run's scores.", no_args_is_help=True)


def train(
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="Train on data up to this day (YYYY-MM-DD); later rows are never read. "
        "Default: today.",
        show_default=False,
    ),
    force: bool = typer.Option(
        False, "--force", help="Activate the new run even if it scores worse than the live one."
    ),
) -> None:
    """Fit every model as of a day and make the new run live (one transaction)."""
    day = common.parse_day(as_of)
    engine = common.engine()
    result = _train(engine, day, force)
    _print_result(result)
    if result.status == "failed":
        raise typer.Exit(1)
    if result.status == "rejected":
        raise typer.Exit(2)


@model_app.command("show")
def show(
    run: int = typer.Argument(None, help="A run id (default: the active run).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a model run: segments, clusters, CLV parameters and every model's metrics."""
    engine = common.engine()
    with _reading(engine) as session:
        active_id = runs.active_run_id(session=session)
        # By id, not `active_run`: a live run that cannot serve is still shown.
        shown = active_id if run is None else run
        model_run = None if shown is None else runs.get_run(session=session, run_id=shown)
    if model_run is None:
        if run is None:
            raise common.fail("no model is active yet; run `crmbot train` first")
        raise common.fail(f"there is no model run {run}; see `crmbot model list`")
    document = run_document(model_run, active=model_run.id == active_id)
    if as_json:
        typer.echo(json.dumps(document, indent=2, sort_keys=False, default=str))
        return
    _print_run(document)


@model_app.command("list")
def list_runs(
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs, newest first."),
) -> None:
    """List model runs, newest first; the active one and pinned ones are marked."""
    engine = common.engine()
    with _reading(engine) as session:
        listed = runs.list_runs(session=session, limit=limit)
        active_id = runs.active_run_id(session=session)
    if not listed:
        common.console.print("No model runs yet; run `crmbot train`.")
        return
    table = Table(title="Model runs", title_justify="left")
    for column in ("run", "as of", "status", "started (UTC)", "took", "customers", "note"):
        table.add_column(column, justify="right" if column in ("run", "customers") else "left")
    for model_run in listed:
        flags = [
            name
            for name, on in (
                ("active", model_run.id == active_id),
                ("pinned", model_run.pinned),
            )
            if on
        ]
        marker = f" ({', '.join(flags)})" if flags else ""
        table.add_row(
            str(model_run.id),
            str(model_run.as_of),  # the ISO date, or "unreadable"
            f"{model_run.status}{marker}",
            f"{model_run.started_at:%Y-%m-%d %H:%M}",
            _took(model_run),
            _customers(model_run),
            fmt.clip(_note(model_run), 70),
        )
    common.console.print(table)


@model_app.command("activate")
def activate(run: int = typer.Argument(..., help="The run id to make live.")) -> None:
    """Make an earlier (or a rejected) run the live one, e.g. to roll back."""
    engine = common.engine()
    try:
        model_run = runs.activate(engine, run)
    except runs.RunNotActivatable as exc:
        raise common.fail(str(exc)) from None
    except DatabaseUnavailable as exc:
        raise common.fail(f"{DatabaseUnavailable.user_message}\n({exc})") from None
    common.console.print(
        f"Model run {model_run.id} (as of {model_run.as_of.isoformat()}) is now active.",
        highlight=False,
    )


@model_app.command("pin")
def pin(run: int = typer.Argument(..., help="The run id to keep.")) -> None:
    """Keep a run however old it gets: pruning never deletes a pinned run."""
    _pin(run, pinned=True)


@model_app.command("unpin")
def unpin(run: int = typer.Argument(..., help="The run id to stop keeping.")) -> None:
    """Let pruning delete a run again once it is older than the runs kept."""
    _pin(run, pinned=False)


@model_app.command("prune")
def prune(
    keep: int = typer.Option(
        None,
        "--keep",
        min=0,
        help="Runs to keep besides the live and pinned ones. Default: CRMBOT_RETAIN_RUNS.",
        show_default=False,
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only list the runs that would be deleted."
    ),
) -> None:
    """Delete the model runs retention does not keep, now (a retrain does it too)."""
    from crmbot.runs.retention import prune_exclusively, runs_to_prune

    settings = common.settings()
    count = settings.retain_runs if keep is None else keep
    engine = common.engine()
    if dry_run:
        with _reading(engine) as session:
            doomed = runs_to_prune(session, keep=count, monthly=settings.retain_monthly_runs)
        common.console.print(
            f"Would delete model runs {', '.join(map(str, doomed))} (keeping {count})."
            if doomed
            else f"Nothing to prune (keeping {count} runs besides the live and pinned ones).",
            highlight=False,
        )
        return
    try:
        result = prune_exclusively(
            engine, settings, keep=count, holder=runs.default_holder("crmbot model prune")
        )
    except runs.TrainingInProgress as busy:
        raise common.fail(busy.user_message) from None
    except DatabaseUnavailable as exc:
        raise common.fail(f"{DatabaseUnavailable.user_message}\n({exc})") from None
    if not result.pruned:
        common.console.print(f"Nothing to prune (keeping {count} runs).", highlight=False)
        return
    rows = ", ".join(fmt.count(n, f"{name} row") for name, n in sorted(result.rows_deleted.items()))
    common.console.print(
        f"Pruned {fmt.count(len(result.pruned), 'model run')} "
        f"({', '.join(map(str, result.pruned))}): {rows} deleted in {result.seconds:.1f}s"
        + (
            f"; {fmt.data_size(result.reclaimed_bytes)} given back to the file system."
            if result.reclaimed_bytes
            else "."
        ),
        highlight=False,
        soft_wrap=True,
    )


@model_app.command("backtest")
def backtest(
    run: str = typer.Argument(
        ...,
        help="A run id, or `latest`: the newest run whose whole horizon is in the data.",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Measure a past run against what really happened after its day: churn ROC AUC beside
    recency and BG/NBD, calibration, purchases, each segment's real churn."""
    from crmbot.runs import backtest as backtests

    settings = common.settings()
    engine = common.engine()
    horizon = settings.churn_horizon_days
    with _reading(engine) as session:
        if run == "latest":
            model_run = backtests.latest_with_future(
                session=session,
                latest_order=backtests.latest_order_day(engine),
                default_horizon=horizon,
            )
            if model_run is None:
                raise common.fail(
                    f"no kept run has its whole {horizon}-day horizon in the data yet (see "
                    "`crmbot model list`); retention keeps the newest CRMBOT_RETAIN_RUNS runs, "
                    "so pin one (`crmbot model pin RUN`) to backtest it once its horizon has "
                    "passed"
                )
        else:
            if not run.isdigit():
                raise common.fail(f"RUN is a run id or `latest`, not {run!r}")
            model_run = runs.get_run(session=session, run_id=int(run))
            if model_run is None:
                raise common.fail(f"there is no model run {run}; see `crmbot model list`")
        session.expunge(model_run)
    try:
        document = backtests.kept_backtest(engine, model_run, default_horizon=horizon)
    except backtests.NotBacktestable as exc:
        raise common.fail(str(exc)) from None
    except DatabaseUnavailable as exc:
        raise common.fail(f"{DatabaseUnavailable.user_message}\n({exc})") from None
    if as_json:
        typer.echo(json.dumps(document, indent=2, default=str))
        return
    _print_backtest(document)


def _print_backtest(document: dict[str, Any]) -> None:
    from crmbot.reply import backtest as words

    console = common.console
    future = document["future"]
    window = future["window"]
    console.print(
        f"[bold]Backtest of model run {document['run']}[/bold] (as of {document['as_of']}, "
        f"{document['status']}): the {future['horizon_days']} days after it, to "
        f"{window['until']}; the book's latest order is of {future['latest_order'] or '—'}.",
        highlight=False,
    )
    if not future["complete"]:
        console.print(words.no_future(document), highlight=False)
        return
    churn = document.get("churn") or {}
    console.print(
        f"{fmt.count(document['customers'], 'customer')} known on {document['as_of']}, "
        f"{fmt.number(document['buyers'], 0)} of them had bought.",
        highlight=False,
    )
    console.print(words.said_and_was(document), highlight=False)
    if churn.get("scored"):
        header, rows = words.calibration_rows(churn)
        _print_rows("Calibration: tenths of the customers by churn risk", header, rows)
    header, rows = words.segment_rows(document)
    _print_rows("Churn by segment (real, lowest first)", header, rows)
    for key, what in (("purchases", "the run's purchase model"), ("clv_purchases", "stored")):
        line = words.purchases_line(document.get(key), what)
        if line:
            console.print(line, highlight=False)


def _print_kept_backtest(section: dict[str, Any] | None) -> None:
    """The backtest kept in the run's record (`crmbot model backtest` has the detail)."""
    if not section or not section.get("metrics"):
        return
    from crmbot.reply.backtest import said_and_was

    common.console.print(
        f"Backtest: {said_and_was(section['metrics'])} (`crmbot model backtest "
        f"{section['metrics'].get('run')}` for the detail)",
        highlight=False,
    )


def _print_rows(title: str, header: list[str], rows: list[list[str]]) -> None:
    if not rows:
        return
    table = Table(title=title, title_justify="left")
    for position, column in enumerate(header):
        table.add_column(column, justify="left" if position == 0 else "right")
    for row in rows:
        table.add_row(*row)
    common.console.print(table)


@scores_app.command("export")
def export(
    path: Path = typer.Argument(..., help="The CSV file to write."),
    run: int = typer.Option(
        None, "--run", help="A run id (default: the active run).", show_default=False
    ),
) -> None:
    """Write one CSV row per customer of the active run (every score column)."""
    engine = common.engine()
    with _reading(engine) as session:
        run_id = runs.active_run_id(session=session) if run is None else run
        if run_id is None:
            raise common.fail("no model is active yet; run `crmbot train` first")
        if runs.get_run(session=session, run_id=run_id) is None:
            raise common.fail(f"there is no model run {run_id}; see `crmbot model list`")
        try:
            rows = queries.export_scores(session=session, path=path, run_id=run_id)
        except OSError as exc:
            raise common.fail(f"cannot write {path}: {exc.strerror or exc}") from None
    common.console.print(f"Wrote {rows:,} customers of run {run_id} to {path}.")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.add_typer(scores_app, name="scores")
    app.command("train")(train)


def _pin(run: int, *, pinned: bool) -> None:
    from crmbot.runs.retention import RetentionError, pin_run

    engine = common.engine()
    try:
        changed = pin_run(engine, run, pinned=pinned)
    except RetentionError as exc:
        raise common.fail(str(exc)) from None
    except DatabaseUnavailable as exc:
        raise common.fail(f"{DatabaseUnavailable.user_message}\n({exc})") from None
    if pinned:
        state = "is pinned" if changed else "was already pinned"
        common.console.print(
            f"Model run {run} {state}: pruning keeps it until `crmbot model unpin {run}`.",
            highlight=False,
        )
    else:
        state = "is no longer pinned" if changed else "was not pinned"
        common.console.print(
            f"Model run {run} {state}: pruning deletes it once it is older than the runs kept.",
            highlight=False,
        )


# ---------------------------------------------------------------------------------------
# Training with a progress bar


def _train(engine: Any, day: Any, force: bool) -> Any:
    from crmbot.runs import TrainingInProgress, default_holder, train_exclusively
    from crmbot.training.pipeline import StageEvent

    progress = common.progress_bar()
    with progress:
        task = progress.add_task(f"Training as of {day.isoformat()}", total=None)

        def on_event(event: StageEvent) -> None:
            finished = event.state == "done"
            progress.update(
                task,
                description=f"Training: {event.step}",
                completed=event.index if finished else event.index - 1,
                total=event.total,
            )
            if event.state == "done":
                took = f" {event.seconds:.2f}s" if event.seconds is not None else ""
                progress.console.print(f"  [green]✓[/green] {event.step}{took}", highlight=False)
            elif event.state == "failed":
                progress.console.print(f"  [red]✗[/red] {event.note}", highlight=False)

        try:
            return train_exclusively(
                engine,
                common.settings(),
                holder=default_holder("crmbot train"),
                as_of=day,
                force=force,
                progress=on_event,
            )
        except TrainingInProgress as busy:
            raise common.fail(busy.user_message) from None
        except DatabaseUnavailable as exc:
            raise common.fail(f"{DatabaseUnavailable.user_message}\n({exc})") from None


def _print_result(result: Any) -> None:
    seconds = result.timings.get("total", 0.0)
    if result.status == "succeeded":
        common.console.print(
            f"Model run {result.run_id} as of {result.as_of.isoformat()} is live: "
            f"{result.row_counts.get('scores', 0):,} customers scored in {seconds:.1f}s.",
            highlight=False,
        )
    elif result.status == "rejected":
        common.console.print(
            f"[yellow]Model run {result.run_id} was not activated[/yellow]: "
            f"{result.params['run']['rejected_because']}. "
            "The previous model stays live; `crmbot train --force` or "
            f"`crmbot model activate {result.run_id}` makes it live anyway.",
            highlight=False,
        )
    else:
        common.console.print(
            f"[red]Model run {result.run_id} failed[/red]: {result.error}. "
            "The previous model stays live.",
            highlight=False,
        )


# ---------------------------------------------------------------------------------------
# model show


def run_document(model_run: ModelRun, *, active: bool) -> dict[str, Any]:
    """Everything about a run as plain JSON: run facts, then per model its parameters with
    its metrics under "metrics" (so `clv.bgnbd.r`, `clv.metrics.bgnbd.log_likelihood`).
    What the record holds but cannot be read is "unreadable", and listed under
    `run.unreadable`."""
    params = runs.run_json(model_run, "params")
    metrics = runs.run_json(model_run, "metrics")
    document: dict[str, Any] = {
        "run": {
            "id": model_run.id,
            "as_of": str(model_run.as_of),
            "status": model_run.status,
            "active": active,
            "started_at": _iso(model_run.started_at),
            "finished_at": _iso(model_run.finished_at),
            "activated_at": _iso(model_run.activated_at),
            "forced": model_run.forced,
            "error": model_run.error,
            "unreadable": runs.unreadable_fields(model_run),
        },
        "timings": runs.run_json(model_run, "timings") or {},
        "row_counts": runs.run_json(model_run, "row_counts") or {},
    }
    params, metrics = params or {}, metrics or {}
    for name in [*params, *[m for m in metrics if m not in params]]:
        if name == "run":
            continue
        section = params.get(name) or {}
        section = dict(section) if isinstance(section, dict) else {"unreadable": str(section)}
        section["metrics"] = metrics.get(name, {})
        document[name] = section
    return document


def _iso(value: datetime | None) -> str | None:
    if isinstance(value, Unreadable):
        return str(value)
    return value.isoformat(sep=" ", timespec="seconds") if value else None


def _took(model_run: ModelRun) -> str:
    total = (runs.run_json(model_run, "timings") or {}).get("total")
    return f"{total:.1f}s" if isinstance(total, int | float) else ""


def _customers(model_run: ModelRun) -> str:
    row_counts = runs.run_json(model_run, "row_counts")
    if isinstance(row_counts, Unreadable):
        return "unreadable"
    customers = row_counts.get("scores")
    return f"{customers:,}" if isinstance(customers, int) else ""


def _note(model_run: ModelRun) -> str:
    """The run's error, and what of its record cannot be read."""
    unreadable = runs.unreadable_fields(model_run)
    notes = [f"unreadable: {', '.join(unreadable)}"] if unreadable else []
    return "; ".join([*notes, *([model_run.error] if model_run.error else [])])


def _number(value: Any, digits: int = 4) -> str:
    """A parameter or metric from a run's JSON in plain notation (230,600 · 0.7512), never
    `2.306e+05`; a missing one is `—`, anything else (a flag, a word) as it is."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return fmt.significant(value, digits)
    return str(value)


def _print_run(document: dict[str, Any]) -> None:
    console = common.console
    run = document["run"]
    state = run["status"] + (" (active)" if run["active"] else "")
    total = document["timings"].get("total")
    console.print(
        f"[bold]Model run {run['id']}[/bold] as of {run['as_of']} — {state}; "
        f"{_number(document['row_counts'].get('scores', 0))} customers"
        + (f", trained in {total:.1f}s" if isinstance(total, int | float) else "")
        + (f", finished {run['finished_at']} UTC" if run["finished_at"] else ""),
        highlight=False,
    )
    if run["error"]:
        console.print(f"[yellow]{run['error']}[/yellow]", highlight=False)
    if run["unreadable"]:
        console.print(
            f"[yellow]Unreadable (the record is corrupt): {', '.join(run['unreadable'])}[/yellow]",
            highlight=False,
        )
    for name, show in (
        ("segments", _print_segments),
        ("clusters", _print_clusters),
        ("clv", _print_clv),
        ("churn", _print_churn),
        ("recommend", _print_rules),
        ("backtest", _print_kept_backtest),
    ):
        _print_section(name, show, document.get(name))
    for name, section in document.items():
        if name in ("run", "timings", "row_counts", *OWN_SECTIONS) or not isinstance(section, dict):
            continue
        _print_section(name, lambda section, name=name: _print_generic(name, section), section)
    timings = document["timings"]
    if timings:
        console.print(
            "Timings: "
            + ", ".join(f"{step} {_seconds(value)}s" for step, value in timings.items()),
            highlight=False,
        )


def _seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else str(value)


def _print_section(name: str, show: Any, section: Any) -> None:
    """One model's section; a section whose stored shape is not what it should be (a
    corrupt record) is said to be unreadable rather than ending the whole command."""
    try:
        show(section)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        common.console.print(f"{name}: unreadable (the record is corrupt)", highlight=False)


def _print_segments(section: dict[str, Any] | None) -> None:
    if not section:
        return
    from crmbot.analytics.segments import SEGMENT_MEANINGS

    sizes = (section.get("metrics") or {}).get("sizes", {})
    total = sum(sizes.values()) or 1
    table = Table(title="Segments (RFM)", title_justify="left")
    for column in ("segment", "customers", "share", "meaning"):
        table.add_column(column, justify="right" if column in ("customers", "share") else "left")
    for name, size in sizes.items():
        table.add_row(
            name, f"{size:,}", f"{100 * size / total:.1f}%", SEGMENT_MEANINGS.get(name, "")
        )
    common.console.print(table)
    migration = (section.get("metrics") or {}).get("migration") or {}
    if migration.get("compared"):
        moves = ", ".join(
            f"{m['from']} → {m['to']} {m['customers']:,}" for m in migration["top_moves"][:5]
        )
        common.console.print(
            f"Since the previous run {migration['moved']:,} of {migration['compared']:,} "
            f"customers changed segment" + (f" (largest: {moves})" if moves else "") + ".",
            highlight=False,
        )


def _print_clusters(section: dict[str, Any] | None) -> None:
    if not section or not section.get("clusters"):
        return
    metrics = section.get("metrics") or {}
    silhouette = metrics.get("silhouette")
    title = f"Behavioural clusters (k = {metrics.get('k')}"
    title += f", silhouette {silhouette:.3f})" if silhouette is not None else ")"
    table = Table(title=title, title_justify="left")
    for column in (
        "#",
        "description",
        "customers",
        "days since last",
        "purchase days",
        "spend / day",
        "tenure days",
    ):
        table.add_column(column, justify="left" if column == "description" else "right")
    for cluster in section["clusters"]:
        table.add_row(
            str(cluster["cluster"]),
            cluster["label"],
            f"{cluster['size']:,}",
            _number(cluster.get("median_recency_days")),
            _number(cluster.get("median_frequency")),
            _number(cluster.get("median_spend_per_day")),
            _number(cluster.get("median_tenure_days")),
        )
    common.console.print(table)


def _print_clv(section: dict[str, Any] | None) -> None:
    if not section or "bgnbd" not in section:
        return
    metrics = section.get("metrics") or {}
    bg, gg = section["bgnbd"], section["gamma_gamma"]
    table = Table(
        title=(
            f"CLV: {section.get('horizon_months')} months, margin "
            f"{_number(section.get('margin'))}, monthly discount "
            f"{_number(section.get('monthly_discount_rate'))}"
        ),
        title_justify="left",
    )
    table.add_column("model")
    table.add_column("parameters")
    table.add_column("fit")
    bg_metrics = metrics.get("bgnbd") or {}
    gg_metrics = metrics.get("gamma_gamma") or {}
    purchase_model = metrics.get("purchase_model") or {}
    fell_back = purchase_model.get("model") == "MBG/NBD" and "mbgnbd" in section
    table.add_row(
        "BG/NBD (purchases)" + (" — at its limit, not used" if fell_back else ""),
        f"r={_number(bg['r'])} alpha={_number(bg['alpha'])} a={_number(bg['a'])} "
        f"b={_number(bg['b'])} ({bg['time_unit']})",
        f"LL {_number(bg_metrics.get('log_likelihood'), 8)}, "
        f"{_number(bg_metrics.get('customers'))} customers",
    )
    if fell_back:
        mbg, mbg_metrics = section["mbgnbd"], purchase_model.get("mbgnbd") or {}
        table.add_row(
            "MBG/NBD (purchases, used)",
            f"r={_number(mbg['r'])} alpha={_number(mbg['alpha'])} a={_number(mbg['a'])} "
            f"b={_number(mbg['b'])} ({mbg['time_unit']})",
            f"LL {_number(mbg_metrics.get('log_likelihood'), 8)}",
        )
    table.add_row(
        "Gamma-Gamma (spend)",
        f"p={_number(gg['p'])} q={_number(gg['q'])} gamma={_number(gg['gamma'])}",
        f"LL {_number(gg_metrics.get('log_likelihood'), 8)}, "
        f"{_number(gg_metrics.get('customers'))} repeat customers",
    )
    common.console.print(table)
    holdout = bg_metrics.get("holdout") or {}
    flag = _purchase_model_flag(metrics)
    lines = [f"[yellow]{flag}[/yellow]"] if flag else []
    lines += [
        f"Total CLV {_number(metrics.get('total_clv'))}, mean {_number(metrics.get('mean_clv'))}"
        f" per buying customer; median P(alive) {_number(metrics.get('median_p_alive'))}; "
        f"mean spend per purchase {_number(gg_metrics.get('mean_spend_per_purchase'))}."
    ]
    if "mae" in holdout:
        lines.append(
            f"Holdout (last {holdout['holdout_days']} days, fitted without them): predicted "
            f"{_number(holdout['predicted_purchases'])} purchase days, actual "
            f"{_number(holdout['actual_purchases'])}; MAE {_number(holdout['mae'])} per "
            f"customer, correlation {_number(holdout.get('correlation'))}."
        )
    elif holdout.get("note"):
        lines.append(f"Holdout: {holdout['note']}.")
    common.console.print("\n".join(lines), highlight=False)


def _purchase_model_flag(clv_metrics: dict[str, Any]) -> str:
    """What to say when BG/NBD's fit ran to its limit: which model took over, or that
    dropout could not be estimated (also for runs from before the fallback existed)."""
    recorded = clv_metrics.get("purchase_model") or {}
    if recorded.get("note"):
        return f"Purchase model: {recorded['note']}."
    limits = (clv_metrics.get("bgnbd") or {}).get("at_limit") or []
    if not recorded and "a->0" in limits:
        return (
            "Purchase model: BG/NBD's fit ran to its limit (a->0), where nobody ever drops "
            "out: its P(alive) and CLV are not estimates (a run trained before the fallback)."
        )
    return ""


def _print_churn(section: dict[str, Any] | None) -> None:
    """The chosen churn model beside the other candidate, both baselines and the base rate."""
    if not section:
        return
    from crmbot.analytics.churn import comparison

    metrics = section.get("metrics") or {}
    console = common.console
    if not metrics.get("trained"):
        console.print(f"Churn: no model — {metrics.get('note', 'not trained')}", highlight=False)
        return
    validation = metrics.get("validation") or {}
    training = metrics.get("training") or {}
    calibration = section.get("calibration") or {}
    header, rows = comparison(metrics)
    table = Table(
        title=(
            f"Churn risk: no purchase within {section.get('horizon_days')} days — validated on "
            f"{_number(validation.get('customers'))} customers as of {validation.get('cutoff')} "
            f"({_number(validation.get('churned'))} churned)"
        ),
        title_justify="left",
    )
    for position, title in enumerate(header):
        table.add_column(title, justify="left" if position == 0 else "right")
    for row in rows:
        table.add_row(row[0], *[_number(value) for value in row[1:]])
    console.print(table)
    beats = "beats" if metrics.get("beats_baselines") else "does NOT beat"
    console.print(
        f"The model {beats} both baselines on ROC AUC. Trained on "
        f"{_number(training.get('snapshots'))} earlier snapshots "
        f"({_number(training.get('rows'))} rows); probabilities calibrated "
        f"({calibration.get('method')}) on the validation snapshot; "
        f"{_number(metrics.get('scored_customers'))} customers scored, mean risk "
        f"{_number(metrics.get('mean_risk'))}.",
        highlight=False,
    )


RULES_SHOWN = 10


def _print_rules(section: dict[str, Any] | None) -> None:
    """The strongest next-best-product rules, and how often past offers came true."""
    if not section:
        return
    console = common.console
    if section.get("skipped_because"):
        skipped = section["skipped_because"]
        console.print(f"Next best product: no rules — {skipped}", highlight=False)
        return
    rules = section.get("rules") or []
    metrics = section.get("metrics") or {}
    table = Table(
        title=(
            f"Next best product: the strongest of {_number(metrics.get('rules'))} rules "
            f"({_number(metrics.get('customers_with_offers'))} customers get offers)"
        ),
        title_justify="left",
    )
    for title in ("bought", "also buy", "support", "confidence", "lift"):
        table.add_column(title, justify="left" if title in ("bought", "also buy") else "right")
    for rule in rules[:RULES_SHOWN]:
        table.add_row(
            " + ".join(rule["antecedents"]),
            rule["consequent"],
            _number(rule["support"]),
            _number(rule["confidence"]),
            _number(rule["lift"]),
        )
    console.print(table)
    backtest = metrics.get("backtest") or {}
    if backtest and not backtest.get("skipped_because"):
        _print_generic("recommend backtest", {"metrics": backtest})


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list):
        if len(value) <= 6 and all(not isinstance(v, (dict, list)) for v in value):
            out.append((prefix, ", ".join(_number(v) for v in value)))
    else:
        out.append((prefix, _number(value)))


def _print_generic(name: str, section: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = []
    _flatten("", section.get("metrics") or {}, rows)
    if not rows:
        return
    table = Table(title=f"{name}: metrics", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in rows[:25]:
        table.add_row(key, fmt.clip(value, 80))
    common.console.print(table)


# ---------------------------------------------------------------------------------------


@contextmanager
def _reading(engine: Any) -> Iterator[Session]:
    """`read_session` with a database outage turned into a clear exit."""
    try:
        with read_session(engine) as session:
            yield session
    except DatabaseUnavailable as exc:
        raise common.fail(f"{DatabaseUnavailable.user_message}\n({exc})") from None
