"""Reasons from the graph's contributions: which features, how much (column-wise), and in words.

Every channel (the API, `cashscore score`, the SQL functions) explains through `pick` and one
`Wording`, so a row gets the same reasons wherever it is scored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cashscore.core.rounding import round_like_python
from cashscore.features import contract, rules

MAX_REASONS = 4
# A feature is named only when removing its contribution would lower the probability by at least
# this much (0.05 points): one that barely moves the probability is no reason for a decision.
MIN_IMPACT = 0.0005
SEPARATOR = " | "
# A reason's words give its odds factor, exp(contribution): exact at any probability, and it
# multiplies up to the applicant's odds. Points of probability saturate near 0 and 1: at 99.7 % a
# feature multiplying the odds by 49 would read "raises it by 11.5 points" (`impact` keeps them).
# The version of the words below. The decision log keeps it with each record's reasons, so that
# `audit replay` compares words only with the same words: bump it whenever a reason's text changes
# (2: odds factors; 3: English categories in words, "Debt consolidation"; 4: factors above
# _MOST_FACTOR as "more than" it; 5: short English labels, "Credit grade is D" rather than "Credit
# grade, A (best) to G (worst) is D", and "Past default on file is Yes"; records without it are
# older, or from before it was kept).
WORDING = 5
# Worded in English, or in Brazilian Portuguese with the contract's `label_pt` and `categories_pt`,
# the words of the bank's analysts ("chance" is Portuguese for odds).
LANGUAGES = contract.LANGUAGES


class _Words(NamedTuple):
    lead: str  # "{label} is "
    typical: str  # " (typical applicant: {value})"
    tail: str
    more: str  # "more than ", before _MOST_FACTOR
    missing: str
    decimal: str  # the decimal separator; the thousands one is the other of "." and ","
    label: Callable[[contract.Feature], str]  # a feature's name in the language
    categories: Callable[[contract.Feature], tuple[str, ...]]  # its categories' names, in contract order


_WORDS = {
    "en": _Words(
        "{} is ", " (typical applicant: {})", ", which multiplies the odds of default by ", "more than ", "missing",
        ".",
        # Words where the canonical spelling is none ("Debt consolidation").
        lambda f: f.english_label, lambda f: f.english_categories,
    ),
    "pt": _Words(
        "{} é ", " (cliente típico: {})", ", o que multiplica a chance de inadimplência por ", "mais de ", "ausente",
        ",",
        lambda f: f.label_pt, lambda f: f.categories_pt,
    ),
}  # fmt: skip
# Factors below this get two decimals, from it on whole numbers.
_WHOLE_FROM = 9.995
# Factors above this read "more than" it. A linear model's terms are unbounded (a stated share of
# income of 90 lies hundreds of standard deviations out: exp() of the term overflows), and past
# this the number says nothing more to a reader. Its key, -_MOST_FACTOR - 1, is below every other.
_MOST_FACTOR = 10**12
# Formatted values kept per feature; a feature with more distinct values starts again.
_CACHE = 50_000


class Reason(msgspec.Struct, gc=False):
    """A feature that raises the risk: its contribution in log-odds, and how far the probability
    would fall without it."""

    feature: str
    label_pt: str
    value: float | str | None
    typical: float | str | None
    contribution: float
    impact: float
    text: str


class Picked(NamedTuple):
    """Per row, up to MAX_REASONS features (contract indices, -1 for none), largest first, with
    their contributions (calibrated log-odds) and impacts (probability points / 100)."""

    features: np.ndarray
    contributions: np.ndarray
    impacts: np.ndarray


class _Flat(NamedTuple):
    """Every reason of the explained rows, in row order: `row` (among `explained`) and `slot` say
    where it was picked, `parts` which two of `pieces` its words join (a head, then a tail),
    `shown[head]` the value it words; worded one by one (`head` and `parts` None), `pieces` and
    `shown` hold each reason's words and value. A row's reasons are offsets[j]:offsets[j + 1]."""

    explained: np.ndarray
    row: np.ndarray
    slot: np.ndarray
    feature: np.ndarray
    pieces: list[str]
    parts: np.ndarray | None
    shown: np.ndarray | list[Any]
    head: np.ndarray | None
    offsets: np.ndarray

    def rows(self) -> Iterator[tuple[int, int, int]]:
        """(row, start, end) of each explained row's reasons."""
        bounds = self.offsets.tolist()
        return zip(self.explained.tolist(), bounds[:-1], bounds[1:], strict=True)

    def texts(self) -> list[str]:
        """Each reason's words."""
        if self.parts is None:  # worded one by one
            return self.pieces
        return self.text_array().to_pylist()

    def text_array(self) -> pa.Array:
        """Each reason's words, as Arrow strings."""
        if self.parts is None:
            return pa.array(self.pieces, pa.string())
        pieces = pa.array(self.pieces, pa.string())
        head, tail = (pa.array(self.parts[:, j]) for j in (0, 1))
        return pc.binary_join_element_wise(pieces.take(head), pieces.take(tail), "")

    def values(self) -> list[Any]:
        if isinstance(self.shown, list):  # worded one by one
            return self.shown
        return self.shown[self.head].tolist()


