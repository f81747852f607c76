"""`crmbot db upgrade|current|stats|summarise|vacuum`, `crmbot import KIND FILE` and
`crmbot customers erase ID`."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crmbot.cli import common
from crmbot.core.db import (
    DatabaseUnavailable,
    bulk_write_connection,
    current_revision,
    read_session,
    upgrade,
)
from crmbot.core.storage import DatabaseSize, TableSize
from crmbot.ingest import (
    KINDS,
    ImportReport,
    ProgressCallback,
    ReportUnwritable,
    UnknownKind,
    import_file,
)
from crmbot.reply import format as fmt
from crmbot.runs.retention import RunRows

# Files smaller than this import in well under a second: no bar to flash on screen.
PROGRESS_FROM_BYTES = 2_000_000
SHOWN_REJECTIONS = 10

EXIT_PARTIAL = 2  # some rows rejected, the rest imported


db_app = typer.Typer(
    help="The database: upgrade its schema, show its revision, its size, summarise the live "
    "run again, reclaim room.",
    no_args_is_help=True,
)
customers_app = typer.Typer(help="Customer records: erase one.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (Alembic upgrade to head)."""
    engine = common.engine(migrate=False)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except DatabaseUnavailable as exc:
        common.fail(f"{DatabaseUnavailable.user_message}\n({exc})")
    if before == after:
        common.console.print(f"database schema is up to date at revision {after}")
    else:
        common.console.print(
            f"database schema upgraded from revision {before or '(empty)'} to {after}"
        )


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database (empty: not created yet)."""
    engine = common.engine(migrate=False)
    try:
        revision = current_revision(engine)
    except DatabaseUnavailable as exc:
        common.fail(f"{DatabaseUnavailable.user_message}\n({exc})")
    common.console.print(revision or "(no schema yet; run `crmbot db upgrade`)")


@db_app.command("stats")
def db_stats() -> None:
    """Show rows and bytes per table, and rows per model run."""
    from crmbot.core.storage import database_size, table_sizes
    from crmbot.runs.retention import rows_per_run, runs_to_prune

    engine = common.engine()
    try:
        tables = table_sizes(engine)
        whole = database_size(engine)
        per_run = rows_per_run(engine)
        with read_session(engine) as session:
            settings = common.settings()
            doomed = set(
                runs_to_prune(
                    session, keep=settings.retain_runs, monthly=settings.retain_monthly_runs
                )
            )
    except DatabaseUnavailable as exc:
        common.fail(f"{DatabaseUnavailable.user_message}\n({exc})")
    _print_stats(tables, whole, per_run, doomed)


@db_app.command("summarise")
def db_summarise() -> None:
    """Build the live run's summary again (the cells questions about groups of customers
    are answered from): after customers or scores were changed in the database by hand.
    crmbot's own imports, retrains and erasures keep it up to date."""
    from crmbot.core import run_summary
    from crmbot.runs import active_run_id

    engine = common.engine()
    try:
        with read_session(engine) as session:
            run_id = active_run_id(session=session)
        if run_id is None:
            common.fail(
                "No model run is live yet, so there is nothing to summarise: run `crmbot train`."
            )
        with bulk_write_connection(engine) as connection:
            cells = run_summary.build(connection, run_id)
            run_summary.keep_only(connection, run_id)
    except DatabaseUnavailable as exc:
        common.fail(f"{DatabaseUnavailable.user_message}\n({exc})")
    common.console.print(
        f"Model run {run_id}'s summary built again: {fmt.count(cells, 'cell')}.", highlight=False
    )


@db_app.command("vacuum")
def db_vacuum() -> None:
    """Reclaim the room deleted rows left: SQLite VACUUM (and auto_vacuum=INCREMENTAL
    from then on), PostgreSQL VACUUM (ANALYZE), MariaDB OPTIMIZE TABLE."""
    from crmbot.core.storage import database_size, vacuum

    engine = common.engine()
    try:
        before = database_size(engine)
        vacuum(engine)
        after = database_size(engine)
    except DatabaseUnavailable as exc:
        common.fail(f"{DatabaseUnavailable.user_message}\n({exc})")
    common.console.print(
        f"Vacuumed: {fmt.data_size(before.bytes)} before, {fmt.data_size(after.bytes)} "
        f"after ({after.note}).",
        highlight=False,
        soft_wrap=True,
    )


