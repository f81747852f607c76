"""Masking of emails and phone numbers as people really write them, and only them.

`crmbot.core.privacy.mask_pii` is the one function that masks what others may see: a
shared reply (Slack and the shell), a digest, a channel post, the audit log and every log
record (`crmbot.core.redact`). The tables below are what it must mask and what it must
leave alone (dates, money, ids, times, percentages).
"""

from __future__ import annotations

import json
import logging

import pytest

from crmbot.core.privacy import contains_pii, mask_email, mask_pii
from crmbot.core.redact import LogScrubber
from crmbot.reply import Reply, Table
from crmbot.shell.text import render
from crmbot.slack.blocks import message

# Phone numbers, each with the two last digits its mask keeps (of the number, not of an
# extension).
PHONES = [
    ("+44 20 7946 0958", "58"),
    ("+44\u00a020\u00a07946\u00a00958", "58"),  # non-breaking spaces (a spreadsheet, Word)
    ("+33\u202f1\u202f23\u202f45\u202f67\u202f89", "89"),  # narrow non-breaking spaces
    ("555  123  4567", "67"),  # double spaces
    ("+44  20  7946  0958", "58"),
    ("555/123/4567", "67"),
    ("030/1234567", "67"),
    ("030 / 123 4567", "67"),
    ("555_123_4567", "67"),
    ("555,123,4567", "67"),
    ("555-123-4567 x 204", "67"),
    ("555-123-4567x204", "67"),
    ("555-123-4567 X204", "67"),
    ("555-123-4567 ext. 204", "67"),
    ("555-123-4567 ext 204", "67"),
    ("+1 555 123 4567 extension 12", "67"),
    ("(555) 123-4567", "67"),
    ("+1 (555) 123-4567", "67"),
    ("+49 (0)30 1234567", "67"),
    ("+44 (0)20 7946 0958", "58"),
    ("555.123.4567", "67"),
    ("555-123-4567", "67"),
    ("555 123 4567", "67"),
    ("5551234567", "67"),
    ("+15551234567", "67"),
    ("0049 30 1234567", "67"),
    ("555\u2013123\u20134567", "67"),  # en dashes, as autocorrect writes them
    ("06 12 34 56 78", "78"),
    ("0612345678", "78"),
]

EMAILS = [
    "a@b.co",
    "joe@[10.0.0.1]",
    "x@10.0.0.1",
    "joe@[IPv6:2001:db8::1]",
    "o'brien@example.com",
    "ann+crm@example.com",
    "first.last@sub.example.co.uk",
    "ANN@EXAMPLE.COM",
    "jürgen@müller.de",
    "ann@example-shop.de",
    "x_y@ex.io",
    "ann-marie.o'neil@example.ie",
]

# In a sentence: what is masked, and exactly what is left around it.
IN_TEXT = [
    ("Call 555-123-4567.", "Call •••67."),
    ("phone: 555 123 4567, thanks", "phone: •••67, thanks"),
    ("(call +44 20 7946 0958)", "(call •••58)"),
    ("call (555-123-4567) now", "call (•••67) now"),
    ("tel:+15551234567", "tel:•••67"),
    ("Mail ann@example.com.", "Mail a•••@e•••."),
    ("'o'brien@example.com'", "'o•••@e•••'"),
    ("<mailto:ann@example.com|ann@example.com>", "<mailto:a•••@e•••|a•••@e•••>"),
    ("Ann  555-123-4567  €1,234", "Ann  •••67  €1,234"),  # a table row
    ("€1,234  555-123-4567", "€1,234  •••67"),
    ("2026-06-30 555-123-4567", "2026-06-30 •••67"),
    ("Ann (C000123), ann@example.com, +44 20 7946 0958", "Ann (C000123), a•••@e•••, •••58"),
]

