"""The compiled patterns the phrase rules look for, grouped by the rule that uses them.

Every pattern is matched against `Sentence.text()`: placed words read as "|", so a pattern
never spans a word another rule has taken. The words of all patterns also join the lexicon
typos are corrected against (`RULE_KEYWORDS`).
"""

from __future__ import annotations

import re

from crmbot.ask.parse.vocabulary import (
    DATE_RX,
    DIMENSION_RX,
    KEYWORDS,
    LONG_MEASURES,
    MEASURE_RX,
    MONTH_RX,
    NUMBER_RX,
    NUMBER_WORD_RX,
    OPERATOR_RX,
    PERIOD_RX,
    UNIT_RX,
)
from crmbot.ask.query import (
    HIGH_CHURN_RISK,
    HIGH_SATISFACTION,
    LOW_CHURN_RISK,
    LOW_SATISFACTION,
    Band,
    Threshold,
)

# Every pattern a rule uses; their words join the lexicon typos are corrected against.
_RULE_PATTERNS: list[re.Pattern[str]] = []


def _rule(pattern: str) -> re.Pattern[str]:
    """`pattern` as whole words, registered for the lexicon."""
    compiled = re.compile(rf"(?<![\w|])(?:{pattern})(?![\w])")
    _RULE_PATTERNS.append(compiled)
    return compiled


# ---------------------------------------------------------------------------------------
# What the question is about: an offer for one customer, a customer by id, segment moves,
# referrals.

# "what should I offer to 123", "next best product for Ada Lovelace": the whole question.
OFFER = [
    re.compile(
        r"^(?:so )?(?:(?:what|which|wat|wht|whta)(?: (?:products?|items?|things?|else))? )?"
        r"(?:should|could|can|shall|would|do|might) (?:i|we)"
        r" (?:offer|sell|recommend|pitch|propose|suggest|upsell|cross sell)"
        r"(?: to)? (?P<ref>.+?)(?: next| now| today)?$"
    ),
    re.compile(
        r"^(?:(?:the )?next best (?:products?|offers?)|next (?:products?|offers?)"
        r"|recommended products?|product recommendations?|recommendations?|offers?"
        r"|(?:upsell|up sell|cross sell|sales) (?:opportunities|ideas|options)"
        r"|upsell|cross sell|what to offer|what to sell)"
        r" (?:for|to) (?P<ref>.+)$"
    ),
    re.compile(
        r"^(?:what|which products?|which items?) to (?:offer|sell|pitch|recommend|upsell)"
        r"(?: to| for)? (?P<ref>.+)$"
    ),
]
# "customer 123", "account #C-42"
CUSTOMER_REF = _rule(
    r"(?:customer|client|account) (?:id |number |no |nr )?#?(?P<id>[\w-]*\d[\w-]*)"
)
# "moved from Champions to At risk", "became champions"
MOVE_VERB = _rule(
    r"(?:moved|move|moving|migrated|migrate|dropped|drop|fell|fallen|falling|slipped|slid"
    r"|went|gone|shifted|changed|became|become|becoming|turned|entered|downgraded|upgraded"
    r"|transitioned)"
)
# "who referred the most" ranks referrers ("top"); "referred customers" lists them.
REFERRALS = [
    (
        _rule(
            r"who (?:has |have )?referred (?:the )?most(?: (?:new )?(?:customers|clients|"
            r"accounts|people|referrals|buyers))?"
        ),
        "top",
    ),
    (
        _rule(
            r"(?:who|which customers) (?:brought|brought in) (?:the )?most(?: (?:new )?"
            r"(?:customers|clients|accounts|people|referrals))?"
        ),
        "top",
    ),
    (_rule(r"(?:most|top) referrals?"), "top"),
    (_rule(r"referred (?:the )?most(?: (?:new )?(?:customers|clients|accounts|people))?"), "top"),
    (_rule(r"referrers?"), "top"),
    (
        _rule(
            r"(?:new )?(?:customers|clients|accounts) (?:were |got |who were |that were )?referred"
        ),
        "list",
    ),
    (_rule(r"referrals?"), "list"),
]

# ---------------------------------------------------------------------------------------
# Thresholds on a measure

