"""The name index: how a misspelt name is found without reading every customer.

Three tables (`crmbot.core.models`), kept by whatever writes names — the import, erasure —
in the writer's own transaction:

* `customer_name_token`: each word of a customer's name and company, normalised
  (`tokens`: case and accents folded, punctuation dropped, words of 2 to 40 characters);
* `name_token`: every distinct word, with the number of customers that have it;
* `name_token_variant`: each word of 3 to 20 characters under itself and each form with one
  letter left out ("hamilton" under "hamiltn", "amilton", ...). A typed word and a stored
  word that share such a form are at most two edits apart (one typo, a swapped pair, a
  missing or an extra letter), so the stored words near a typed one are found by exact
  lookups (`crmbot.queries.names`).

An erased customer has no words in the index, and a word no live customer has any more is
removed with its forms, so the index holds no trace of an erased name.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Connection, Engine

from crmbot.core.models import Customer, CustomerNameToken, NameToken, NameTokenVariant

MIN_TOKEN = 2
MAX_TOKEN = 40
# Words this long or shorter get one-letter-left-out forms (names rarely run longer; a
# long word's forms would only grow the table).
MIN_VARIANT_TOKEN = 3
MAX_VARIANT_TOKEN = 20
# Rows per statement (bind parameters stay under every driver's limit).
CHUNK = 900
WRITE_CHUNK = 10_000
# Above this share of the book, an import rebuilds the whole index instead of its rows.
REBUILD_SHARE = 0.2


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


CUSTOMERS = _table(Customer)
CUSTOMER_TOKENS = _table(CustomerNameToken)
TOKENS = _table(NameToken)
VARIANTS = _table(NameTokenVariant)


_NOT_A_LETTER = re.compile(r"[\W_]+")


def normalise(text: str | None) -> str:
    """Lower case, accents and punctuation gone: "O'Brien-Müller" -> "o brien muller"."""
    if not text:
        return ""
    folded = text.casefold()
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NOT_A_LETTER.sub(" ", folded).split())


def tokens(*texts: str | None) -> list[str]:
    """The distinct index words of `texts`, in their order."""
    seen: dict[str, None] = {}
    for text in texts:
        for word in normalise(text).split():
            if len(word) >= MIN_TOKEN:
                seen.setdefault(word[:MAX_TOKEN], None)
    return list(seen)


def variants(word: str) -> set[str]:
    """`word` and each form of it with one letter left out (none for short or long words)."""
    if not MIN_VARIANT_TOKEN <= len(word) <= MAX_VARIANT_TOKEN:
        return set()
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rebuild(connection: Connection) -> int:
    """Index every live customer afresh; the number of customers indexed."""
    connection.execute(delete(CUSTOMER_TOKENS))
    connection.execute(delete(VARIANTS))
    connection.execute(delete(TOKENS))
    counts: Counter[str] = Counter()
    indexed, last = 0, None
    while True:  # in pages by id: no cursor stays open while the pages are written
        page = select(CUSTOMERS.c.id, CUSTOMERS.c.name, CUSTOMERS.c.company).where(
            CUSTOMERS.c.erased_at.is_(None)
        )
        if last is not None:
            page = page.where(CUSTOMERS.c.id > last)
        rows = connection.execute(page.order_by(CUSTOMERS.c.id).limit(WRITE_CHUNK)).all()
        if not rows:
            break
        batch: list[tuple[str, int]] = []
        for pk, name, company in rows:
            words = tokens(name, company)
            counts.update(words)
            batch.extend((word, pk) for word in words)
        _insert_rows(connection, CUSTOMER_TOKENS, ("token", "customer_pk"), sorted(batch))
        indexed += len(rows)
        last = rows[-1][0]
    _write_vocabulary(connection, counts, new=set(counts))
    return indexed


def rebuild_all(engine: Engine) -> int:
    """`rebuild` in a transaction of its own (for code that wrote customers itself)."""
    from crmbot.core.db import bulk_write_connection

    with bulk_write_connection(engine) as connection:
        return rebuild(connection)


def refresh(connection: Connection, customer_pks: Iterable[int]) -> None:
    """Index these customers again (after their names changed, or they were erased)."""
    pks = sorted(set(customer_pks))
    affected: set[str] = set()
    for chunk in _chunks(pks, CHUNK):
        affected.update(
            connection.execute(
                select(CUSTOMER_TOKENS.c.token).where(CUSTOMER_TOKENS.c.customer_pk.in_(chunk))
            ).scalars()
        )
        connection.execute(delete(CUSTOMER_TOKENS).where(CUSTOMER_TOKENS.c.customer_pk.in_(chunk)))
        batch: list[tuple[str, int]] = []
        for pk, name, company in connection.execute(
            select(CUSTOMERS.c.id, CUSTOMERS.c.name, CUSTOMERS.c.company).where(
                CUSTOMERS.c.id.in_(chunk), CUSTOMERS.c.erased_at.is_(None)
            )
        ):
            words = tokens(name, company)
            affected.update(words)
            batch.extend((word, pk) for word in words)
        _insert_rows(connection, CUSTOMER_TOKENS, ("token", "customer_pk"), sorted(batch))
    _recount(connection, sorted(affected))


def refresh_by_ids(connection: Connection, customer_ids: Sequence[str]) -> None:
    """Index the customers with these ids (`customer_id`) again; a rebuild when they are a
    large part of the book (a first import)."""
    if not customer_ids:
        return
    total = connection.execute(select(func.count()).select_from(CUSTOMERS)).scalar_one()
    if len(customer_ids) > REBUILD_SHARE * total:
        rebuild(connection)
        return
    pks: list[int] = []
    for chunk in _chunks(list(customer_ids), CHUNK):
        pks.extend(
            connection.execute(
                select(CUSTOMERS.c.id).where(CUSTOMERS.c.customer_id.in_(chunk))
            ).scalars()
        )
    refresh(connection, pks)


def _recount(connection: Connection, words: Sequence[str]) -> None:
    """Bring `name_token` (and the forms) in line with the customers that have `words`."""
    counts: Counter[str] = Counter()
    known: set[str] = set()
    for chunk in _chunks(words, CHUNK):
        counts.update(
            dict(
                connection.execute(
                    select(CUSTOMER_TOKENS.c.token, func.count())
                    .where(CUSTOMER_TOKENS.c.token.in_(chunk))
                    .group_by(CUSTOMER_TOKENS.c.token)
                ).all()
            )
        )
        known.update(
            connection.execute(select(TOKENS.c.token).where(TOKENS.c.token.in_(chunk))).scalars()
        )
    for chunk in _chunks(sorted(known - set(counts)), CHUNK):
        connection.execute(delete(VARIANTS).where(VARIANTS.c.token.in_(chunk)))
        connection.execute(delete(TOKENS).where(TOKENS.c.token.in_(chunk)))
    _write_vocabulary(connection, counts, new=set(counts) - known)


def _write_vocabulary(connection: Connection, counts: Counter[str], *, new: set[str]) -> None:
    """Write the customer counts of `counts`' words, and the forms of the `new` ones.
    Another writer may have added a word since we looked: its count is overwritten (each
    writer counts what it sees), its forms are kept."""
    words = sorted(counts.items())
    _insert_rows(connection, TOKENS, ("token", "customers"), words, update="customers")
    forms = sorted((form, word) for word in new for form in variants(word))
    _insert_rows(connection, VARIANTS, ("variant", "token"), forms)


def _insert_rows(
    connection: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    *,
    update: str | None = None,
) -> None:
    """Insert `rows` in bulk through the driver (the index is written a million rows at a
    time on a first import). A row whose key is taken is left alone, or has its `update`
    column overwritten."""
    if not rows:
        return
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote(name) for name in columns)
    keys = ", ".join(quote(column.name) for column in table.primary_key.columns)
    head, tail = "INSERT INTO", f" ON CONFLICT ({keys}) DO NOTHING"
    if dialect.name in ("mysql", "mariadb"):
        head, tail = "INSERT IGNORE INTO", ""
        if update:
            head = "INSERT INTO"
            tail = f" ON DUPLICATE KEY UPDATE {quote(update)} = VALUES({quote(update)})"
    elif update:
        tail = f" ON CONFLICT ({keys}) DO UPDATE SET {quote(update)} = excluded.{quote(update)}"
    statement = (
        f"{head} {quote(table.name)} ({names}) VALUES ({', '.join([mark] * len(columns))}){tail}"
    )
    for chunk in _chunks(rows, WRITE_CHUNK):
        connection.exec_driver_sql(statement, list(chunk))