NOT_PII = [
    # dates and times
    "2026-06-30",
    "30/06/2026",
    "06/30/2026",
    "2026/06/30",
    "30.06.2026",
    "2026-06-30 08:00",
    "2026-06-30T08:00:00Z",
    "2026-06-30T08:00:00.123456+02:00",
    "2026-06-01 – 2026-06-30",
    "from 2026-06-01 to 2026-06-30",
    "12:30:45",
    "08:00",
    "12:30:45.123456",
    # money and numbers
    "1,234,567.89",
    "$1,234,567.89",
    "€1.234.567,89",
    "12,345,678",
    "1,234,567",
    "-1,234,567.89",
    "-12.5",
    "spend 1,234,567 and 2,345,678",
    "45.5%",
    "12.25%",
    "0.8123456",
    "-0.8123456",
    "p=0.000123456",
    # ids
    "ORD-2026-000123",
    "order #100234567",
    "SO-000123-01",
    "INV/2026/000123",
    "C000123",
    "customer C000123 (1001)",
    "run 42 as of 2026-06-30",
    # addresses and versions
    "192.168.100.200",
    "127.0.0.1:54321",
    "v1.2.3",
    # table rows: numbers in neighbouring columns
    "17   9   17,179",
    "12  3,400  7",
    "Spend  €12,345  45%",
    # mentions and things with an @ that are not emails
    "customers of @maria",
    "<@U0AM1|maria>",
    "a•••@e•••",
]


def digits_of(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@pytest.mark.parametrize(("phone", "last_two"), PHONES)
def test_phone_numbers_are_masked_whole(phone: str, last_two: str) -> None:
    assert contains_pii(phone)
    assert mask_pii(phone) == f"•••{last_two}"
    assert mask_pii(f"call {phone} today") == f"call •••{last_two} today"
    assert not contains_pii(mask_pii(f"call {phone} today"))


@pytest.mark.parametrize("email", EMAILS)
def test_emails_are_masked_whole(email: str) -> None:
    masked = mask_email(email)
    assert masked.startswith(email[0]) and masked.count("•••") == 2
    assert contains_pii(email)
    assert mask_pii(email) == masked
    assert mask_pii(f"write to {email} today") == f"write to {masked} today"
    assert not contains_pii(mask_pii(f"write to {email} today"))


@pytest.mark.parametrize(("text", "masked"), IN_TEXT)
def test_masking_in_running_text(text: str, masked: str) -> None:
    assert contains_pii(text)
    assert mask_pii(text) == masked
    assert not contains_pii(masked)


@pytest.mark.parametrize("text", NOT_PII)
def test_dates_money_ids_and_times_are_not_masked(text: str) -> None:
    assert mask_pii(text) == text
    assert not contains_pii(text)


def test_masking_stays_fast_on_long_text() -> None:
    import time

    text = ("a" * 50_000 + " ") * 4 + "a." * 25_000 + "@ " + "1" * 100_000 + " 1.2" * 20_000
    started = time.perf_counter()
    mask_pii(text)
    contains_pii(text)
    assert time.perf_counter() - started < 2


def test_every_place_that_masks_masks_the_new_formats(caplog: pytest.LogCaptureFixture) -> None:
    """A shared Slack reply, a shared shell reply and a log record."""
    phone, email = "555/123/4567 ext. 204", "o'brien@example.com"
    reply = Reply(
        title="Ann",
        fields=[("Email", email), ("Phone", phone)],
        table=Table(columns=["who", "phone"], rows=[["Ann", "+44\u00a020\u00a07946\u00a00958"]]),
        contains_pii=True,
    )
    shared = [json.dumps(message(reply, shared=True), ensure_ascii=False)]
    reply.private = False
    shared.append(render(reply))
    scrubber = LogScrubber()
    logger = logging.getLogger("crmbot.test_privacy_masking")
    logger.addFilter(scrubber)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("lookup of %s / %s / x@10.0.0.1", email, phone)
    finally:
        logger.removeFilter(scrubber)
    shared.append(caplog.text)
    for text in shared:
        assert "brien" not in text and "4567" not in text and "0958" not in text, text
        assert "10.0.0.1" not in text, text
        assert not contains_pii(text), text