# "churn risk over 50%", "clv is at least 5k"
MEASURE_OP_NUMBER = _rule(
    rf"(?P<m>{MEASURE_RX})(?: (?:score|rate|value))?(?: (?:is|are|was|were|of|at|that is))?"
    rf" (?P<op>{OPERATOR_RX}) (?P<n>{NUMBER_RX})(?: (?P<unit>{UNIT_RX}))?"
)
# "more than 5 orders", "over 5k in spend"
OP_NUMBER_MEASURE = _rule(
    rf"(?P<op>{OPERATOR_RX}) (?P<n>{NUMBER_RX})(?: (?P<unit>{UNIT_RX}))?"
    rf"(?: (?:in|of|on|for))? (?P<m>{MEASURE_RX})"
)
# "5 or more orders"
NUMBER_OR_MORE_MEASURE = _rule(
    rf"(?P<n>{NUMBER_RX}) or (?P<dir>more|above|higher|over|less|fewer|below|lower|under)"
    rf" (?P<m>{MEASURE_RX})"
)
# "orders of 5 or more"
MEASURE_NUMBER_OR_MORE = _rule(
    rf"(?P<m>{MEASURE_RX})(?: (?:of|is|at))? (?P<n>{NUMBER_RX}) or"
    rf" (?P<dir>more|above|higher|over|less|fewer|below|lower|under)"
)
# "clv between 1k and 5k"
MEASURE_BETWEEN = _rule(
    rf"(?P<m>{MEASURE_RX})(?: (?:is|of))? between (?P<a>{NUMBER_RX}) (?:and|to) (?P<b>{NUMBER_RX})"
)
# "between 2 and 5 orders"
BETWEEN_MEASURE = _rule(
    rf"between (?P<a>{NUMBER_RX}) (?:and|to) (?P<b>{NUMBER_RX}) (?:(?:in|of) )?(?P<m>{MEASURE_RX})"
)
# "high churn risk", "unhappy": the thresholds `crmbot.ask.query` fixes.
QUALITATIVE: list[tuple[re.Pattern[str], Threshold]] = [
    (
        _rule(r"(?:high|elevated|big|large|serious) (?:churn risk|risk of churn|churn|risk)"),
        Threshold("churn_risk", ">=", HIGH_CHURN_RISK),
    ),
    (_rule(r"likely to (?:churn|leave)"), Threshold("churn_risk", ">=", HIGH_CHURN_RISK)),
    (
        _rule(r"low (?:churn risk|risk of churn|churn|risk)"),
        Threshold("churn_risk", "<", LOW_CHURN_RISK),
    ),
    (
        _rule(
            r"(?:low|poor|bad) (?:satisfaction|csat)"
            r"|(?<!most )(?<!least )(?:unhappy|dissatisfied|unsatisfied)"
        ),
        Threshold("satisfaction", "<", LOW_SATISFACTION),
    ),
    (
        _rule(
            r"(?:high|good|great) (?:satisfaction|csat)|(?<!most )(?<!least )(?:happy|satisfied)"
        ),
        Threshold("satisfaction", ">=", HIGH_SATISFACTION),
    ),
]

# ---------------------------------------------------------------------------------------
# Recency: how long since the last order

_ORDER_WORD = r"(?:orders?|purchases?|sales?|buys?|transactions?)"
_NOT_ORDERED = (
    r"(?:have not|havent|hasnt|has not|did not|didnt|dont|do not|not|never)"
    r" (?:ordered|bought|purchased|placed an order|made a purchase|been active|ordered anything"
    r"|bought anything|purchased anything)"
)
_SPAN = (
    rf"(?:the )?(?:last |past )?(?:(?:more than|over) )?"
    rf"(?P<n>\d+|{NUMBER_WORD_RX}|a|an)? ?(?P<unit>{UNIT_RX})"
)
# "no orders in 60 days", "inactive for 3 months": recency above the span.
NOT_ORDERED_FOR = [
    _rule(
        rf"(?:with )?(?:no|without(?: an?| any)?|zero|not a single|not any) {_ORDER_WORD}"
        rf"(?: placed)? (?:in|for|within|over|during) {_SPAN}"
    ),
    _rule(rf"(?:who |that )?{_NOT_ORDERED} (?:in|for|within|over|during) {_SPAN}"),
    _rule(rf"(?:inactive|dormant|quiet|silent) (?:for|in|over|during) {_SPAN}"),
    _rule(rf"(?:last (?:order|purchase)|last ordered|last bought)(?: was)? {_SPAN} ago"),
]
# "ordered in the last 30 days": recency within the span.
ORDERED_WITHIN = _rule(
    rf"(?:who |that )?(?:ordered|bought|purchased|were active|active|placed an order"
    rf"|made a purchase) (?:in|within|during) (?:the )?(?:last|past) {_SPAN}"
)
# "with no orders": none at all.
NO_ORDERS_EVER = _rule(rf"(?:with )?(?:no|without(?: any)?|zero|never placed an?) {_ORDER_WORD}")

