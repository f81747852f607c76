"""Influence from the customer network: PageRank, counts, communities, the why-sentence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from crmbot.analytics import graph
from crmbot.analytics.base import RunContext, TrainingData
from crmbot.core.config import Settings
from crmbot.reply import format, reasons

AS_OF = date(2026, 6, 30)
START = datetime(2025, 1, 1)


def make_data(
    customers: int,
    *,
    orders: Sequence[tuple[int, int, float]] = (),
    lines: Sequence[tuple[int, int]] = (),
    referrals: Sequence[tuple[int, int, int | None]] = (),
    regions: Sequence[str] | None = None,
) -> TrainingData:
    """Customers 1..n; orders (customer_pk, day, amount) get order_pk 1..; lines
    (order_pk, product_pk); referrals (referrer_pk, referred_pk, day or None)."""
    pks = list(range(1, customers + 1))
    customer_frame = pd.DataFrame(
        {
            "customer_id": [f"C{pk:04d}" for pk in pks],
            "name": [f"Customer {pk}" for pk in pks],
            "company": None,
            "region": list(regions) if regions else ["EMEA"] * customers,
            "owner": None,
            "signed_up_at": pd.Timestamp(START),
        },
        index=pd.Index(pks, name="customer_pk"),
    )
    order_frame = pd.DataFrame(
        {
            "order_pk": np.arange(1, len(orders) + 1, dtype=np.int64),
            "customer_pk": np.array([o[0] for o in orders], dtype=np.int64),
            "ordered_at": pd.to_datetime([START + timedelta(days=o[1]) for o in orders]),
            "amount": np.array([o[2] for o in orders], dtype=float),
        }
    )
    line_frame = pd.DataFrame(
        {
            "order_pk": np.array([line[0] for line in lines], dtype=np.int64),
            "product_pk": np.array([line[1] for line in lines], dtype=np.int64),
            "quantity": 1.0,
            "unit_price": 10.0,
        }
    )
    referral_frame = pd.DataFrame(
        {
            "referrer_pk": np.array([r[0] for r in referrals], dtype=np.int64),
            "referred_pk": np.array([r[1] for r in referrals], dtype=np.int64),
            "referred_at": pd.to_datetime(
                [None if r[2] is None else START + timedelta(days=r[2]) for r in referrals]
            ),
        }
    )
    products = pd.DataFrame(
        {"product_id": [], "name": [], "category": [], "price": [], "margin": []},
        index=pd.Index([], name="product_pk"),
    )
    return TrainingData(
        as_of=AS_OF,
        customers=customer_frame,
        orders=order_frame,
        lines=line_frame,
        products=products,
        tickets=pd.DataFrame(columns=["customer_pk", "opened_at", "closed_at", "csat"]),
        feedback=pd.DataFrame(columns=["customer_pk", "submitted_at", "nps", "csat"]),
        referrals=referral_frame,
    )


@pytest.fixture
def run_settings() -> Settings:
    return Settings(_env_file=None, random_seed=7, churn_horizon_days=90)  # type: ignore[call-arg]


def run_stage(data: TrainingData, settings: Settings) -> RunContext:
    ctx = RunContext.start(data, settings)
    graph.run(ctx)
    json.dumps(ctx.params["graph"])  # what the run records must be plain JSON
    json.dumps(ctx.metrics["graph"])
    return ctx


RECENT = 500  # a day within the churn horizon before AS_OF (START + 500 days = 2026-05-16)


def test_pagerank_matches_networkx_with_dangling_nodes_and_personalisation() -> None:
    rng = np.random.default_rng(3)
    size = 40
    src = rng.integers(0, size, 120)
    dst = rng.integers(0, size, 120)
    keep = (src != dst) & (src < 30)  # nodes 30..39 have no out-edges: dangling
    src, dst = src[keep], dst[keep]
    weight = rng.uniform(0.5, 5.0, len(src))
    restart = rng.uniform(0.1, 3.0, size)
    reference = nx.DiGraph()
    reference.add_nodes_from(range(size))
    for a, b, w in zip(src, dst, weight, strict=True):
        previous = reference.get_edge_data(int(a), int(b), {"weight": 0.0})["weight"]
        reference.add_edge(int(a), int(b), weight=previous + w)
    expected = nx.pagerank(
        reference,
        alpha=graph.DAMPING,
        personalization={i: restart[i] for i in range(size)},
        tol=1e-14,
        max_iter=1000,
    )
    steps = graph.transitions(size, [(src, dst, weight, 1.0)])
    ours = graph.pagerank(steps, restart, tolerance=1e-13)
    assert ours == pytest.approx([expected[i] for i in range(size)], abs=1e-10)
    assert ours.sum() == pytest.approx(1.0)


def test_influence_is_pagerank_on_the_reversed_referral_graph(run_settings: Settings) -> None:
    # No orders: no co-purchase ties, so the graph is referrals alone and networkx can
    # check the whole computation, restart vector included.
    referrals = [(1, 2, 1), (1, 3, 1), (1, 4, 2), (2, 5, 3), (5, 6, 4), (7, 8, 5), (8, 1, 6)]
    data = make_data(9, referrals=referrals)
    ctx = run_stage(data, run_settings)
    reference = nx.DiGraph()
    reference.add_nodes_from(range(1, 10))
    reference.add_edges_from((b, a) for a, b, _ in referrals)
    expected = nx.pagerank(reference, alpha=graph.DAMPING, tol=1e-14, max_iter=1000)
    # Without spend every restart weight is the floor: uniform. Influence is what flows in.
    dangling = sum(expected[n] for n in reference if reference.out_degree(n) == 0)
    inflow = {
        n: expected[n] - (1 - graph.DAMPING) / 9 - graph.DAMPING * dangling / 9 for n in expected
    }
    influence = ctx.scores["influence"]
    for pk in range(1, 10):
        assert influence[pk] == pytest.approx(inflow[pk] * 9, abs=1e-7)
    # 1 referred three; credit halves with each step up the chain 1 -> 8 -> 7, so 8 (who
    # referred 1) and 7 (who referred 8) come next but below 1. Customers nothing reaches
    # (3, 4, 6, 9) have no rank.
    ranks = ctx.scores["influence_rank"].tolist()
    assert ranks == [1, 4, None, None, 5, None, 3, 2, None]
    assert influence[9] == 0.0  # no ties at all
    assert ctx.scores["influence_rank"][9] is None


def hub_company() -> TrainingData:
    """Customer 1 refers 10 buyers; customer 2 refers one big spender; 3..20 buy alone."""
    referrals = [(1, pk, 10) for pk in range(21, 31)] + [(2, 31, 10)]
    orders = [(pk, 20 + pk, 300.0) for pk in range(21, 31)]  # referred, bought after day 10
    orders += [(31, 40, 2000.0), (31, RECENT, 500.0)]  # customer 31 is recent: active
    orders += [(pk, 30 + pk, 150.0) for pk in range(3, 21)]
    orders += [(1, 5, 50.0)]  # before anyone was referred
    lines = [(order_pk, 100 + order_pk % 4) for order_pk in range(1, len(orders) + 1)]
    regions = ["EMEA"] * 31 + ["NA"]
    return make_data(32, orders=orders, lines=lines, referrals=referrals, regions=regions)


def test_the_hub_ranks_first_with_counts_in_words(run_settings: Settings) -> None:
    ctx = run_stage(hub_company(), run_settings)
    scores = ctx.scores
    assert scores["influence_rank"][1] == 1
    assert scores["referred_customers"][1] == 10
    assert scores["referred_spend"][1] == pytest.approx(3000.0)
    assert scores["referred_active"][1] == 0  # their purchases are over a year old
    assert scores["referred_customers"][2] == 1
    assert scores["referred_spend"][2] == pytest.approx(2500.0)
    assert scores["referred_active"][2] == 1
    assert scores["community_size"][1] == 11
    assert scores["community"][1] == 0  # the largest community
    assert scores["community"][32] is None
    assert scores["community_size"][32] is None
    row = scores.loc[1].to_dict() | {"region": "EMEA", "community_hub": True}
    assert reasons.influence_reason(row) == (
        "referred 10 customers who spent $3k; 0 still active; "
        "hub of a 11-customer community; based in EMEA"
    )
    assert reasons.influence_reason(scores.loc[2].to_dict()) == (
        "referred 1 customer who spent $2.5k; still active; part of a 2-customer community"
    )
    metrics = ctx.metrics["graph"]
    assert metrics["referral_edges"] == 11
    assert metrics["communities"] == 2
    assert metrics["co_purchase_ties"] > 0
    assert "last 90 days" in ctx.params["graph"]["active_definition"]


def test_spend_before_the_referral_does_not_count(run_settings: Settings) -> None:
    data = make_data(
        3,
        orders=[(2, 5, 100.0), (2, 50, 40.0), (3, 70, 10.0)],
        referrals=[(1, 2, 20), (1, 3, None)],
    )
    ctx = run_stage(data, run_settings)
    assert ctx.scores["referred_spend"][1] == pytest.approx(50.0)  # 40 after day 20, 10 undated


def test_referred_active_uses_p_alive_when_the_clv_stage_estimated_it(
    run_settings: Settings,
) -> None:
    data = make_data(4, orders=[(2, 30, 10.0), (3, 30, 10.0)], referrals=[(1, 2, 1), (1, 3, 1)])
    ctx = RunContext.start(data, run_settings)
    ctx.scores["p_alive"] = [None, 0.9, 0.2, None]
    graph.run(ctx)
    assert ctx.scores["referred_active"][1] == 1
    assert "P(alive)" in ctx.params["graph"]["active_definition"]


def test_self_referrals_and_unknown_customers_are_ignored(run_settings: Settings) -> None:
    data = make_data(3, referrals=[(1, 1, 1), (2, 2, None), (1, 99, 1), (1, 2, 3)])
    ctx = run_stage(data, run_settings)
    assert ctx.scores["referred_customers"].tolist() == [1, 0, 0]
    assert ctx.metrics["graph"]["self_referrals_ignored"] == 2
    assert ctx.metrics["graph"]["referrals_to_unknown_customers_ignored"] == 1
    assert ctx.scores["influence_rank"][1] == 1
    assert ctx.scores["influence"][3] == 0.0


def test_a_referral_cycle_converges_and_shares_influence(run_settings: Settings) -> None:
    data = make_data(4, referrals=[(1, 2, 1), (2, 3, 2), (3, 1, 3)])
    ctx = run_stage(data, run_settings)
    influence = ctx.scores["influence"]
    # A symmetric cycle: everyone passes the same rank on and gets the same back.
    assert influence[1] == pytest.approx(influence[2]) == pytest.approx(influence[3])
    assert influence[1] > 0
    assert influence[4] == 0.0
    assert ctx.scores["referred_customers"].tolist() == [1, 1, 1, 0]
    assert ctx.scores["community_size"].tolist()[:3] == [3, 3, 3]
    assert ctx.scores["influence_rank"].tolist() == [1, 2, 3, None]  # ties: smaller pk first


def test_no_ties_at_all_records_why_nothing_was_computed(run_settings: Settings) -> None:
    data = make_data(3, orders=[(1, 5, 20.0)])  # an order without lines, no referrals
    ctx = run_stage(data, run_settings)
    assert ctx.scores["influence"].tolist() == [0.0, 0.0, 0.0]
    assert ctx.scores["influence_rank"].tolist() == [None, None, None]
    assert ctx.scores["community"].tolist() == [None, None, None]
    assert ctx.params["graph"]["skipped_because"] == (
        "there are no referrals between customers and no shared purchases"
    )
    row = ctx.scores.loc[1].to_dict()
    assert reasons.influence_reason(row) == "no referrals or shared purchases yet"


def test_no_customers_at_all(run_settings: Settings) -> None:
    ctx = run_stage(make_data(0), run_settings)
    assert ctx.scores.empty
    assert ctx.params["graph"]["skipped_because"] == "there are no customers"
    assert ctx.metrics["graph"]["customers"] == 0


def test_co_purchase_ties_link_each_buyer_to_the_few_just_before_them() -> None:
    # Ten buyers of one product, in order of purchase; customer 5 was referred.
    pairs = pd.DataFrame(
        {
            "customer": np.arange(10),
            "product_pk": 7,
            "first_at": pd.date_range("2026-01-01", periods=10),
        }
    ).sample(frac=1.0, random_state=1)
    followers = np.ones(10, dtype=bool)
    followers[5] = False
    tie_from, tie_to, _ = graph.co_purchase_ties(pairs, followers, ties_per_product=3)
    ties = sorted(zip(tie_from.tolist(), tie_to.tolist(), strict=True))
    # 1+2+3*7 = 24 ties for ten buyers (not 45 pairs), minus the 3 of the referred customer.
    assert len(ties) == 21
    assert {(9, 8), (9, 7), (9, 6)} <= set(ties) and (9, 5) not in ties
    assert not any(source == 5 for source, _ in ties)
    assert all(source > target for source, target in ties)  # always towards earlier buyers


def test_an_early_buyer_followed_by_others_gets_influence_from_shared_purchases(
    run_settings: Settings,
) -> None:
    orders = [(pk, pk * 10, 100.0) for pk in range(1, 6)]
    lines = [(order_pk, 1) for order_pk in range(1, 6)]
    ctx = run_stage(make_data(6, orders=orders, lines=lines), run_settings)
    influence = ctx.scores["influence"]
    assert influence[1] > influence[4] > 0
    assert influence[5] == 0.0  # the last buyer: nobody followed them
    assert influence[6] == 0.0  # bought nothing
    assert ctx.scores["influence_rank"][5] is None
    assert ctx.scores["community"][1] is None  # co-purchase ties make no community
    reason = reasons.influence_reason(ctx.scores.loc[1].to_dict())
    assert reason.startswith("no referrals of their own; customers who bought the same")


def test_a_referral_outweighs_co_purchase_ties(run_settings: Settings) -> None:
    # Customer 1 bought first and four others followed; customer 2 referred one buyer.
    orders = [(pk, pk * 10, 100.0) for pk in (1, 3, 4, 5, 6)] + [(7, 100, 100.0)]
    lines = [(order_pk, 1) for order_pk in range(1, 6)] + [(6, 2)]
    data = make_data(7, orders=orders, lines=lines, referrals=[(2, 7, 90)])
    ctx = run_stage(data, run_settings)
    assert ctx.scores["influence"][2] > ctx.scores["influence"][1] > 0


def test_pagerank_reports_when_it_does_not_settle() -> None:
    steps = graph.transitions(2, [(np.array([0, 1]), np.array([1, 0]), np.ones(2), 1.0)])
    with pytest.raises(graph.PageRankDidNotConverge):
        graph.pagerank(steps, np.array([1.0, 0.0]), max_iterations=2)


def test_a_node_cannot_send_on_more_than_its_rank() -> None:
    edges = (np.array([0]), np.array([1]), np.ones(1))
    with pytest.raises(ValueError, match="more than all of its rank"):
        graph.transitions(2, [(*edges, 1.0), (*edges, 0.5)])


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (0, "$0"),
        (950, "$950"),
        (1000, "$1k"),
        (2500, "$2.5k"),
        (38_200, "$38k"),
        (1_000_000, "$1M"),
        (1_250_000, "$1.2M"),
        (-400, "-$400"),
    ],
)
def test_money_in_words(amount: float, words: str) -> None:
    assert format.money_short(amount) == words


def test_influence_reason_reads_attributes_too() -> None:
    class Score:
        referred_customers = 14
        referred_spend = 38_000.0
        referred_active = 11
        influence = 3.2
        community_size = 40

    assert reasons.influence_reason(Score()) == (
        "referred 14 customers who spent $38k; 11 still active; part of a 40-customer community"
    )


def test_planted_hubs_are_the_top_influencers_of_the_sample_company(sample_company) -> None:
    from crmbot import queries, runs
    from crmbot.core.db import read_session

    with read_session(sample_company.engine) as session:
        scores = queries.scores_frame(session=session)
        run = runs.active_run(session=session)
    assert run is not None and run.params["graph"]["skipped_because"] is None
    hubs = set(sample_company.truth.hub_customer_ids)
    top = scores.sort_values("influence_rank").head(len(hubs) + 3)
    assert hubs <= set(top["customer_id"]), top[["customer_id", "referred_customers"]]
    for customer_id, planted in sample_company.truth.hub_referral_counts.items():
        row = scores[scores["customer_id"] == customer_id].iloc[0]
        assert row["referred_customers"] >= planted
        assert row["community_size"] is not None and row["community_size"] > planted / 2
        assert reasons.influence_reason(row.to_dict()).startswith(
            f"referred {int(row['referred_customers'])} customers who spent $"
        )
    # The planted cycle neither crashed PageRank nor left its members without influence.
    for cycle in sample_company.truth.referral_cycles:
        members = scores[scores["customer_id"].isin(cycle)]
        assert (members["influence"] > 0).all()


def test_communities_split_only_what_modularity_splits(run_settings: Settings) -> None:
    # Two cliques of 8 (customers 1-8 and 9-16) joined by one referral, and a star 17->18,19.
    cliques = [
        (a, b, 1) for group in (range(1, 9), range(9, 17)) for a in group for b in group if a < b
    ]
    referrals = [*cliques, (8, 9, 2), (17, 18, 3), (17, 19, 3)]
    ctx = run_stage(make_data(20, referrals=referrals), run_settings)
    community = ctx.scores["community"]
    assert len({community[pk] for pk in range(1, 9)}) == 1
    assert len({community[pk] for pk in range(9, 17)}) == 1
    assert community[1] != community[9]
    assert community[17] == community[18] == community[19] != community[1]
    assert ctx.scores["community_size"].tolist()[:19] == [8] * 16 + [3] * 3
    assert community[20] is None
    # The same partition networkx's Louvain finds on the whole graph.
    whole = nx.Graph([(a, b) for a, b, _ in referrals])
    expected = nx.community.louvain_communities(whole, seed=run_settings.random_seed)
    ours = {frozenset(community[community == c].index) for c in set(community.dropna())}
    assert ours == {frozenset(group) for group in expected}


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_communities_are_as_good_as_louvain_on_the_whole_graph(seed: int) -> None:
    # A random referral forest: a few big trees (split by Louvain) and many small ones
    # (taken whole). Same objective as Louvain on the whole graph, so the same modularity
    # (Louvain's own path through the nodes differs, so not always the same partition).
    rng = np.random.default_rng(seed)
    size = 400
    referred = rng.choice(np.arange(1, size), 300, replace=False)
    referrer = np.array(
        [rng.integers(0, r) if r < 60 else rng.integers(r - 5, r) for r in referred]
    )
    shape = graph.InfluenceGraph(
        size=size,
        referrer=referrer,
        referred=referred,
        referral_weight=np.ones(len(referred)),
        referral_spend=np.zeros(len(referred)),
        tie_from=np.zeros(0, dtype=np.int64),
        tie_to=np.zeros(0, dtype=np.int64),
        tie_weight=np.zeros(0),
        self_referrals=0,
        unknown_referrals=0,
    )
    community, community_size = graph.referral_communities(shape, seed=seed)
    whole = nx.Graph(list(zip(referrer.tolist(), referred.tolist(), strict=True)))
    ours = [np.flatnonzero(community == c).tolist() for c in set(community[community >= 0])]
    assert sorted(n for group in ours for n in group) == sorted(whole.nodes)
    expected = nx.community.louvain_communities(whole, seed=seed)
    assert nx.community.modularity(whole, ours) == pytest.approx(
        nx.community.modularity(whole, expected), abs=0.01
    )
    # Every small tree is one community.
    for component in nx.connected_components(whole):
        if sum(d for _n, d in whole.degree(component)) < np.sqrt(8 * whole.number_of_edges()):
            assert len({community[n] for n in component}) == 1
    assert all(community_size[group[0]] == len(group) for group in ours)


def test_purchase_pairs_do_not_depend_on_the_order_orders_come_in() -> None:
    rng = np.random.default_rng(3)
    orders = pd.DataFrame(
        {
            "order_pk": np.arange(1, 201),
            "customer_pk": rng.integers(1, 31, 200),
            "ordered_at": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(rng.integers(0, 300, 200), "D"),
            "amount": 10.0,
        }
    )
    lines = pd.DataFrame(
        {"order_pk": rng.integers(1, 230, 400), "product_pk": rng.integers(1, 9, 400)}
    ).drop_duplicates()  # some lines name orders not loaded (after as_of)
    customers = pd.Index(np.arange(1, 26), name="customer_pk")  # 26-30 are not in this run
    empty = pd.DataFrame()
    sorted_data = TrainingData(date(2025, 12, 31), empty, orders, lines, empty, empty, empty, empty)
    shuffled = orders.sample(frac=1.0, random_state=1)
    shuffled_data = TrainingData(
        date(2025, 12, 31), empty, shuffled, lines, empty, empty, empty, empty
    )
    expected = graph.purchase_pairs(sorted_data, customers)
    pd.testing.assert_frame_equal(graph.purchase_pairs(shuffled_data, customers), expected)
    # Checked against a plain merge and groupby.
    merged = lines.merge(orders, on="order_pk")
    merged = merged[merged["customer_pk"].isin(customers)]
    first = merged.groupby(["customer_pk", "product_pk"])["ordered_at"].min().reset_index()
    found = expected.assign(customer_pk=customers[expected["customer"]].to_numpy())
    found = found.sort_values(["customer_pk", "product_pk"], ignore_index=True)
    assert found["customer_pk"].tolist() == first["customer_pk"].tolist()
    assert found["product_pk"].tolist() == first["product_pk"].tolist()
    assert found["first_at"].tolist() == first["ordered_at"].tolist()
