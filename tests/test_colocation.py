"""Every statement training and the read side send to PostgreSQL would run on a distributed
PostgreSQL (Citus) with orders, tickets, scores and the rest sharded by customer: joins of
sharded tables meet on the customer key, windows partition by it, and the per-customer
summary groups by it (docs/scaling.md says why each rule matters).

The distribution plan is read from docs/scaling.md's table ("## The tables"), so the page
and this test cannot drift apart: a new table must be placed there before this passes.

The statements are the real ones: a small company is trained on PostgreSQL with the
summary in the database (CRMBOT_SUMMARY_IN_DATABASE=always), then read back the way the
commands and `/crm ask` read it, and every SQL text the driver receives is captured with
SQLAlchemy's `before_cursor_execute` event and parsed with sqlglot (its PostgreSQL
dialect and its scopes: each SELECT, derived table and subquery on its own). Skipped when
PostgreSQL (TEST_POSTGRES_URL) does not answer, as the other server tests are.

The checks, per SELECT scope that reads a sharded table:

* join: every sharded source of the scope is tied to the others by `=` between their
  distribution columns (in ON or in WHERE, AND-ed; a derived table counts when it passes a
  distribution column through). Anything else is a join across shards.
* correlated subquery: correlated by `=` between its sharded table's distribution column
  and the outer one's.
* window: PARTITION BY includes the distribution column.
* what the coordinator merges (allowed, reported): GROUP BY or DISTINCT without the
  customer key, an aggregate over every shard, a sort, a window over the whole result.

The per-customer summary (`crmbot.analytics.source.sql_summary`) must merge nothing but a
sort: each of its statements runs whole on every shard.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

import crmbot.core.models  # noqa: F401  (every table in SQLModel.metadata)
from crmbot.core.db import make_engine, read_session, upgrade
from tests.conftest import SERVER_URLS, _admin_engine, isolated_settings
from tests.support.value_data import END, build_company, insert_company

sqlglot = pytest.importorskip("sqlglot", reason="the dev extra installs sqlglot")
from sqlglot import exp  # noqa: E402
from sqlglot.optimizer.scope import Scope, traverse_scope  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCALING_PAGE = ROOT / "docs" / "scaling.md"

# Sharded tables whose distribution column does not exist yet (docs/scaling.md, decisions),
# and the join that would carry it: order lines meet their order by its id today, and
# would meet it by (customer_pk, order id) once they have the column. Such a join is
# reported apart ("pending"), not as a join across shards; any other join of those tables
# is one.
PENDING_JOINS = {frozenset({("order_line", "order_pk"), ("orders", "id")})}
# Statements that are not co-located, by the function that sends them, and why; each goes
# once its reason does (the test fails when one no longer sends such a statement).
NOT_CO_LOCATED_YET = {
    "crmbot.queries.vocabulary.distinct_values": (
        "the names' loose index scan is a recursive CTE, which Citus runs on one shard only"
    ),
    "crmbot.ask.execute._Runner.referrals": (
        "a referral is sharded with the referred customer; its referrer is on another shard"
    ),
}
KEY_TO_ADD = {"order_line": "customer_pk"}

# --- the plan, from the page --------------------------------------------------------------

PLAN_ROW = re.compile(r"^\|\s*`(\w+)`\s*\|\s*(distributed|reference|local)\s*\|\s*(.*?)\s*\|")


def distribution_plan() -> dict[str, tuple[str, str | None]]:
    """{table: (kind, distribution column)} from the rows of docs/scaling.md's table under
    "## The tables"."""
    section = SCALING_PAGE.read_text(encoding="utf-8").split("\n## The tables", 1)[1]
    section = section.split("\n## ", 1)[0]
    plan: dict[str, tuple[str, str | None]] = {}
    for line in section.splitlines():
        match = PLAN_ROW.match(line)
        if match:
            column = re.match(r"`(\w+)`", match.group(3))
            plan[match.group(1)] = (match.group(2), column.group(1) if column else None)
    return plan


PLAN = distribution_plan()
DISTRIBUTED = {table: column for table, (kind, column) in PLAN.items() if kind == "distributed"}


def test_the_page_places_every_table() -> None:
    tables = set(SQLModel.metadata.tables)
    assert set(PLAN) == tables, (
        f"docs/scaling.md's table of tables misses {sorted(tables - set(PLAN))} and has "
        f"{sorted(set(PLAN) - tables)} that do not exist: place each table (distributed by "
        "which column, reference or local)"
    )
    for table, column in DISTRIBUTED.items():
        assert column, f"{table} is distributed by no column on docs/scaling.md"
        exists = column in SQLModel.metadata.tables[table].c
        if table in KEY_TO_ADD:
            assert not exists, f"{table}.{column} exists now: take {table} out of KEY_TO_ADD"
        else:
            assert exists, f"{table} is distributed by {column}, which it does not have"


# --- the checker ----------------------------------------------------------------------------


@dataclass
class Verdict:
    """What Citus would make of one statement."""

    problems: list[str] = field(default_factory=list)  # not co-located
    merges: list[str] = field(default_factory=list)  # what the coordinator combines
    pending: list[str] = field(default_factory=list)  # co-located once a key is added
    router: bool = False  # one customer's shard only

    @property
    def placement(self) -> str:
        if self.problems:
            return "not co-located"
        if self.pending:
            return "pending"
        if self.router:
            return "router"
        return "per shard, merged" if self.merges else "per shard"


def _conjuncts(node: Any) -> Iterator[exp.Expression]:
    """The AND-ed terms of a condition (an OR-ed equality guarantees nothing)."""
    if node is None:
        return
    if isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    elif isinstance(node, exp.And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    else:
        yield node


def _conditions(scope: Scope) -> list[exp.Expression]:
    select = scope.expression
    where = select.args.get("where")
    found = list(_conjuncts(where.this if where is not None else None))
    for join in select.args.get("joins") or []:
        found += _conjuncts(join.args.get("on"))
    return found


def _is_value(node: Any) -> bool:
    while isinstance(node, (exp.Cast, exp.Paren)):
        node = node.this
    return isinstance(node, (exp.Placeholder, exp.Parameter, exp.Literal))


class Checker:
    def __init__(
        self, distributed: dict[str, str], pending: set[frozenset[tuple[str, str]]]
    ) -> None:
        self.keys = distributed
        self.pending_joins = pending

    def table_column(self, scope: Scope, column: Any) -> tuple[str, str] | None:
        if not isinstance(column, exp.Column):
            return None
        source = scope.sources.get(column.table)
        return (source.name, column.name) if isinstance(source, exp.Table) else None

    def key_of(self, scope: Scope, column: Any) -> str | None:
        """The source (alias) whose distribution column `column` is, or None."""
        if not isinstance(column, exp.Column):
            return None
        source = scope.sources.get(column.table)
        if isinstance(source, exp.Table):
            return column.table if self.keys.get(source.name) == column.name else None
        if isinstance(source, Scope) and column.name in self.passed_keys(source):
            return column.table
        return None

    def passed_keys(self, scope: Scope) -> set[str]:
        """The output names of a derived table that carry a distribution column."""
        if not isinstance(scope.expression, exp.Select):
            return set()
        return {
            projection.alias_or_name
            for projection in scope.expression.selects
            if isinstance(projection.unalias(), exp.Column)
            and self.key_of(scope, projection.unalias())
        }

    def sharded(self, source: Any) -> bool:
        if isinstance(source, exp.Table):
            return source.name in self.keys
        if isinstance(source, Scope):
            inner = [
                *source.sources.values(),
                *source.subquery_scopes,
                *source.set_operation_scopes,
            ]
            return any(self.sharded(s) for s in inner)
        return False

    def _outer_key(self, scope: Scope, column: exp.Column) -> str | None:
        outer = scope.parent
        while outer is not None:
            if column.table in outer.sources:
                return self.key_of(outer, column)
            outer = outer.parent
        return None

    def check(self, sql: str) -> Verdict:
        tree = sqlglot.parse_one(sql, read="postgres")
        verdict = Verdict()
        for with_ in tree.find_all(exp.With):
            if with_.args.get("recursive") and any(
                table.name in self.keys for table in with_.find_all(exp.Table)
            ):
                verdict.problems.append("a recursive CTE over sharded rows (one shard only)")
        roots = [tree] if isinstance(tree, exp.Query) else list(tree.find_all(exp.Select))
        for root in roots:
            for scope in traverse_scope(root):
                if isinstance(scope.expression, exp.Select):
                    self._scope(scope, verdict)
        return verdict

    def _scope(self, scope: Scope, verdict: Verdict) -> None:
        sources = {alias: src for alias, (_node, src) in scope.selected_sources.items()}
        sharded = {alias: src for alias, src in sources.items() if self.sharded(src)}
        if not sharded:
            return
        conditions = _conditions(scope)
        self._joins(scope, sharded, conditions, verdict)
        if scope.external_columns and not self._correlated_on_key(scope, conditions):
            verdict.problems.append("a subquery correlated on something else than the key")
        for window in scope.find_all(exp.Window):
            partition = window.args.get("partition_by") or []
            if not partition:
                verdict.merges.append("a window over the whole result")
            elif not any(self._keyed(scope, p) for p in partition):
                verdict.problems.append(f"a window partitioned without the key: {window.sql()}")
        self._merges(scope, verdict)

    def _joins(
        self,
        scope: Scope,
        sharded: dict[str, Any],
        conditions: list[exp.Expression],
        verdict: Verdict,
    ) -> None:
        """Every sharded source tied to the others by equal distribution columns."""
        group = {alias: alias for alias in sharded}

        def root(alias: str) -> str:
            while group[alias] != alias:
                alias = group[alias]
            return alias

        for term in conditions:
            if not isinstance(term, exp.EQ):
                continue
            sides: tuple[Any, Any] = (term.left, term.right)
            if all(isinstance(side, exp.Column) for side in sides):
                left, right = (self.key_of(scope, side) for side in sides)
                if left in group and right in group:
                    group[root(left)] = root(right)
                    continue
                pair = {self.table_column(scope, side) for side in sides}
                if frozenset(pair) in self.pending_joins:
                    group[root(sides[0].table)] = root(sides[1].table)
                    verdict.pending.append(" = ".join(sorted(".".join(c) for c in pair if c)))
            elif scope.is_root and any(
                isinstance(side, exp.Column) and self.key_of(scope, side) and _is_value(other)
                for side, other in (sides, sides[::-1])
            ):
                verdict.router = True  # one customer: co-located sources, one shard
        if len({root(alias) for alias in sharded}) > 1:
            names = sorted(
                src.name if isinstance(src, exp.Table) else f"({alias})"
                for alias, src in sharded.items()
            )
            problem = f"joins {', '.join(names)} not on the customer key"
            if problem not in verdict.problems:
                verdict.problems.append(problem)

    def _correlated_on_key(self, scope: Scope, conditions: list[exp.Expression]) -> bool:
        """A correlated subquery tied to the outer row by `=` of the two customer keys."""
        for term in conditions:
            if not isinstance(term, exp.EQ):
                continue
            for inner, outer in ((term.left, term.right), (term.right, term.left)):
                if (
                    isinstance(inner, exp.Column)
                    and isinstance(outer, exp.Column)
                    and self.key_of(scope, inner)
                    and self._outer_key(scope, outer)
                ):
                    return True
        return False

    def _merges(self, scope: Scope, verdict: Verdict) -> None:
        """What the coordinator combines from the shards' answers."""
        select: Any = scope.expression
        grouped = select.args.get("group")
        keyed = any(
            self._keyed(scope, e) for e in (grouped.expressions if grouped else select.selects)
        )
        aggregated = any(
            not isinstance(node.parent, exp.Window) for node in scope.find_all(exp.AggFunc)
        )
        if grouped and not keyed:
            verdict.merges.append("GROUP BY without the customer key")
        elif not grouped and aggregated:
            verdict.merges.append("an aggregate over every shard")
        if select.args.get("distinct") and not grouped and not keyed:
            verdict.merges.append("DISTINCT without the customer key")
        if select.args.get("order"):
            verdict.merges.append("a sort" + (" with LIMIT" if select.args.get("limit") else ""))

    def _keyed(self, scope: Scope, node: Any) -> bool:
        node = node.unalias()
        return isinstance(node, exp.Column) and self.key_of(scope, node) is not None


