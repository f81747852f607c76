"""The vocabulary indexed for fuzzy look-ups: typo correction word by word, and the names
of segments, regions, owners, companies, clusters and customers a phrase refers to.

Indexing a large book takes a while, so one `Matcher` is kept per `Vocabulary` object
(`matcher_for`)."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein

from crmbot.ask.parse.patterns import RULE_KEYWORDS
from crmbot.ask.parse.tokens import normalize_phrase
from crmbot.ask.parse.vocabulary import PROTECTED_WORDS, STOPWORDS, Vocabulary, word_set

# Words in company names that say nothing about which company is meant.
_GENERIC_NAME_WORDS = word_set(
    "inc ltd llc plc gmbh ag sa co corp corporation company group the and of holdings "
    "limited partners international global solutions services set kit pack box"
)


@dataclass(frozen=True)
class Entry:
    kind: str  # segment | region | company | owner | cluster | customer
    value: str  # the canonical value (segment name, region, customer_id...)
    phrase: str  # the normalised phrase matched against


class Matcher:
    """One vocabulary, indexed by phrase, by distinctive word and by customer name."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.entries = _entries(vocab)
        self.by_phrase: dict[str, list[Entry]] = {}
        for entry in self.entries:
            self.by_phrase.setdefault(entry.phrase, []).append(entry)
        self.phrases = list(self.by_phrase)
        # Single distinctive words of multi-word names: "acme" -> "Acme Corp".
        self.by_word = _distinctive_words(self.entries)
        self.customer_names: dict[str, list[str]] = {}
        for customer_id, name in vocab.customers.items():
            if name:
                self.customer_names.setdefault(normalize_phrase(name), []).append(customer_id)
        self.customer_ids = {cid.lower(): cid for cid in vocab.customers}
        # Typos are corrected towards words that mean something, never towards filler
        # words: "world" must not quietly become "would".
        self.lexicon = sorted(
            (RULE_KEYWORDS - STOPWORDS)
            | {w for p in self.phrases for w in p.split()}
            | set(self.by_word)
            | {w for name in self.customer_names for w in name.split()}
        )
        self.lexicon_set = frozenset(self.lexicon)

    def correct(self, word: str) -> str:
        """The keyword or name `word` is most likely a typo of, or `word` itself."""
        if (
            len(word) < 4
            or word in self.lexicon_set
            or word in STOPWORDS
            or word in PROTECTED_WORDS
            or not word.isalpha()
        ):
            return word
        max_distance = 1 if len(word) < 8 else 2
        best = process.extractOne(
            word,
            self.lexicon,
            scorer=DamerauLevenshtein.distance,
            score_cutoff=max_distance,
        )
        return best[0] if best else word

    def best(self, phrase: str, kinds: tuple[str, ...] | None = None) -> list[Entry]:
        """The entries `phrase` names (ties included), or [] when none is close enough.

        An exact name is final even when it is of another kind than `kinds`: a close match
        is looked for only when nothing is spelt that way."""
        if not phrase or all(w in STOPWORDS for w in phrase.split()):
            return []
        found = self._exact(phrase) or self._close(phrase)
        return [e for e in found if kinds is None or e.kind in kinds]

    def _exact(self, phrase: str) -> list[Entry]:
        exact = self.by_phrase.get(phrase, [])
        if not exact and " " not in phrase:
            exact = self.by_word.get(phrase, [])
        return exact

    def _close(self, phrase: str) -> list[Entry]:
        if len(phrase) < 5:
            return []
        if " " not in phrase and self.by_word:
            # One distinctive word of a longer name, misspelt or plural: "cafes" -> "cafe".
            word = process.extractOne(
                phrase, list(self.by_word), scorer=fuzz.ratio, score_cutoff=88
            )
            if word:
                return self.by_word[word[0]]
        cutoff = 85 if len(phrase) < 8 else 88
        candidates = process.extract(
            phrase, self.phrases, scorer=fuzz.ratio, score_cutoff=cutoff, limit=5
        )
        if not candidates:
            return []
        top = candidates[0][1]
        return [e for c in candidates if c[1] == top for e in self.by_phrase[c[0]]]

    def owner(self, name: str, mentions: Mapping[str, str]) -> list[str]:
        """Owners `name` ("maria", "@maria", a Slack id) refers to."""
        name = name.lstrip("@").lower()
        owners = self.vocab.owners
        user_id = mentions.get(name)
        for candidate in (user_id, name):
            if candidate:
                exact = [o for o in owners if o.lower() == candidate.lower()]
                if exact:
                    return exact
        words = {o: normalize_phrase(o).split() for o in owners}
        by_word = [o for o, ws in words.items() if name in ws]
        if by_word:
            return by_word
        if len(name) < 4:
            return []
        scored = [
            (max([fuzz.ratio(name, normalize_phrase(o))] + [fuzz.ratio(name, w) for w in ws]), o)
            for o, ws in words.items()
        ]
        best = max((s for s, _ in scored), default=0)
        return [o for s, o in scored if s == best and s >= 80]

    def customer(self, ref: str) -> tuple[str | None, str | None]:
        """(customer_id, None) when `ref` is a known id or name; (None, name) to look up."""
        ref = ref.strip().lstrip("#")
        if ref.lower() in self.customer_ids:
            return self.customer_ids[ref.lower()], None
        phrase = normalize_phrase(ref)
        if phrase in self.customer_names and len(self.customer_names[phrase]) == 1:
            return self.customer_names[phrase][0], None
        if len(phrase) >= 4:
            customer_id = self.closest_customer(phrase, score_cutoff=88)
            if customer_id is not None:
                return customer_id, None
        if re.fullmatch(r"[\w-]*\d[\w-]*", ref):
            return ref, None  # an id we have not seen: the query says it is not found
        return None, ref

    def closest_customer(self, phrase: str, score_cutoff: float) -> str | None:
        """The id of the one customer whose name is closest to `phrase`, if close enough;
        None when no name is, or when several customers share the closest name."""
        if not self.customer_names:
            return None
        best = process.extractOne(
            phrase, list(self.customer_names), scorer=fuzz.ratio, score_cutoff=score_cutoff
        )
        if best and len(self.customer_names[best[0]]) == 1:
            return self.customer_names[best[0]][0]
        return None