# ---------------------------------------------------------------------------------------
# Orders and what is computed over the rows

# "average order value", "aov", "basket size"
ORDER_VALUE = _rule(
    r"(?:average|avg|mean|typical) (?:order|basket|purchase|deal|ticket) (?:value|size|amount"
    r"|total)s?|aov|order values?|order sizes?|order amounts?|basket sizes?"
)
REVENUE = _rule(r"revenue|sales|turnover|takings|income")
COUNT = _rule(r"how many|number of|count of|count|total number of|how much")
AVERAGE = _rule(r"average|avg|mean|typical")
TOTAL = _rule(r"total|sum of|sum|combined|overall|altogether")

# ---------------------------------------------------------------------------------------
# Grouping

# A comparison is charted.
COMPARE = _rule(r"compare|comparison of|comparing|contrast|chart|plot|graph")
# "by region", "for each segment", "across owners"
GROUP_BY = _rule(
    rf"(?:grouped by|broken down by|break down by|breakdown by|split by|by|per|for each"
    rf"|for every|in each|across|across all|among|between|each)"
    rf" (?:the |all )?(?P<dim>{DIMENSION_RX})"
)
# "which region has the highest ..."
WHICH_GROUP = _rule(
    rf"(?:which|what) (?P<dim>{DIMENSION_RX}) (?:has|have|had|is|with|shows?|gets?) (?:the )?"
    rf"(?P<dir>highest|most|lowest|least|biggest|largest|smallest|best|worst|top)"
)

# ---------------------------------------------------------------------------------------
# Ranking

# "top 10", "best five"
TOP_N = _rule(
    rf"(?:the )?(?:top|best|biggest|largest|highest|first|leading) (?P<n>\d+|{NUMBER_WORD_RX})"
)
# "bottom 5", "worst three"
BOTTOM_N = _rule(rf"(?:the )?(?:bottom|worst|lowest|smallest|least) (?P<n>\d+|{NUMBER_WORD_RX})")
# "top" alone: ten of them
BARE_TOP = _rule(r"(?:the )?top")
# "5 riskiest", "10 most valuable": the number; SUPERLATIVES reads the rest.
N_MOST = _rule(rf"(?P<n>\d+|{NUMBER_WORD_RX})(?= (?:most|least|riskiest|biggest|largest|happiest))")
# (pattern, measure ranked by, highest first)
SUPERLATIVES: list[tuple[re.Pattern[str], str, bool]] = [
    (_rule(r"most valuable|highest value|biggest value"), "clv", True),
    (_rule(r"least valuable|lowest value"), "clv", False),
    (
        _rule(r"riskiest|most risky|most at risk|most likely to churn|highest risk"),
        "churn_risk",
        True,
    ),
    (
        _rule(r"least risky|least at risk|least likely to churn|lowest risk|safest"),
        "churn_risk",
        False,
    ),
    (
        _rule(
            r"(?:biggest|top|highest|largest) spenders"
            r"|spent the most|spend the most|spends the most"
        ),
        "total_spend",
        True,
    ),
    (_rule(r"most influential|top influencers|biggest influencers|influencers"), "influence", True),
    (_rule(r"happiest|most satisfied|most happy"), "satisfaction", True),
    (
        _rule(r"unhappiest|least satisfied|least happy|most unhappy|most dissatisfied"),
        "satisfaction",
        False,
    ),
    (
        _rule(r"ordered the most|order the most|most orders|bought the most|most frequent"),
        "orders_count",
        True,
    ),
]
# "sorted by clv descending", "ranked by the lowest churn risk"
SORT_BY = _rule(
    rf"(?:sorted|ranked|ordered|sort|rank|order) by (?:the )?(?:(?P<dir>highest|lowest) )?"
    rf"(?P<m>{MEASURE_RX})(?: (?P<dir2>ascending|descending|asc|desc))?"
)
# "with the highest clv", "having the most orders"
WITH_THE_MOST = _rule(
    rf"(?:with|by|having|has|have) (?:the )?(?P<dir>highest|most|lowest|least|biggest|largest"
    rf"|smallest|best|worst|greatest|top) (?P<m>{MEASURE_RX})"
)
# "highest churn risk"
DIRECTION_MEASURE = _rule(
    rf"(?P<dir>highest|lowest|biggest|largest|smallest|greatest) (?P<m>{MEASURE_RX})"
)
# "by their clv": a measure, not a dimension (those are read by GROUP_BY first).
BY_MEASURE = _rule(rf"by (?:their |the )?(?P<m>{MEASURE_RX})")

