"""The sample company: seeded, nothing after as_of, clean to import, and carrying the
structures the models are meant to find (hubs, affinities, predictable churn)."""

from __future__ import annotations

import filecmp
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.db import connect
from crmbot.core.models import Customer, ModelRun, Order, OrderLine, Referral
from crmbot.demo import FILES, DemoTruth, generate_company, load_demo
from crmbot.demo.touches import past_run_day

AS_OF = date(2026, 6, 30)


def _read(directory: Path, kind: str, **dates: bool) -> pd.DataFrame:
    # keep_default_na=False: "NA" is a region (North America), not a missing value.
    frame = pd.read_csv(directory / FILES[kind], dtype=str, keep_default_na=False)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column].replace("", None))
    return frame


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoTruth]:
    """The default-sized company (3,000 customers): large enough for its statistics."""
    directory = tmp_path_factory.mktemp("company")
    return directory, generate_company(directory, customers=3000, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def frames(company: tuple[Path, DemoTruth]) -> dict[str, pd.DataFrame]:
    directory, _truth = company
    orders = _read(directory, "orders", ordered_at=True)
    orders["amount"] = orders["amount"].astype(float)
    lines = _read(directory, "order-lines")
    lines["quantity"] = lines["quantity"].astype(int)
    lines["unit_price"] = lines["unit_price"].astype(float)
    tickets = _read(directory, "tickets", opened_at=True, closed_at=True)
    feedback = _read(directory, "feedback", submitted_at=True)
    for column in ("nps", "csat"):
        feedback[column] = pd.to_numeric(feedback[column])
    return {
        "customers": _read(directory, "customers"),
        "orders": orders,
        "lines": lines,
        "tickets": tickets,
        "feedback": feedback,
        "referrals": _read(directory, "referrals", referred_at=True),
    }


def test_the_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = generate_company(tmp_path / "a", customers=300, seed=11, as_of=AS_OF)
    second = generate_company(tmp_path / "b", customers=300, seed=11, as_of=AS_OF)
    generate_company(tmp_path / "c", customers=300, seed=12, as_of=AS_OF)
    names = [*FILES.values(), "truth.json"]
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert first == second
    _match, mismatch, _errors = filecmp.cmpfiles(
        tmp_path / "a", tmp_path / "c", ["orders.csv", "customers.csv"], shallow=False
    )
    assert mismatch == ["orders.csv", "customers.csv"]


def test_nothing_is_dated_after_as_of_and_history_covers_two_years(
    frames: dict[str, pd.DataFrame],
) -> None:
    end = pd.Timestamp(AS_OF + timedelta(days=1))
    start = pd.Timestamp(AS_OF - timedelta(days=730))
    signed_up = pd.to_datetime(frames["customers"]["signed_up_at"])
    stamps = {
        "signed_up_at": signed_up,
        "ordered_at": frames["orders"]["ordered_at"],
        "opened_at": frames["tickets"]["opened_at"],
        "closed_at": frames["tickets"]["closed_at"].dropna(),
        "submitted_at": frames["feedback"]["submitted_at"],
        "referred_at": frames["referrals"]["referred_at"],
    }
    for name, values in stamps.items():
        assert values.max() < end, name
        assert values.min() >= start, name
    # Two years of history: orders in the first and in the last month of the period.
    orders_at = frames["orders"]["ordered_at"]
    assert orders_at.min() < start + pd.Timedelta(days=31)
    assert orders_at.max() > end - pd.Timedelta(days=31)
    assert (
        frames["orders"].merge(frames["customers"], on="customer_id")["ordered_at"]
        >= pd.to_datetime(
            frames["orders"].merge(frames["customers"], on="customer_id")["signed_up_at"]
        )
    ).all()


def test_customers_look_like_a_book_of_business(frames: dict[str, pd.DataFrame]) -> None:
    customers = frames["customers"]
    assert customers["customer_id"].is_unique
    assert set(customers["region"]) == {"EMEA", "NA", "APAC", "LATAM"}
    assert customers["region"].value_counts().idxmax() == "EMEA"
    owners = customers["owner"].value_counts()
    assert {"maria", "james", "aiko"} <= set(owners.index)
    assert 6 <= len(owners) <= 12
    companies = customers.loc[customers["company"].str.strip() != "", "company"].str.strip()
    assert 100 <= companies.nunique() <= 400
    assert companies.value_counts().iloc[0] >= 10  # some companies have many contacts
    assert customers["email"].str.strip().str.lower().is_unique
    # Messy but valid: what the importer must clean.
    assert (customers["email"] != customers["email"].str.lower()).sum() > 10
    assert (customers["name"] != customers["name"].str.strip()).sum() > 5


def test_orders_are_the_sum_of_their_lines_refunds_are_negative_and_lineless(
    frames: dict[str, pd.DataFrame],
) -> None:
    orders, lines = frames["orders"], frames["lines"]
    assert orders["order_id"].is_unique
    assert not lines.duplicated(["order_id", "product_id"]).any()
    line_total = (lines["quantity"] * lines["unit_price"]).groupby(lines["order_id"]).sum()
    sales = orders[orders["amount"] > 0].set_index("order_id")
    assert np.allclose(sales["amount"], line_total.reindex(sales.index), atol=0.011)
    refunds = orders[orders["amount"] < 0]
    assert 0.005 < len(refunds) / len(orders) < 0.05
    assert not lines["order_id"].isin(refunds["order_id"]).any()
    # Heavy-tailed spend and a Q4 peak: December outsells the January after it, although
    # the customer base keeps growing.
    assert sales["amount"].quantile(0.99) > 4 * sales["amount"].median()
    month = sales["ordered_at"].dt.to_period("M")
    assert (month == "2025-12").sum() > 1.3 * (month == "2026-01").sum()


def test_some_customers_never_buy(frames: dict[str, pd.DataFrame]) -> None:
    buyers = set(frames["orders"]["customer_id"])
    prospects = set(frames["customers"]["customer_id"]) - buyers
    assert 0.05 < len(prospects) / len(frames["customers"]) < 0.25


def test_planted_hubs_refer_many_and_other_referrals_are_sparse(
    company: tuple[Path, DemoTruth], frames: dict[str, pd.DataFrame]
) -> None:
    _directory, truth = company
    referrals = frames["referrals"]
    per_referrer = referrals["referrer_id"].value_counts()
    assert len(truth.hub_customer_ids) == 5
    for hub in truth.hub_customer_ids:
        assert 15 <= per_referrer[hub] <= 40
        assert truth.hub_referral_counts[hub] == per_referrer[hub]
    assert per_referrer.drop(truth.hub_customer_ids).max() <= 4
    assert set(per_referrer.index[:5]) == set(truth.hub_customer_ids)
    # Hubs recruit mostly in their own region.
    region = frames["customers"].set_index("customer_id")["region"]
    hub_edges = referrals[referrals["referrer_id"].isin(truth.hub_customer_ids)]
    same = (
        region[hub_edges["referrer_id"]].to_numpy() == region[hub_edges["referred_id"]].to_numpy()
    )
    assert same.mean() > 0.6


def test_referred_customers_sign_up_after_referrer_and_referral_except_the_cycle(
    company: tuple[Path, DemoTruth], frames: dict[str, pd.DataFrame]
) -> None:
    _directory, truth = company
    assert len(truth.referral_cycles) == 1
    a, b, c = truth.referral_cycles[0]
    edges = set(
        zip(frames["referrals"]["referrer_id"], frames["referrals"]["referred_id"], strict=True)
    )
    assert {(a, b), (b, c), (c, a)} <= edges
    signed = frames["customers"].set_index("customer_id")["signed_up_at"].map(date.fromisoformat)
    referrals = frames["referrals"]
    ordinary = referrals[~((referrals["referrer_id"] == c) & (referrals["referred_id"] == a))]
    referred_on = ordinary["referred_at"].dt.date.to_numpy()
    assert (signed[ordinary["referred_id"]].to_numpy() >= referred_on).all()
    assert (
        signed[ordinary["referred_id"]].to_numpy() >= signed[ordinary["referrer_id"]].to_numpy()
    ).all()
    assert not (referrals["referrer_id"] == referrals["referred_id"]).any()


def test_planted_affinities_are_strong_rules_over_orders_and_customer_histories(
    company: tuple[Path, DemoTruth], frames: dict[str, pd.DataFrame]
) -> None:
    _directory, truth = company
    lines = frames["lines"].merge(frames["orders"][["order_id", "customer_id"]], on="order_id")
    by_order = lines.groupby("order_id")["product_id"].agg(frozenset)
    by_customer = lines.groupby("customer_id")["product_id"].agg(frozenset)
    assert len(truth.affinity_rules) == 4
    for baskets in (by_order, by_customer):
        for rule in truth.affinity_rules:
            antecedents = frozenset(rule["antecedents"])
            holds = baskets.map(antecedents.issubset)
            with_consequent = baskets.map(lambda b, c=rule["consequent"]: c in b)
            confidence = (holds & with_consequent).sum() / holds.sum()
            lift = confidence / with_consequent.mean()
            assert holds.sum() >= 100, rule
            assert confidence >= 0.8, rule
            assert lift >= 2.5, rule


def test_churners_stop_buying_after_warning_signs(
    company: tuple[Path, DemoTruth], frames: dict[str, pd.DataFrame]
) -> None:
    _directory, truth = company
    orders = frames["orders"]
    churned = set(truth.churned_customer_ids)
    assert 0.15 < len(churned) / len(frames["customers"]) < 0.45
    assert len(truth.churning_customer_ids) > 30
    assert not churned & set(truth.churning_customer_ids)
    sales = orders[orders["amount"] > 0]
    stopped = pd.to_datetime(sales["customer_id"].map(truth.churned_on))
    after = sales[stopped.notna() & (sales["ordered_at"].dt.normalize() > stopped)]
    assert after.empty
    assert churned <= set(sales["customer_id"])

    # In the 150 days before they stop, churners open more tickets and score lower than
    # everyone else does in the 150 days before as_of.
    window = pd.Timedelta(days=150)
    tickets, feedback = frames["tickets"], frames["feedback"]
    stop = tickets["customer_id"].map(truth.churned_on).pipe(pd.to_datetime)
    churner_tickets = tickets[
        (tickets["opened_at"] < stop) & (tickets["opened_at"] >= stop - window)
    ]
    end = pd.Timestamp(AS_OF)
    active = set(sales.loc[sales["ordered_at"] >= end - window, "customer_id"]) - churned
    others = tickets[tickets["customer_id"].isin(active) & (tickets["opened_at"] >= end - window)]
    assert len(churner_tickets) / len(churned) > 2 * len(others) / len(active)
    stop = feedback["customer_id"].map(truth.churned_on).pipe(pd.to_datetime)
    churner_nps = feedback.loc[
        (feedback["submitted_at"] >= stop - window) & (feedback["submitted_at"] < stop), "nps"
    ]
    other_nps = feedback.loc[feedback["customer_id"].isin(active), "nps"]
    assert churner_nps.mean() < other_nps.mean() - 1.5


def test_churn_is_predictable_beyond_recency(frames: dict[str, pd.DataFrame]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    def snapshot(cutoff: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray]:
        sales = frames["orders"][frames["orders"]["amount"] > 0]
        before = sales[sales["ordered_at"] < cutoff]
        by_customer = before.groupby("customer_id")
        features = pd.DataFrame({"recency": (cutoff - by_customer["ordered_at"].max()).dt.days})
        features["frequency"] = np.log1p(by_customer.size())
        recent = before[before["ordered_at"] >= cutoff - pd.Timedelta(days=90)]
        features["recent_orders"] = recent.groupby("customer_id").size()
        tickets = frames["tickets"]
        seen = tickets[tickets["opened_at"] < cutoff]
        features["tickets"] = (
            seen[seen["opened_at"] >= cutoff - pd.Timedelta(days=120)].groupby("customer_id").size()
        )
        unresolved = seen["closed_at"].isna() | (seen["closed_at"] >= cutoff)
        features["open_tickets"] = seen[unresolved].groupby("customer_id").size()
        features = features.fillna(0)
        features = features[features["recency"] <= 365]
        later = sales[
            (sales["ordered_at"] >= cutoff) & (sales["ordered_at"] < cutoff + pd.Timedelta(days=90))
        ]
        return features, (~features.index.isin(later["customer_id"])).astype(int)

    end = pd.Timestamp(AS_OF + timedelta(days=1))
    validation_x, validation_y = snapshot(end - pd.Timedelta(days=90))
    parts = [snapshot(end - pd.Timedelta(days=90 * k)) for k in (2, 3, 4, 5)]
    train_x = pd.concat([x for x, _y in parts])
    train_y = np.concatenate([y for _x, y in parts])
    model = LogisticRegression(max_iter=2000).fit(np.log1p(train_x), train_y)
    model_auc = roc_auc_score(validation_y, model.predict_proba(np.log1p(validation_x))[:, 1])
    recency_auc = roc_auc_score(validation_y, validation_x["recency"])
    assert model_auc > recency_auc + 0.02


def test_comment_words_follow_the_scores(frames: dict[str, pd.DataFrame]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    feedback = frames["feedback"]
    scored = feedback[(feedback["comment"] != "") & feedback["csat"].notna()]
    unscored = feedback[feedback["nps"].isna() & feedback["csat"].isna()]
    assert len(unscored) > 100 and (unscored["comment"] != "").all()
    assert set(feedback["nps"].dropna()) <= set(range(11))
    assert set(feedback["csat"].dropna()) <= {1, 2, 3, 4, 5}
    satisfied = (scored["csat"] >= 4).to_numpy()
    half = len(scored) // 2
    vectorizer = TfidfVectorizer().fit(scored["comment"][:half])
    model = LogisticRegression().fit(
        vectorizer.transform(scored["comment"][:half]), satisfied[:half]
    )
    accuracy = model.score(vectorizer.transform(scored["comment"][half:]), satisfied[half:])
    assert accuracy > 0.8


def test_tickets_have_channels_open_ones_and_csat_on_closed_ones(
    frames: dict[str, pd.DataFrame],
) -> None:
    tickets = frames["tickets"]
    assert set(tickets["channel"]) == {"email", "chat", "phone"}
    still_open = tickets["closed_at"].isna()
    assert 0.03 < still_open.mean() < 0.4
    assert (tickets.loc[still_open, "csat"] == "").all()
    assert (tickets.loc[~still_open, "csat"] != "").mean() > 0.3
    assert (tickets["closed_at"].dropna() >= tickets.loc[~still_open, "opened_at"]).all()
    assert (tickets["subject"] != "").all() and (tickets["body"] != "").all()


def test_truth_round_trips_through_json(company: tuple[Path, DemoTruth]) -> None:
    directory, truth = company
    as_json = json.dumps(truth.to_dict())
    assert DemoTruth.from_dict(json.loads(as_json)) == truth
    assert DemoTruth.read(directory) == truth
    assert truth.as_of == AS_OF
    assert truth.row_counts["customers"] == 3000


def test_a_company_too_small_to_make_sense_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 10"):
        generate_company(tmp_path, customers=5)


def test_every_file_imports_cleanly_and_a_second_load_changes_nothing(tmp_path: Path) -> None:
    truth = generate_company(tmp_path / "csv", customers=400, seed=3, as_of=AS_OF)
    engine = connect(f"sqlite:///{tmp_path / 'crm.db'}")
    ticks: list[tuple[str, int, int]] = []
    reports = load_demo(engine, tmp_path / "csv", progress=lambda *args: ticks.append(args))
    assert list(reports) == list(FILES)
    for kind, report in reports.items():
        assert report.ok, report.summary()
        assert report.rows_read == truth.row_counts[kind]
        assert report.inserted == truth.row_counts[kind]
    assert {kind for kind, _done, _total in ticks} >= {"customers", "orders"}
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(Order)).scalar_one()
            == truth.row_counts["orders"]
        )
        assert (
            connection.execute(select(func.count()).select_from(OrderLine)).scalar_one()
            == truth.row_counts["order-lines"]
        )
        assert (
            connection.execute(select(func.count()).select_from(Referral)).scalar_one()
            == truth.row_counts["referrals"]
        )
        regions = dict(
            connection.execute(
                select(Customer.region, func.count()).group_by(Customer.region)
            ).all()
        )
        emails = connection.execute(select(Customer.email)).scalars().all()
        names = connection.execute(select(Customer.name)).scalars().all()
    assert set(regions) == {"EMEA", "NA", "APAC", "LATAM"}  # "NA" is not a missing value
    assert all(e == e.strip().lower() for e in emails if e)
    assert all(n == n.strip() for n in names if n)

    again = load_demo(engine, tmp_path / "csv")
    for kind, report in again.items():
        assert (report.inserted, report.updated, report.unchanged) == (0, 0, truth.row_counts[kind])
    engine.dispose()


def _invoke(args: list[str], input: str | None = None):  # noqa: ANN202
    return CliRunner().invoke(app, args, input=input)


@pytest.mark.slow  # training 300 customers takes a few seconds
def test_cli_demo_generates_imports_and_trains_without_a_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    args = [
        "demo",
        "--no-shell",
        "--customers",
        "300",
        "--as-of",
        "2026-06-30",
        "--dir",
        str(tmp_path / "csv"),
        "--database-url",
        url,
    ]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    assert "Generated the sample company (300 customers" in result.output
    assert "orders.csv" in result.output
    assert "Trained model run" in result.output or "Training did not go live" in result.output
    assert "Sample company ready: 300 customers" in result.output
    assert (tmp_path / "csv" / "customers.csv").exists()
    engine = connect(url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Customer)).scalar_one() == 300
        runs = connection.execute(select(ModelRun.as_of)).scalars().all()
    # The run of three months before, whose at-risk list the planted touches worked, then
    # the company's last day.
    assert runs == [past_run_day(AS_OF), AS_OF]
    assert "touches the account managers made" in result.output
    engine.dispose()

    # Running it again is safe and says so.
    again = _invoke([*args, "--no-train"])
    assert again.exit_code == 0, again.output
    assert "already holds this sample company (300 customers)" in again.output
    assert " 0 │" in again.output  # nothing inserted


