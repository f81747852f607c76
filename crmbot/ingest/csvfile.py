"""Reading a CSV export: its encoding, its header, and each record with the line it starts on.

Encoding: UTF-8 (with or without a byte-order mark) is tried first; UTF-16 is recognised by
its byte-order mark (Excel's "Unicode text"). A file that is not valid UTF-8 is read as
Windows-1252, the usual encoding of older spreadsheet exports, and the report carries a
warning saying so; bytes that mean nothing in Windows-1252 fall back to Latin-1, which
decodes anything. A file with NUL bytes is not text (a workbook saved under a .csv name) and
is refused as a whole.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Large enough for any real ticket body; a longer field almost always means an unclosed
# quote swallowed the rest of the file.
MAX_FIELD_CHARS = 1_000_000


class FileRejected(ValueError):
    """The file as a whole cannot be imported; the message says why and what to do."""


@dataclass
class CsvRecords:
    columns: list[str]  # canonical names after --map, in file order
    # The line each record starts on (the header is line 1), and its values
    lines: Sequence[int] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    # Records whose number of values differs from the header's: (line, count)
    ragged: list[tuple[int, int]] = field(default_factory=list)
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)


def normalise_column(name: str) -> str:
    """`Customer ID` and `customer-id` are the same column as `customer_id`."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def decode(data: bytes) -> tuple[str, str, list[str]]:
    """(text, encoding name, warnings)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16", []
        except UnicodeDecodeError as exc:
            raise FileRejected(
                f"the file starts like UTF-16 but is not valid UTF-16 ({exc})"
            ) from None
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise FileRejected(
            f"the file contains NUL bytes (line {line}); it is not a text CSV — "
            "if it is a spreadsheet, save it as CSV first"
        )
    try:
        return data.decode("utf-8-sig"), "utf-8", []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        for encoding in ("cp1252", "latin-1"):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            warning = (
                f"the file is not UTF-8 (first bad byte on line {line}); read it as "
                f"{encoding} — check accented names, or save the file as UTF-8"
            )
            return text, encoding, [warning]
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def read_csv(
    path: str | Path,
    *,
    column_map: Mapping[str, str] | None = None,
) -> CsvRecords:
    """Decode and split `path`; header names are normalised and renamed by `column_map`."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileRejected(f"there is no file {path}") from None
    except IsADirectoryError:
        raise FileRejected(f"{path} is a folder, not a CSV file") from None
    except OSError as exc:
        raise FileRejected(f"cannot read {path}: {exc.strerror}") from None
    text, encoding, warnings = decode(data)
    if not text.strip():
        raise FileRejected("the file is empty; it needs a header line naming the columns")

    renames = {
        normalise_column(old): normalise_column(new) for old, new in (column_map or {}).items()
    }
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), dialect=_sniff_dialect(text))
        header, lines, rows, ragged = _split(reader, text)
    finally:
        csv.field_size_limit(previous_limit)
    columns = [renames.get(normalise_column(name), normalise_column(name)) for name in header]
    seen: set[str] = set()
    for name in columns:
        if name and name in seen:
            raise FileRejected(f"the column {name!r} appears twice in the header")
        seen.add(name)
    return CsvRecords(columns, lines, rows, ragged, encoding, warnings)


def _sniff_dialect(text: str) -> type[csv.Dialect]:
    # Spreadsheets in comma-decimal locales write ';'-separated files; a tab-separated
    # export is common too. The header line decides.
    first_line = text.split("\n", 1)[0]
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t")}
    separator = max(counts, key=lambda sep: counts[sep])
    if counts[separator] == 0 or separator == ",":
        return csv.excel
    return csv.excel_tab if separator == "\t" else _Semicolon


class _Semicolon(csv.excel):
    delimiter = ";"


def _split(
    reader: Iterator[list[str]], text: str
) -> tuple[list[str], Sequence[int], list[list[str]], list[tuple[int, int]]]:
    try:
        parsed = list(reader)
    except csv.Error as exc:
        line = reader.line_num  # type: ignore[attr-defined]
        detail = (
            " — a field that long usually means a quote was never closed"
            if "field larger" in str(exc)
            else ""
        )
        raise FileRejected(f"the file is not valid CSV at line {line}: {exc}{detail}") from None
    header, body = parsed[0], parsed[1:]
    # When no record spans lines (no quoted line breaks) record k starts on line k + 2;
    # otherwise read again, noting where each record starts.
    physical_lines = text.count("\n") + text.count("\r") - text.count("\r\n")
    if not text.endswith(("\n", "\r")):
        physical_lines += 1
    if physical_lines == len(parsed):
        starts: Sequence[int] = range(2, len(body) + 2)
    else:
        starts = _record_starts(text, len(parsed))[1:]
    width = len(header)
    if set(map(len, body)) <= {width}:
        return header, starts, body, []
    lines: list[int] = []
    rows: list[list[str]] = []
    ragged: list[tuple[int, int]] = []
    for start, values in zip(starts, body, strict=True):
        if len(values) == width:
            lines.append(start)
            rows.append(values)
        elif any(value.strip() for value in values):
            ragged.append((start, len(values)))
        # an empty line is no record
    return header, lines, rows, ragged


def _record_starts(text: str, expected: int) -> list[int]:
    """The line each record starts on: csv's line_num is where the previous one ended."""
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_sniff_dialect(text))
    starts = []
    line_num = 0
    for _values in reader:
        starts.append(line_num + 1)
        line_num = reader.line_num
    assert len(starts) == expected
    return starts
