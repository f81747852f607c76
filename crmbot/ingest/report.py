"""What an import did: counts, rejected rows with their line numbers, and the report file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from crmbot.core import spreadsheet

MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class Rejection:
    """One problem: the file's line where the record starts (header = 1), column and why."""

    line: int
    column: str
    reason: str
    value: str = ""

    @classmethod
    def of(cls, line: int, column: str, reason: str, value: object = "") -> Rejection:
        shown = "" if value is None else str(value)
        if len(shown) > MAX_VALUE_CHARS:
            shown = shown[:MAX_VALUE_CHARS] + "…"
        return cls(line, column, reason, shown)


@dataclass
class ImportReport:
    kind: str
    path: str = ""
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # Exact copies of an earlier row of the same file, dropped.
    duplicates: int = 0
    # Bare rows made for unknown references with --create-missing: {"customers": 3}
    created: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Set when the file as a whole could not be imported (missing columns, not CSV, ...).
    file_error: str | None = None
    strict: bool = False
    committed: bool = False
    encoding: str = "utf-8"
    # Where the rejected-rows report was written (`report_path` of `import_file`), if it was.
    report_file: str | None = None

    @property
    def ok(self) -> bool:
        return self.file_error is None and not self.rejected

    @property
    def rejected_rows(self) -> int:
        """Distinct lines rejected (a row with two bad columns is one row)."""
        return len({r.line for r in self.rejected})

    def summary(self) -> str:
        """A few lines for the screen."""
        lines = [f"{self.kind} from {self.path or 'file'}:"]
        if self.file_error:
            lines.append(f"  file rejected: {self.file_error}")
        lines.append(
            f"  {self.rows_read} row{'' if self.rows_read == 1 else 's'} read: "
            f"{self.inserted} inserted, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.rejected_rows} rejected, "
            f"{self.duplicates} exact duplicates dropped"
        )
        for kind, count in sorted(self.created.items()):
            lines.append(f"  created {count} bare {kind} for unknown references")
        if self.ignored_columns:
            lines.append(f"  ignored columns: {', '.join(self.ignored_columns)}")
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        if self.strict and self.rejected and not self.committed:
            lines.append("  --strict: nothing was imported because of the rejected rows")
        return "\n".join(lines)

    def write_csv(self, path: str | Path) -> None:
        """The full list of problems, one per line, for a spreadsheet (the rejected values
        are written so that none runs as a formula: `crmbot.core.spreadsheet`)."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            self.write_to(handle)

    def write_to(self, handle: TextIO) -> None:
        writer = spreadsheet.writer(handle)
        writer.writerow(["line", "column", "reason", "value"])
        if self.file_error and not self.rejected:
            writer.writerow([1, "", self.file_error, ""])
        for rejection in sorted(self.rejected, key=lambda r: (r.line, r.column)):
            writer.writerow([rejection.line, rejection.column, rejection.reason, rejection.value])


class ReportUnwritable(OSError):
    """The rejected-rows report cannot be written where it was asked for; found before
    anything is imported."""


class ReportFile:
    """The report file of an import, opened for writing before the import starts, so a
    path that cannot be written stops the import before it commits anything (and the exit
    status can say "nothing imported" truthfully). Written, replacing what was there, once
    the import is done; removed again if the import never got that far and it was new."""

    def __init__(self, path: Path, handle: TextIO, created: bool) -> None:
        self.path = path
        self._handle = handle
        self._created = created

    @classmethod
    def open(cls, path: str | Path) -> ReportFile:
        """Raises `ReportUnwritable` (the path is a directory, its folder is missing or
        read-only, the file is read-only...)."""
        target = Path(path)
        existed = target.exists()
        try:
            # Not truncated yet: an earlier report stays until this one replaces it.
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT, 0o666)
            handle = os.fdopen(descriptor, "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise ReportUnwritable(
                f"cannot write the report to {target}: {exc.strerror or exc}"
            ) from exc
        return cls(target, handle, created=not existed)

    def write(self, report: ImportReport) -> None:
        """Write `report` and close; raises OSError (a full disk) with the file closed."""
        try:
            self._handle.seek(0)
            self._handle.truncate()
            report.write_to(self._handle)
        finally:
            self._handle.close()

    def abandon(self) -> None:
        """Close without writing; a file made only for this import goes again."""
        self._handle.close()
        if self._created:
            self.path.unlink(missing_ok=True)
