"""Keep secrets and personal data out of the logs.

Bolt logs the body of a request whose signature fails (at INFO) and slack_sdk logs whole
API requests and responses at DEBUG — bodies that carry the verification token, message
text with customer emails, and so on. `LogScrubber` rewrites every record that passes
through the loggers it is installed on: known secret values and anything shaped like a
Slack token become `[redacted]`, request bodies in Bolt's rejection message are dropped,
and emails and phone numbers are masked.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

from crmbot.core.privacy import mask_pii

REDACTED = "[redacted]"
# Slack tokens (bot, user, app-level, config, refresh) and the legacy verification token
# as it appears in form bodies ("token=...&").
_TOKEN_PATTERNS = [
    re.compile(r"\bxox[a-z]-[A-Za-z0-9\-]+"),
    re.compile(r"\bxapp-[A-Za-z0-9\-]+"),
    re.compile(r"(?<=token=)[^&\s'\"]+"),
    re.compile(r"(?i)(?<=[\"']token[\"']: [\"'])[^\"']+"),
    re.compile(r"(?i)(?<=authorization[\"']: [\"']bearer )[^\"']+"),
    re.compile(r"(?i)(?<=x-slack-signature[\"']: \[[\"'])[^\"']+"),
]
# Bolt: "Invalid request signature detected (signature: ..., timestamp: ..., body: ...)"
_BOLT_REJECTED_BODY = re.compile(r"(body: ).*?(\)?)$", re.DOTALL)

# Prefixes of the loggers whose records may carry request bodies, tokens or replies.
SCRUBBED_LOGGERS = ("slack_bolt", "slack_sdk", "crmbot", "commands", "uvicorn")


class LogScrubber(logging.Filter):
    """A filter that never drops a record, only rewrites its message."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add_secrets(self, values: Iterable[str]) -> None:
        with self._lock:
            # Short values would redact ordinary words; real secrets are long.
            self._secrets.update(v for v in values if v and len(v) >= 8)

    def scrub(self, text: str) -> str:
        if "Invalid request signature" in text:
            text = _BOLT_REJECTED_BODY.sub(r"\1(withheld)\2", text)
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(REDACTED, text)
        return mask_pii(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logged as it is
            return True
        cleaned = self.scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


SCRUBBER = LogScrubber()


def install(secrets: Iterable[str] = (), *, extra_loggers: Iterable[logging.Logger] = ()) -> None:
    """Scrub every record of the known loggers and every record the root handlers write.

    Logger filters only see records created on that very logger, so the filter goes on
    each existing logger under the prefixes above (and on `extra_loggers`), and on the
    root logger's handlers for anything else that propagates there.
    """
    SCRUBBER.add_secrets(secrets)
    names = list(logging.root.manager.loggerDict)
    targets: list[logging.Logger] = [logging.getLogger(p) for p in SCRUBBED_LOGGERS]
    targets += [
        logging.getLogger(name)
        for name in names
        if name.startswith(SCRUBBED_LOGGERS)
        and isinstance(logging.root.manager.loggerDict[name], logging.Logger)
    ]
    targets += list(extra_loggers)
    targets.append(logging.root)
    for logger in targets:
        if SCRUBBER not in logger.filters:
            logger.addFilter(SCRUBBER)
    for handler in logging.root.handlers:
        if SCRUBBER not in handler.filters:
            handler.addFilter(SCRUBBER)
