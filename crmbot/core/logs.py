"""Log records as JSON, one object per line, for log collectors (CRMBOT_LOG_FORMAT=json).

    {"time": "2026-03-02T08:00:01.123Z", "level": "WARNING", "logger": "crmbot.chat.dispatch",
     "message": "at-risk took longer than 15.0s: ...", "thread": "crmbot-listener_0"}

`exception` holds the traceback when there is one. The message and the traceback are the
ones the log scrubber (`crmbot.core.redact`) already rewrote: no secrets, emails masked.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, thread,
    and exception when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json(handlers: list[logging.Handler]) -> None:
    """Make `handlers` write JSON."""
    formatter = JsonFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)
