"""Sentiment of free text, learned from the company's own surveys.

Survey comments come with the customer's own score, so they label themselves: a comment
with CSAT >= 4 (or, without a CSAT, NPS >= 9) is "satisfied", CSAT <= 3 (NPS <= 6) is
"unsatisfied"; NPS passives (7-8) without a CSAT are left out as ambiguous. A TF-IDF +
logistic regression model fitted on those comments then reads text that has no score —
ticket bodies and unscored comments — so customers who never answer a survey still get a
sentiment signal.

The model is validated on a held-out, stratified quarter of the labelled comments before
being refitted on all of them; accuracy and F1 go into the run's metrics beside the
majority-class accuracy, so a model that learned nothing is visible as such.

Words and word pairs are counted by a hashing vectorizer, which has no fitted state: a
text's counts never depend on other texts. So a run tokenises every comment and ticket
once (`HashedTexts`), and each churn snapshot only re-fits the cheap part — TF-IDF weights
and the classifier — on the comments known at its cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

SATISFIED_CSAT = 4  # CSAT 4-5 of 5 is "satisfied", the usual top-two-box reading
PROMOTER_NPS = 9
DETRACTOR_NPS = 6
# Below these counts a text model would memorise rather than learn.
MIN_LABELLED_COMMENTS = 20
MIN_COMMENTS_PER_CLASS = 5
HOLDOUT_SHARE = 0.25
MAX_TRAINING_COMMENTS = 100_000
# 2^17 columns for words and word pairs: few collisions at a company's vocabulary, and the
# classifier's cost grows with the column count.
HASHER = HashingVectorizer(
    strip_accents="unicode",
    ngram_range=(1, 2),
    n_features=2**17,
    alternate_sign=False,
    norm=None,
)


def hash_texts(texts: pd.Series) -> sparse.csr_matrix:
    """Word and word-pair counts per text (stateless: each row depends on its text only)."""
    return HashedText.of(texts).matrix_for(texts.index)


def ticket_texts(tickets: pd.DataFrame) -> pd.Series:
    """What a ticket says: its subject and body as one text.

    Categorical subjects and bodies (as a run loads them) give a categorical: each distinct
    (subject, body) pair is joined once, not once per ticket."""
    subject, body = tickets["subject"], tickets["body"]
    if not (_categorical(subject) and _categorical(body)):
        return _joined(subject, body)
    stride = len(body.cat.categories) + 1
    pair = subject.cat.codes.to_numpy(np.int64) * stride + body.cat.codes.to_numpy(np.int64) + 1
    row, used = pd.factorize(pair)
    joined = _joined(
        _labels(subject.cat.categories, used // stride),
        _labels(body.cat.categories, used % stride - 1),
    )
    codes, distinct = pd.factorize(joined)
    texts = pd.Categorical.from_codes(codes[row], categories=pd.Index(distinct, dtype=object))
    return pd.Series(texts, index=tickets.index)


def _joined(subject: pd.Series, body: pd.Series) -> pd.Series:
    subject = subject.fillna("").astype(str)
    body = body.fillna("").astype(str)
    return (subject + ". " + body).str.strip(". ")


def _categorical(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.CategoricalDtype)


def _labels(categories: pd.Index, codes: np.ndarray) -> pd.Series:
    """The categories at these codes, None where a code is -1 (missing)."""
    values = np.asarray(categories.take(np.maximum(codes, 0)), dtype=object)
    values[codes < 0] = None
    return pd.Series(values, dtype=object)


def stripped_texts(texts: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(per row, a code into the distinct texts; the distinct texts), each text stripped
    and a missing one as "". A categorical's texts are stripped once per distinct text in
    use, not once per row."""
    if not _categorical(texts):
        codes, distinct = pd.factorize(texts.fillna("").astype(str).str.strip())
        return np.asarray(codes), list(distinct)
    row, used = pd.factorize(texts.cat.codes.to_numpy())
    stripped = _labels(texts.cat.categories, used).fillna("").astype(str).str.strip()
    merged, distinct = pd.factorize(stripped)  # two texts may strip to the same one
    return np.asarray(merged)[row], list(distinct)


