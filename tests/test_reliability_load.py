"""Under load: signed slash commands over HTTP on loopback against `crmbot run` (uvicorn,
a subprocess) while `crmbot train` retrains the same SQLite database. The CI-sized version
of `python -m benchmarks.load`, which runs the full 500 requests at concurrency 50 by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load import run_load
from benchmarks.load_checks import ACK_DEADLINE_SECONDS, Sent, check_reply, table
from benchmarks.load_setup import Score, active_run, copy_database, scores_of_run
from crmbot.reply.format import money


@pytest.fixture
def company_copy(sample_company, tmp_path: Path) -> Path:  # noqa: ANN001
    """A private copy of the trained sample company: the load test retrains it."""
    database = tmp_path / "load.db"
    copy_database(Path(sample_company.engine.url.database), database)
    return database


@pytest.mark.slow  # ~30 s: a real retrain of the sample company runs beside the load
def test_commands_under_load_while_a_retrain_runs(company_copy: Path, tmp_path: Path) -> None:
    result = run_load(company_copy, workdir=tmp_path, requests=120, concurrency=20)
    print(table(result, concurrency=20))  # shown with -s or when the test fails

    assert result.problems == []
    burst = [r for r in result.requests if r.phase == "burst"]
    assert len(burst) == 120
    # Every request: acknowledged with an empty 200 within Slack's 3 seconds...
    assert all(r.status == 200 and r.body == "" for r in result.requests)
    assert max(result.ack_latencies()) < ACK_DEADLINE_SECONDS
    # ...answered once, correctly, and audited exactly once.
    assert result.wrong == []
    assert {r.request_id for r in result.requests} == set(result.audit_rows)
    assert set(result.audit_rows.values()) == {1}
    assert "database is locked" not in result.bot_output
    # The retrain really ran beside the load: it flipped after the burst had started, the
    # old model answered before it and the new one after it.
    assert result.new_run is not None and result.new_run != result.old_run
    assert result.flip_at is not None and result.flip_at > result.load_started
    assert result.served_by[result.old_run] > 0 and result.served_by[result.new_run] > 0


def test_a_reply_mixing_two_model_runs_is_caught(sample_company) -> None:  # noqa: ANN001
    """The load check is not blind: a card whose footer names one run but whose numbers
    come from another is reported, and so is a reply that says the database is locked."""
    database = Path(sample_company.engine.url.database)
    run, _ = active_run(database)
    scores = scores_of_run(database, run)
    customer_id, score = next(
        (cid, s) for cid, s in sorted(scores.items()) if s.clv and s.clv > 100 and s.segment
    )
    request = Sent(
        index=1,
        text=f"customer {customer_id}",
        kind="customer",
        customer_id=customer_id,
        path="/respond/1",
        request_id="cmd:1",
        phase="burst",
    )
    card = (
        f"{score.name} ({customer_id}) Segment {score.segment} CLV {money(score.clv)} · "
        f"Model run {run}, data as of {sample_company.as_of:%Y-%m-%d}."
    )
    assert check_reply(request, [{"text": card}], {run: scores}) == (None, run)

    other_run = run + 1
    changed = {cid: Score(s.name, s.segment, (s.clv or 0) * 2) for cid, s in scores.items()}
    problem, _ = check_reply(request, [{"text": card}], {run: changed, other_run: scores})
    assert problem is not None and "missing" in problem

    locked = card + " (database is locked)"
    problem, _ = check_reply(request, [{"text": locked}], {run: scores})
    assert problem is not None and "database is locked" in problem
    assert check_reply(request, [], {run: scores})[0] == "no answer arrived"
