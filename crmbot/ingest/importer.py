"""`import_file`: one CSV file in, one transaction out, and a report of every rejected row.

The steps, each over whole columns rather than row by row where it can:
read and decode the file -> check the header -> clean every column -> cross-column rules ->
drop exact duplicates, reject conflicting ones -> (in one transaction) resolve references,
compare with what is stored, upsert new and changed rows in bulk.
"""

from __future__ import annotations

import gc
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from itertools import islice, repeat
from operator import lt
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from crmbot.core import name_index, run_summary
from crmbot.core.db import DatabaseUnavailable, bulk_write_connection, refresh_statistics
from crmbot.core.erasure import lock_out_erasure, pseudonym
from crmbot.core.privacy import mask_pii
from crmbot.ingest import cleaning, writer
from crmbot.ingest.csvfile import FileRejected, read_csv
from crmbot.ingest.kinds import KINDS, Kind
from crmbot.ingest.report import ImportReport, Rejection, ReportFile

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called with (rows done, rows in the file) as an import goes along."""

# Kinds --create-missing may invent from a bare id; an order needs a customer, date and amount.
CREATABLE = {"customers", "products"}
# Kinds with free text about the customer: never re-imported for an erased customer.
CARRY_PERSONAL_TEXT = {"tickets", "feedback"}
ERASED_REASON = "this customer was erased; remove them from the export"
_SINGULAR = {"customers": "customer", "products": "product", "orders": "order"}


class UnknownKind(ValueError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"there is no import kind {kind!r}; choose one of: {', '.join(KINDS)}")


class _StrictRollback(Exception):
    """Raised inside the transaction to undo everything when --strict finds a bad row."""


def kind_named(kind: str) -> Kind:
    normalised = kind.strip().lower().replace("_", "-")
    aliases = {
        "order-line": "order-lines",
        "orderlines": "order-lines",
        "customer": "customers",
        "product": "products",
        "order": "orders",
        "ticket": "tickets",
        "referral": "referrals",
    }
    normalised = aliases.get(normalised, normalised)
    if normalised not in KINDS:
        raise UnknownKind(kind)
    return KINDS[normalised]


def import_file(
    engine: Engine,
    kind: str,
    path: str | Path,
    *,
    strict: bool = False,
    create_missing: bool = False,
    column_map: Mapping[str, str] | None = None,
    report_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
    today: date | None = None,
    shortcuts: bool = True,
) -> ImportReport:
    """Import one CSV file of `kind` (see `KINDS`) and say what happened.

    The file's valid rows go in one transaction; bad rows are listed in the report with the
    line they start on (the header is line 1). With `strict`, one bad row means nothing is
    committed. `column_map` renames a foreign export's columns ({"Client": "customer_id"}).
    `create_missing` makes bare customers/products for ids no earlier import brought.
    `today`, when given, rejects dates after it. `report_path` is opened before anything
    is read or written, so a path that cannot be written raises `ReportUnwritable` with
    nothing imported; once the rows are in, a failure to write the report is only a
    warning in it. Raises `UnknownKind`, `ReportUnwritable` and `DatabaseUnavailable`; every
    problem with the file itself is in the report. `shortcuts=False` reads every file with
    the csv module and formats every datetime value by value; the result is the same (a
    test holds the two paths to that).
    """
    spec = kind_named(kind)
    report_file = ReportFile.open(report_path) if report_path is not None else None
    report = ImportReport(kind=spec.name, path=str(path), strict=strict)
    try:
        with _garbage_collector_paused():
            _import(
                engine,
                spec,
                Path(path),
                report,
                strict=strict,
                create_missing=create_missing,
                column_map=column_map,
                progress=progress,
                today=today,
                shortcuts=shortcuts,
            )
    except FileRejected as exc:
        report.file_error = str(exc)
        report.inserted = report.updated = report.unchanged = 0
    except BaseException:
        if report_file is not None:
            report_file.abandon()
        raise
    report.rejected.sort(key=lambda r: (r.line, r.column))
    if report_file is not None:
        _write_report(report_file, report)
    if report.inserted or report.updated:
        refresh_statistics(engine, spec.table.name)
    log.debug(
        "import %s: %s rows, %s inserted, %s updated, %s unchanged, %s rejected",
        spec.name,
        report.rows_read,
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected_rows,
    )
    return report


def _write_report(report_file: ReportFile, report: ImportReport) -> None:
    """The import is over (committed or not); a report that fails now is a warning, not a
    failed import."""
    try:
        report_file.write(report)
    except OSError as exc:
        log.warning("could not write the report to %s: %s", report_file.path, exc)
        report.warnings.append(f"could not write the report to {report_file.path}: {exc}")
        return
    report.report_file = str(report_file.path)


@contextmanager
def _garbage_collector_paused() -> Iterator[None]:
    # A big file makes millions of small objects that all live until the end; the cyclic
    # collector would walk them again and again for nothing (they hold no cycles).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Rows:
    """The cleaned columns of a file and what is wrong with which row."""

    def __init__(self, lines: Sequence[int]) -> None:
        self.lines = lines
        self.cleaned: dict[str, list[Any]] = {}
        self.problems: dict[int, list[Rejection]] = defaultdict(list)
        self.blank: set[int] = set()
        # For some datetime columns, each value's `isoformat(" ", "microseconds")`, taken
        # from the file's text (the writer binds it instead of formatting every value).
        self.iso_text: dict[str, list[str]] = {}

    def reject(self, index: int, column: str, reason: str, value: object = "") -> None:
        self.problems[index].append(Rejection.of(self.lines[index], column, reason, value))

    def good_indices(self) -> Sequence[int]:
        if not self.problems and not self.blank:
            return range(len(self.lines))
        return [i for i in range(len(self.lines)) if i not in self.problems and i not in self.blank]


def _import(
    engine: Engine,
    spec: Kind,
    path: Path,
    report: ImportReport,
    *,
    strict: bool,
    create_missing: bool,
    column_map: Mapping[str, str] | None,
    progress: ProgressCallback | None,
    today: date | None,
    shortcuts: bool,
) -> None:
    csv_file = read_csv(path, column_map=column_map, plain_split=shortcuts)
    report.encoding, report.warnings = csv_file.encoding, list(csv_file.warnings)
    header = csv_file.columns
    missing = [name for name in spec.required if name not in header]
    if missing:
        raise FileRejected(
            f"missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
            f"(the header has: {', '.join(name for name in header if name) or 'nothing'}); "
            "rename a column with --map old=new"
        )
    report.ignored_columns = [name for name in header if name and name not in spec.canonical]

    total = csv_file.record_count
    if progress is not None:
        progress(0, total)
    rows = _Rows(csv_file.lines)
    for line, count in csv_file.ragged:
        report.rejected.append(
            Rejection.of(line, "", f"has {count} values but the header has {len(header)} columns")
        )
    raw: dict[str, Sequence[str]] = {}
    for column in spec.columns:
        if column.name in header:
            raw[column.name] = csv_file.fields[header.index(column.name)]
            _clean(spec, column.name, raw, csv_file.fields, rows, today, shortcuts)
    for check in spec.row_checks:
        for index, (column_name, reason) in check(rows.cleaned, raw).items():
            if index not in rows.problems:
                rows.reject(index, column_name, reason, raw.get(column_name, [""] * total)[index])

    report.rows_read = total - len(rows.blank) + len(csv_file.ragged)
    kept = _deduplicate(spec, rows, report)
    # Nothing reads the file's own text again: let its values go before the database work
    # rather than after it (a million customers' orders: some 28 million strings).
    del raw
    csv_file.fields.clear()

    try:
        # References are resolved inside this transaction (SQLite: under its write lock),
        # so SQLite's per-row foreign-key checks would only repeat them. It begins once
        # any import before it has committed (`writer.import_lock`), so the counts of new,
        # changed and unchanged rows are what this import did.
        with (
            writer.import_lock(engine),
            bulk_write_connection(engine, check_foreign_keys=False) as connection,
        ):
            if _may_bring_someone_back(spec, create_missing):
                # First, before anything is read: an erasure committing between the check
                # for erased customers below and the write would be undone by the write.
                lock_out_erasure(connection)
            if spec.name == "customers":
                kept = _refuse_erased(connection, rows, kept)
            kept = _resolve_references(connection, spec, rows, kept, report, create_missing)
            for problems in rows.problems.values():
                report.rejected.extend(problems)
            if strict and report.rejected:
                raise _StrictRollback
            written = _write(connection, spec, rows, kept, report, progress, total)
            if spec.name == "customers":
                # Misspelt names are found through the name index: it changes with the rows.
                name_index.refresh_by_ids(connection, written)
                if report.updated:
                    # A changed region or owner moves a scored customer between the run
                    # summary's cells (new customers have no scores to count yet).
                    run_summary.refresh(connection)
        report.committed = True
    except _StrictRollback:
        report.inserted = report.updated = report.unchanged = 0
        report.created = {}
    except DatabaseUnavailable:
        raise
    except writer.ImportLockTimeout as exc:
        raise FileRejected(f"{exc}, so nothing was imported; try again later") from exc
    except DBAPIError as exc:
        # No traceback: SQLAlchemy's message carries the rows' values, personal data included.
        log.error("import of %s failed in the database: %s", path.name, mask_pii(str(exc.orig)))
        raise FileRejected(
            f"the database refused the rows, so nothing was imported: {exc.orig}"
        ) from exc
    if progress is not None:
        progress(total, total)


def _clean(
    spec: Kind,
    name: str,
    raw: dict[str, Sequence[str]],
    fields: list[Sequence[str]],
    rows: _Rows,
    today: date | None,
    shortcuts: bool,
) -> None:
    column = spec.column(name)
    raw_values = raw[name]
    tidy = None
    if shortcuts and column.cleaner is cleaning.parse_datetime:
        tidy = cleaning.tidy_datetimes(raw_values)
    if tidy is not None:
        cleaned, rows.iso_text[name] = tidy
        bad: dict[int, str] = {}
    else:
        cleaned, bad = cleaning.clean_column(raw_values, column.cleaner)
    has_empty = None in cleaned
    for index, reason in bad.items():
        rows.reject(index, name, reason, raw_values[index])
    present = cleaned
    if has_empty:
        empty = [i for i, value in enumerate(cleaned) if value is None and i not in bad]
        if column.required:
            for index in empty:
                if not any(values[index].strip() for values in fields):
                    rows.blank.add(index)  # an empty line of a spreadsheet export
                else:
                    rows.reject(index, name, "missing required value")
        elif column.default is not None:
            for index in empty:
                cleaned[index] = column.default
        present = [value for value in cleaned if value is not None]
    if present:
        _check_length(spec, name, present, cleaned, rows)
        if column.minimum is not None or column.maximum is not None:
            low, high = min(present), max(present)
            if column.range_problem(low) or column.range_problem(high):
                for index, value in enumerate(cleaned):
                    problem = None if value is None else column.range_problem(value)
                    if problem:
                        rows.reject(index, name, problem, raw_values[index])
        if column.not_in_future and today is not None:
            _check_future(name, present, cleaned, raw_values, rows, today)
    rows.cleaned[name] = cleaned


def _check_length(
    spec: Kind, name: str, present: list[Any], cleaned: list[Any], rows: _Rows
) -> None:
    column = spec.column(name)
    if column.cleaner not in (cleaning.text, cleaning.email):
        return
    # A reference is checked against the referenced table instead.
    limit = None if column.references else getattr(spec.table.c[column.target].type, "length", None)
    if limit is None or max(map(len, present)) <= limit:
        return
    for index, value in enumerate(cleaned):
        if value is not None and len(value) > limit:
            rows.reject(index, name, f"longer than {limit} characters", value)


def _check_future(
    name: str,
    present: list[Any],
    cleaned: list[Any],
    raw_values: Sequence[str],
    rows: _Rows,
    today: date,
) -> None:
    if isinstance(present[0], datetime):
        limit: date = datetime.combine(today + timedelta(days=1), time())
        if max(present) < limit:
            return
        too_late = [i for i, v in enumerate(cleaned) if v is not None and v >= limit]
    else:
        if max(present) <= today:
            return
        too_late = [i for i, v in enumerate(cleaned) if v is not None and v > today]
    for index in too_late:
        rows.reject(index, name, f"is in the future (after {today:%Y-%m-%d})", raw_values[index])


def _deduplicate(spec: Kind, rows: _Rows, report: ImportReport) -> Sequence[int]:
    """Indices of the rows to import: exact copies dropped, conflicting keys rejected."""
    key_columns = [rows.cleaned[name] for name in spec.key]
    keys: list[Any] = (
        key_columns[0] if len(key_columns) == 1 else list(zip(*key_columns, strict=True))
    )
    good = rows.good_indices()
    # The usual case: every key once, decided without a Python loop -- and for an export
    # sorted on its key, without hashing a single key.
    if isinstance(good, range) and (
        all(map(lt, keys, islice(keys, 1, None))) or len(set(keys)) == len(keys)
    ):
        return good
    records = list(zip(*rows.cleaned.values(), strict=True))
    first_index: dict[Any, int] = {}
    conflicts: dict[Any, list[int]] = {}
    kept: list[int] = []
    for index in good:
        key = keys[index]
        first = first_index.get(key)
        if first is None:
            first_index[key] = index
            kept.append(index)
        elif records[first] == records[index]:
            report.duplicates += 1
        else:
            conflicts.setdefault(key, [first]).append(index)
    if not conflicts:
        return kept
    key_label = " + ".join(spec.key)
    for key, indices in conflicts.items():
        lines = [rows.lines[i] for i in indices]
        shown = key if isinstance(key, str) else " + ".join(map(str, key))
        for index in indices:
            others = ", ".join(str(line) for line in lines if line != rows.lines[index])
            rows.reject(
                index,
                spec.key[-1],
                f"{key_label} {shown!r} is also on line {others} with different values",
                shown,
            )
    return [index for index in kept if index not in rows.problems]


def _may_bring_someone_back(spec: Kind, create_missing: bool) -> bool:
    """Whether an import of `spec` could undo an erasure running beside it: it writes
    customers by their id, or a customer's words; or it creates customers from bare ids.
    Orders, order lines and referrals hold no personal data and point at a customer by
    surrogate key, which an erasure keeps: they need not wait for one."""
    if spec.name == "customers" or spec.name in CARRY_PERSONAL_TEXT:
        return True
    return create_missing and any(column.references == "customers" for column in spec.columns)


def _erased_customers(connection: Connection, natural_ids: set[str]) -> dict[str, int]:
    """{id: surrogate key} for those ids whose customer was erased (known by pseudonym)."""
    customers = KINDS["customers"].table
    anyone_erased = connection.execute(
        select(customers.c.id).where(customers.c.erased_at.is_not(None)).limit(1)
    ).first()
    if anyone_erased is None:
        return {}
    by_alias = {pseudonym(natural): natural for natural in natural_ids}
    found = writer.lookup_ids(connection, customers, "customer_id", by_alias)
    return {by_alias[alias]: surrogate for alias, surrogate in found.items()}


def _refuse_erased(connection: Connection, rows: _Rows, kept: Sequence[int]) -> Sequence[int]:
    """Customers rows for erased customers (from an old export) are not imported again."""
    ids = rows.cleaned["customer_id"]
    erased = _erased_customers(connection, {ids[i] for i in kept})
    if not erased:
        return kept
    for index in kept:
        if ids[index] in erased:
            rows.reject(index, "customer_id", ERASED_REASON, ids[index])
    return [index for index in kept if index not in rows.problems]


def _resolve_references(
    connection: Connection,
    spec: Kind,
    rows: _Rows,
    kept: Sequence[int],
    report: ImportReport,
    create_missing: bool,
) -> Sequence[int]:
    """Turn natural ids into surrogate keys; reject (or create) the unknown ones.

    Rows are rejected for every unknown reference first; bare rows are created afterwards,
    and only for rows that survive, so a rejected row never leaves a bare customer behind.
    """
    ids_by_column: dict[str, list[int | None]] = {}
    to_create: dict[str, set[str]] = {}
    for column in spec.columns:
        if column.references is None or column.name not in rows.cleaned:
            continue
        target = KINDS[column.references]
        natural = target.natural_id
        assert natural is not None
        values = rows.cleaned[column.name]
        ids = ids_by_column[column.name] = writer.surrogate_ids(
            connection, target.table, natural, values
        )
        if None not in ids:
            continue  # the usual case, decided in C: every reference is known
        unknown = {values[index] for index in kept if ids[index] is None}
        if unknown and target.name == "customers":
            erased = _erased_customers(connection, unknown)
            unknown -= erased.keys()
            if spec.name in CARRY_PERSONAL_TEXT:
                for index in kept:
                    if values[index] in erased:
                        rows.reject(index, column.name, ERASED_REASON, values[index])
            else:
                _fill_ids(ids, values, kept, erased)  # orders and referrals hold no personal data
        if not unknown:
            continue
        if create_missing and target.name in CREATABLE:
            to_create[column.name] = unknown
            continue
        singular = _SINGULAR[target.name]
        hint = (
            f"import {target.name} first, or use --create-missing"
            if target.name in CREATABLE
            else f"import {target.name} first"
        )
        for index in kept:
            if values[index] in unknown:
                rows.reject(index, column.name, f"unknown {singular} ({hint})", values[index])
    if rows.problems:
        kept = [index for index in kept if index not in rows.problems]
    for name, unknown in to_create.items():
        target = KINDS[spec.column(name).references or ""]
        natural = target.natural_id or ""
        values = rows.cleaned[name]
        needed = {values[index] for index in kept} & unknown
        writer.create_bare(connection, target.table, natural, needed)
        created = writer.lookup_ids(connection, target.table, natural, needed)
        _fill_ids(ids_by_column[name], values, kept, created)
        if needed:
            report.created[target.name] = report.created.get(target.name, 0) + len(needed)
    for name, ids in ids_by_column.items():
        rows.cleaned[name] = ids
    return kept


def _fill_ids(
    ids: list[int | None], values: Sequence[Any], kept: Sequence[int], found: Mapping[str, int]
) -> None:
    """Surrogate ids found late (erased or newly created rows) for the kept rows without."""
    for index in kept:
        if ids[index] is None and values[index] in found:
            ids[index] = found[values[index]]


def _write(
    connection: Connection,
    spec: Kind,
    rows: _Rows,
    kept: Sequence[int],
    report: ImportReport,
    progress: ProgressCallback | None,
    total: int,
) -> Sequence[Any]:
    """Write the new and changed rows; their first key column (the customer ids of a
    customers file)."""
    names = list(spec.key) + [name for name in rows.cleaned if name not in spec.key]
    targets = [spec.column(name).target for name in names]
    # Column by column to the end: the writer wants them so, and no row tuple is made twice.
    columns: list[Sequence[Any]] = [rows.cleaned[name] for name in names]
    iso_text: dict[int, Sequence[str]] = {
        position: rows.iso_text[name]
        for position, name in enumerate(names)
        if name in rows.iso_text
    }
    if len(kept) != len(rows.lines):
        columns = _pick(columns, kept)
        iso_text = dict(zip(iso_text, _pick(list(iso_text.values()), kept), strict=True))
    width = len(spec.key)
    keys: list[tuple[Any, ...]] = []
    stored: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    if not writer.is_empty(connection, spec.table):
        keys = list(zip(*columns[:width], strict=True))
        stored = writer.existing_rows(
            connection, spec.table, targets[:width], targets[width:], keys
        )
    if not stored:
        report.inserted = len(columns[0])  # nothing stored under these keys: every row is new
    else:
        chosen: list[int] = []
        # Only key columns (a referral without its date): every stored row is the same.
        records: Iterable[tuple[Any, ...]] = (
            zip(*columns[width:], strict=True) if len(columns) > width else repeat((), len(keys))
        )
        for position, (key, record) in enumerate(zip(keys, records, strict=True)):
            old = stored.get(key)
            if old is None:
                report.inserted += 1
                chosen.append(position)
            elif _same(old, record):
                report.unchanged += 1
            else:
                report.updated += 1
                chosen.append(position)
        if len(chosen) != len(keys):
            columns = _pick(columns, chosen)
            iso_text = dict(zip(iso_text, _pick(list(iso_text.values()), chosen), strict=True))
    done = total - (report.inserted + report.updated)  # rows with nothing to write

    def advance(rows_written: int) -> None:
        nonlocal done
        done += rows_written
        if progress is not None:
            progress(done, total)

    writer.upsert_columns(
        connection,
        spec.table,
        targets[:width],
        targets,
        columns,
        iso_text=iso_text,
        progress=advance,
    )
    return columns[0]


def _pick(columns: list[Sequence[Any]], indices: Sequence[int]) -> list[Sequence[Any]]:
    return [list(map(column.__getitem__, indices)) for column in columns]


def _same(stored: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    if stored == new:
        return True
    for old_value, new_value in zip(stored, new, strict=True):
        if old_value == new_value:
            continue
        # Floats may come back from the database with a last-digit difference.
        if (
            isinstance(old_value, float)
            and isinstance(new_value, float)
            and math.isclose(old_value, new_value, rel_tol=1e-9, abs_tol=1e-9)
        ):
            continue
        return False
    return True
