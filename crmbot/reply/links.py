"""Deep links to the company's own CRM (CRMBOT_CUSTOMER_URL_TEMPLATE).

customer_url("https://crm.example.com/customers/{id}", "123")
    -> "https://crm.example.com/customers/123"
customer_id_in("https://crm.example.com/customers/{id}", "https://crm.example.com/customers/123?tab=1")
    -> "123"
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

PLACEHOLDER = "{id}"


def customer_url(template: str, customer_id: str) -> str | None:
    """The customer's page in the CRM, or None when no template is set."""
    if not template or PLACEHOLDER not in template:
        return None
    return template.replace(PLACEHOLDER, quote(customer_id, safe=""))


@lru_cache(maxsize=8)
def _pattern(template: str) -> re.Pattern[str]:
    before, _, after = template.partition(PLACEHOLDER)
    # http and https, with or without "www.", name the same page.
    prefix = re.sub(r"^https?://(www\.)?", "", before, flags=re.IGNORECASE)
    return re.compile(
        r"^https?://(?:www\.)?"
        + re.escape(prefix)
        + r"(?P<id>[^/?#]{1,120})"
        + re.escape(after)
        + r"(?:[?#].*)?/?$",
        re.IGNORECASE,
    )


def customer_id_in(template: str, url: str) -> str | None:
    """The customer id a link to the CRM names, or None when it is not such a link."""
    if not template or PLACEHOLDER not in template:
        return None
    match = _pattern(template).match(url.strip())
    if match is None:
        return None
    found = unquote(match.group("id")).strip()
    return found or None


def unfurl_domain(template: str) -> str | None:
    """The host Slack must unfurl for the app (the manifest's unfurl_domains)."""
    if not template or PLACEHOLDER not in template:
        return None
    host = urlsplit(template.replace(PLACEHOLDER, "x")).hostname
    return host.removeprefix("www.") if host else None