# Up to this many reasons in one call, they are worded one by one in Python: pandas' and Arrow's
# fixed cost per call (about 200 µs) outweighs Python's per reason until about 3,000 reasons
# (explaining 13 applicants: 90 µs against 307; 256: 464 against 624; 1,000: 1,713 against 1,560).
_FEW = 1024
_FEATURE_NAMES = np.array(contract.NAMES, dtype=object)
_LABELS_PT = np.array([f.label_pt for f in contract.FEATURES], dtype=object)


def pick(p: np.ndarray, contributions: np.ndarray, which: np.ndarray) -> Picked:
    """The features that raise each row's risk the most, for the rows in `which`.

    A feature's impact is how far the probability would fall without its contribution,
    p - sigmoid(logit(p) - contribution); features that lower the risk are never named, nor those
    whose impact is under MIN_IMPACT.
    """
    n = len(p)
    features = np.full((n, MAX_REASONS), -1, dtype=np.int64)
    chosen_c = np.zeros((n, MAX_REASONS))
    impacts = np.zeros((n, MAX_REASONS))
    rows = np.flatnonzero(which)
    if not len(rows):
        return Picked(features, chosen_c, impacts)
    c = np.take(contributions, rows, axis=0)
    q = np.take(p, rows)
    # Largest contribution first, ties in contract order (a stable sort); only positive ones count.
    order = np.argsort(np.where(c > 0, -c, np.inf), axis=1, kind="stable")[:, :MAX_REASONS]
    top = np.take_along_axis(c, order, axis=1)
    inside = (q > 0) & (q < 1)
    safe = np.where(inside, q, 0.5)
    z = np.where(inside, np.log(safe) - np.log1p(-safe), c.sum(axis=1))
    # The impact grows with the contribution, so the features over MIN_IMPACT are the first few of
    # the largest: it is computed for those MAX_REASONS only, not for every feature.
    # Bounded where exp() would overflow (a linear model's unbounded terms): the sigmoid is 0 there.
    impact = q[:, None] - 1.0 / (1.0 + np.exp(np.minimum(top - z[:, None], 700.0)))
    named = np.logical_and.accumulate((top > 0) & (impact >= MIN_IMPACT), axis=1)
    k = order.shape[1]
    features[rows, :k] = np.where(named, order, -1)
    chosen_c[rows, :k] = np.where(named, top, 0.0)
    impacts[rows, :k] = np.where(named, impact, 0.0)
    return Picked(features, chosen_c, impacts)


def joined(texts: Sequence[Sequence[str]]) -> pa.Array:
    """Each row's reasons as one string, " | " between them ("" for none)."""
    # Strings are built only for the rows with reasons; the others take the empty one.
    where = [i for i, words in enumerate(texts) if words]
    return _spread(pa.array([SEPARATOR.join(texts[i]) for i in where], pa.string()), where, len(texts))


def _spread(texts: pa.Array, where: Sequence[int] | np.ndarray, n: int) -> pa.Array:
    """`texts` at rows `where` of `n` rows, "" at the others (one shared empty string, no copy per row)."""
    index = np.zeros(n, dtype=np.int64)
    index[where] = np.arange(1, len(where) + 1)
    return pa.concat_arrays([pa.array([""], pa.string()), texts]).take(pa.array(index))


