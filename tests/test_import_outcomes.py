"""What an import says is what it did: its counts when two imports run at once, and its
exit status when the report cannot be written (`1` means nothing was imported)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection, Engine
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.config import get_settings
from crmbot.core.db import DatabaseUnavailable, make_engine
from crmbot.core.models import Customer
from crmbot.ingest import ImportReport, ReportUnwritable, import_file, importer, writer
from crmbot.ingest.report import ImportReport as ReportClass

ROWS = 60


def customers_file(path: Path, name_prefix: str) -> Path:
    lines = ["customer_id,name,region"]
    lines += [f"C{i:03d},{name_prefix} {i},EMEA" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def count_customers(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Customer)).scalar_one())


# -- two imports at once ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("second_names", "second_outcome"),
    [("Same", "unchanged"), ("Other", "updated")],
    ids=["the same file twice", "two files with the same ids"],
)
def test_two_imports_at_once_count_each_row_once(
    storage_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    second_names: str,
    second_outcome: str,
) -> None:
    """Both imports are held at the point where each compares its rows with what is stored,
    until the other arrives there too (or 3 s pass): without the import lock both compared
    with an empty table, and both said "60 inserted"."""
    first = customers_file(tmp_path / "first.csv", "Same")
    second = customers_file(tmp_path / "second.csv", second_names)
    meeting = threading.Barrier(2, timeout=3)
    is_empty = writer.is_empty

    def compare_together(connection: Connection, table: Table) -> bool:
        if table.name == "customer":
            # Broken: the other import is waiting for this one to finish.
            with contextlib.suppress(threading.BrokenBarrierError):
                meeting.wait()
        return is_empty(connection, table)

    monkeypatch.setattr(writer, "is_empty", compare_together)
    reports: dict[str, ImportReport] = {}

    def run(path: Path) -> None:
        reports[path.stem] = import_file(storage_engine, "customers", path)

    threads = [threading.Thread(target=run, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(reports) == ["first", "second"]
    outcomes = sorted((r.inserted, r.updated, r.unchanged) for r in reports.values() if r.committed)
    expected = {"unchanged": (0, 0, ROWS), "updated": (0, ROWS, 0)}[second_outcome]
    assert len(outcomes) == 2
    assert outcomes == sorted([(ROWS, 0, 0), expected])
    assert count_customers(storage_engine) == ROWS


def test_the_import_lock_is_released_and_waits_have_an_end(storage_engine: Engine) -> None:
    """The lock goes with the block (also when it raises), and a second holder waiting too
    long is told so instead of waiting for ever."""
    with pytest.raises(RuntimeError, match="inside"), writer.import_lock(storage_engine):
        raise RuntimeError("inside")
    with writer.import_lock(storage_engine):
        pass
    if storage_engine.dialect.name == "sqlite":
        return  # BEGIN IMMEDIATE is SQLite's lock; there is nothing to wait for here
    with (
        writer.import_lock(storage_engine),
        pytest.raises(writer.ImportLockTimeout, match="another import"),
        writer.import_lock(storage_engine, wait_seconds=0.3),
    ):
        pass


# -- the report file -----------------------------------------------------------------------

Run = Callable[..., Result]


@pytest.fixture
def crmbot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Run `crmbot ARGS` against a fresh SQLite file, as a user would from a shell."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'crm.db'}")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def unwritable(tmp_path: Path, where: str) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    return {
        "in a folder that does not exist": tmp_path / "no" / "such" / "report.csv",
        "a folder": tmp_path,
        "under a file": blocker / "report.csv",
    }[where]


WHERE = ["in a folder that does not exist", "a folder", "under a file"]


@pytest.mark.parametrize("where", WHERE)
def test_an_unwritable_report_path_imports_nothing_and_says_so(
    crmbot: Run, tmp_path: Path, where: str
) -> None:
    data = customers_file(tmp_path / "customers.csv", "Ann")
    report = unwritable(tmp_path, where)
    result = crmbot("import", "customers", str(data), "--report", str(report))
    assert result.exit_code == 1, result.output
    # Exit 1 means nothing was imported: so it must be.
    assert count_customers(make_engine(f"sqlite:///{tmp_path / 'crm.db'}")) == 0
    assert "cannot write the report to" in result.output
    assert "nothing was imported" in result.output
    assert not isinstance(result.exception, OSError)  # said, not a traceback
    # Given a path it can write, the same import goes in.
    ok = crmbot("import", "customers", str(data), "--report", "report.csv")
    assert ok.exit_code == 0, ok.output
    assert f"{ROWS} inserted" in ok.output and "full report: report.csv" in ok.output
    assert (tmp_path / "report.csv").read_text().splitlines() == ["line,column,reason,value"]


@pytest.mark.parametrize("where", WHERE)
def test_import_file_checks_the_report_path_before_it_writes(
    engine: Engine, tmp_path: Path, where: str
) -> None:
    data = customers_file(tmp_path / "customers.csv", "Ann")
    with pytest.raises(ReportUnwritable, match="cannot write the report to"):
        import_file(engine, "customers", data, report_path=unwritable(tmp_path, where))
    assert count_customers(engine) == 0


def test_an_earlier_report_is_replaced_and_a_failed_import_leaves_no_new_one(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = customers_file(tmp_path / "customers.csv", "Ann")
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("an earlier report, longer than the header of the new one\n" * 5)
    import_file(engine, "customers", data, report_path=earlier)
    assert earlier.read_text().splitlines() == ["line,column,reason,value"]

    def unreachable(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailable("connection refused")

    monkeypatch.setattr(importer, "_import", unreachable)
    fresh = tmp_path / "fresh.csv"
    with pytest.raises(DatabaseUnavailable):
        import_file(engine, "customers", data, report_path=fresh)
    assert not fresh.exists()
    with pytest.raises(DatabaseUnavailable):
        import_file(engine, "customers", data, report_path=earlier)
    assert earlier.read_text().splitlines() == ["line,column,reason,value"]  # as it was


def test_a_report_that_fails_after_the_import_is_a_warning(
    crmbot: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows are in by then: the exit status says how the import went (2: some rows
    rejected), and the report's failure is a warning, not exit 1."""
    data = tmp_path / "customers.csv"
    data.write_text("customer_id,name,email\nC1,Ann,ann@example.com\nC2,Bob,bob@\n")

    def disk_full(self: ReportClass, handle: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ReportClass, "write_to", disk_full)
    result = crmbot("import", "customers", str(data), "--report", "report.csv")
    assert result.exit_code == 2, result.output
    assert "1 inserted" in result.output
    assert "warning: could not write the report to report.csv" in result.output
    assert "full report" not in result.output
    assert count_customers(make_engine(f"sqlite:///{tmp_path / 'crm.db'}")) == 1
