"""Influence: the customers whose referrals and purchases move other customers.

The graph
    Nodes are customers. A referral (referrer -> referred) becomes an edge pointing the other
    way, referred -> referrer, because influence flows back from the customers someone
    brought in to the one who brought them. Its weight is what the referred customer went
    on to spend after the referral (up to `as_of`), plus a small floor so that a referral
    who has not bought yet still counts a little.

    Customers nobody referred carry no referral edge, and in most companies that is nearly
    everyone. For them, and only them, the graph adds co-purchase ties: a customer who
    bought a product links to the `COPURCHASE_TIES_PER_PRODUCT` customers who bought it
    just before them. The last few buyers before you are the likeliest to have shown it to
    you, and linking to a fixed handful keeps the ties linear in the number of
    (customer, product) pairs. Linking every pair of buyers of a product (the usual
    customer-customer projection) is O(buyers^2) per product: a product with 100,000
    buyers alone would make five billion ties.

Influence
    PageRank on that graph, with restarts proportional to each customer's own spend: the
    money a customer brings carries further, and it flows to whoever brought them in. The
    damping is 0.5 rather than the web's 0.85, so credit halves with each step up a referral
    chain: whoever referred a hub shares in the hub's influence but does not outrank it.
    Of a co-purchase-only customer's PageRank just `COPURCHASE_SHARE` flows along their
    ties (the rest restarts), so inferred ties never outweigh an actual referral. A
    customer's `influence` is the PageRank that reaches them *from others* — their own
    restart share removed, so a big spender with no ties is not an influencer — times the
    number of customers (1.0 = what an average customer holds in all). `influence_rank`
    ranks the customers with influence above zero (1 = most influential); the others get
    none.

    The PageRank is networkx's `pagerank` update (power iteration with restarts, kept-back
    and dangling mass sent to the restart distribution) run on a scipy.sparse matrix built
    straight from the edge arrays: building a networkx DiGraph of 1M customers and 3M ties
    and running `networkx.pagerank` on it took ~50 s here, most of it in Python objects,
    against a few seconds this way. A test checks both give the same ranks. networkx is
    used for the communities.

Counts an account manager understands
    `referred_customers` (distinct customers they referred), `referred_spend` (what those
    customers spent after being referred, up to `as_of`) and `referred_active` (how many of
    them are still active: P(alive) > 0.5 where the CLV stage estimated it, otherwise a
    purchase within the last `churn_horizon_days` before `as_of`; `ctx.params["graph"]`
    records which was used).

Communities
    Louvain (networkx, seeded) on the undirected referral graph; connected components too
    small for modularity to split are taken whole without running it (see
    `referral_communities`). Co-purchase ties are left
    out on purpose: they link nearly every buyer into product-wide blobs, while a referral
    community is a group of people who actually know each other. Customers without a
    referral are in no community (`community` None). Communities are numbered by size,
    0 the largest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from crmbot.analytics.base import PURCHASE_PAIRS, RunContext, TrainingData
from crmbot.analytics.source import TrainingSource
from crmbot.analytics.source.frames import no_integers, positions
from crmbot.analytics.source.pandas_source import purchase_pairs as purchase_pairs

logger = logging.getLogger(__name__)

STAGE = "graph"

# PageRank's alpha: the share of rank that follows edges each step. The web's 0.85 lets
# credit run far up a referral chain (whoever referred a hub would outrank the hub); at 0.5
# a referral counts fully for the referrer, half for the referrer's referrer, and so on.
DAMPING = 0.5
PAGERANK_TOLERANCE = 1e-9  # L1 change of the rank vector (which sums to 1) to stop at
PAGERANK_MAX_ITERATIONS = 300
COPURCHASE_TIES_PER_PRODUCT = 3
COPURCHASE_SHARE = 0.3
# A customer who has not bought anything counts this share of an average buyer's spend,
# so referring someone who has not bought yet is worth a little, not nothing.
SPEND_FLOOR_SHARE = 0.1
ACTIVE_P_ALIVE = 0.5
COMMUNITY_RESOLUTION = 1.0


class PageRankDidNotConverge(RuntimeError):
    pass


@dataclass
class Transitions:
    """Where each node's rank goes each step.

    Stored backwards (`backwards[j, i]` = the share of i's rank that moves to j), so a step
    is one CSR mat-vec, plus the share each node keeps back (1 for a node with no edges):
    that share goes to the restart distribution, as networkx does with dangling nodes.
    """

    backwards: sp.csr_array
    kept_back: np.ndarray

    @property
    def size(self) -> int:
        return len(self.kept_back)


def transitions(
    size: int, edge_sets: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]
) -> Transitions:
    """Transitions from sets of weighted edges (source, target, weight, share): each source
    sends `share` of its rank along that set's edges, split by weight; duplicate edges add
    up. A node's shares over all sets must not exceed 1."""
    sent = np.zeros(size)
    # 32-bit node numbers where they fit: a million customers have 25 million ties. Every
    # set's edges are written into one preallocated array each, in place: lists joined
    # afterwards held every edge twice.
    node = np.int32 if size < np.iinfo(np.int32).max else np.int64
    edges = sum(len(source) for source, _target, _weight, _share in edge_sets)
    values = np.empty(edges)
    targets = np.empty(edges, dtype=node)
    sources = np.empty(edges, dtype=node)
    start = 0
    for source, target, weight, share in edge_sets:
        total = np.bincount(source, weights=weight, minlength=size)
        part = slice(start, start + len(source))
        np.divide(weight, total[source], out=values[part])
        values[part] *= share
        targets[part] = target
        sources[part] = source
        start += len(source)
        sent += np.where(total > 0, share, 0.0)
    if np.any(sent > 1.0 + 1e-9):
        raise ValueError("a node would send on more than all of its rank")
    backwards = sp.csr_array((values, (targets, sources)), shape=(size, size))
    del values, targets, sources
    return Transitions(backwards=backwards, kept_back=np.clip(1.0 - sent, 0.0, 1.0))


def pagerank(
    steps: Transitions,
    restart: np.ndarray,
    *,
    damping: float = DAMPING,
    tolerance: float = PAGERANK_TOLERANCE,
    max_iterations: int = PAGERANK_MAX_ITERATIONS,
) -> np.ndarray:
    """PageRank of every node (summing to 1) with restarts proportional to `restart`.

    The update is networkx's `_pagerank_scipy` — x = damping * (x P + kept-back mass *
    restart) + (1 - damping) * restart — on a prebuilt sparse matrix; a test checks the
    ranks against `networkx.pagerank`. The stopping rule is an absolute L1 change
    (networkx multiplies its tolerance by the number of nodes, which at a million nodes
    stops after the first step).
    """
    count = steps.size
    if count == 0:
        return np.zeros(0)
    restart = np.asarray(restart, dtype=float)
    restart = restart / restart.sum()
    rank = np.full(count, 1.0 / count)
    for _ in range(max_iterations):
        previous = rank
        leaked = float(previous @ steps.kept_back)
        rank = damping * (steps.backwards @ previous + leaked * restart)
        rank += (1.0 - damping) * restart
        if np.abs(rank - previous).sum() < tolerance:
            return rank
    raise PageRankDidNotConverge(
        f"PageRank did not settle within {max_iterations} iterations (tolerance {tolerance})"
    )


@dataclass
class InfluenceGraph:
    """The graph over customer positions 0..n-1 (the order of `ctx.scores.index`)."""

    size: int
    referrer: np.ndarray  # referral edges, one per (referrer, referred) pair
    referred: np.ndarray
    referral_weight: np.ndarray  # spend of the referred after the referral (+ floor)
    referral_spend: np.ndarray  # spend of the referred after the referral (no floor)
    tie_from: np.ndarray  # co-purchase ties: follower -> earlier buyer
    tie_to: np.ndarray
    tie_weight: np.ndarray
    self_referrals: int
    unknown_referrals: int

    @property
    def edge_count(self) -> int:
        return len(self.referrer) + len(self.tie_from)


def _clean_referrals(data: TrainingData, customers: pd.Index) -> tuple[pd.DataFrame, int, int]:
    """Referrals between known customers, one row per pair: (referrer, referred, at)."""
    referrals = data.referrals
    if referrals.empty:
        empty = pd.DataFrame(
            {
                "referrer": no_integers(),
                "referred": no_integers(),
                "at": np.zeros(0, dtype="datetime64[ns]"),
            }
        )
        return empty, 0, 0
    frame = pd.DataFrame(
        {
            "referrer": positions(customers, referrals["referrer_pk"]),
            "referred": positions(customers, referrals["referred_pk"]),
            "at": pd.to_datetime(referrals["referred_at"]),
        }
    )
    # Erased customers and customers who signed up after as_of are not in this run.
    known = (frame["referrer"] >= 0) & (frame["referred"] >= 0)
    unknown = int((~known).sum())
    frame = frame[known]
    # Referring yourself says nothing about influence on others.
    self_referral = frame["referrer"] == frame["referred"]
    frame = frame[~self_referral]
    frame = frame.sort_values(["referrer", "referred", "at"], na_position="last")
    frame = frame.drop_duplicates(["referrer", "referred"], keep="first")
    return frame.reset_index(drop=True), int(self_referral.sum()), unknown


def run_purchase_pairs(ctx: RunContext) -> pd.DataFrame:
    """The run's `purchase_pairs` over its customers, asked of its source once per run."""
    pairs = ctx.cache.get(PURCHASE_PAIRS)
    if pairs is None:
        pairs = ctx.source.purchase_pairs(pd.Index(ctx.scores.index))
        ctx.cache[PURCHASE_PAIRS] = pairs
    return pairs


def co_purchase_ties(
    pairs: pd.DataFrame, followers: np.ndarray, ties_per_product: int = COPURCHASE_TIES_PER_PRODUCT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(from, to, weight): each follower -> the buyers just before them of each product.

    `pairs` is `purchase_pairs`; `followers` a boolean mask over customer positions of who
    may emit ties. Buyers of a product are ordered by first purchase (ties broken by
    customer position, so the result is deterministic); each emits at most
    `ties_per_product` ties per product — linear in the number of pairs. A pair of customers
    who share several products gets the weights added up.
    """
    if pairs.empty or ties_per_product < 1:
        return no_integers(), no_integers(), np.zeros(0)
    customer = pairs["customer"].to_numpy()
    first_at = pairs["first_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    product = pairs["product_pk"].to_numpy()
    # Stable sorts from the last key to the first give lexsort's order; pairs come grouped
    # by customer already, and products as small codes sort by radix: 1.9 s instead of
    # lexsort's 3.5 s for 8.3 million pairs.
    grouped = bool(np.all(customer[1:] >= customer[:-1]))
    order = np.arange(len(customer)) if grouped else np.argsort(customer, kind="stable")
    order = order[np.argsort(first_at[order], kind="stable")]
    codes, distinct = pd.factorize(product, sort=True)
    if len(distinct) < np.iinfo(np.int16).max:
        codes = codes.astype(np.int16)
    order = order[np.argsort(codes[order], kind="stable")]
    product = product[order]
    # Ties are numbered like customers: 32 bits where they fit (25 million ties at 1M).
    node = np.int32 if len(followers) < np.iinfo(np.int32).max else np.int64
    customer = customer[order].astype(node, copy=False)
    emits = followers[customer]
    sources, targets = [], []
    for step in range(1, ties_per_product + 1):
        same_product = np.zeros(len(product), dtype=bool)
        same_product[step:] = product[step:] == product[:-step]
        take = same_product & emits
        sources.append(customer[take])
        targets.append(customer[np.flatnonzero(take) - step])
    tie_from = np.concatenate(sources)
    del sources
    tie_to = np.concatenate(targets)
    # Every tie weighs the same; 32-bit is exact for small counts and half the memory.
    return tie_from, tie_to, np.ones(len(tie_from), dtype=np.float32)


def build_graph(
    data: TrainingData,
    source: TrainingSource,
    customers: pd.Index,
    spend: np.ndarray,
    pairs: pd.DataFrame | None = None,
) -> InfluenceGraph:
    """`data`'s referrals (loaded), the spend after each (`source`) and co-purchase ties
    from `pairs`, the customers' `purchase_pairs` (asked of `source` when None)."""
    referrals, self_referrals, unknown = _clean_referrals(data, customers)
    referral_spend = source.spend_after_referral(referrals, customers)
    buyers = spend > 0
    floor = SPEND_FLOOR_SHARE * (float(spend[buyers].mean()) if buyers.any() else 1.0)
    referrer = referrals["referrer"].to_numpy(dtype=np.int64)
    referred = referrals["referred"].to_numpy(dtype=np.int64)
    # Only customers nobody referred get co-purchase ties (see the module docstring).
    followers = np.ones(len(customers), dtype=bool)
    followers[referred] = False
    if pairs is None:
        pairs = source.purchase_pairs(customers)
    tie_from, tie_to, tie_weight = co_purchase_ties(pairs, followers)
    return InfluenceGraph(
        size=len(customers),
        referrer=referrer,
        referred=referred,
        referral_weight=referral_spend + floor,
        referral_spend=referral_spend,
        tie_from=tie_from,
        tie_to=tie_to,
        tie_weight=tie_weight,
        self_referrals=self_referrals,
        unknown_referrals=unknown,
    )


def graph_transitions(graph: InfluenceGraph) -> Transitions:
    """Customer i's rank goes to their referrers (all of it) or, for a customer nobody
    referred, `COPURCHASE_SHARE` of it along their co-purchase ties."""
    return transitions(
        graph.size,
        [
            (graph.referred, graph.referrer, graph.referral_weight, 1.0),
            (graph.tie_from, graph.tie_to, graph.tie_weight, COPURCHASE_SHARE),
        ],
    )


def influence_scores(graph: InfluenceGraph, spend: np.ndarray) -> np.ndarray:
    """Influence per customer position (see the module docstring)."""
    if graph.size == 0:
        return np.zeros(0)
    steps = graph_transitions(graph)
    buyers = spend > 0
    floor = SPEND_FLOOR_SHARE * (float(spend[buyers].mean()) if buyers.any() else 1.0)
    restart = spend.clip(min=0.0) + floor
    rank = pagerank(steps, restart)
    # PageRank = damping * (what flows in along edges + a share of what was kept back)
    #          + (1 - damping) * restart; influence is the first term alone.
    inflow = DAMPING * (steps.backwards @ rank)
    return inflow * graph.size


def _active_customers(ctx: RunContext, customers: pd.Index) -> tuple[np.ndarray, str]:
    """Who counts as still active, and how that was decided (for the run's record)."""
    horizon = ctx.settings.churn_horizon_days
    since = pd.Timestamp(ctx.data.cutoff) - pd.Timedelta(days=horizon)
    recent = ctx.source.customers_ordering_since(since.to_pydatetime())
    by_recency = customers.isin(recent)
    if "p_alive" in ctx.scores.columns and ctx.scores["p_alive"].notna().any():
        p_alive = pd.to_numeric(ctx.scores["p_alive"], errors="coerce").reindex(customers)
        estimated = p_alive.notna().to_numpy()
        active = np.where(estimated, p_alive.fillna(0).to_numpy() > ACTIVE_P_ALIVE, by_recency)
        return (
            active.astype(bool),
            f"P(alive) > {ACTIVE_P_ALIVE} from the CLV stage; a purchase in the last "
            f"{horizon} days where P(alive) is unknown",
        )
    return by_recency, f"a purchase in the last {horizon} days before as_of"


def referral_counts(
    graph: InfluenceGraph, active: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer position: customers referred, their spend after referral, still active."""
    size = graph.size
    referred = np.bincount(graph.referrer, minlength=size).astype(np.int64)
    spend = np.bincount(graph.referrer, weights=graph.referral_spend, minlength=size)
    still_active = np.bincount(
        graph.referrer, weights=active[graph.referred].astype(float), minlength=size
    ).astype(np.int64)
    return referred, spend, still_active


def referral_communities(graph: InfluenceGraph, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(community id or -1, community size or 0) per customer position.

    Communities maximise modularity (Louvain). Joining two linked parts A and B of one
    connected component raises modularity when links(A, B) / m > deg(A) deg(B) / (2 m^2);
    with at least one link between them that holds whenever the component's total degree D
    is below sqrt(8 m), since deg(A) deg(B) <= D^2 / 4. So such a component is one
    community as it stands — in a large customer base that is nearly all of them — and
    Louvain runs only on the rest (with the resolution scaled so that it optimises the same
    modularity as on the whole graph), which keeps the Python-level work small.
    """
    community = np.full(graph.size, -1, dtype=np.int64)
    size = np.zeros(graph.size, dtype=np.int64)
    if len(graph.referrer) == 0:
        return community, size
    low = np.minimum(graph.referrer, graph.referred)
    high = np.maximum(graph.referrer, graph.referred)
    links = np.unique(np.stack([low, high], axis=1), axis=0)  # A->B and B->A are one link
    adjacency = sp.coo_array(
        (np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(graph.size, graph.size)
    )
    _count, component = connected_components(adjacency, directed=False)
    degree = np.bincount(links.ravel(), minlength=graph.size)
    linked = degree > 0
    component_degree = np.bincount(component, weights=degree)
    whole = component_degree < np.sqrt(8.0 * len(links))
    groups: list[np.ndarray] = []
    small = linked & whole[component]
    if small.any():
        members = np.flatnonzero(small)
        order = np.argsort(component[members], kind="stable")
        members = members[order]
        cuts = np.flatnonzero(np.diff(component[members])) + 1
        groups.extend(np.split(members, cuts))
    large_links = links[~whole[component[links[:, 0]]]]
    if len(large_links):
        rest = nx.Graph()
        rest.add_edges_from(large_links.tolist())
        # Modularity's null model counts all m links; on the subgraph it would count only
        # its own, so the resolution is scaled by their ratio to keep the same objective.
        resolution = COMMUNITY_RESOLUTION * len(large_links) / len(links)
        found = nx.community.louvain_communities(rest, seed=seed, resolution=resolution)
        groups.extend(np.sort(np.fromiter(group, dtype=np.int64)) for group in found)
    # Largest first, then by the smallest member, so ids are stable for the same graph.
    groups.sort(key=lambda g: (-len(g), int(g[0])))
    for number, group in enumerate(groups):
        community[group] = number
        size[group] = len(group)
    return community, size


def _ranks(influence: np.ndarray, customers: pd.Index) -> np.ndarray:
    """1 = most influential; ties go to the smaller customer_pk; 0 for no influence."""
    ranks = np.zeros(len(influence), dtype=np.int64)
    positive = np.flatnonzero(influence > 0)
    order = positive[np.lexsort((customers.to_numpy()[positive], -influence[positive]))]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _nullable_ints(values: np.ndarray, missing: np.ndarray, index: pd.Index) -> pd.Series:
    """Python ints with None for missing: an object column, so pandas keeps None as None
    (a float column would turn the ints into floats and None into NaN)."""
    return pd.Series(
        [None if gone else int(v) for v, gone in zip(values, missing, strict=True)],
        index=index,
        dtype=object,
    )


def run(ctx: RunContext) -> None:
    """Fill the influence columns of `ctx.scores` (see the module docstring)."""
    customers = pd.Index(ctx.scores.index)
    spend = ctx.source.customer_spend(customers)
    graph = build_graph(ctx.data, ctx.source, customers, spend, run_purchase_pairs(ctx))
    active, active_definition = _active_customers(ctx, customers)
    # Every question about the orders is asked: on SQLite the loaded orders and lines
    # (about 430 MB at a million customers) go before the PageRank's matrix is built.
    ctx.done_reading(STAGE, "orders", "lines", "referrals")
    referred, referred_spend, referred_active = referral_counts(graph, active)
    community, community_size = referral_communities(graph, ctx.settings.random_seed)

    nothing = None
    if graph.size == 0:
        nothing = "there are no customers"
    elif graph.edge_count == 0:
        nothing = "there are no referrals between customers and no shared purchases"
    influence = influence_scores(graph, spend) if nothing is None else np.zeros(graph.size)
    ranks = _ranks(influence, customers)

    scores = ctx.scores
    scores["influence"] = influence
    scores["influence_rank"] = _nullable_ints(ranks, ranks == 0, customers)
    scores["referred_customers"] = referred
    scores["referred_spend"] = referred_spend
    scores["referred_active"] = referred_active
    scores["community"] = _nullable_ints(community, community < 0, customers)
    scores["community_size"] = _nullable_ints(community_size, community < 0, customers)

    sizes = np.bincount(community[community >= 0]) if (community >= 0).any() else np.zeros(0)
    ctx.params[STAGE] = {
        "damping": DAMPING,
        "restart": "proportional to each customer's spend up to as_of, plus a floor of "
        f"{SPEND_FLOOR_SHARE:.0%} of an average buyer's spend",
        "referral_weight": "what the referred customer spent after the referral, plus the floor",
        "co_purchase_ties_per_product": COPURCHASE_TIES_PER_PRODUCT,
        "co_purchase_share": COPURCHASE_SHARE,
        "active_definition": active_definition,
        "communities": "Louvain on the undirected referral graph"
        f" (seed {ctx.settings.random_seed}, resolution {COMMUNITY_RESOLUTION})",
        "skipped_because": nothing,
    }
    ctx.metrics[STAGE] = {
        "customers": int(graph.size),
        "referral_edges": int(len(graph.referrer)),
        "co_purchase_ties": int(len(graph.tie_from)),
        "self_referrals_ignored": int(graph.self_referrals),
        "referrals_to_unknown_customers_ignored": int(graph.unknown_referrals),
        "customers_with_influence": int((influence > 0).sum()),
        "referrers": int((referred > 0).sum()),
        "communities": int(len(sizes)),
        "largest_community": int(sizes.max()) if len(sizes) else 0,
        "customers_in_communities": int((community >= 0).sum()),
    }
    if nothing is not None:
        logger.info("influence not computed: %s", nothing)