def import_command(
    kind: str = typer.Argument(..., help=f"What the file holds: {', '.join(KINDS)}."),
    file: Path = typer.Argument(..., help="The CSV file, with a header line."),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Import nothing if any row is bad (default: import the "
        "good rows, report the bad ones).",
    ),
    create_missing: bool = typer.Option(
        False,
        "--create-missing",
        help="Create bare customers/products for ids no earlier import brought, instead "
        "of rejecting the rows that name them.",
    ),
    mapping: list[str] = typer.Option(
        [],
        "--map",
        metavar="OLD=NEW",
        help="Rename a column of the file to a canonical one, e.g. "
        "--map 'Client ID=customer_id'. Repeat for more.",
    ),
    report: Path = typer.Option(
        None,
        "--report",
        metavar="FILE",
        help="Write every rejected row (line, column, reason, value) to this CSV file. "
        "Default: FILE.rejected.csv beside the input, when anything was rejected.",
        show_default=False,
    ),
    today: str = typer.Option(
        None,
        "--today",
        metavar="YYYY-MM-DD",
        help="Reject dates after this day. Default: today.",
        show_default=False,
    ),
) -> None:
    """Import a CSV file of customers, products, orders, order-lines, tickets, feedback or
    referrals. Exit status: 0 all imported, 2 some rows rejected, 1 nothing imported."""
    column_map = _parse_mapping(mapping)
    day = common.parse_day(today)
    engine = common.engine()
    with _progress_bar(file) as progress:
        try:
            result = import_file(
                engine,
                kind,
                file,
                strict=strict,
                create_missing=create_missing,
                column_map=column_map,
                report_path=report,
                progress=progress,
                today=day,
            )
        except UnknownKind as exc:
            common.fail(str(exc))
        except ReportUnwritable as exc:
            common.fail(f"{exc}; nothing was imported")
        except DatabaseUnavailable as exc:
            common.fail(f"{DatabaseUnavailable.user_message}\n({exc})")
    report_path = Path(result.report_file) if result.report_file else None
    if report is None and (result.rejected or result.file_error):
        report_path = _default_report_path(file)
        try:
            result.write_csv(report_path)
        except OSError as exc:
            common.err_console.print(f"could not write the report to {report_path}: {exc}")
            report_path = None
    _print_report(result, report_path)
    if result.file_error or (strict and result.rejected):
        raise typer.Exit(1)
    if result.rejected:
        raise typer.Exit(EXIT_PARTIAL)


@customers_app.command("erase")
def erase(
    customer_id: str = typer.Argument(..., help="The customer's id (customer_id)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    by: str = typer.Option(
        None,
        "--by",
        help="Who asked for it, for the audit log. Default: your login.",
        show_default=False,
    ),
) -> None:
    """Erase a customer's personal data everywhere (keeps orders for the totals)."""
    from crmbot.core.erasure import CustomerNotFound, erase_customer

    if not yes and not typer.confirm(
        f"Erase the personal data of customer {customer_id}? This cannot be undone."
    ):
        common.fail("nothing erased")
    engine = common.engine()
    requested_by = by or _login()
    try:
        result = erase_customer(engine, customer_id, requested_by=requested_by)
    except CustomerNotFound as exc:
        common.fail(f"{exc}; check the id with `crmbot shell` and `/crm customer ...`")
    except DatabaseUnavailable as exc:
        common.fail(f"{DatabaseUnavailable.user_message}\n({exc})")
    common.console.print(result.summary(), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(customers_app, name="customers")
    app.command("import")(import_command)


def _print_stats(
    tables: list[TableSize], whole: DatabaseSize, per_run: list[RunRows], doomed: set[int]
) -> None:
    console = common.console
    free = f", {fmt.data_size(whole.free_bytes)} of it free" if whole.free_bytes is not None else ""
    console.print(
        f"Database: {fmt.data_size(whole.bytes)}{free} ({whole.note}).",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("table", "rows", "size", title="Tables", title_justify="left")
    for size in tables:
        table.add_row(size.name, f"{size.rows:,}", fmt.data_size(size.bytes))
    console.print(table)
    if not per_run:
        console.print("No model runs yet.")
        return
    names = sorted(per_run[0].rows)
    # A run's share of each run table's bytes, by its share of the rows.
    per_row = {
        size.name: size.bytes / size.rows
        for size in tables
        if size.name in names and size.bytes is not None and size.rows
    }
    runs_table = Table(
        "run",
        "as of",
        "status",
        *names,
        "≈ size",
        "kept",
        title="Rows per model run",
        title_justify="left",
    )
    for run in per_run:
        kept = "live" if run.live else "pinned" if run.pinned else ""
        estimate = (
            fmt.data_size(round(sum(per_row[name] * run.rows[name] for name in per_row)))
            if per_row
            else fmt.MISSING
        )
        runs_table.add_row(
            str(run.run_id),
            run.as_of,
            run.status,
            *[f"{run.rows[name]:,}" for name in names],
            estimate,
            "pruned next" if run.run_id in doomed else kept,
        )
    console.print(runs_table)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            common.fail(
                f"--map needs OLD=NEW (a column of the file = a canonical column), not {pair!r}"
            )
        mapping[old.strip()] = new.strip()
    return mapping


def _default_report_path(file: Path) -> Path:
    return file.with_name(f"{file.stem}.rejected.csv")


@contextmanager
def _progress_bar(file: Path) -> Iterator[ProgressCallback | None]:
    try:
        big = file.stat().st_size >= PROGRESS_FROM_BYTES
    except OSError:
        big = False
    if not big or not common.console.is_terminal:
        yield None
        return
    columns = (
        TextColumn(f"importing {file.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=common.console, transient=True) as bar:
        task = bar.add_task("import", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def _print_report(result: ImportReport, report_path: Path | None) -> None:
    console = common.console
    console.print(result.summary(), highlight=False, soft_wrap=True)
    if result.rejected:
        table = Table("line", "column", "reason", "value", title=None, show_edge=False)
        for rejection in result.rejected[:SHOWN_REJECTIONS]:
            table.add_row(
                str(rejection.line), rejection.column, rejection.reason, rejection.value[:40]
            )
        console.print(table)
        more = len(result.rejected) - SHOWN_REJECTIONS
        if more > 0:
            console.print(f"... and {more} more", highlight=False)
    if report_path is not None:
        console.print(f"full report: {report_path}", highlight=False, soft_wrap=True)