@dataclass
class HashedText:
    """Texts of one kind, each distinct text counted once; rows are looked up by the
    frame's index labels, so a snapshot's frames (`as_of_earlier`, `for_customers`) find
    their rows without tokenising again. Stock survey answers, empty comments and
    form-generated tickets repeat, and tokenising is the costly part (~15 µs a text).
    """

    distinct: sparse.csr_matrix  # counts per distinct text
    present: np.ndarray  # per distinct text: has any text after stripping
    codes: np.ndarray  # per row: its distinct text
    rows: pd.Index

    @classmethod
    def of(cls, texts: pd.Series) -> HashedText:
        codes, strings = stripped_texts(texts)
        matrix = (
            HASHER.transform(strings)
            if strings
            else sparse.csr_matrix((0, HASHER.n_features), dtype=np.float64)
        )
        present = np.array([len(text) > 0 for text in strings], dtype=bool)
        return cls(distinct=matrix, present=present, codes=codes, rows=texts.index)

    def codes_for(self, index: pd.Index) -> np.ndarray:
        positions = self.rows.get_indexer(index)
        if (positions < 0).any():
            raise KeyError("texts asked for that were not hashed for this run")
        return np.asarray(self.codes[positions])

    def matrix_for(self, index: pd.Index) -> sparse.csr_matrix:
        return self.distinct[self.codes_for(index)]


@dataclass
class HashedTexts:
    """Every comment and ticket of a run, counted once (see `HashedText`)."""

    comments: HashedText
    tickets: HashedText

    @classmethod
    def of(cls, feedback: pd.DataFrame, tickets: pd.DataFrame) -> HashedTexts:
        return cls(
            comments=HashedText.of(feedback["comment"]),
            tickets=HashedText.of(ticket_texts(tickets)),
        )

    def comments_for(self, index: pd.Index) -> sparse.csr_matrix:
        return self.comments.matrix_for(index)

    def tickets_for(self, index: pd.Index) -> sparse.csr_matrix:
        return self.tickets.matrix_for(index)


def comment_labels(feedback: pd.DataFrame) -> pd.Series:
    """1 satisfied / 0 unsatisfied / NaN unknown, for each feedback row with a comment."""
    csat = pd.to_numeric(feedback["csat"], errors="coerce")
    nps = pd.to_numeric(feedback["nps"], errors="coerce")
    label = pd.Series(np.nan, index=feedback.index, dtype=float)
    label[nps >= PROMOTER_NPS] = 1.0
    label[nps <= DETRACTOR_NPS] = 0.0
    # CSAT is the question the comment most often answers, so it wins when both exist.
    label[csat >= SATISFIED_CSAT] = 1.0
    label[csat < SATISFIED_CSAT] = 0.0
    codes, distinct = stripped_texts(feedback["comment"])
    has_text = np.array([len(text) > 0 for text in distinct], dtype=bool)[codes]
    label[~has_text] = np.nan
    return label


def _pipeline(seed: int) -> Pipeline:
    """TF-IDF weighting and a logistic regression over hashed counts."""
    return Pipeline(
        [
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
            (
                "classifier",
                LogisticRegression(
                    C=2.0,
                    class_weight="balanced",
                    solver="liblinear",
                    max_iter=2000,
                    random_state=seed,
                ),
            ),
        ]
    )


