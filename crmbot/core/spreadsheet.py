"""CSV files for people: nothing in them runs as a formula when a spreadsheet opens them.

Excel, LibreOffice and Google Sheets run a cell that begins with `=`, `+`, `-` or `@` as a
formula, and a tab or carriage return in front does not stop them ("CSV injection"). A
customer's name, an id or a rejected value from an import can begin so. Every CSV crmbot
writes for people (the scores export, an import's rejected rows) is written through
`writer`, which prefixes such a text cell with `'` (OWASP's advice), so it reads as the
text it is. Numbers, also negative ones, are written as numbers, and so is text that is
only a number ("-12.5"): it cannot run anything.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Characters a spreadsheet may skip before it looks for a formula's first character.
_SKIPPED_IN_FRONT = " \n"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as a CSV cell no spreadsheet runs: text that would start a formula gets a
    leading `'`; anything else, numbers included, is returned as it is."""
    if not isinstance(value, str) or not value:
        return value
    first = value[0] if value[0] in FORMULA_STARTS else value.lstrip(_SKIPPED_IN_FRONT)[:1]
    if first not in FORMULA_STARTS or _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


class SafeWriter:
    """`csv.writer` whose every cell goes through `safe_cell`."""

    def __init__(self, handle: IO[str]) -> None:
        self._writer = csv.writer(handle)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(handle: IO[str]) -> SafeWriter:
    """A CSV writer for a file people open in a spreadsheet (see the module's docstring)."""
    return SafeWriter(handle)