CHECKER = Checker({t: c for t, c in DISTRIBUTED.items() if c}, PENDING_JOINS)


@pytest.mark.parametrize(
    ("sql", "placement"),
    [
        # The shape of the summary: grouped per customer, whole on every shard.
        ("SELECT o.customer_pk, count(*) FROM orders o GROUP BY o.customer_pk", "per shard"),
        (
            "SELECT d.customer_pk, max(d.gap) FROM (SELECT orders.customer_pk AS customer_pk, "
            "lag(orders.ordered_at) OVER (PARTITION BY orders.customer_pk ORDER BY "
            "orders.ordered_at) AS gap FROM orders) AS d GROUP BY d.customer_pk",
            "per shard",
        ),
        (
            "SELECT c.region, sum(s.clv) FROM customer c JOIN customer_score s "
            "ON s.customer_pk = c.id AND s.run_id = 3 GROUP BY c.region",
            "per shard, merged",
        ),
        (
            "SELECT * FROM orders WHERE orders.customer_pk = %(pk)s ORDER BY orders.ordered_at",
            "router",
        ),
        (
            "SELECT c.id FROM customer c WHERE EXISTS (SELECT orders.id FROM orders "
            "WHERE orders.customer_pk = c.id)",
            "per shard",
        ),
        ("SELECT p.name, count(*) FROM orders o, product p GROUP BY p.name", "per shard, merged"),
        # Order lines meet their order by its id: co-located once lines carry the key.
        (
            "SELECT orders.customer_pk, order_line.product_pk FROM order_line "
            "JOIN orders ON orders.id = order_line.order_pk",
            "pending",
        ),
        # Across shards: what the test must refuse.
        (
            "SELECT orders.customer_pk, order_line.product_pk FROM order_line "
            "JOIN orders ON orders.customer_pk = order_line.product_pk",
            "not co-located",
        ),
        (
            "SELECT t.id FROM ticket t JOIN orders o ON o.ordered_at = t.opened_at",
            "not co-located",
        ),
        (
            "SELECT t.id FROM ticket t JOIN customer c ON c.id = t.customer_pk OR c.region = 'x'",
            "not co-located",
        ),
        (
            "SELECT c.id FROM customer c WHERE EXISTS (SELECT 1 FROM orders "
            "WHERE orders.amount = c.id)",
            "not co-located",
        ),
        (
            "SELECT row_number() OVER (PARTITION BY orders.ordered_at) FROM orders",
            "not co-located",
        ),
        (
            "WITH RECURSIVE steps(value) AS (SELECT min(customer.region) FROM customer UNION ALL "
            "SELECT (SELECT min(customer.region) FROM customer WHERE customer.region > "
            "steps.value) FROM steps WHERE steps.value IS NOT NULL) SELECT value FROM steps",
            "not co-located",
        ),
        (
            "SELECT d.day, sum(o.amount) FROM (SELECT DISTINCT orders.ordered_at AS day "
            "FROM orders) AS d JOIN orders o ON o.ordered_at = d.day GROUP BY d.day",
            "not co-located",
        ),
    ],
)
def test_the_checker_tells_co_located_from_not(sql: str, placement: str) -> None:
    verdict = CHECKER.check(sql)
    assert verdict.placement == placement, verdict


