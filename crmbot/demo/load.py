"""Import the sample company's CSV files through the same path a user's files take."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from crmbot.demo.company import FILES
from crmbot.ingest import ImportReport, import_file

# Called with (kind, rows done, rows in the file) as each import goes along.
LoadProgress = Callable[[str, int, int], None]


def load_demo(
    engine: Engine, out_dir: Path | str, *, progress: LoadProgress | None = None
) -> dict[str, ImportReport]:
    """Import every file of `out_dir` in dependency order; the import report per kind.

    Imports upsert on natural keys, so loading the same files twice changes nothing.
    """
    reports: dict[str, ImportReport] = {}
    for kind, name in FILES.items():
        tick = None
        if progress is not None:

            def tick(done: int, total: int, kind: str = kind) -> None:
                progress(kind, done, total)

        reports[kind] = import_file(engine, kind, Path(out_dir) / name, progress=tick)
    return reports
