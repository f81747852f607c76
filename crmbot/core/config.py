"""One typed place for every setting, read from the environment and `.env`.

Every field here has a line in `.env.example`; a test keeps the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, AliasGenerator, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "change-me",
    "xoxb-your-token",
    "your-signing-secret",
    "xapp-your-token",
}


ENV_PREFIX = "CRMBOT_"


def _env(name: str) -> AliasChoices:
    # Fields are named for the code; these keep Slack's and the usual environment names.
    return AliasChoices(name, name.lower())


def _prefixed(field_name: str) -> AliasChoices:
    # Every other field `xyz` is read from `CRMBOT_XYZ` (`env_prefix`). The generated alias
    # names that variable on the field itself (tests/test_config.py reads it from there) and,
    # as its second choice, keeps the bare `XYZ` that the environment could always set too.
    return AliasChoices(ENV_PREFIX + field_name.upper(), field_name)


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        alias_generator=AliasGenerator(validation_alias=_prefixed),
        populate_by_name=True,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = Field("sqlite:///crmbot.db", validation_alias=_env("DATABASE_URL"))

    slack_bot_token: str = Field("", validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: str = Field("", validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_app_token: str = Field("", validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_base_url: str = Field(
        "https://slack.com/api/", validation_alias=_env("SLACK_API_BASE_URL")
    )
    slash_command: str = "/crm"
    # The customer's page in the company's own CRM, "{id}" standing for the customer id
    # (e.g. https://crm.example.com/customers/{id}): an "Open in CRM" button on the card,
    # and such links pasted in Slack unfurl as a masked card. Empty: neither.
    customer_url_template: str = ""

    admin_users: CsvList = Field(default_factory=list)
    allowed_users: CsvList = Field(default_factory=list)
    allowed_channels: CsvList = Field(default_factory=list)
    own_book_only: bool = False

    timezone: str = "UTC"
    retrain_cron: str = "0 2 * * *"
    at_risk_digest_cron: str = "0 8 * * mon-fri"
    influencer_digest_cron: str = "0 9 * * mon"
    at_risk_channel: str = ""
    influencer_channel: str = ""
    admin_channel: str = ""
    digest_dm_owners: bool = False
    digest_size: int = Field(10, ge=1, le=40)
    training_lock_lease_seconds: int = Field(3600, ge=30)
    # Alerts on change, after each retrain goes live (`crmbot.digests.alerts`): an account
    # whose churn risk rose by this many percentage points (0 = never for a rise alone),
    # reached the threshold from below, or moved into one of the segments, is sent by DM to
    # its owner and followers, once per run; optionally also to a channel (masked).
    alert_rise_points: int = Field(15, ge=0, le=100)
    alert_risk_threshold: float = Field(0.7, gt=0, le=1)
    alert_segments: CsvList = Field(default_factory=lambda: ["At risk", "Can't lose them"])
    alert_channel: str = ""
    # "20-08": no alert or follow-up DM from 20:00 to 08:00 in CRMBOT_TIMEZONE (held, sent
    # after); empty = any hour. At most this many accounts detailed per person per day.
    alert_quiet_hours: str = ""
    alert_daily_cap: int = Field(10, ge=1, le=100)
    # When follow-ups due today, and alerts held by quiet hours, are sent.
    notify_cron: str = "*/15 * * * *"
    # Model runs kept besides the live one and any pinned; older runs are pruned after each
    # successful retrain (`crmbot.runs.retention`). 0 keeps every run.
    retain_runs: int = Field(14, ge=0)
    # Besides those, the first run of each of the last N months (by its data's day): a run
    # older than the churn horizon stays for `crmbot model backtest`. 0 keeps none extra.
    retain_monthly_runs: int = Field(4, ge=0, le=36)

    clv_horizon_months: int = Field(12, ge=1, le=120)
    clv_monthly_discount_rate: float = Field(0.01, ge=0, lt=1)
    clv_margin: float = Field(0.3, gt=0, le=1)
    churn_horizon_days: int = Field(90, ge=7, le=730)
    churn_auc_margin: float = Field(0.02, ge=0, le=1)
    random_seed: int = 42
    # Where training groups orders: "auto" = the database on a server (PostgreSQL, MariaDB),
    # so training reads one row per customer instead of every order and line; pandas over
    # the loaded orders on SQLite (`crmbot.analytics.database_source`).
    summary_in_database: Literal["auto", "always", "never"] = "auto"

    llm_url: str = ""
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(8.0, gt=0, le=120)

    # Bounded work per request: each command's database statements end this many seconds
    # after it started ("that took too long"; 0 = no limit; slow commands such as retrain
    # are exempt), and each user has at most this many commands running at once.
    statement_timeout_seconds: float = Field(15.0, ge=0, le=3600)
    requests_per_user: int = Field(1, ge=1, le=50)

    chart_dir: str = "crmbot-charts"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "admin_users", "allowed_users", "allowed_channels", "alert_segments", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"'{value}' is not a time zone; use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return value

    @field_validator("customer_url_template")
    @classmethod
    def _customer_url(cls, value: str) -> str:
        value = value.strip()
        if value and (value.count("{id}") != 1 or not value.startswith(("https://", "http://"))):
            raise ValueError(
                f"'{value}' is not a customer URL template; write the page's address with "
                "{id} where the customer id goes, e.g. https://crm.example.com/customers/{id}"
            )
        return value

    @field_validator("alert_quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        quiet_hours(value)  # a ValueError says how to write them
        return value.strip()

    @field_validator("retrain_cron", "at_risk_digest_cron", "influencer_digest_cron", "notify_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from crmbot.core.cron import parse_cron

        parse_cron(value, "UTC")  # CronError (a ValueError) says how to write one
        return value

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admin_users

    def slack_problems(self, *, socket_mode: bool) -> list[str]:
        """What stops the Slack bot from starting, in words; empty when it can start."""
        problems = []
        required = {"SLACK_BOT_TOKEN": self.slack_bot_token}
        if socket_mode:
            required["SLACK_APP_TOKEN"] = self.slack_app_token
        else:
            required["SLACK_SIGNING_SECRET"] = self.slack_signing_secret
        for name, value in required.items():
            if value.strip().lower() in PLACEHOLDER_SECRETS:
                problems.append(f"{name} is empty or still the placeholder from .env.example")
        return problems


def quiet_hours(text: str) -> tuple[int, int] | None:
    """ "20-08" as (20, 8): quiet from 20:00 up to 08:00 (across midnight when the start is
    later than the end); None for "" (never quiet). Raises ValueError for anything else."""
    text = text.strip()
    if not text:
        return None
    start, dash, end = text.partition("-")
    if (
        not dash
        or not (start.strip().isdigit() and end.strip().isdigit())
        or not (0 <= int(start) <= 23 and 0 <= int(end) <= 23)
        or int(start) == int(end)
    ):
        raise ValueError(
            f"'{text}' is not quiet hours; write START-END in whole hours, e.g. 20-08 "
            "(20:00 to 08:00), or leave it empty"
        )
    return int(start), int(end)


def is_quiet(hour: int, hours: tuple[int, int] | None) -> bool:
    """Whether `hour` (0-23, local) falls in the quiet hours."""
    if hours is None:
        return False
    start, end = hours
    return start <= hour < end if start < end else hour >= start or hour < end


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
