"""Reading a CSV export: its encoding, its header, and each record with the line it starts on.

Encoding: UTF-8 (with or without a byte-order mark) is tried first; UTF-16 is recognised by
its byte-order mark (Excel's "Unicode text"). A file that is not valid UTF-8 is read as
Windows-1252, the usual encoding of older spreadsheet exports, and the report carries a
warning saying so; bytes that mean nothing in Windows-1252 fall back to Latin-1, which
decodes anything. A file with NUL bytes is not text (a workbook saved under a .csv name) and
is refused as a whole.

Most exports quote nothing: no field holds the separator, a quote or a line break. Such a
file is split with one C-level `str.split` straight into columns, which is what the
importer wants, once the file's bytes show that every line has as many separators as the
header; any file the csv module could read differently (a quote anywhere, a lone carriage
return, a line with a different number of separators, an over-long field) goes through
the csv module instead.
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
    # The line each record starts on (the header is line 1), and its values column by
    # column: fields[position in the header][record]
    lines: Sequence[int] = field(default_factory=list)
    fields: list[Sequence[str]] = field(default_factory=list)
    # Records whose number of values differs from the header's: (line, count)
    ragged: list[tuple[int, int]] = field(default_factory=list)
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)
    # True when the file was split without the csv module (see the module's docstring)
    split_plainly: bool = False

    @property
    def record_count(self) -> int:
        return len(self.lines)


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
    plain_split: bool = True,
) -> CsvRecords:
    """Decode and split `path`; header names are normalised and renamed by `column_map`.

    `plain_split=False` always uses the csv module (the quote-free shortcut gives the same
    records; the switch lets a test check that).
    """
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
    dialect = _sniff_dialect(text)
    # The separators and line breaks are ASCII: in UTF-8, Windows-1252 and Latin-1 each is
    # one byte of its own, so the file's bytes show where they are; UTF-16 is encoded anew.
    raw = text.encode() if encoding == "utf-16" else data
    plain = _split_plain(text, raw, str(dialect.delimiter)) if plain_split else None
    if plain is not None:
        header, lines, fields = plain
        ragged: list[tuple[int, int]] = []
    else:
        previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
        try:
            reader = csv.reader(io.StringIO(text, newline=""), dialect=dialect)
            header, lines, rows, ragged = _split(reader, text)
        finally:
            csv.field_size_limit(previous_limit)
        # One transposition in C instead of a Python loop per column and row.
        fields = list(zip(*rows, strict=True)) if rows else [[] for _name in header]
    columns = [renames.get(normalise_column(name), normalise_column(name)) for name in header]
    seen: set[str] = set()
    for name in columns:
        if name and name in seen:
            raise FileRejected(f"the column {name!r} appears twice in the header")
        seen.add(name)
    return CsvRecords(columns, lines, fields, ragged, encoding, warnings, plain is not None)


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


def _split_plain(
    text: str, raw: bytes, delimiter: str
) -> tuple[list[str], Sequence[int], list[Sequence[str]]] | None:
    """(header, record start lines, columns) of a file without quotes; None for any other.
    `raw` is the text's bytes (see `_separators`).

    Without a quote character the csv module's records are exactly the lines and its values
    exactly the pieces between separators, so splitting is enough -- provided every line has
    as many separators as the header (an empty line, which csv reads as no record, has none).
    """
    if '"' in text:
        return None
    line_break = "\n"
    if "\r" in text:
        crlf = text.count("\r\n")
        if text.count("\r") != crlf:
            return None  # a lone carriage return ends a record for csv
        if text.count("\n") == crlf:
            line_break = "\r\n"  # every line ends so (csv's own writer does that)
        else:
            text = text.replace("\r\n", "\n")
    width = _separators(raw, delimiter)
    if width is None or width < 2:
        return None
    if not _lines_shorter_than(raw, MAX_FIELD_CHARS):
        return None  # a field may be too long: let csv say so, and where
    # Every line break becomes a separator: one split then gives every value in order.
    values = text.replace(line_break, delimiter).split(delimiter)
    if text.endswith(line_break):
        values.pop()  # the line break that ends the last record
    records = len(values) // width - 1
    header = values[:width]
    columns: list[Sequence[str]] = [values[width + i :: width] for i in range(width)]
    return header, range(2, records + 2), columns


def _separators(raw: bytes, delimiter: str) -> int | None:
    """The number of values on each line of `raw`, when every line holds as many
    `delimiter`s as the first; None otherwise.

    `raw` is the file's bytes in an encoding where the separator and the line break are
    one byte each that stands for nothing else (UTF-8, Windows-1252, Latin-1). Deleting
    every other byte leaves the separators and line breaks in file order, which must read
    as the first line's repeated: two C-level passes instead of a Python string per line.
    """
    separator, newline = delimiter.encode(), b"\n"
    kept = separator + newline
    found = raw.translate(None, bytes(b for b in range(256) if b not in kept))
    if not raw.endswith(newline):
        found += newline  # the last line, without a line break after it
    first_line = found[: found.index(newline) + 1]
    if len(found) % len(first_line) or found != first_line * (len(found) // len(first_line)):
        return None
    return len(first_line)


def _lines_shorter_than(raw: bytes, limit: int) -> bool:
    """Whether `raw` certainly has no line of `limit` bytes or more (a line in characters
    is no longer than in bytes). Any line that long holds a whole block of limit // 2
    bytes, counted from the start, so a line break in every such block is enough; a
    file with a block without one is taken as having such a line."""
    block = max(1, limit // 2)
    starts = range(0, len(raw) - block + 1, block)
    return all(raw.find(b"\n", start, start + block) >= 0 for start in starts)


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