class Wording:
    """The words of reasons against one reference applicant: each feature's lead, its "typical"
    part and each distinct value formatted once (kept across calls), then the ready-made parts
    joined for every reason at once (`_flat`). Per-row formatting was most of the cost of
    explaining a refusal.
    """

    def __init__(self, reference: Mapping[str, Any], language: str = "en") -> None:
        if language not in _WORDS:
            raise ValueError(f"reasons are worded in {', '.join(LANGUAGES)}, not {language!r}")
        words = self._words = _WORDS[language]
        self._typical = [reference[f.name] for f in contract.FEATURES]
        self._typical_array = np.array(self._typical, dtype=object)
        self._lead = [words.lead.format(words.label(f)) for f in contract.FEATURES]
        self._names = [dict(zip(f.categories, words.categories(f), strict=True)) for f in contract.FEATURES]
        self._beside = [words.typical.format(self._format(k, t)) for k, t in enumerate(self._typical)]
        self._heads: list[dict[Any, str]] = [{} for _ in contract.FEATURES]
        self._tails: dict[int, str] = {}

    def texts(self, picked: Picked, cleaned: Mapping[str, np.ndarray]) -> list[Sequence[str]]:
        """Per row, the words of each of its reasons, in order:
        "<description> is <value> (typical applicant: <value>), which multiplies the odds of
        default by <exp(contribution)>" (in Portuguese: "<label_pt> é <valor> (cliente típico:
        <valor>), o que multiplica a chance de inadimplência por <fator>", with Brazilian separators
        and categories); the typical value is shown only when the row's value differs.
        Rows without reasons share one empty tuple (a list each cost more than the words)."""
        out: list[Sequence[str]] = [()] * len(picked.features)
        flat = self._flat(picked, cleaned)
        if flat is not None:
            words = flat.texts()
            for i, start, end in flat.rows():
                out[i] = words[start:end]
        return out

    def column(self, picked: Picked, cleaned: Mapping[str, np.ndarray]) -> pa.Array:
        """`joined(texts(...))` built by Arrow, without a Python string per reason: each row's
        `list_column` joined with SEPARATOR (a concatenation per reason in Python was most of the
        cost of `--reasons deny`)."""
        return pc.binary_join(self.list_column(picked, cleaned), SEPARATOR)

    def list_column(self, picked: Picked, cleaned: Mapping[str, np.ndarray]) -> pa.Array:
        """`texts(...)` as one Arrow list of strings per row (empty for none), built by Arrow: the SQL
        functions' `reasons`, where `s.reasons[1]` is the first reason and `unnest` gives one a row."""
        n = len(picked.features)
        counts = np.zeros(n, dtype=np.int32)
        flat = self._flat(picked, cleaned)
        words = pa.array([], pa.string())
        if flat is not None:
            counts[flat.explained] = np.diff(flat.offsets)
            words = flat.text_array()
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), words)

    def records(self, picked: Picked, cleaned: Mapping[str, np.ndarray]) -> list[list[Reason]]:
        """The API's reasons: per row, a list of `Reason` (rows without reasons share one empty list)."""
        none: list[Reason] = []
        out = [none] * len(picked.features)
        flat = self._flat(picked, cleaned)
        if flat is None:
            return out
        at = (flat.explained[flat.row], flat.slot)
        feature = flat.feature
        made = list(
            map(
                Reason,
                _FEATURE_NAMES[feature].tolist(),
                _LABELS_PT[feature].tolist(),
                flat.values(),
                self._typical_array[feature].tolist(),
                round_like_python(picked.contributions[at], 6).tolist(),
                round_like_python(picked.impacts[at], 6).tolist(),
                flat.texts(),
            )
        )
        for i, start, end in flat.rows():
            out[i] = made[start:end]
        return out

    def _flat(self, picked: Picked, cleaned: Mapping[str, np.ndarray]) -> _Flat | None:
        """Every reason of every explained row, row by row and in order within a row, worded: each
        distinct (feature, value) head and each distinct odds factor's tail looked up once per call
        (and kept across calls), then put together by Arrow. None when no row has a reason."""
        explained = np.flatnonzero(picked.features[:, 0] >= 0)
        if not len(explained):
            return None
        chosen = picked.features[explained]
        named = chosen >= 0
        row, slot = np.nonzero(named)
        feature = chosen[named]
        keys = _factor_keys(picked.contributions[explained][named])
        offsets = np.zeros(len(explained) + 1, dtype=np.int32)
        np.cumsum(np.bincount(row, minlength=len(explained)), out=offsets[1:])
        if len(feature) <= _FEW:
            # A few applicants' reasons (one, or the requests gathered in one turn): the same heads
            # and tails, without pandas' and Arrow's per-call cost.
            names, at = [contract.NAMES[k] for k in feature.tolist()], explained[row].tolist()
            shown = [rules.python_value(cleaned[name][i]) for name, i in zip(names, at, strict=True)]
            words = [
                self._head(k, v) + self._tail(t) for k, v, t in zip(feature.tolist(), shown, keys.tolist(), strict=True)
            ]
            return _Flat(explained, row, slot, feature, words, None, shown, None, offsets)
        tail_codes, tail_keys = pd.factorize(keys)
        tails = [self._tail(t) for t in tail_keys.tolist()]
        heads: list[str] = []
        shown = []  # the value each head words, as Python values
        head_codes = np.empty(len(feature), dtype=np.int64)
        for k in np.unique(feature).tolist():
            mine = np.flatnonzero(feature == k)
            codes, uniques = pd.factorize(cleaned[contract.NAMES[k]][explained[row[mine]]], use_na_sentinel=True)
            # Missing (NaN or None) is code -1: the last head, worded from None.
            values = [*uniques.tolist(), None]
            head_codes[mine] = len(heads) + np.where(codes < 0, len(values) - 1, codes)
            heads.extend(self._head(k, value) for value in values)
            shown.extend(values)
        parts = np.column_stack([head_codes, len(heads) + tail_codes])
        return _Flat(
            explained, row, slot, feature, [*heads, *tails], parts, np.array(shown, dtype=object), head_codes, offsets
        )

    def _tail(self, key: int) -> str:
        """ ", which multiplies the odds of default by <factor>" for a `_factor_keys` key, kept."""
        tail = self._tails.get(key)
        if tail is None:
            factor = f"{key / 100:.2f}" if key > 0 else f"{-key:,}"
            if key < -_MOST_FACTOR:
                factor = f"{self._words.more}{_MOST_FACTOR:,}"
            tail = self._tails[key] = self._words.tail + _separators(factor, self._words.decimal)
        return tail

    def _head(self, k: int, value: Any) -> str:
        """ "<description> is <value>" and the typical value when it differs, kept per feature."""
        head = self._heads[k].get(value)
        if head is not None:
            return head
        typical = self._typical[k]
        same = typical is None if value is None else value == typical
        head = self._lead[k] + self._format(k, value) + ("" if same else self._beside[k])
        cache = self._heads[k]
        if len(cache) >= _CACHE:
            cache.clear()
        cache[value] = head
        return head

    def _format(self, k: int, value: Any) -> str:
        """A value of feature k in this language's words."""
        if value is None:
            return self._words.missing
        if isinstance(value, str):
            return self._names[k].get(value, value)
        return _separators(format_value(value), self._words.decimal)


def _factor_keys(contributions: np.ndarray) -> np.ndarray:
    """One key per distinct wording of exp(contribution): hundredths below _WHOLE_FROM, minus the
    whole number above, -_MOST_FACTOR - 1 above _MOST_FACTOR."""
    factors = np.exp(np.minimum(contributions, np.log(_MOST_FACTOR) + 1.0))
    keys = np.where(factors < _WHOLE_FROM, np.rint(factors * 100), -np.rint(np.minimum(factors, _MOST_FACTOR + 1)))
    return keys.astype(np.int64)


def _separators(number: str, decimal: str) -> str:
    """An English-formatted number ("1,234.5") with the language's separators ("1.234,5" in Portuguese)."""
    return number if decimal == "." else number.translate(_SWAP)


_SWAP = str.maketrans(",.", ".,")


def format_value(value: Any) -> str:
    """A value as a reason shows it: numbers with thousands separators and at most two decimals."""
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{value:,.0f}"
    return str(value)
