"""The read side: everything commands, digests, `/crm ask`, the App Home and the CLI read
of customers and their scores.

Every reader of scores passes the active model run (`crmbot.runs.active_run`), so a
command never sees half a model. Lookups use bound parameters and the indexes declared in
`crmbot.core.models`; nothing here builds SQL from user text. Every function takes the
session as a keyword (`session=`), like the rest of crmbot's storage functions.

    customers   finding one customer from what was typed; the card; order history
    lists       at risk, top value, influencers, similar customers; communities
    segments    segment sizes, value and migration between runs
    book        an account manager's own book (the App Home); owners
    export      a run's scores as a frame or a CSV file
    audit       the audit log as admins read it
    actions     touches, follow-ups and followers (written by `crmbot.actions`)
"""

from crmbot.queries.actions import (
    FollowUpRow,
    count_follow_ups,
    follow_ups_for,
    followed_by,
    followers_of,
    last_touch,
    recent_touches,
)
from crmbot.queries.audit import audit_rows
from crmbot.queries.book import Book, owner_book, owners_matching, owners_with_value_at_risk
from crmbot.queries.customers import (
    Candidate,
    CustomerCard,
    Lookup,
    RunFacts,
    SinceModel,
    customer_card,
    customer_offers,
    customers_by_ids,
    find_customer,
    order_history,
    run_facts,
)
from crmbot.queries.export import EXPORT_LEADING_COLUMNS, export_scores, scores_frame
from crmbot.queries.lists import (
    LIST_EXPORT_COLUMNS,
    ScoredCustomer,
    at_risk,
    churn_risks,
    community_leaders,
    community_regions,
    influencers,
    list_export_rows,
    similar_customers,
    top_value,
)
from crmbot.queries.segments import (
    Migration,
    SegmentRow,
    SegmentSummary,
    region_names,
    segment_flows,
    segment_names,
    segment_summary,
)

__all__ = [
    "Book",
    "Candidate",
    "CustomerCard",
    "EXPORT_LEADING_COLUMNS",
    "LIST_EXPORT_COLUMNS",
    "FollowUpRow",
    "Lookup",
    "Migration",
    "RunFacts",
    "ScoredCustomer",
    "SegmentRow",
    "SegmentSummary",
    "SinceModel",
    "at_risk",
    "audit_rows",
    "churn_risks",
    "community_leaders",
    "community_regions",
    "count_follow_ups",
    "customer_card",
    "customer_offers",
    "customers_by_ids",
    "export_scores",
    "find_customer",
    "follow_ups_for",
    "followed_by",
    "followers_of",
    "influencers",
    "last_touch",
    "list_export_rows",
    "order_history",
    "owner_book",
    "owners_matching",
    "owners_with_value_at_risk",
    "recent_touches",
    "region_names",
    "run_facts",
    "scores_frame",
    "segment_flows",
    "segment_names",
    "segment_summary",
    "similar_customers",
    "top_value",
]