# --- the real statements ------------------------------------------------------------------


@dataclass
class Sent:
    sql: str
    functions: list[str]  # crmbot's functions on the stack, innermost first

    @property
    def sender(self) -> str:
        """The innermost function that is not a generic reader."""
        helpers = ("loading._row_chunks", "loading.read_frame", "._scalar", "._customer_index")
        for name in self.functions:
            if not any(h in name for h in helpers):
                return name
        return self.functions[0] if self.functions else "?"


def _crmbot_frames() -> list[str]:
    frame: FrameType | None = sys._getframe(2)
    names: list[str] = []
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("crmbot."):
            names.append(f"{module}.{frame.f_code.co_qualname}")
        frame = frame.f_back
    return names


@pytest.fixture(scope="module")
def postgres() -> Iterator[Engine]:
    """A database of its own on the PostgreSQL server, dropped afterwards."""
    admin = _admin_engine("postgres")
    if admin is None:
        pytest.skip(f"postgres is not reachable at {make_url(SERVER_URLS['postgres'])!r}")
    name = f"crmbot_test_{os.getpid()}_{uuid.uuid4().hex[:8]}_colocation"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(SERVER_URLS["postgres"]).set(database=name)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _capture(engine: Engine, sent: list[Sent]) -> Any:
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(Sent(" ".join(statement.split()), _crmbot_frames()))

    event.listen(engine, "before_cursor_execute", record)
    return lambda: event.remove(engine, "before_cursor_execute", record)