# ---------------------------------------------------------------------------------------
# Dates

# "between March and May", "from 2026-01-01 to 2026-03-31"
DATE_BETWEEN = _rule(
    rf"(?:between|from) (?P<a>{DATE_RX}) (?:and|to|until|till|through|-) (?P<b>{DATE_RX})"
)
# "since last week", "after March"
DATE_SINCE = _rule(rf"(?P<kw>since|after|from|starting|beginning) (?P<a>{DATE_RX})")
# "before 2026", "until Q2"
DATE_BEFORE = _rule(rf"(?P<kw>before|until|till|up to|through|prior to) (?P<a>{DATE_RX})")
# "in the last 30 days", "past 3 months"
DATE_LAST_N = _rule(
    rf"(?:in |during |over |within )?(?:the )?(?:last|past|previous)"
    rf" (?P<n>\d+|{NUMBER_WORD_RX}) (?P<unit>{UNIT_RX})"
)
# "this quarter", "last month", "ytd", "in Q3"
DATE_PERIOD = _rule(
    rf"(?:in |during |for |over )?(?P<a>(?:the )?(?:last|this|previous|past|current) {PERIOD_RX}"
    rf"|yesterday|today|ytd|year to date|qtd|quarter to date|mtd|month to date"
    rf"|q[1-4](?: \d{{4}})?)"
)
# "in 2025"
DATE_YEAR = _rule(r"(?:in|during|for|of) (?P<a>(?:19|20)\d{2})")
# "in March", "during May 2025"
DATE_MONTH = _rule(rf"(?:in|during|for|of) (?P<a>(?:{MONTH_RX})(?: \d{{4}})?)")
# "March 2025" without a preposition
DATE_MONTH_YEAR = _rule(rf"(?P<a>(?:{MONTH_RX}) \d{{4}})")
# With a date: the customers who joined then, not those who ordered.
SIGNED_UP = _rule(
    r"new (?:customers|clients|accounts|signups|sign ups)|signed up|signups|sign ups|joined"
    r"|onboarded|acquired|registered|new"
)

# ---------------------------------------------------------------------------------------
# Owners, clusters

# "@maria", a Slack mention
OWNER_MENTION = _rule(r"@(?P<name>[\w.-]+)")
# "maria's customers", "tom becker's"
OWNER_POSSESSIVE = _rule(r"(?P<name>[\w.-]+(?: [\w.-]+)?) 's")
# "owned by maria"
OWNER_BY = _rule(
    r"(?:owned|managed|handled|run|looked after|covered) by (?P<name>[\w.-]+(?: [\w.-]+)?)"
)
# "customers of maria", "book for omar"
OWNER_OF = _rule(
    r"(?:customers|accounts|clients|book|portfolio) (?:of|for) (?P<name>[\w.-]+(?: [\w.-]+)?)"
)
# "my customers": the asker's own book
MINE = _rule(r"my (?:customers|accounts|clients|book|portfolio)|my|mine")
# "cluster 2", "cluster #0"
CLUSTER = _rule(r"cluster (?:#|no |number )?(?P<n>\d+)")


# ---------------------------------------------------------------------------------------
# A question about one customer's reasons: answered by `/crm why`, never here.

WHY = re.compile(
    r"^(?:(?:but|so|and|ok|okay|hey) )?(?:why|how come|what s driving|whats driving"
    r"|what is driving|explain why|reasons? (?:why|for))(?: |$)"
)
# The words that end the name in "why is <name> at risk".
WHY_NAME_END = re.compile(
    r"^(?:at|so|such|likely|churning|churned|churn|risky|unhappy|leaving|in|a|an|the|"
    r"flagged|marked|listed|considered|going|about|to|on|with|still|now|currently|"
    r"getting|becoming|more|less|high|low|not|no|and|or|has|have|had|been)$"
)

