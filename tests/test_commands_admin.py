"""`model`, `audit`, `retrain`: what admins (and everyone, for `model`) see."""

from __future__ import annotations

from tests.support.small_crm import ChatBot, SmallCrm


def test_model_shows_the_active_run_metrics_and_history(bot: ChatBot) -> None:
    reply = bot.reply("model")
    fields = dict(reply.fields)
    assert reply.title == "Model run 2"
    assert fields["Data as of"] == "2026-06-30 (3 days old)"
    assert fields["Customers scored"] == "12"
    assert "*churn*: roc_auc 0.810, pr_auc 0.440, brier 0.120, lift_top_decile 3.200" in reply.text
    assert reply.table is not None and [r[0] for r in reply.table.rows] == ["2", "1"]
    assert reply.table.rows[0][3] == "yes"


def test_audit_is_for_admins_and_lists_the_latest(bot: ChatBot) -> None:
    denied = bot.reply("audit", user="UAM1")
    assert denied.outcome == "denied" and "admins only" in denied.text
    bot.reply("customer C001", user="UAM1")
    reply = bot.reply("audit 3", user="UADMIN")
    assert reply.table is not None and len(reply.table.rows) == 2
    latest, earlier = reply.table.rows
    assert latest[1:4] == ["UAM1", "shell", "customer"] and latest[5] == "ok"
    assert earlier[3] == "audit" and earlier[5] == "denied"


def test_retrain_is_admin_only_and_validates_its_arguments(bot: ChatBot) -> None:
    assert bot.reply("retrain", user="UAM1").outcome == "denied"
    assert bot.reply("retrain tomorrow", user="UADMIN").outcome == "usage"
    assert "cannot look into the future" in bot.reply("retrain 2999-01-01", user="UADMIN").text


def test_retrain_reports_progress_and_the_result(bot: ChatBot, crm: SmallCrm) -> None:
    progress: list[str] = []
    reply = bot.dispatcher.handle("retrain 2026-06-30", user_id="UADMIN", progress=progress.append)
    assert progress[0] == "Retrain as of 2026-06-30 started"
    assert any(p.startswith("Retrain: step 1/") for p in progress)
    # Twelve customers are too few for the CLV model: the run fails, the old model stays.
    assert reply.title.startswith(("Retrain failed", "Retrain finished"))
    assert dict(reply.fields)["As of"] == "2026-06-30"
    if reply.title.startswith("Retrain failed"):
        assert "The previous model stays active." in reply.text
        assert bot.reply("model").title == "Model run 2"


def test_a_retrain_while_one_runs_says_so(bot: ChatBot, crm: SmallCrm) -> None:
    from crmbot.runs.lock import acquire_training_lock

    with acquire_training_lock(crm.engine, "nightly@host", lease_seconds=600):
        reply = bot.reply("retrain", user="UADMIN")
    assert "already in progress" in reply.text and "nightly@host" in reply.text