@dataclass
class TextSentimentModel:
    """A fitted text model (or the reason there is none) and how well it did."""

    pipeline: Pipeline | None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.pipeline is not None

    def score(self, texts: pd.Series, hashed: HashedText | None = None) -> pd.Series:
        """Sentiment in [-1, 1] per text (2 * P(satisfied) - 1); NaN without a model or text.

        `hashed` holds the texts' counts when already at hand (rows found by index)."""
        if self.pipeline is None or texts.empty:
            return pd.Series(np.nan, index=texts.index, dtype=float)
        hashed = HashedText.of(texts) if hashed is None else hashed
        return pd.Series(self.sentiment(hashed, texts.index), index=texts.index, dtype=float)

    def sentiment(self, hashed: HashedText, index: pd.Index) -> np.ndarray:
        """Sentiment of the rows `index` of `hashed`: each distinct text is read once."""
        codes = hashed.codes_for(index)
        needed, inverse = np.unique(codes, return_inverse=True)
        values = np.full(len(needed), np.nan)
        present = hashed.present[needed]
        if self.pipeline is not None and present.any():
            matrix = hashed.distinct[needed[present]]
            values[present] = 2.0 * self.pipeline.predict_proba(matrix)[:, 1] - 1.0
        return np.asarray(values[inverse.reshape(-1)])


def fit_text_model(
    feedback: pd.DataFrame,
    *,
    seed: int,
    validate: bool = True,
    hashed: HashedTexts | None = None,
) -> TextSentimentModel:
    """Fit on self-labelled survey comments; never raises for too little data.

    `validate=False` skips the held-out check (and its metrics) and only fits the model;
    `hashed` supplies the comments' counts when the run already has them.
    """
    labels = comment_labels(feedback)
    labelled = labels.notna()
    y = labels[labelled].astype(int)
    counts = {"satisfied": int((y == 1).sum()), "unsatisfied": int((y == 0).sum())}
    metrics: dict[str, Any] = {"labelled_comments": int(len(y)), "classes": counts}
    if len(y) < MIN_LABELLED_COMMENTS or min(counts.values()) < MIN_COMMENTS_PER_CLASS:
        metrics["trained"] = False
        metrics["note"] = (
            f"text model not trained: {len(y)} scored comments "
            f"({counts['satisfied']} satisfied, {counts['unsatisfied']} unsatisfied); "
            f"needs {MIN_LABELLED_COMMENTS} with {MIN_COMMENTS_PER_CLASS} of each"
        )
        return TextSentimentModel(pipeline=None, metrics=metrics)

    index = feedback.index[labelled.to_numpy()]
    if len(index) > MAX_TRAINING_COMMENTS:
        # A seeded sample: beyond this many comments the model reads no better, and
        # fitting took 12 s for the million comments of a million customers.
        keep = np.random.default_rng(seed).choice(len(index), MAX_TRAINING_COMMENTS, replace=False)
        index = index[np.sort(keep)]
        y = y.loc[index]
        metrics["trained_on_comments"] = len(index)
    if hashed is not None:
        counts = hashed.comments_for(index)
    else:
        counts = hash_texts(feedback.loc[index, "comment"])
    metrics["trained"] = True
    if validate:
        metrics.update(_held_out_metrics(counts, y, seed))
    # The held-out score describes the procedure; the model used is refitted on every label.
    final = _pipeline(seed).fit(counts, y.to_numpy())
    return TextSentimentModel(pipeline=final, metrics=metrics)


def _held_out_metrics(counts: sparse.csr_matrix, y: pd.Series, seed: int) -> dict[str, Any]:
    train_texts, test_texts, train_y, test_y = train_test_split(
        counts, y.to_numpy(), test_size=HOLDOUT_SHARE, stratify=y, random_state=seed
    )
    held_out = _pipeline(seed).fit(train_texts, train_y)
    predicted = held_out.predict(test_texts)
    majority = max(float(np.mean(test_y)), 1.0 - float(np.mean(test_y)))
    return {
        "holdout_comments": len(test_y),
        "accuracy": round(float(accuracy_score(test_y, predicted)), 4),
        "f1_unsatisfied": round(float(f1_score(test_y, predicted, pos_label=0)), 4),
        "f1_macro": round(float(f1_score(test_y, predicted, average="macro")), 4),
        "majority_accuracy": round(majority, 4),
    }
