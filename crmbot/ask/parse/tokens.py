"""A question as words: Slack markup, HTML entities and odd Unicode normalised away, then
split into `Token`s that the phrase rules mark as placed one by one (`Sentence`)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Token:
    raw: str  # as typed (cleaned), for echoing back and for names
    low: str  # lower case (typos corrected before the rules run); what the rules match
    used: bool = False


class Sentence:
    """The question's words, with which of them a rule has already placed."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    def text(self) -> tuple[str, list[tuple[int, int]]]:
        # Placed words become "|" so that no later pattern can match across them.
        parts: list[str] = []
        spans: list[tuple[int, int]] = []
        offset = 0
        for token in self.tokens:
            word = "|" if token.used else token.low
            spans.append((offset, offset + len(word)))
            parts.append(word)
            offset += len(word) + 1
        return " ".join(parts), spans

    def find(self, pattern: re.Pattern[str]) -> list[tuple[re.Match[str], list[int]]]:
        """Every match of `pattern` over unplaced words, with the indices of its words."""
        text, spans = self.text()
        found = []
        for match in pattern.finditer(text):
            if match.end() == match.start():
                continue
            indices = self._indices(spans, match.start(), match.end())
            if indices and not any(self.tokens[i].used for i in indices):
                found.append((match, indices))
        return found

    def first(self, pattern: re.Pattern[str]) -> tuple[re.Match[str], list[int]] | None:
        matches = self.find(pattern)
        return matches[0] if matches else None

    def group_indices(self, match: re.Match[str], group: str) -> list[int]:
        if match.start(group) < 0:
            return []
        _text, spans = self.text()
        return self._indices(spans, match.start(group), match.end(group))

    def raw(self, indices: Iterable[int]) -> str:
        return " ".join(self.tokens[i].raw for i in indices)

    @staticmethod
    def _indices(spans: list[tuple[int, int]], start: int, end: int) -> list[int]:
        return [i for i, (s, e) in enumerate(spans) if s < end and e > start]

    def consume(self, indices: Iterable[int]) -> None:
        for i in indices:
            self.tokens[i].used = True

    def unused(self) -> list[int]:
        return [i for i, token in enumerate(self.tokens) if not token.used]


_SLACK_MARKUP = re.compile(r"<([^<>]{0,200})>")

_LOOKALIKES = {
    "\u2019": "'",
    "\u2018": "'",
    "\u02bc": "'",
    "`": "'",
    "\u2265": ">=",
    "\u2264": "<=",
    "\u2013": " - ",
    "\u2014": " - ",
}


def normalize_phrase(text: str) -> str:
    """The form names and questions are compared in: lower case, plain words."""
    return " ".join(token.low for token in tokenize(text, mentions={}))


def tokenize(text: str, mentions: dict[str, str]) -> list[Token]:
    """The words of `text`; Slack user mentions found on the way are recorded in
    `mentions` (name -> user id)."""
    tokens = []
    for word in _plain_text(text, mentions).split():
        word = word.strip("'") if word != "'s" else word
        if not word:
            continue
        # "p(alive)" and similar leave lone symbols; drop those.
        if re.fullmatch(r"[@#!$€£%]+", word):
            continue
        tokens.append(Token(raw=word[:60], low=word.lower()[:60]))
    return tokens


def _plain_text(text: str, mentions: dict[str, str]) -> str:
    text = unicodedata.normalize("NFKC", text)
    # Control and invisible format characters (zero-width joiners, bidi overrides) go.
    text = "".join(
        ch if unicodedata.category(ch)[0] != "C" else " " for ch in text if ch != "\u00ad"
    )
    text = _slack_markup(text, mentions)
    text = html.unescape(text)
    text = _SLACK_MARKUP.sub(lambda m: f" {m.group(1)} ", text)
    for old, new in _LOOKALIKES.items():
        text = text.replace(old, new)
    text = re.sub(r"(>=|<=|[<>])", r" \1 ", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "\x01", text)  # thousands separators survive
    text = re.sub(r"(?<=\d)\.(?=\d)", "\x02", text)  # decimal points survive
    text = re.sub(r"(?<=\d)/(?=\d)", "\x03", text)  # 15/03/2026
    text = re.sub(r"(?<=\d)-(?=\d)", "\x04", text)  # 2026-03-15
    text = re.sub(r"'s\b", " 's", text)  # maria's -> maria 's
    text = re.sub(r"(?<=\w)'(?=\w)", "", text)  # can't -> cant
    text = re.sub(r"(?<=\d)\+", " or more", text)  # 3+ tickets
    text = re.sub(r"(?<=\d)\s+%", "%", text)
    text = re.sub(r"([$€£])\s+(?=\d)", r"\1", text)
    text = re.sub(r"[^\w\s$€£%@#!<>=\x01\x02\x03\x04']", " ", text)
    text = text.replace("_", " ")
    text = text.replace("\x01", ",").replace("\x02", ".").replace("\x03", "/")
    return text.replace("\x04", "-")


def _slack_markup(text: str, mentions: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner.startswith("@"):
            user_id, _, label = inner[1:].partition("|")
            name = re.sub(r"\W+", "", label) or user_id
            mentions[name.lower()] = user_id
            return f" @{name} "
        if inner.startswith("!"):
            # <!channel>, <!here>, <!subteam^S1|team>: never placed, never echoed as markup.
            word = re.sub(r"\W+", "", inner[1:].split("|")[0].split("^")[0])
            return f" !{word or 'mention'} "
        if inner.startswith("#"):
            label = re.sub(r"[^\w-]+", "", inner.partition("|")[2] or inner[1:])
            return f" #{label} "
        if "|" in inner:
            return f" {inner.partition('|')[2]} "
        return f" {inner} "

    return _SLACK_MARKUP.sub(replace, text)


def echo_safe(word: str) -> str:
    """A word fit to echo back: no markup, no mentions, no formatting characters."""
    cleaned = re.sub(r"[<>&*_~`|\\]", "", word)
    return cleaned[:40]
