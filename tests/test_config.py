"""Settings and .env.example stay in step; placeholder secrets never start the bot."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices

from crmbot.core.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
SECRETS = {"slack_bot_token", "slack_signing_secret", "slack_app_token"}


def env_names() -> dict[str, str]:
    """{field name: the environment variable that sets it}."""
    names = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices), f"{field_name} has no environment alias"
        first = alias.choices[0]
        assert isinstance(first, str)
        names[field_name] = first
    return names


def example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()


def example_keys() -> list[str]:
    return [
        line.split("=", 1)[0].strip()
        for line in example_lines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names().values():
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_every_setting_is_in_env_example_and_nothing_else() -> None:
    keys = example_keys()
    assert len(keys) == len(set(keys)), "a key appears twice in .env.example"
    assert sorted(keys) == sorted(env_names().values())


def test_every_setting_has_a_one_line_comment() -> None:
    lines = example_lines()
    for index, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            comment = lines[index - 1]
            assert comment.startswith("# ") and len(comment) > 10, f"no comment above {line!r}"


def test_env_example_holds_the_defaults(clean_environment: None) -> None:
    from_file = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for field_name in Settings.model_fields:
        if field_name not in SECRETS:
            assert getattr(from_file, field_name) == getattr(defaults, field_name), field_name


def test_placeholder_secrets_are_refused(clean_environment: None) -> None:
    placeholders = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert placeholders.slack_problems(socket_mode=False) == [
        "SLACK_BOT_TOKEN is empty or still the placeholder from .env.example",
        "SLACK_SIGNING_SECRET is empty or still the placeholder from .env.example",
    ]
    assert placeholders.slack_problems(socket_mode=True) == [
        "SLACK_BOT_TOKEN is empty or still the placeholder from .env.example",
        "SLACK_APP_TOKEN is empty or still the placeholder from .env.example",
    ]
    empty = Settings(_env_file=None, slack_bot_token="  ")  # type: ignore[call-arg]
    assert len(empty.slack_problems(socket_mode=False)) == 2
    real = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-123-456-abc",
        slack_signing_secret="8f14e45fceea167a5a36dedd4bea2543",
    )
    assert real.slack_problems(socket_mode=False) == []


def test_prefixed_and_plain_environment_names_are_read(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `CRMBOT_` + the field name, through `env_prefix`; the Slack and database names as they are.
    monkeypatch.setenv("CRMBOT_DIGEST_SIZE", "7")
    monkeypatch.setenv("CRMBOT_ADMIN_USERS", "U1, U2")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-the-environment.db")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.digest_size == 7
    assert settings.admin_users == ["U1", "U2"]
    assert settings.database_url == "sqlite:///from-the-environment.db"
    assert settings.slack_bot_token == "xoxb-from-the-environment"
    # Keyword arguments by field name still win over the environment.
    assert Settings(_env_file=None, digest_size=3).digest_size == 3  # type: ignore[call-arg]