# ---------------------------------------------------------------------------------------
# Two periods compared: "orders this month vs last month", "revenue month over month".

_PERIOD_PHRASE = (
    rf"(?:the )?(?:last|this|previous|past|current|same) {PERIOD_RX}(?: last year)?"
    rf"|yesterday|today|q[1-4](?: \d{{4}})?|(?:{MONTH_RX})(?: \d{{4}})?|(?:19|20)\d{{2}}"
)
# The period before the first one: "vs last", "compared with the month before".
_PERIOD_BEFORE = (
    rf"(?:the )?(?:{PERIOD_RX}) before|(?:the )?previous(?: one| {PERIOD_RX})?"
    r"|the one before|last(?: one)?|before"
)
COMPARE_PERIODS = _rule(
    rf"(?:(?P<compare>compare|comparing) )?(?:in |during |for |over )?(?P<a>{_PERIOD_PHRASE})"
    rf" (?:vs|versus|v|compared to|compared with|against|over"
    rf"|(?(compare)(?:and|to|with)|(?!)))"
    rf" (?:the )?(?:(?P<b>{_PERIOD_PHRASE})|(?P<before>{_PERIOD_BEFORE}))"
)
OVER_PERIOD = _rule(r"(?P<p>week|month|quarter|year) over (?P=p)|(?P<abbr>wow|mom|qoq|yoy)")

# ---------------------------------------------------------------------------------------
# Scores that went up or down between runs: "churn risk up since last week".

_SCORE_CHANGE_MEASURE = (
    r"churn risk|risk of churn|churn probability|churn|risk|clv|ltv|lifetime value"
    r"|customer lifetime value|satisfaction|csat|value at risk|probability alive"
)
_UP = (
    r"up|increased|increasing|rose|risen|rising|grew|grown|growing|climbed|climbing|jumped"
    r"|spiked|higher|worse|worsened|worsening"
)
_DOWN = (
    r"down|decreased|decreasing|fell|fallen|falling|dropped|dropping|declined|declining"
    r"|lower|improved|improving|better"
)
# "who got riskier since last week": (measure, up) for each comparative.
COMPARATIVES: dict[str, tuple[str, bool]] = {
    "riskier": ("churn_risk", True),
    "more risky": ("churn_risk", True),
    "more at risk": ("churn_risk", True),
    "less risky": ("churn_risk", False),
    "safer": ("churn_risk", False),
    "happier": ("satisfaction", True),
    "more satisfied": ("satisfaction", True),
    "unhappier": ("satisfaction", False),
    "less happy": ("satisfaction", False),
    "less satisfied": ("satisfaction", False),
    "more valuable": ("clv", True),
    "less valuable": ("clv", False),
}
GOT_COMPARATIVE = _rule(
    r"(?:got|gotten|became|become|becoming|getting|grown|grew|turned)"
    r" (?P<c>" + "|".join(sorted(COMPARATIVES, key=len, reverse=True)) + ")"
)
SCORE_CHANGE = [
    _rule(
        rf"(?P<m>{_SCORE_CHANGE_MEASURE})(?: score)?(?: (?:has|have|is|are|was|were|went|gone"
        rf"|has gone|have gone|got|gotten))?(?: (?:gone|got))? (?P<dir>{_UP}|{_DOWN})"
    ),
    _rule(
        rf"(?P<dir>rising|increasing|growing|climbing|worsening|falling|dropping|declining"
        rf"|improving|higher|lower) (?P<m>{_SCORE_CHANGE_MEASURE})"
    ),
]

# ---------------------------------------------------------------------------------------
# Exclusions: "not in EMEA", "excluding champions", "bought X but not Y".

