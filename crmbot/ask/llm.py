"""Optional: a language model reads the questions the rules could not place.

When `CRMBOT_LLM_URL` names an OpenAI-compatible chat completions endpoint, an unplaced
question is sent there with the JSON schema of `StructuredQuery` (``response_format``
json_schema) and the database's names. The answer must be that JSON — never SQL: it is
validated with pydantic (unknown keys refused), every name is mapped onto the vocabulary,
and only then is it run like any parsed question. Timeouts, HTTP errors and bad JSON come
back as `LLMUnavailable` with a sentence for the user; nothing else depends on the model.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from crmbot.ask.parse import Vocabulary, canonicalize
from crmbot.ask.query import StructuredQuery

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 200_000
MAX_NAMES_IN_PROMPT = 60

SYSTEM_PROMPT = """\
You translate an account manager's question about a CRM into a JSON object that follows
the given JSON schema exactly. Answer with that JSON object only: no prose, no SQL.

Entities: "customers" (scores of each customer), "orders" (purchases; measure "amount"),
"referrals" (who referred whom; group_by "referrer" ranks referrers), "segment_moves"
(customers whose segment changed; "segments" = where they are now, "from_segments" =
where they were), "offer" (next best products for one customer with "customer", or for
a group with filters), "tickets" (support tickets; "status" open/closed; "channels" in
lower case; measure "resolution_days"), "feedback" (survey answers; measures "nps",
"csat"; metric "nps" is promoters minus detractors), "products" (order lines by product;
measure "amount" or "units"), "score_changes" ("measure" went "change" up/down since the
date range's start).
Customers may be filtered by "products" bought, "not_products" never bought, "categories",
"nps_categories" (promoter/passive/detractor), "not_segments", "not_regions", "not_owners",
"not_companies", and "bands" ({{"field": "clv", "top": true, "share": 0.25}} = high CLV).
"compare_range" answers the count/sum/avg again for a second period.
Metrics: "list", "count", "sum", "avg" (sum/avg need "measure"), "nps".
Probabilities (churn_risk, p_alive) are fractions 0-1; satisfaction is 0-100; recency_days is
days since the last order ("no order in 60 days" = recency_days > 60); money is plain numbers.
Dates are ISO (YYYY-MM-DD); "end" is the first day NOT included. Today is {today}.
Use only these names (copy their spelling):
segments: {segments}
regions: {regions}
owners: {owners}
companies (some): {companies}
products: {products}
product categories: {categories}
If the question cannot be expressed with this schema, answer {{"entity": "customers",
"metric": "list", "limit": 0}}.
"""


class LLMUnavailable(Exception):
    """The language model could not translate the question; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@lru_cache(maxsize=1)
def _adapter() -> TypeAdapter[StructuredQuery]:
    return TypeAdapter(StructuredQuery)


def query_schema() -> dict[str, Any]:
    """The JSON schema the model must answer in: `StructuredQuery`'s, unknown keys refused."""
    return _adapter().json_schema()


def endpoint(url: str) -> str:
    """The chat completions URL for a base URL ("http://host/v1") or the full one."""
    url = url.strip().rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


def _names(values: Any) -> str:
    values = list(values)[:MAX_NAMES_IN_PROMPT]
    return ", ".join(values) if values else "(none)"


def request_body(question: str, vocab: Vocabulary, *, today: date, model: str) -> dict[str, Any]:
    prompt = SYSTEM_PROMPT.format(
        today=today.isoformat(),
        segments=_names(vocab.segments),
        regions=_names(vocab.regions),
        owners=_names(vocab.owners),
        companies=_names(vocab.companies),
        products=_names(vocab.products),
        categories=_names(vocab.categories),
    )
    return {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": question},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "structured_query", "schema": query_schema()},
        },
    }


def _post(url: str, body: dict[str, Any], *, api_key: str, timeout: float) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        log.warning("language model answered HTTP %s", exc.code)
        raise LLMUnavailable(
            f"the language model answered with an error (HTTP {exc.code})"
        ) from exc
    except TimeoutError as exc:
        raise LLMUnavailable(f"the language model did not answer within {timeout:g} s") from exc
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(getattr(exc, "reason", None), TimeoutError):
            raise LLMUnavailable(f"the language model did not answer within {timeout:g} s") from exc
        log.warning("language model unreachable: %s", exc)
        raise LLMUnavailable("the language model could not be reached") from exc
    if len(raw) > MAX_RESPONSE_BYTES:
        raise LLMUnavailable("the language model's answer was too long")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise LLMUnavailable("the language model's answer was not JSON") from exc
    if not isinstance(payload, dict):
        raise LLMUnavailable("the language model's answer was not a chat completion")
    return payload


def _content(payload: dict[str, Any]) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMUnavailable("the language model's answer was not a chat completion") from exc
    if not isinstance(content, str):
        raise LLMUnavailable("the language model's answer held no text")
    # Some servers wrap JSON in a Markdown fence despite response_format.
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, flags=re.DOTALL)
    return fenced.group(1) if fenced else content


def translate(
    question: str,
    vocab: Vocabulary,
    *,
    today: date,
    url: str,
    model: str,
    api_key: str = "",
    timeout: float = 8.0,
) -> StructuredQuery:
    """The structured query the model reads in `question`, checked against the vocabulary."""
    body = request_body(question, vocab, today=today, model=model)
    payload = _post(endpoint(url), body, api_key=api_key, timeout=timeout)
    try:
        query = _adapter().validate_json(_content(payload))
    except ValidationError as exc:
        log.info("language model answer refused: %s", exc.errors()[:3])
        raise LLMUnavailable("the language model's answer did not fit the query schema") from exc
    if query.limit == 0:
        raise LLMUnavailable("the language model could not express it as a query either")
    query, problems = canonicalize(query, vocab)
    if problems:
        raise LLMUnavailable("the language model's reading did not fit: " + "; ".join(problems))
    return query
