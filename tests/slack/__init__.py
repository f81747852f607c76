"""The real Bolt app, driven by signed HTTP requests, against a local fake of the Slack Web
API (port 0). Every answer is read back from what the fake received: response_url posts,
chat.postMessage / chat.postEphemeral, views.publish, file uploads.

* `test_slack_commands`: slash commands, slow work, action ids, hostile command text;
* `test_slack_events`: mentions, DMs, buttons, the App Home, Slack's retries;
* `test_slack_safety`: signatures, access, privacy, logs, the database going away.

The fixtures (`conftest.py`) replace the suite's `crm` and `bot` for these tests: the
small CRM in a database file and the Bolt app over it (`tests.support.slack_bot.Bot`).
"""