NEGATION_WORDS = frozenset(
    {
        "not",
        "excluding",
        "exclude",
        "except",
        "without",
        "outside",
        "non",
        "never",
        "but",
        "arent",
        "isnt",
        "werent",
        "wasnt",
        "besides",
    }
)
# Words between a negation and the name it excludes.
NEGATION_FILLERS = frozenset(
    {
        "in",
        "the",
        "from",
        "of",
        "any",
        "a",
        "an",
        "segment",
        "region",
        "company",
        "at",
        "for",
        "those",
        "customers",
        "accounts",
        "clients",
        "ones",
        "who",
        "that",
        "are",
        "is",
        "anyone",
        "anybody",
        "buying",
        "bought",
        "buy",
        "purchased",
        "purchasing",
        "ordered",
        "ordering",
        "owned",
        "by",
        "managed",
        "handled",
        "yet",
        "ever",
        "also",
        "not",
        "than",
        "to",
        "being",
        "have",
        "has",
        "did",
        "do",
        "does",
    }
)
# Two-word exclusions read as one: "other than", "apart from", "but not".
NEGATION_PAIRS = frozenset(
    {
        ("other", "than"),
        ("apart", "from"),
        ("aside", "from"),
        ("but", "not"),
        ("havent", "bought"),
        ("hasnt", "bought"),
        ("didnt", "buy"),
        ("dont", "buy"),
        ("but", "never"),
        ("but", "without"),
        ("but", "excluding"),
        ("but", "except"),
    }
)

# ---------------------------------------------------------------------------------------
# Support tickets

_TICKET_NOUN = (
    r"(?:support |helpdesk |help desk |service )?(?:tickets?|cases?|requests?)|complaints?"
    r"|incidents?"
)
_OPEN = (
    r"open|unresolved|outstanding|pending|unanswered|unsolved|active|live|"
    r"still open|not closed|not yet closed|not resolved|not yet resolved|in progress|waiting"
)
_CLOSED = r"closed|resolved|solved|done|finished|completed|answered|fixed"
_HAVE = (
    r"with|having|has|have|had|that have|who have|who has|who had|that had|who raised"
    r"|that raised|who opened|who filed|who logged|who submitted|raising|opening"
)
# "customers with the most open tickets": ranked by their tickets.
TICKETS_MOST = _rule(
    rf"(?:{_HAVE}|raised|opened|filed|logged) (?:the )?(?:most|highest number of|biggest number of"
    rf"|largest number of|fewest|least)(?: (?P<state>{_OPEN}))? (?:{_TICKET_NOUN})"
)
# "customers ranked by their tickets"
TICKETS_BY = _rule(
    rf"by (?:their |the )?(?:number of |count of |amount of )?(?:(?P<state>{_OPEN}) )?"
    rf"(?:{_TICKET_NOUN})"
)
# "customers with open tickets", "champions with high churn risk and open tickets": one or
# more.
TICKETS_ANY = _rule(
    rf"(?:{_HAVE}|and(?= (?:any |some )?(?:{_OPEN}) ))(?: any| an| a| one or more| some)?"
    rf"(?: (?P<state>{_OPEN}))? (?:{_TICKET_NOUN})"
    rf"(?: (?:still )?(?P<after>open|unresolved|outstanding|pending))?"
)
# "customers without tickets": none.
TICKETS_NONE = _rule(
    rf"(?:without|with no|with zero|having no|no|who have no|that have no|who never raised"
    rf"|who never opened|that never raised|never raised|never opened|who have never raised)"
    rf"(?: any| a)?(?: (?P<state>{_OPEN}))? (?:{_TICKET_NOUN})"
)
# "open tickets", "tickets still unresolved", "resolved cases"
TICKETS_STATED = _rule(
    rf"(?:(?P<before>{_OPEN}|{_CLOSED}) )?(?:(?P<channel>email|chat|phone|web|social) )?"
    rf"(?:{_TICKET_NOUN})"
    rf"(?: (?:that are |which are |that were |which were |are |were |still |that |which )?"
    rf"(?:still )?(?:(?P<after>{_OPEN}|{_CLOSED})|(?P<opened>opened|raised|created|submitted"
    rf"|logged|filed|received|came in)))?"
)
OPEN_STATES = frozenset(re.sub(r"\s", " ", _OPEN).split("|"))
# "how long do tickets take to close", "average time to resolve", "resolution time"
TIME_TO_CLOSE = _rule(
    r"how long (?:does it |do they |do tickets |do cases |does a ticket |does a case |it )?"
    r"(?:take |takes )?(?:us )?(?:to )?(?:close|resolve|solve|fix|answer)"
    r"(?: (?:a |the )?(?:tickets?|cases?|them|it))?"
    r"|(?:average |avg |mean |typical |median )?(?:time|days|hours) (?:it takes )?to"
    r" (?:close|resolve|solve|fix|resolution)(?: (?:a |the )?(?:tickets?|cases?))?"
    r"|(?:average |avg |mean |typical )?(?:resolution|handling|closing|close) times?"
    r"|time to (?:resolution|close)|days to close"
)
# Tickets have no priority here: said, not guessed.
PRIORITY = _rule(r"priority|priorities|urgent|escalated|escalation|escalations|sla|severity|p[0-4]")

