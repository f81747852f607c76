"""The tables.

Business rows carry the id the company uses (`customer_id`, `order_id`, ...) as a unique
natural key, and an integer surrogate key the other tables point at. Scores are written
per model run; `ActiveRun` names the run readers see, so switching models is one update.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

# Datetimes are stored naive and always mean UTC: one convention for every dialect and for
# the pandas frames training reads, without a per-value conversion on bulk loads.
# Money and quantities are Double: a plain Float is single precision on MySQL/MariaDB,
# where $123,456.78 would come back as $123,457.


def _json_column() -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True))


class Unreadable:
    """A stored value that could not be read back: text that is not JSON, a date that does
    not parse. A model run's record holds one in place of such a value instead of failing
    to load (`crmbot.runs.run_json` reads a run's JSON through it). Falsy, so `value or {}`
    stays safe, and written as "unreadable" (also in f-strings with a date format)."""

    __slots__ = ("raw",)

    def __init__(self, raw: object) -> None:
        self.raw = raw

    def __bool__(self) -> Literal[False]:
        return False

    def __str__(self) -> str:
        return "unreadable"

    def __format__(self, spec: str) -> str:
        return "unreadable"

    def __repr__(self) -> str:
        return f"Unreadable({str(self.raw)[:40]!r})"


class _Tolerant(TypeDecorator[Any]):
    """The column type it decorates, except that a stored value its reader rejects comes
    back as `Unreadable` instead of raising: one corrupt field does not make the whole row
    (and every query that loads it) fail."""

    impl: Any = JSON
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        read = super().result_processor(dialect, coltype)
        if read is None:
            return None

        def tolerant(value: Any) -> Any:
            try:
                return read(value)
            except (ValueError, TypeError, RecursionError):
                return Unreadable(value)

        return tolerant


class TolerantJSON(_Tolerant):
    impl = JSON
    cache_ok = True


class TolerantDate(_Tolerant):
    impl = Date
    cache_ok = True


class TolerantDateTime(_Tolerant):
    impl = DateTime
    cache_ok = True


def _tolerant_json_column() -> Any:
    return Field(default=None, sa_column=Column(TolerantJSON, nullable=True))


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(max_length=64, unique=True, index=True)
    name: str | None = Field(default=None, max_length=200, index=True)
    email: str | None = Field(default=None, max_length=254, index=True)
    phone: str | None = Field(default=None, max_length=40)
    company: str | None = Field(default=None, max_length=200, index=True)
    region: str | None = Field(default=None, max_length=80, index=True)
    owner: str | None = Field(default=None, max_length=120, index=True)
    signed_up_at: date | None = None
    erased_at: datetime | None = Field(default=None, sa_type=DateTime)


class Product(SQLModel, table=True):
    __tablename__ = "product"

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(max_length=64, unique=True, index=True)
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=120)
    price: float | None = Field(default=None, sa_type=Double)
    # Share of the price the company keeps (0..1); ranks next-best-product offers.
    margin: float | None = Field(default=None, sa_type=Double)


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    # The amount too, so a customer's orders are summed from the index alone ("average
    # order value of Hibernating customers" reads no order row).
    __table_args__ = (
        Index("ix_orders_customer_ordered_amount", "customer_pk", "ordered_at", "amount"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=64, unique=True, index=True)
    customer_pk: int = Field(foreign_key="customer.id")
    ordered_at: datetime = Field(index=True, sa_type=DateTime)
    amount: float = Field(sa_type=Double)
    currency: str = Field(default="USD", max_length=3)


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (UniqueConstraint("order_pk", "product_pk", name="uq_order_line"),)

    id: int | None = Field(default=None, primary_key=True)
    order_pk: int = Field(foreign_key="orders.id", index=True)
    product_pk: int = Field(foreign_key="product.id", index=True)
    quantity: float = Field(default=1, sa_type=Double)
    unit_price: float | None = Field(default=None, sa_type=Double)


class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"
    __table_args__ = (Index("ix_ticket_customer_opened", "customer_pk", "opened_at"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=64, unique=True, index=True)
    customer_pk: int = Field(foreign_key="customer.id")
    opened_at: datetime = Field(sa_type=DateTime)
    closed_at: datetime | None = Field(default=None, sa_type=DateTime)
    channel: str | None = Field(default=None, max_length=40)
    subject: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    csat: int | None = None


class Feedback(SQLModel, table=True):
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_customer_submitted", "customer_pk", "submitted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    feedback_id: str = Field(max_length=64, unique=True, index=True)
    customer_pk: int = Field(foreign_key="customer.id")
    submitted_at: datetime = Field(sa_type=DateTime)
    nps: int | None = None
    csat: int | None = None
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Referral(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (UniqueConstraint("referrer_pk", "referred_pk", name="uq_referral"),)

    id: int | None = Field(default=None, primary_key=True)
    referrer_pk: int = Field(foreign_key="customer.id", index=True)
    referred_pk: int = Field(foreign_key="customer.id", index=True)
    referred_at: datetime | None = Field(default=None, sa_type=DateTime)


class ModelRun(SQLModel, table=True):
    __tablename__ = "model_run"

    id: int | None = Field(default=None, primary_key=True)
    # A run's record is read tolerantly: a corrupt date or JSON value loads as `Unreadable`
    # (see `crmbot.runs.run_json` and `active_run`), so one bad run never breaks the rest.
    as_of: date = Field(sa_type=TolerantDate)
    started_at: datetime = Field(sa_type=TolerantDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=TolerantDateTime)
    # running | succeeded | failed | rejected (worse than the active run; kept, not activated)
    status: str = Field(default="running", max_length=20, index=True)
    activated_at: datetime | None = Field(default=None, sa_type=TolerantDateTime)
    forced: bool = False
    # Kept by retention however old it gets (`crmbot model pin RUN`).
    pinned: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    row_counts: dict[str, Any] | None = _tolerant_json_column()
    timings: dict[str, Any] | None = _tolerant_json_column()
    params: dict[str, Any] | None = _tolerant_json_column()
    metrics: dict[str, Any] | None = _tolerant_json_column()


class ActiveRun(SQLModel, table=True):
    """Which model run every reader sees. One row per slot; flipping it is one UPDATE."""

    __tablename__ = "active_run"

    slot: str = Field(default="scores", primary_key=True, max_length=20)
    run_id: int = Field(foreign_key="model_run.id")
    activated_at: datetime = Field(sa_type=DateTime)


class CustomerScore(SQLModel, table=True):
    __tablename__ = "customer_score"
    __table_args__ = (
        Index("ix_score_run_value_at_risk", "run_id", "value_at_risk"),
        Index("ix_score_run_segment", "run_id", "segment"),
        Index("ix_score_run_influence", "run_id", "influence"),
        Index("ix_score_run_clv", "run_id", "clv"),
        # Customers in order of risk, of the run ("the riskiest in LATAM") or of a segment
        # ("champions with churn risk over 50%"): a walk of a few entries, not a sort.
        # Partial, so that only a statement about churn risk may use them: SQLite, which
        # keeps no statistics, would otherwise read a segment's rows in order of risk
        # (random order of customers) where it reads them in key order now.
        Index(
            "ix_score_run_churn_risk",
            "run_id",
            "churn_risk",
            sqlite_where=text("churn_risk IS NOT NULL"),
            postgresql_where=text("churn_risk IS NOT NULL"),
        ),
        Index(
            "ix_score_run_segment_risk",
            "run_id",
            "segment",
            "churn_risk",
            sqlite_where=text("churn_risk IS NOT NULL"),
            postgresql_where=text("churn_risk IS NOT NULL"),
        ),
    )

    run_id: int = Field(foreign_key="model_run.id", primary_key=True)
    customer_pk: int = Field(foreign_key="customer.id", primary_key=True, index=True)

    # RFM (recency in days since the last purchase day; frequency = distinct purchase days)
    recency_days: float | None = None
    frequency: int = 0
    monetary: float = 0.0
    total_spend: float = 0.0
    orders_count: int = 0
    tenure_days: float | None = None
    last_order_at: datetime | None = Field(default=None, sa_type=DateTime)
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    segment: str = Field(default="Prospects", max_length=40)
    previous_segment: str | None = Field(default=None, max_length=40)
    cluster: int | None = None
    cluster_label: str | None = Field(default=None, max_length=120)

    # CLV (BG/NBD + Gamma-Gamma)
    expected_purchases: float | None = None
    p_alive: float | None = None
    expected_spend: float | None = None
    clv: float | None = None

    # Churn risk
    churn_risk: float | None = None
    churn_reasons: list[str] | None = _json_column()
    value_at_risk: float | None = None

    # Satisfaction
    csat_latest: float | None = None
    csat_avg: float | None = None
    nps_latest: int | None = None
    nps_category: str | None = Field(default=None, max_length=12)
    sentiment: float | None = None
    satisfaction: float | None = None

    # Influence
    influence: float | None = None
    influence_rank: int | None = None
    referred_customers: int = 0
    referred_spend: float = 0.0
    referred_active: int = 0
    community: int | None = None
    community_size: int | None = None

    # Next best product: the run's offers for this customer, best first, as `RunOffer.offer`
    # numbers ([3, 17, 5]); `queries.customer_offers` turns them into the offers themselves.
    next_products: list[Any] | None = _json_column()


# The numbers kept per customer in a run that a question may sort, total or average by
# (`crmbot.ask.query`), and so what the run summary adds up per cell (`run_summary`).
ScoreField = Literal[
    "clv",
    "churn_risk",
    "value_at_risk",
    "satisfaction",
    "recency_days",
    "total_spend",
    "monetary",
    "orders_count",
    "influence",
    "referred_customers",
    "p_alive",
    "expected_purchases",
    "csat_avg",
    "nps_latest",
    "sentiment",
]
SUMMED_SCORES: tuple[str, ...] = get_args(ScoreField)

# The active run's live customers counted and summed by what a question may filter or
# group on (`crmbot.core.run_summary`): a few thousand cells answer "compare churn risk
# by region" without reading a million score rows. Derived data, rebuilt whenever the
# scores or the customers it counts change; `revision` tells readers it was rebuilt.
RUN_SUMMARY = Table(
    "run_summary",
    SQLModel.metadata,
    Column("run_id", Integer, nullable=False, index=True),
    Column("revision", Integer, nullable=False),
    Column("segment", String(40), nullable=True),
    Column("region", String(80), nullable=True),
    Column("owner", String(120), nullable=True),
    Column("cluster", Integer, nullable=True),
    Column("cluster_label", String(120), nullable=True),
    Column("nps_category", String(12), nullable=True),
    # Where churn_risk lies against the tenths (`run_summary.risk_band`).
    Column("risk_band", Integer, nullable=True),
    Column("customers", Integer, nullable=False),
    *[
        column
        for name in SUMMED_SCORES
        for column in (
            Column(f"{name}_sum", Double, nullable=True),
            Column(f"{name}_n", Integer, nullable=False),
        )
    ],
)


class RunOffer(SQLModel, table=True):
    """One offer of a model run: a product and why (one association rule).

    A rule fires for thousands of customers; its reason is stored once here, and each
    customer's score row lists the offers' numbers.
    """

    __tablename__ = "run_offer"

    run_id: int = Field(foreign_key="model_run.id", primary_key=True)
    offer: int = Field(primary_key=True)
    product_id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    confidence: float = Field(sa_type=Double)
    lift: float = Field(sa_type=Double)
    support: float = Field(sa_type=Double)
    reason: str = Field(sa_column=Column(Text, nullable=False))

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "name": self.name,
            "confidence": self.confidence,
            "lift": self.lift,
            "support": self.support,
            "reason": self.reason,
        }


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=DateTime)
    # Slack's retries carry the same request id, so one request is audited once.
    request_id: str | None = Field(default=None, max_length=120, unique=True)
    transport: str = Field(max_length=20)
    user_id: str = Field(max_length=64, index=True)
    channel_id: str | None = Field(default=None, max_length=64)
    command: str = Field(max_length=40)
    arguments: str | None = Field(default=None, max_length=500)
    customer_ids: list[str] | None = _json_column()
    outcome: str = Field(max_length=20)
    detail: str | None = Field(default=None, max_length=500)
    duration_ms: float | None = None


class DigestLog(SQLModel, table=True):
    __tablename__ = "digest_log"
    __table_args__ = (UniqueConstraint("kind", "channel", "period", name="uq_digest_once"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    channel: str = Field(max_length=64)
    period: str = Field(max_length=40)
    # pending | posted | failed
    status: str = Field(default="pending", max_length=20)
    attempts: int = 0
    created_at: datetime = Field(sa_type=DateTime)
    posted_at: datetime | None = Field(default=None, sa_type=DateTime)
    message_ts: str | None = Field(default=None, max_length=40)
    error: str | None = Field(default=None, max_length=500)
    customer_ids: list[str] | None = _json_column()
    summary: dict[str, Any] | None = _json_column()


class TrainingLock(SQLModel, table=True):
    """A lease on a named job; an expired lease may be taken over (its holder crashed)."""

    __tablename__ = "training_lock"

    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=120)
    acquired_at: datetime = Field(sa_type=DateTime)
    expires_at: datetime = Field(sa_type=DateTime)


class ErasureLock(SQLModel, table=True):
    """One row (id 1) an erasure locks exclusively and an import of customers, tickets or
    surveys shared, so the two never overlap (`crmbot.core.erasure`)."""

    __tablename__ = "erasure_lock"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})


def _word_column(**kwargs: Any) -> Any:
    """A word of the name index, compared byte for byte on every database (a collation that
    folds case or accents would make two stored words one key)."""
    word = (
        String(40)
        .with_variant(mysql.VARCHAR(40, collation="utf8mb4_bin"), "mysql", "mariadb")
        .with_variant(postgresql.VARCHAR(40, collation="C"), "postgresql")
    )
    return Field(sa_column=Column(word, nullable=False, **kwargs))


class CustomerNameToken(SQLModel, table=True):
    """A word of a live customer's name or company, normalised (`crmbot.core.name_index`):
    a misspelt name is matched against the words near it, never against every customer."""

    __tablename__ = "customer_name_token"
    __table_args__ = (
        Index("ix_customer_name_token_customer_pk", "customer_pk"),
        {"sqlite_with_rowid": False},
    )

    token: str = _word_column(primary_key=True)
    customer_pk: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})


class NameToken(SQLModel, table=True):
    """A distinct word of the name index and how many customers have it."""

    __tablename__ = "name_token"

    token: str = _word_column(primary_key=True)
    customers: int = 0


class NameTokenVariant(SQLModel, table=True):
    """A word of the name index under each form with one letter left out, and itself."""

    __tablename__ = "name_token_variant"
    __table_args__ = (
        Index("ix_name_token_variant_token", "token"),
        {"sqlite_with_rowid": False},
    )

    variant: str = _word_column(primary_key=True)
    token: str = _word_column(primary_key=True)


class ScheduleOverride(SQLModel, table=True):
    """An admin's change to a scheduled job, kept across restarts."""

    __tablename__ = "schedule_override"

    job_id: str = Field(primary_key=True, max_length=40)
    cron: str | None = Field(default=None, max_length=120)
    channel: str | None = Field(default=None, max_length=64)
    paused: bool = False
    updated_by: str | None = Field(default=None, max_length=64)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)