def test_cli_demo_refuses_a_database_holding_other_customers_unless_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    common = [
        "demo",
        "--no-shell",
        "--no-train",
        "--as-of",
        "2026-06-30",
        "--dir",
        str(tmp_path / "csv"),
        "--database-url",
        url,
    ]
    assert _invoke([*common, "--customers", "200"]).exit_code == 0
    smaller = _invoke([*common, "--customers", "100"])
    assert smaller.exit_code == 1
    assert "not part of this sample company" in smaller.output
    assert "--fresh" in smaller.output
    fresh = _invoke([*common, "--customers", "100", "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert "Emptied" in fresh.output
    engine = connect(url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Customer)).scalar_one() == 100
    engine.dispose()


def test_cli_demo_pipes_stdin_into_the_chat_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = _invoke(
        [
            "demo",
            "--customers",
            "100",
            "--no-train",
            "--as-of",
            "2026-06-30",
            "--dir",
            str(tmp_path / "csv"),
            "--database-url",
            url,
        ],
        input="/crm help\n",
    )
    assert result.exit_code == 0, result.output
    assert "crm> /crm help" in result.output
    assert "help" in result.output.split("crm> /crm help", 1)[1]


@pytest.mark.slow  # builds the session's trained sample company (~15 s) if nothing else has
def test_the_sample_company_fixture_is_trained_and_what_was_planted_shows(sample_company) -> None:  # noqa: ANN001
    from crmbot.core.models import ActiveRun, CustomerScore

    company = sample_company
    assert company.as_of == company.truth.as_of == AS_OF
    assert company.settings.database_url == str(company.engine.url)
    with company.engine.connect() as connection:
        run_as_of = connection.execute(
            select(ModelRun.as_of).join(ActiveRun, ActiveRun.run_id == ModelRun.id)
        ).scalar_one()
        customers = connection.execute(select(func.count()).select_from(Customer)).scalar_one()
        top_influencers = (
            connection.execute(
                select(Customer.customer_id)
                .join(CustomerScore, CustomerScore.customer_pk == Customer.id)
                .join(ActiveRun, ActiveRun.run_id == CustomerScore.run_id)
                .order_by(CustomerScore.influence.desc())  # type: ignore[union-attr]
                .limit(5)
            )
            .scalars()
            .all()
        )
    assert run_as_of == AS_OF
    assert customers == 800
    assert set(top_influencers) == set(company.truth.hub_customer_ids)
    churn = company.run.metrics["churn"]
    assert churn["roc_auc"] > churn["baselines"]["recency"]["roc_auc"]


def test_the_sample_company_imports_cleanly_on_every_database(
    storage_engine,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    truth = generate_company(tmp_path, customers=150, seed=5, as_of=AS_OF)
    reports = load_demo(storage_engine, tmp_path)
    for kind, report in reports.items():
        assert report.ok, report.summary()
        assert report.inserted == truth.row_counts[kind]
    with storage_engine.connect() as connection:
        regions = connection.execute(select(Customer.region).distinct()).scalars().all()
        amounts = connection.execute(select(func.min(Order.amount))).scalar_one()
    assert set(regions) == {"EMEA", "NA", "APAC", "LATAM"}
    assert amounts < 0  # refunds survive as negative amounts
