"""The sample company: a seeded, realistic customer book to try crmbot on.

`generate_company` writes it as the seven CSV files a user would import and returns
`DemoTruth` (what was planted); `load_demo` imports the files through `crmbot.ingest`,
the same path a user's own files take.
"""

from crmbot.demo.company import FILES, DemoTruth, generate_company
from crmbot.demo.load import load_demo

__all__ = ["FILES", "DemoTruth", "generate_company", "load_demo"]
