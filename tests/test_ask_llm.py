"""`crmbot.ask.llm`: the optional language model, against a local fake of an OpenAI-compatible
chat completions endpoint bound to port 0."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from crmbot.ask.llm import LLMUnavailable, endpoint, translate
from crmbot.ask.parse import Vocabulary
from crmbot.ask.query import StructuredQuery, Threshold
from crmbot.chat.dispatch import Dispatcher
from crmbot.core.config import Settings
from tests.support.ask_crm import seed

TODAY = date(2026, 6, 30)
VOCAB = Vocabulary(regions=("EMEA", "APAC"), owners=("maria",), companies=("Initech",))


@dataclass
class FakeCompletions:
    """What the fake endpoint answers next, and what it was sent."""

    status: int = 200
    content: str = "{}"
    raw_body: bytes | None = None
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def fake_llm() -> Iterator[tuple[str, FakeCompletions]]:
    state = FakeCompletions()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(json.loads(self.rfile.read(length)))
            state.headers.append(dict(self.headers))
            state.paths.append(self.path)
            if state.delay:
                time.sleep(state.delay)
            body = state.raw_body
            if body is None:
                body = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": state.content}}]}
                ).encode()
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    server.shutdown()
    server.server_close()


def ask(url: str, question: str = "customers in the old world", **kwargs: Any) -> StructuredQuery:
    return translate(
        question, VOCAB, today=TODAY, url=url, model="test-model", api_key="sk-test", **kwargs
    )


def test_the_answer_becomes_a_checked_query(fake_llm: tuple[str, FakeCompletions]) -> None:
    url, fake = fake_llm
    fake.content = json.dumps(
        {
            "entity": "customers",
            "regions": ["emea"],
            "thresholds": [{"field": "churn_risk", "op": ">", "value": 0.5}],
        }
    )
    query = ask(url)
    assert query == StructuredQuery(
        regions=("EMEA",), thresholds=(Threshold("churn_risk", ">", 0.5),)
    )
    sent = fake.requests[0]
    assert fake.paths == ["/v1/chat/completions"]
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"
    assert sent["model"] == "test-model"
    assert sent["messages"][-1] == {"role": "user", "content": "customers in the old world"}
    schema = sent["response_format"]["json_schema"]["schema"]
    assert "thresholds" in schema["properties"]
    assert schema["additionalProperties"] is False
    system = sent["messages"][0]["content"]
    assert "2026-06-30" in system and "EMEA, APAC" in system and "no SQL" in system


def test_a_json_fence_is_accepted(fake_llm: tuple[str, FakeCompletions]) -> None:
    url, fake = fake_llm
    fake.content = '```json\n{"entity": "orders", "metric": "count"}\n```'
    assert ask(url) == StructuredQuery(entity="orders", metric="count")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("SELECT * FROM customer", "did not fit the query schema"),
        ('{"entity": "customers", "sql": "DROP TABLE customer"}', "did not fit the query schema"),
        ('{"entity": "invoices"}', "did not fit the query schema"),
        ('{"entity": "customers", "regions": ["Narnia"]}', "no region “Narnia”"),
        ('{"entity": "customers", "metric": "list", "limit": 0}', "could not express"),
        ('{"entity": "customers", "metric": "avg"}', "say what to add up or average"),
    ],
)
def test_answers_that_are_not_a_valid_query_are_refused(
    fake_llm: tuple[str, FakeCompletions], content: str, message: str
) -> None:
    url, fake = fake_llm
    fake.content = content
    with pytest.raises(LLMUnavailable, match=message):
        ask(url)


def test_http_errors_and_garbage(fake_llm: tuple[str, FakeCompletions]) -> None:
    url, fake = fake_llm
    fake.status = 500
    with pytest.raises(LLMUnavailable, match="HTTP 500"):
        ask(url)
    fake.status, fake.raw_body = 200, b"<html>not json</html>"
    with pytest.raises(LLMUnavailable, match="not JSON"):
        ask(url)
    fake.raw_body = b'{"choices": []}'
    with pytest.raises(LLMUnavailable, match="not a chat completion"):
        ask(url)


def test_a_slow_model_times_out(fake_llm: tuple[str, FakeCompletions]) -> None:
    url, fake = fake_llm
    fake.delay = 1.5
    started = time.perf_counter()
    with pytest.raises(LLMUnavailable, match="did not answer within 0.3 s"):
        ask(url, timeout=0.3)
    assert time.perf_counter() - started < 1.4


def test_an_unreachable_model() -> None:
    with pytest.raises(LLMUnavailable, match="could not be reached"):
        ask("http://127.0.0.1:9/v1", timeout=2)


def test_endpoint_urls() -> None:
    assert endpoint("http://h/v1") == "http://h/v1/chat/completions"
    assert endpoint("http://h/v1/chat/completions/") == "http://h/v1/chat/completions"


def _dispatcher(engine: Engine, settings: Settings, url: str) -> Dispatcher:
    seed(engine)
    return Dispatcher(engine, settings.model_copy(update={"llm_url": url}))


def test_ask_falls_back_to_the_model_for_unplaced_words(
    engine: Engine, settings: Settings, fake_llm: tuple[str, FakeCompletions]
) -> None:
    url, fake = fake_llm
    fake.content = json.dumps({"entity": "customers", "metric": "count", "regions": ["EMEA"]})
    dispatcher = _dispatcher(engine, settings, url)
    reply = dispatcher.handle(
        "/crm ask how many customers in the old world", user_id="U1", today=TODAY
    )
    assert reply.outcome == "ok"
    assert reply.text.startswith("Customers · region = EMEA · 2 found")
    assert reply.footer == "Read by the language model."
    # Questions the rules understand never go to the model.
    dispatcher.handle("/crm ask how many customers in EMEA", user_id="U1", today=TODAY)
    assert len(fake.requests) == 1


def test_ask_without_a_working_model_still_explains(
    engine: Engine, settings: Settings, fake_llm: tuple[str, FakeCompletions]
) -> None:
    url, fake = fake_llm
    fake.status = 503
    reply = _dispatcher(engine, settings, url).handle(
        "/crm ask customers in the old world", user_id="U1", today=TODAY
    )
    assert reply.outcome == "usage"
    assert "I couldn't place “old”, “world”" in reply.text


def test_what_the_rules_know_never_goes_to_the_model(
    engine: Engine, settings: Settings, fake_llm: tuple[str, FakeCompletions]
) -> None:
    url, fake = fake_llm
    fake.content = json.dumps({"entity": "tickets", "metric": "count"})
    dispatcher = _dispatcher(engine, settings, url)
    why = dispatcher.handle("/crm ask why is Ada Lovelace at risk?", user_id="U1", today=TODAY)
    assert why.outcome == "usage"
    assert "`/crm why Ada Lovelace`" in why.text
    priority = dispatcher.handle("/crm ask tickets by priority", user_id="U1", today=TODAY)
    assert priority.outcome == "usage" and "no priority" in priority.text
    assert fake.requests == []
    # A group's next best products are answered here, not by one customer's card.
    offers = dispatcher.handle(
        "/crm ask next best product for champions", user_id="U1", today=TODAY
    )
    assert offers.outcome == "ok"
    assert offers.text.startswith("Next best products · segment = Champions · 2 customers")


def test_the_model_fills_the_new_fields_with_the_crm_names(
    fake_llm: tuple[str, FakeCompletions],
) -> None:
    url, fake = fake_llm
    vocab = Vocabulary(regions=("EMEA", "APAC"), products=("Descaler", "Milk Frother"))
    fake.content = json.dumps(
        {"products": ["descaler"], "not_products": ["milk frother"], "not_regions": ["emea"]}
    )
    query = translate("hmm", vocab, today=TODAY, url=url, model="m")
    assert (query.products, query.not_products, query.not_regions) == (
        ("Descaler",),
        ("Milk Frother",),
        ("EMEA",),
    )
    assert "Descaler, Milk Frother" in fake.requests[0]["messages"][0]["content"]
    fake.content = json.dumps({"products": ["unicorn blender"]})
    with pytest.raises(LLMUnavailable, match="no product “unicorn blender”"):
        translate("hmm", vocab, today=TODAY, url=url, model="m")