@pytest.fixture(scope="module")
def statements(postgres: Engine, tmp_path_factory: pytest.TempPathFactory) -> list[Sent]:
    """Every statement of a training run with the summary in the database, then of the
    read side over it."""
    from crmbot.runs import train

    insert_company(postgres, build_company(customers=60))
    settings = isolated_settings(
        postgres.url.render_as_string(hide_password=False),
        tmp_path_factory.mktemp("colocation"),
        summary_in_database="always",
    )
    sent: list[Sent] = []
    stop = _capture(postgres, sent)
    try:
        first = train(postgres, settings, date(END.year, 6, 30))
        second = train(postgres, settings, END, force=True)
        assert first.status == second.status == "succeeded", (first.error, second.error)
        _read_side(postgres, second.run_id, first.run_id)
    finally:
        stop()
    return sent


def _read_side(engine: Engine, run_id: int, previous_run_id: int) -> None:
    """What the commands, digests, alerts and `/crm ask` read."""
    from crmbot import queries
    from crmbot.ask.execute import execute, load_vocabulary
    from crmbot.ask.query import Band, DateRange, StructuredQuery, Threshold
    from crmbot.queries.changes import risk_changes
    from crmbot.queries.scope import EVERYONE, Scope
    from crmbot.runs import active_run

    with read_session(engine) as session:
        run = active_run(session=session)
        assert run is not None and run.id == run_id
        queries.at_risk(session=session, run=run, scope=EVERYONE)
        queries.at_risk(session=session, run=run, scope=EVERYONE, segment="Champions")
        queries.top_value(session=session, run=run, scope=Scope.book(["owner1"]))
        queries.influencers(session=session, run=run, scope=EVERYONE, region="EMEA")
        queries.segment_summary(session=session, run=run, scope=EVERYONE)
        queries.region_names(session=session)
        queries.owner_book(session=session, owners=["owner1"])
        found = queries.find_customer(session=session, query="C007")
        assert found.customer is not None
        queries.customer_card(session=session, customer=found.customer, run=run)
        queries.order_history(session=session, customer=found.customer)
        queries.similar_customers(session=session, run=run, scope=EVERYONE, customer=found.customer)
        queries.community_regions(session=session, run=run, communities=[0, 1, 2])
        count, rows = queries.list_export_rows(
            session=session, run=run, scope=EVERYONE, kind="at_risk", limit=10
        )
        list(rows)
        queries.scores_frame(session=session, run_id=run_id)
        risk_changes(
            session=session,
            run_id=run_id,
            previous_run_id=previous_run_id,
            rise=0.1,
            threshold=0.5,
            segments=("At Risk",),
        )
    load_vocabulary(engine, Scope.book(["owner2"]))
    year = DateRange(date(END.year, 1, 1), date(END.year + 1, 1, 1))
    for query in (
        StructuredQuery(thresholds=(Threshold("churn_risk", ">", 0.3),), regions=("EMEA",)),
        StructuredQuery(metric="avg", measure="clv", group_by="region"),
        StructuredQuery(thresholds=(Threshold("tickets", ">=", 1),), sort="tickets"),
        StructuredQuery(bands=(Band("clv"),), date_range=year),
        StructuredQuery(products=("Product 2",), not_products=("Product 5",)),
        StructuredQuery(entity="orders", metric="sum", measure="amount", group_by="region"),
        StructuredQuery(entity="orders", metric="count", group_by="month", date_range=year),
        StructuredQuery(entity="orders", regions=("APAC",)),
        StructuredQuery(entity="tickets", metric="count", group_by="month"),
        StructuredQuery(entity="feedback", metric="nps", group_by="region"),
        StructuredQuery(entity="products", metric="list"),
        StructuredQuery(entity="referrals", metric="list"),
        StructuredQuery(entity="segment_moves", metric="count"),
        StructuredQuery(entity="score_changes", measure="churn_risk", change="up"),
        StructuredQuery(entity="offer", segments=("Champions",)),
    ):
        execute(engine, query, scope=EVERYONE)


