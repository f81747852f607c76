"""The customers: who they are, where, which company, which account manager, when they
signed up. Customer ids are numbers given in sign-up order, starting at 101, so that the
example everyone quotes, `/crm customer 123`, names a customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmbot.demo import catalog

FIRST_CUSTOMER_NUMBER = 101
FREE_MAIL_DOMAINS = np.array(["mail.example", "post.example", "inbox.example"])


@dataclass
class People:
    """Customers in sign-up order; arrays are indexed by customer position."""

    customer_id: np.ndarray  # str
    signup_t: np.ndarray  # float days since the period start
    region: np.ndarray  # str
    frame: pd.DataFrame  # the rows of customers.csv (signed_up_at filled in later)

    def __len__(self) -> int:
        return len(self.customer_id)


def make_people(rng: np.random.Generator, count: int, period_days: float) -> People:
    # Sign-ups grow over the period (density rising with time), as a young company's do.
    signup_t = np.sort(period_days * rng.random(count) ** 0.85)
    signup_t = np.minimum(signup_t, period_days - 1e-3)
    customer_id = np.char.mod("%d", np.arange(FIRST_CUSTOMER_NUMBER, FIRST_CUSTOMER_NUMBER + count))

    region_names = np.array([name for name, _w in catalog.REGIONS])
    region_weights = np.array([w for _n, w in catalog.REGIONS])
    region_weights = region_weights / region_weights.sum()

    companies = _companies(rng, count, region_names, region_weights)
    has_company = rng.random(count) < 0.55
    # Skewed: a few companies have dozens of contacts, many have one or two.
    company_weights = rng.lognormal(0.0, 0.6, size=len(companies))
    company_index = rng.choice(
        len(companies), size=count, p=company_weights / company_weights.sum()
    )
    own_region = rng.choice(region_names, size=count, p=region_weights)
    keeps_company_region = rng.random(count) < 0.9
    region = np.where(
        has_company & keeps_company_region,
        companies["region"].to_numpy()[company_index],
        own_region,
    )
    owner = _owners(rng, region)
    owner = np.where(has_company, companies["owner"].to_numpy()[company_index], owner)
    owner = np.where(rng.random(count) < 0.04, "", owner)  # self-serve accounts have no owner
    company = np.where(has_company, companies["name"].to_numpy()[company_index], "")

    first = rng.choice(catalog.FIRST_NAMES, size=count)
    last = rng.choice(catalog.LAST_NAMES, size=count)
    name = np.char.add(np.char.add(first, " "), last)
    email = _emails(rng, first, last, company, customer_id)
    phone = _phones(rng, region)

    frame = pd.DataFrame(
        {
            "customer_id": customer_id,
            "name": name,
            "email": email,
            "phone": phone,
            "company": company,
            "region": region,
            "owner": owner,
        }
    )
    _make_messy(rng, frame)
    return People(customer_id=customer_id, signup_t=signup_t, region=region, frame=frame)


def _companies(
    rng: np.random.Generator, count: int, regions: np.ndarray, weights: np.ndarray
) -> pd.DataFrame:
    wanted = int(np.clip(count // 10, 20, 400))
    shape = (len(catalog.COMPANY_WORDS_A), len(catalog.COMPANY_WORDS_B), len(catalog.COMPANY_KINDS))
    picks = rng.choice(int(np.prod(shape)), size=wanted, replace=False)
    a, b, k = np.unravel_index(picks, shape)
    names = [
        f"{catalog.COMPANY_WORDS_A[i]} {catalog.COMPANY_WORDS_B[j]} {catalog.COMPANY_KINDS[m]}"
        for i, j, m in zip(a, b, k, strict=True)
    ]
    # Two words can repeat ("Harbor Harbor"); such a name reads badly, so swap in "&".
    names = [re.sub(r"^(\w+) \1 ", r"\1 & Co ", n) for n in names]
    region = rng.choice(regions, size=wanted, p=weights)
    return pd.DataFrame({"name": names, "region": region, "owner": _owners(rng, region)})


def _owners(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    owner = np.empty(len(region), dtype=object)
    for name, managers in catalog.OWNERS_BY_REGION.items():
        mask = region == name
        owner[mask] = rng.choice(managers, size=int(mask.sum()))
    return owner.astype(str)


def _slug(values: np.ndarray) -> np.ndarray:
    series = pd.Series(values).str.lower().str.replace(r"[^a-z0-9]+", "", regex=True)
    return series.to_numpy(dtype=str)


def _emails(
    rng: np.random.Generator,
    first: np.ndarray,
    last: np.ndarray,
    company: np.ndarray,
    customer_id: np.ndarray,
) -> np.ndarray:
    free = rng.choice(FREE_MAIL_DOMAINS, size=len(first))
    company_domain = [f"{slug}.example" for slug in _slug(company)]
    domain = np.where(company != "", company_domain, free)
    local = [f"{a}.{b}" for a, b in zip(_slug(first), _slug(last), strict=True)]
    email = [f"{name}@{host}" for name, host in zip(local, domain, strict=True)]
    # Two Ana Silvas at the same domain get the customer number in the address.
    clash = pd.Series(email).duplicated(keep="first").to_numpy()
    for position in np.flatnonzero(clash):
        email[position] = f"{local[position]}{customer_id[position]}@{domain[position]}"
    return np.array(email)


def _phones(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    prefix = np.empty(len(region), dtype=object)
    for name, prefixes in catalog.PHONE_PREFIXES.items():
        mask = region == name
        prefix[mask] = rng.choice(prefixes, size=int(mask.sum()))
    first = rng.integers(100, 1000, size=len(region))
    second = rng.integers(1000, 10000, size=len(region))
    phone = pd.Series(prefix.astype(str)) + " " + pd.Series(first).astype(str) + " "
    phone = phone + pd.Series(second).astype(str)
    phone[rng.random(len(region)) < 0.18] = ""  # not everyone leaves a phone number
    return phone.to_numpy(dtype=str)


def _make_messy(rng: np.random.Generator, frame: pd.DataFrame) -> None:
    """Clean-up work a real export needs: stray spaces and shouting e-mail addresses."""
    count = len(frame)
    upper = rng.random(count) < 0.02
    frame.loc[upper, "email"] = frame.loc[upper, "email"].str.upper()
    for column in ("name", "email", "company"):
        spaced = (rng.random(count) < 0.015) & (frame[column] != "")
        frame.loc[spaced, column] = "  " + frame.loc[spaced, column] + " "
