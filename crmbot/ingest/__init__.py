"""CSV import: validate, clean, deduplicate, upsert, and report every rejected row.

from crmbot.ingest import import_file
report = import_file(engine, "orders", "orders.csv", strict=True)
print(report.summary())
"""

from crmbot.ingest.csvfile import MAX_FIELD_CHARS
from crmbot.ingest.importer import ProgressCallback, UnknownKind, import_file, kind_named
from crmbot.ingest.kinds import KINDS, Kind
from crmbot.ingest.report import ImportReport, Rejection, ReportUnwritable

__all__ = [
    "KINDS",
    "MAX_FIELD_CHARS",
    "ImportReport",
    "Kind",
    "ProgressCallback",
    "Rejection",
    "ReportUnwritable",
    "UnknownKind",
    "import_file",
    "kind_named",
]