def _reads_sharded(sent: Sent) -> bool:
    return any(
        re.search(rf'\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+"?{table}\b', sent.sql, re.IGNORECASE)
        for table in DISTRIBUTED
    )


def test_every_statement_on_sharded_tables_is_co_located(statements: list[Sent]) -> None:
    sharded = [s for s in statements if _reads_sharded(s)]
    assert len(sharded) > 40, "training and the read side sent too few statements to judge"
    refused, excused, pending = [], set(), set()
    for sent in sharded:
        if re.match(r"(ANALYZE|VACUUM)\b", sent.sql):
            continue
        verdict = CHECKER.check(sent.sql)
        pending.update(verdict.pending)
        if not verdict.problems:
            continue
        known = [name for name in sent.functions if name in NOT_CO_LOCATED_YET]
        if known:
            excused.update(known)
            continue
        refused.append(f"{sent.sender}: {'; '.join(verdict.problems)}\n    {sent.sql[:400]}")
    assert not refused, (
        "statements a sharded PostgreSQL would run across shards (join or correlate on the "
        "customer key; see docs/scaling.md):\n" + "\n".join(refused)
    )
    assert pending, "no statement joins order lines to orders by order id: drop PENDING_JOINS"
    stale = set(NOT_CO_LOCATED_YET) - excused
    assert not stale, (
        f"{sorted(stale)} no longer send a statement across shards: take them out of "
        "NOT_CO_LOCATED_YET here and out of docs/scaling.md's list"
    )


def test_the_summary_runs_whole_on_every_shard(statements: list[Sent]) -> None:
    """Each statement of the per-customer summary groups (and windows) by the customer:
    no partial aggregate for the coordinator to merge, only the customers' order."""
    summary = [
        s
        for s in statements
        if any(name.startswith("crmbot.analytics.source.sql_summary.") for name in s.functions)
    ]
    assert len(summary) >= 6, [s.sender for s in statements]
    merged = {}
    for sent in summary:
        verdict = CHECKER.check(sent.sql)
        beyond_sort = [m for m in verdict.merges if not m.startswith("a sort")]
        if verdict.problems or beyond_sort:
            merged[sent.sql[:300]] = verdict.problems + beyond_sort
    assert not merged, merged
