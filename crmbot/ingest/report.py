"""What an import did: counts, rejected rows with their line numbers, and the report file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
            writer = spreadsheet.writer(handle)
            writer.writerow(["line", "column", "reason", "value"])
            if self.file_error and not self.rejected:
                writer.writerow([1, "", self.file_error, ""])
            for rejection in sorted(self.rejected, key=lambda r: (r.line, r.column)):
                writer.writerow(
                    [rejection.line, rejection.column, rejection.reason, rejection.value]
                )
