"""`crmbot db`, `crmbot import` and `crmbot customers erase` as a user runs them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.config import get_settings
from crmbot.core.db import make_engine
from crmbot.core.models import AuditLog, Customer, Order

Run = Callable[..., Result]


@pytest.fixture
def crmbot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Run `crmbot ARGS` against a fresh SQLite file, as a user would from a shell."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'crm.db'}")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args, input=None: runner.invoke(app, list(args), input=input)
    get_settings.cache_clear()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def head_revision() -> str:
    """The newest migration's revision (each new migration moves it)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from crmbot.core.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_db_upgrade_and_current(crmbot: Run) -> None:
    head = head_revision()
    assert "no schema yet" in crmbot("db", "current").output
    first = crmbot("db", "upgrade")
    assert first.exit_code == 0
    assert first.output.strip() == f"database schema upgraded from revision (empty) to {head}"
    again = crmbot("db", "upgrade")
    assert again.output.strip() == f"database schema is up to date at revision {head}"
    assert crmbot("db", "current").output.strip() == head


def test_import_prints_a_summary_and_writes_the_report(crmbot: Run, tmp_path: Path) -> None:
    customers = write(
        tmp_path, "customers.csv", "Client,Name,E-mail\nC1,Ann,ann@example.com\nC2,Bob,bob@\n"
    )
    result = crmbot(
        "import",
        "customers",
        str(customers),
        "--map",
        "Client=customer_id",
        "--map",
        "E-mail=email",
    )
    assert result.exit_code == 2, result.output  # some rows rejected
    assert "3 rows read" not in result.output
    assert "2 rows read: 1 inserted, 0 updated, 0 unchanged, 1 rejected" in result.output
    assert "not an email address" in result.output
    report = tmp_path / "customers.rejected.csv"
    assert f"full report: {report}" in result.output
    assert report.read_text().splitlines() == [
        "line,column,reason,value",
        "3,email,not an email address,bob@",
    ]

    orders = write(
        tmp_path,
        "orders.csv",
        "order_id,customer_id,ordered_at,amount\nO1,C1,2026-01-05,10\nO2,C9,2026-01-06,20\n",
    )
    strict = crmbot("import", "orders", str(orders), "--strict", "--report", "out.csv")
    assert strict.exit_code == 1
    assert "--strict: nothing was imported" in strict.output
    assert (tmp_path / "out.csv").read_text().count("unknown customer") == 1

    created = crmbot("import", "orders", str(orders), "--create-missing", "--today", "2026-06-30")
    assert created.exit_code == 0, created.output
    assert "2 inserted" in created.output and "created 1 bare customers" in created.output
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with engine.connect() as connection:
        assert connection.execute(select(Order.order_id)).scalars().all() == ["O1", "O2"]
    engine.dispose()


def test_import_refuses_clearly(crmbot: Run, tmp_path: Path) -> None:
    unknown = crmbot("import", "invoices", "x.csv")
    assert unknown.exit_code == 1
    assert "there is no import kind 'invoices'" in unknown.output
    bad_map = crmbot("import", "customers", "x.csv", "--map", "nonsense")
    assert bad_map.exit_code == 1 and "--map needs OLD=NEW" in bad_map.output
    missing = crmbot("import", "customers", "x.csv")
    assert missing.exit_code == 1 and "file rejected: there is no file x.csv" in missing.output
    columns = write(tmp_path, "c.csv", "name\nAnn\n")
    result = crmbot("import", "customers", str(columns))
    assert result.exit_code == 1 and "missing required column: customer_id" in result.output
    assert "Traceback" not in result.output


def test_erase_a_customer(crmbot: Run, tmp_path: Path) -> None:
    customers = write(tmp_path, "customers.csv", "customer_id,name\nC1,Ann Example\n")
    assert crmbot("import", "customers", str(customers)).exit_code == 0
    declined = crmbot("customers", "erase", "C1", input="n\n")
    assert declined.exit_code == 1 and "nothing erased" in declined.output
    erased = crmbot("customers", "erase", "C1", "--by", "UADMIN", input="y\n")
    assert erased.exit_code == 0, erased.output
    assert "erased: customer is now erased-" in erased.output
    unknown = crmbot("customers", "erase", "C404", "--yes")
    assert unknown.exit_code == 1 and "there is no customer 'C404'" in unknown.output
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with engine.connect() as connection:
        assert connection.execute(select(Customer.name)).scalars().all() == [None]
        audit = connection.execute(select(AuditLog.command, AuditLog.user_id)).all()
    engine.dispose()
    assert [tuple(row) for row in audit] == [("erase", "UADMIN")]