def _entries(vocab: Vocabulary) -> list[Entry]:
    entries: list[Entry] = []
    for segment in vocab.segments:
        entries += [Entry("segment", segment, alias) for alias in _aliases(segment)]
    entries += [Entry("region", r, normalize_phrase(r)) for r in vocab.regions]
    entries += [Entry("owner", o, normalize_phrase(o)) for o in vocab.owners]
    entries += [Entry("company", c, normalize_phrase(c)) for c in vocab.companies]
    entries += [Entry("product", p, normalize_phrase(p)) for p in vocab.products]
    for category in vocab.categories:
        entries += [Entry("category", category, alias) for alias in _aliases(category)]
    entries += [
        Entry("cluster", str(number), normalize_phrase(label))
        for number, label in vocab.clusters.items()
        if label
    ]
    return [e for e in entries if e.phrase]


def _aliases(segment: str) -> set[str]:
    """The ways a segment's name is said: singular, and the usual shortenings."""
    base = normalize_phrase(segment)
    found = {base}
    words = base.split()
    if words and words[-1].endswith("s") and len(words[-1]) > 3:
        found.add(" ".join([*words[:-1], words[-1][:-1]]))
    if base == "need attention":
        found.add("needs attention")
    if base == "cant lose them":
        found |= {"cant lose", "cannot lose them", "cannot lose"}
    if base == "about to sleep":
        found.add("sleeping")
    if base == "hibernating":
        found.add("hibernate")
    if base == "prospects":
        found.add("prospect")
    if base == "potential loyalists":
        found.add("potential loyal")
    return found


def _distinctive_words(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    by_word: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.kind in ("company", "owner", "region", "product") and " " in entry.phrase:
            for word in entry.phrase.split():
                if (
                    word not in _GENERIC_NAME_WORDS
                    and word not in STOPWORDS
                    and len(word) > 2
                    and word.isalpha()
                    and not (entry.kind == "product" and word in RULE_KEYWORDS)
                ):
                    by_word.setdefault(word, []).append(entry)
    return by_word


_MATCHERS: weakref.WeakKeyDictionary[Vocabulary, Matcher] = weakref.WeakKeyDictionary()
_MATCHERS_LOCK = threading.Lock()


def matcher_for(vocab: Vocabulary) -> Matcher:
    """The matcher of `vocab`, built on first use and kept while `vocab` lives."""
    with _MATCHERS_LOCK:
        matcher = _MATCHERS.get(vocab)
    if matcher is None:
        matcher = Matcher(vocab)
        with _MATCHERS_LOCK:
            _MATCHERS[vocab] = matcher
    return matcher