# ---------------------------------------------------------------------------------------
# Satisfaction: NPS categories, NPS itself, sentiment, "high CLV"

NPS_CATEGORIES: list[tuple[re.Pattern[str], str]] = [
    (_rule(r"(?<!net )(?:nps )?promoters?(?! score)|advocates?|fans"), "promoter"),
    (_rule(r"(?:nps )?passives?|neutrals?|passive customers"), "passive"),
    (_rule(r"(?:nps )?detractors?|critics"), "detractor"),
]
# "what is our NPS", "net promoter score by region": the score itself.
NPS = _rule(r"(?:our |the |overall )?(?:net promoter score|nps)(?: score)?")
SURVEYS = _rule(
    r"(?:survey|nps|csat|feedback) (?:answers|responses|results|replies|scores)|surveys?"
    r"|feedback|responses|reviews|answered|responded|replied"
)
SENTIMENT: list[tuple[re.Pattern[str], Threshold]] = [
    (
        _rule(r"(?:negative|bad|poor|low) sentiment|angry|frustrated|upset|annoyed|complaining"),
        Threshold("sentiment", "<", 0.0),
    ),
    (_rule(r"(?:positive|good|high) sentiment"), Threshold("sentiment", ">", 0.0)),
]
# "high CLV", "low-value": a band of the run's customers, not a fixed number.
BANDS: list[tuple[re.Pattern[str], Band]] = [
    (
        _rule(
            r"(?:high|big|large|top)(?: customer)? (?:clv|ltv|lifetime value|value|customer value)"
            r"|high value|high spend|high spending|big spenders?"
        ),
        Band("clv", True),
    ),
    (
        _rule(
            r"(?:low|small)(?: customer)? (?:clv|ltv|lifetime value|value|customer value)|low value"
        ),
        Band("clv", False),
    ),
    (_rule(r"(?:high|big|large) value at risk|lots of value at risk"), Band("value_at_risk", True)),
]

# ---------------------------------------------------------------------------------------
# Products

# "best sellers", "top selling products", "most popular products": products ranked.
PRODUCT_ROWS = _rule(
    r"(?:best|top|most popular|biggest|highest grossing|highest selling|most sold|most bought"
    r"|worst|least popular|least sold|slowest)(?: selling)? (?:products?|items?|skus?|lines)"
    r"|best ?sellers|top sellers|worst sellers|bestsellers"
    r"|(?:what|which products?|which items?) (?:sells?|sold) (?:the )?(?:best|most)"
    r"|products|items|skus|catalogue|catalog"
)
UNITS = _rule(r"(?:how many )?(?:units|pieces|quantity|quantities|volume)(?: sold)?")
SOLD = _rule(r"sold|sell|sells|selling|sales of")
# "buyers of", "who bought", "customers who purchased": customers who bought a product.
BOUGHT = _rule(
    r"(?:who |that |which )?(?:have |has |had )?(?:bought|buy|buys|purchased|ordered|got)"
    r"|buyers of|buyers|purchasers of|purchasers|owners of"
)

# ---------------------------------------------------------------------------------------
# Superlatives said of customers without a number: "my best customers".

BEST_CUSTOMERS: list[tuple[re.Pattern[str], str, bool]] = [
    (_rule(r"best|most important|key accounts|vips?|top accounts|top clients"), "clv", True),
    (_rule(r"biggest|largest|whales"), "total_spend", True),
    (_rule(r"most loyal|most active|most regular|most engaged"), "orders_count", True),
    (_rule(r"most at risk of churning|most likely to leave|in most danger"), "churn_risk", True),
]

# ---------------------------------------------------------------------------------------
# Measures named without a number ("lifetime value of champions"); the one-word ones are
# read word by word once names have had their turn.

LONG_MEASURE = _rule("|".join(re.escape(p) for p in sorted(LONG_MEASURES, key=len, reverse=True)))

# ---------------------------------------------------------------------------------------
# Every word a rule may look for: the keywords plus the words of every pattern above.

RULE_KEYWORDS: frozenset[str] = KEYWORDS | {
    word
    for pattern in [*_RULE_PATTERNS, *OFFER, WHY]
    for word in re.findall(r"(?<![\\?])\b[a-z]{3,}\b", pattern.pattern)
}
