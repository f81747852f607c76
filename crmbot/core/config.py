"""One typed place for every setting, read from the environment and `.env`.

Every field here has a line in `.env.example`; a test keeps the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "change-me",
    "xoxb-your-token",
    "your-signing-secret",
    "xapp-your-token",
}


def _env(name: str) -> AliasChoices:
    # Fields are named for the code; the environment keeps Slack's and the usual names.
    return AliasChoices(name, name.lower())


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field("sqlite:///crmbot.db", validation_alias=_env("DATABASE_URL"))

    slack_bot_token: str = Field("", validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: str = Field("", validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_app_token: str = Field("", validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_base_url: str = Field(
        "https://slack.com/api/", validation_alias=_env("SLACK_API_BASE_URL")
    )
    slash_command: str = Field("/crm", validation_alias=_env("CRMBOT_SLASH_COMMAND"))

    admin_users: CsvList = Field(default_factory=list, validation_alias=_env("CRMBOT_ADMIN_USERS"))
    allowed_users: CsvList = Field(
        default_factory=list, validation_alias=_env("CRMBOT_ALLOWED_USERS")
    )
    allowed_channels: CsvList = Field(
        default_factory=list, validation_alias=_env("CRMBOT_ALLOWED_CHANNELS")
    )
    own_book_only: bool = Field(False, validation_alias=_env("CRMBOT_OWN_BOOK_ONLY"))

    timezone: str = Field("UTC", validation_alias=_env("CRMBOT_TIMEZONE"))
    retrain_cron: str = Field("0 2 * * *", validation_alias=_env("CRMBOT_RETRAIN_CRON"))
    at_risk_digest_cron: str = Field(
        "0 8 * * mon-fri", validation_alias=_env("CRMBOT_AT_RISK_DIGEST_CRON")
    )
    influencer_digest_cron: str = Field(
        "0 9 * * mon", validation_alias=_env("CRMBOT_INFLUENCER_DIGEST_CRON")
    )
    at_risk_channel: str = Field("", validation_alias=_env("CRMBOT_AT_RISK_CHANNEL"))
    influencer_channel: str = Field("", validation_alias=_env("CRMBOT_INFLUENCER_CHANNEL"))
    admin_channel: str = Field("", validation_alias=_env("CRMBOT_ADMIN_CHANNEL"))
    digest_dm_owners: bool = Field(False, validation_alias=_env("CRMBOT_DIGEST_DM_OWNERS"))
    digest_size: int = Field(10, ge=1, le=40, validation_alias=_env("CRMBOT_DIGEST_SIZE"))
    training_lock_lease_seconds: int = Field(
        3600, ge=30, validation_alias=_env("CRMBOT_TRAINING_LOCK_LEASE_SECONDS")
    )

    clv_horizon_months: int = Field(
        12, ge=1, le=120, validation_alias=_env("CRMBOT_CLV_HORIZON_MONTHS")
    )
    clv_monthly_discount_rate: float = Field(
        0.01, ge=0, lt=1, validation_alias=_env("CRMBOT_CLV_MONTHLY_DISCOUNT_RATE")
    )
    clv_margin: float = Field(0.3, gt=0, le=1, validation_alias=_env("CRMBOT_CLV_MARGIN"))
    churn_horizon_days: int = Field(
        90, ge=7, le=730, validation_alias=_env("CRMBOT_CHURN_HORIZON_DAYS")
    )
    churn_auc_margin: float = Field(
        0.02, ge=0, le=1, validation_alias=_env("CRMBOT_CHURN_AUC_MARGIN")
    )
    random_seed: int = Field(42, validation_alias=_env("CRMBOT_RANDOM_SEED"))
    # Where training groups orders: "auto" = the database on a server (PostgreSQL, MariaDB),
    # so training reads one row per customer instead of every order and line; pandas over
    # the loaded orders on SQLite (`crmbot.analytics.database_source`).
    summary_in_database: Literal["auto", "always", "never"] = Field(
        "auto", validation_alias=_env("CRMBOT_SUMMARY_IN_DATABASE")
    )

    llm_url: str = Field("", validation_alias=_env("CRMBOT_LLM_URL"))
    llm_api_key: str = Field("", validation_alias=_env("CRMBOT_LLM_API_KEY"))
    llm_model: str = Field("gpt-4o-mini", validation_alias=_env("CRMBOT_LLM_MODEL"))
    llm_timeout_seconds: float = Field(
        8.0, gt=0, le=120, validation_alias=_env("CRMBOT_LLM_TIMEOUT_SECONDS")
    )

    chart_dir: str = Field("crmbot-charts", validation_alias=_env("CRMBOT_CHART_DIR"))
    log_level: str = Field("INFO", validation_alias=_env("CRMBOT_LOG_LEVEL"))

    @field_validator("admin_users", "allowed_users", "allowed_channels", mode="before")
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

    @field_validator("retrain_cron", "at_risk_digest_cron", "influencer_digest_cron")
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