class RequestClaim(SQLModel, table=True):
    """A request acted on (a Slack trigger or event id), claimed before it runs, so a
    retried or replayed delivery is recognised, also after a restart
    (`crmbot.core.claims`). Rows older than a day are pruned."""

    __tablename__ = "request_claim"

    request_id: str = Field(primary_key=True, max_length=120)
    claimed_at: datetime = Field(sa_type=DateTime, index=True)


# --- Acting on an account (`crmbot.actions`) ------------------------------------------------
#
# These point at the customer's surrogate key, as every other table does: it survives an
# erasure (which pseudonymises `customer_id`), and the erasure deletes these rows. A run id
# is a plain number, not a foreign key: retention prunes old runs, and what was done stays.

TOUCH_KINDS = ("call", "email", "meeting", "note")
TOUCH_OUTCOMES = ("reached", "no_answer", "saved", "lost", "false_alarm")
# How each outcome reads to a person.
TOUCH_OUTCOME_WORDS = {
    "reached": "reached",
    "no_answer": "no answer",
    "saved": "saved",
    "lost": "lost",
    "false_alarm": "not at risk — false alarm",
}


class Touch(SQLModel, table=True):
    """Something done about a customer: a call, an email, a meeting or a note, and how it
    went. Written by `crmbot.actions.touches.log_touch`."""

    __tablename__ = "touch"
    __table_args__ = (Index("ix_touch_customer_created", "customer_pk", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_pk: int = Field(foreign_key="customer.id")
    kind: str = Field(max_length=20)  # one of TOUCH_KINDS
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    outcome: str | None = Field(default=None, max_length=20)  # one of TOUCH_OUTCOMES
    # A Slack user id, or the shell user's name.
    author: str = Field(max_length=120)
    created_at: datetime = Field(sa_type=DateTime, index=True)
    # The live model run when it was logged: ties an outcome to the prediction it answered.
    run_id: int | None = Field(default=None, index=True)


class FollowUp(SQLModel, table=True):
    """Something to do about a customer on a day, for someone. The scheduler sends it to
    the assignee on the day, once (`sent_at`)."""

    __tablename__ = "follow_up"
    __table_args__ = (Index("ix_follow_up_due_sent", "due_on", "sent_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_pk: int = Field(foreign_key="customer.id", index=True)
    assignee: str = Field(max_length=120, index=True)
    due_on: date
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=120)
    created_at: datetime = Field(sa_type=DateTime)
    done_at: datetime | None = Field(default=None, sa_type=DateTime)
    sent_at: datetime | None = Field(default=None, sa_type=DateTime)


class Follow(SQLModel, table=True):
    """A person who follows a customer: told when its risk changes."""

    __tablename__ = "follow"

    customer_pk: int = Field(
        foreign_key="customer.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    user_id: str = Field(primary_key=True, max_length=120, index=True)
    created_at: datetime = Field(sa_type=DateTime)


class Snooze(SQLModel, table=True):
    """A customer left out of one person's digests and alerts until a day (exclusive)."""

    __tablename__ = "snooze"

    customer_pk: int = Field(
        foreign_key="customer.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    user_id: str = Field(primary_key=True, max_length=120)
    until: date


class AlertDelivery(SQLModel, table=True):
    """An alert about a customer sent to one recipient for one model run: at most one each."""

    __tablename__ = "alert_delivery"

    run_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    customer_pk: int = Field(
        foreign_key="customer.id",
        primary_key=True,
        index=True,
        sa_column_kwargs={"autoincrement": False},
    )
    recipient: str = Field(primary_key=True, max_length=120)
    sent_at: datetime = Field(sa_type=DateTime)
    reason: str = Field(default="", max_length=200)
