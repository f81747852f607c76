"""An export through Slack, by signed HTTP requests to the real Bolt app and a local fake
of the Web API: the "Export all as CSV" button, the file uploaded with files_upload_v2
(files.getUploadURLExternal, the upload, files.completeUploadExternal) to the asker's DM
with the bot, or to the channel masked with --share, and nothing left on the bot's disk."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.slack_bot import Bot, text_of
from tests.support.slack_fake import Recorded
from tests.support.small_crm import PEOPLE


def uploads(bot: Bot, count: int = 1) -> list[tuple[dict[str, Any], list[dict[str, str]]]]:
    """(files.completeUploadExternal's parameters, the CSV's rows) of each file uploaded."""
    bot.wait_for(
        lambda rs: [r for r in rs if r.method == "files.completeUploadExternal"][count - 1 :]
    )
    requests: list[Recorded] = list(bot.slack.requests)
    files = {r.path.rsplit("/", 1)[1]: r.params["_raw"] for r in requests if "/upload/" in r.path}
    found = []
    for done in [r for r in requests if r.method == "files.completeUploadExternal"]:
        listed = done.params["files"]
        file_id = (listed if isinstance(listed, list) else json.loads(listed))[0]
        rows = list(csv.DictReader(io.StringIO(files[file_id["id"]])))
        found.append((done.params, rows))
    return found


@pytest.fixture(autouse=True)
def own_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports are made in this test's own temp folder, so that "nothing left on disk" does
    not count another process's files in the machine's /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def exports_on_disk() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("crmbot-export-*"))


def left_on_disk(before: set[Path], seconds: float = 5.0) -> set[Path]:
    """The exports still on disk besides `before`, once the bot has had `seconds` to delete
    them: it deletes a file after Slack answers the upload, a moment after the stand-in
    has recorded it."""
    deadline = time.monotonic() + seconds
    while (left := exports_on_disk() - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def test_the_button_uploads_every_account_to_the_askers_dm(bot: Bot) -> None:
    before = exports_on_disk()
    _response, path = bot.command("at-risk 3")
    message = bot.answer(path)
    buttons = [
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    export = [b for b in buttons if b["text"]["text"] == "Export all as CSV"]
    assert export and export[0]["action_id"].startswith("crm_at_risk")
    assert export[0]["value"] == "--csv"

    _response, clicked = bot.click(export[0]["action_id"], export[0]["value"])
    answer = bot.answer(clicked)
    assert answer["response_type"] == "ephemeral"
    assert "rows as CSV" in text_of(answer)
    [(completed, rows)] = uploads(bot)
    assert completed["channel_id"] == "DAM1"  # the asker's DM with the bot, not the channel
    assert rows[0]["Customer"] == "C003" and rows[0]["Email"] == "alan@bletchley.example"
    assert "C011" not in {row["Customer"] for row in rows}  # erased
    assert not left_on_disk(before)  # deleted once Slack had it


def test_a_shared_export_goes_to_the_channel_masked(bot: Bot) -> None:
    before = exports_on_disk()
    _response, path = bot.command("ask top 2 customers by CLV --csv --share")
    answer = bot.answer(path)
    assert answer["response_type"] == "in_channel"
    [(completed, rows)] = uploads(bot)
    assert completed["channel_id"] == "C0CRM"
    assert rows and "Customer" in rows[0]
    raw = [r.params["_raw"] for r in bot.slack.requests if "/upload/" in r.path][0]
    # No email in a shared file: neither a customer's nor an owner's (C003's is maria's).
    assert "maria@crm.example" not in raw and "C003" in raw
    assert not [row[2] for row in PEOPLE if row[2] and row[2] in raw]
    assert not left_on_disk(before)


def test_a_refused_upload_is_said_to_the_asker(bot: Bot) -> None:
    from tests.support.slack_fake import Reply

    bot.slack.script(
        "files.getUploadURLExternal", Reply(200, {"ok": False, "error": "not_allowed"})
    )
    _response, path = bot.command("at-risk --csv")
    bot.answer(path)
    said = bot.wait_for(
        lambda rs: [
            r
            for r in rs
            if r.method == "chat.postMessage" and "did not take" in str(r.params.get("text"))
        ]
    )
    assert said[0].params["channel"] == "UAM1"
