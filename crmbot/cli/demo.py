"""`crmbot demo`: generate the sample company, import it, train, and open the chat shell."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    TaskID,
)
from rich.table import Table
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from crmbot import runs
from crmbot.cli import common
from crmbot.core.config import Settings
from crmbot.core.db import DatabaseUnavailable, connect, make_engine, shown_url
from crmbot.core.models import Customer, Feedback, ModelRun, Order, Ticket
from crmbot.demo import FILES, DemoTruth, generate_company, load_demo
from crmbot.demo.touches import past_run_day, plant_touches
from crmbot.ingest import ImportReport

# Tables whose natural ids tell whether a database holds only this sample company.
_ID_CHECKS: list[tuple[str, Any]] = [
    ("customers", Customer.customer_id),
    ("orders", Order.order_id),
    ("tickets", Ticket.ticket_id),
    ("feedback", Feedback.feedback_id),
]


@dataclass
class Timings:
    steps: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, started: float) -> None:
        self.steps[name] = time.perf_counter() - started


def demo(
    customers: int = typer.Option(
        3000, "--customers", min=10, help="How many customers the sample company has."
    ),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed, the same company."),
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="The company's last day (YYYY-MM-DD); it has two years of history before it. "
        "Default: today.",
        show_default=False,
    ),
    directory: Path = typer.Option(
        Path("crmbot-demo"), "--dir", help="Where the CSV files are written."
    ),
    database_url: str = typer.Option(
        None,
        "--database-url",
        help="Database to load into. Default: DATABASE_URL (sqlite:///crmbot.db).",
        show_default=False,
    ),
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help="Empty the database first (drops and re-creates crmbot's tables).",
    ),
    train: bool = typer.Option(True, "--train/--no-train", help="Train the models after loading."),
    no_shell: bool = typer.Option(False, "--no-shell", help="Stop after loading and training."),
    user: str = typer.Option("shell", "--user", help="Whom the chat shell acts as."),
) -> None:
    """Generate a sample company, import it, train the models and open the chat shell.

    Re-running is safe: imports are idempotent, so the same company loads as "unchanged".

    Piped input goes to the shell: echo "/crm help" | crmbot demo
    """
    day = common.parse_day(as_of)
    # The import table below says what each file did; the per-file log lines repeat it.
    logging.getLogger("crmbot.ingest").setLevel(logging.WARNING)
    settings = common.settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    timings = Timings()
    console = common.console

    with common.progress_bar() as progress:
        started = time.perf_counter()
        task = progress.add_task(f"Generating {customers:,} customers", total=None)
        truth = generate_company(directory, customers=customers, seed=seed, as_of=day)
        progress.remove_task(task)
        timings.measure("generate", started)
    console.print(
        f"Generated the sample company ({customers:,} customers, seed {seed}, "
        f"two years up to {day.isoformat()}) in {directory}/ "
        f"[dim]({timings.steps['generate']:.1f}s)[/dim]",
        highlight=False,
    )

    engine = _open(settings.database_url, fresh=fresh)
    _check_not_foreign(engine, directory, settings.database_url)
    already = _customer_count(engine)
    if already:
        console.print(
            f"The database already holds this sample company ({already:,} customers): "
            "importing again only adds or changes what differs — imports are idempotent.",
            highlight=False,
        )

    started = time.perf_counter()
    reports = _import(engine, directory)
    timings.measure("import", started)
    _print_imports(reports, timings.steps["import"])
    if any(r.updated for r in reports.values()):
        console.print(
            "[yellow]note:[/yellow] some rows were updated in place (a different sample "
            "company was loaded before); use --fresh for a clean copy.",
            highlight=False,
        )
    if any(not r.ok for r in reports.values()):
        raise common.fail("the sample company did not import cleanly (see the rejections above)")

    if train:
        started = time.perf_counter()
        # First the run of three months ago, whose at-risk list the account managers
        # worked: its whole horizon is in the data, so `/crm model` can say what came of
        # the touches. Then today's run, live whatever the comparison with it says.
        _plant(engine, directory, _past_run(engine, settings, past_run_day(day)))
        _train(engine, settings, day, force=True)
        timings.measure("train", started)
    else:
        _plant(engine, directory, None)
    _print_summary(truth, timings)

    hub = truth.hub_customer_ids[0] if truth.hub_customer_ids else "123"
    console.print(
        f"Try: /crm at-risk · /crm influencers · /crm customer {hub} · "
        "/crm ask customers of @maria with no order in 60 days",
        highlight=False,
    )
    if no_shell:
        shell = "crmbot shell"
        if database_url:
            # Never the password: the line may end up in a terminal log or a screenshot.
            shell = f"DATABASE_URL={shown_url(database_url)} crmbot shell"
        console.print(f"Next: [bold]{shell}[/bold] and type /crm help", highlight=False)
        return
    from crmbot.chat.dispatch import Dispatcher
    from crmbot.shell.repl import run_shell

    run_shell(Dispatcher(engine, settings), user_id=user)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _open(url: str, *, fresh: bool) -> Engine:
    """The database with its schema up to date (emptied first with --fresh), or a clear exit."""
    try:
        if fresh:
            _empty(make_engine(url))
            common.console.print(f"Emptied {shown_url(url)} (--fresh).", highlight=False)
        return connect(url)
    except DatabaseUnavailable as exc:
        message = common.without_password(str(exc), url)
        raise common.fail(f"{DatabaseUnavailable.user_message}\n({message})") from None
    except Exception as exc:  # a bad URL, a missing driver, an unreachable server
        message = common.without_password(str(exc), url)
        raise common.fail(f"cannot open the database {shown_url(url)}: {message}") from None


def _empty(engine: Engine) -> None:
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def _customer_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Customer)).scalar_one())


def _check_not_foreign(engine: Engine, directory: Path, url: str) -> None:
    """Refuse to mix the sample company into a database holding other data."""
    import pandas as pd

    for kind, column in _ID_CHECKS:
        with engine.connect() as connection:
            stored = set(connection.execute(select(column)).scalars())
        if not stored:
            continue
        ids = pd.read_csv(
            directory / FILES[kind], usecols=[0], dtype=str, keep_default_na=False
        ).iloc[:, 0]
        foreign = stored - set(ids.str.strip())
        if foreign:
            example = sorted(foreign)[0]
            raise common.fail(
                f"{shown_url(url)} already holds {len(foreign):,} {kind} that are not part of "
                f"this sample company (e.g. {example}). Load the demo elsewhere with "
                "--database-url sqlite:///demo.db, or add --fresh to empty this database first."
            )


def _import(engine: Engine, directory: Path) -> dict[str, ImportReport]:
    with common.progress_bar() as progress:
        tasks: dict[str, TaskID] = {}

        def tick(kind: str, done: int, total: int) -> None:
            if kind not in tasks:
                tasks[kind] = progress.add_task(f"Importing {kind}", total=total)
            progress.update(tasks[kind], completed=done, total=total)

        return load_demo(engine, directory, progress=tick)


def _print_imports(reports: dict[str, ImportReport], seconds: float) -> None:
    table = Table(
        title=f"Imported through crmbot's CSV import ({seconds:.1f}s)", title_justify="left"
    )
    for column in ("file", "rows", "inserted", "updated", "unchanged", "rejected"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for kind, report in reports.items():
        table.add_row(
            FILES[kind],
            f"{report.rows_read:,}",
            f"{report.inserted:,}",
            f"{report.updated:,}",
            f"{report.unchanged:,}",
            f"{report.rejected_rows:,}",
        )
    common.console.print(table)
    for report in reports.values():
        if not report.ok:
            common.console.print(report.summary(), highlight=False)
            for rejection in report.rejected[:5]:
                common.console.print(
                    f"  line {rejection.line}, {rejection.column}: {rejection.reason}",
                    highlight=False,
                )


def _past_run(engine: Engine, settings: Settings, day: date) -> int | None:
    """The run as of `day`: the one a previous `crmbot demo` trained, or a new one."""
    with engine.connect() as connection:
        trained = connection.execute(
            select(ModelRun.id)  # type: ignore[call-overload]
            .where(ModelRun.as_of == day, ModelRun.status == "succeeded")
            .order_by(ModelRun.id)
            .limit(1)
        ).scalar_one_or_none()
    if trained is not None:
        return int(trained)
    past = _train(engine, settings, day)
    return past.run_id if past.status == "succeeded" else None


def _plant(engine: Engine, directory: Path, run_id: int | None) -> None:
    planted = plant_touches(engine, directory, run_id=run_id)
    if planted:
        common.console.print(
            f"Logged {planted:,} touches the account managers made (calls, emails, meetings) "
            "and how they went.",
            highlight=False,
        )


def _train(
    engine: Engine, settings: Settings, as_of: date, *, force: bool = False
) -> runs.RunResult:
    with common.progress_bar() as progress:
        task = progress.add_task("Training", total=None)

        def on_stage(event: Any) -> None:
            progress.update(
                task,
                description=f"Training: {event.step}",
                completed=event.index - (0 if event.state == "done" else 1),
                total=event.total,
            )

        result = runs.train(engine, settings, as_of, force=force, progress=on_stage)
    seconds = result.timings.get("total", 0.0)
    if result.status == "succeeded":
        common.console.print(
            f"Trained model run {result.run_id} as of {as_of.isoformat()} in {seconds:.1f}s.",
            highlight=False,
        )
    else:
        common.console.print(
            f"[yellow]Training did not go live[/yellow] (run {result.run_id}, {result.status}): "
            f"{result.error}. The data is loaded; fix the cause and run `crmbot train`.",
            highlight=False,
        )
    return result


def _print_summary(truth: DemoTruth, timings: Timings) -> None:
    counts = truth.row_counts
    times = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.steps.items())
    total = sum(timings.steps.values())
    common.console.print(
        f"Sample company ready: {counts['customers']:,} customers, {counts['orders']:,} orders, "
        f"{counts['tickets']:,} tickets, {counts['feedback']:,} survey answers, "
        f"{counts['referrals']:,} referrals — {times}; total {total:.1f}s.",
        highlight=False,
    )
