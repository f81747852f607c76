"""Masking of personal data for anything others may see: channel posts, digests, logs."""

from __future__ import annotations

import re

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Phone numbers: 7+ digits with the usual separators, optionally international. Spaces only
# one at a time: numbers in neighbouring table columns ("17   9   17,179") are not a phone.
PHONE_PATTERN = re.compile(r"(?<![\w.])\+?\d(?:[\d().\-]| (?! )){6,}\d(?![\w.])")
# ISO dates and times ("2026-06-29", "2026-06-29 08:00") have enough digits and separators
# to pass for phone numbers; they are kept out of the phone search.
ISO_DATETIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?")


def mask_email(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain[:1]}•••"


def mask_phone(phone: str | None) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return f"•••{digits[-2:]}" if digits else ""


def _looks_like_phone(match: str) -> bool:
    return len(re.sub(r"\D", "", match)) >= 7


def _between_dates(text: str) -> list[str]:
    return ISO_DATETIME_PATTERN.split(text)


def mask_pii(text: str) -> str:
    """Replace every email and phone number in `text` by its masked form."""
    text = EMAIL_PATTERN.sub(lambda m: mask_email(m.group(0)), text)
    dates = ISO_DATETIME_PATTERN.findall(text)
    pieces = [
        PHONE_PATTERN.sub(
            lambda m: mask_phone(m.group(0)) if _looks_like_phone(m.group(0)) else m.group(0),
            piece,
        )
        for piece in _between_dates(text)
    ]
    return "".join(p + (dates[i] if i < len(dates) else "") for i, p in enumerate(pieces))


def contains_pii(text: str) -> bool:
    if EMAIL_PATTERN.search(text):
        return True
    return any(
        _looks_like_phone(m.group(0))
        for piece in _between_dates(text)
        for m in PHONE_PATTERN.finditer(piece)
    )
