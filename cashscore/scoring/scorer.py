"""Pure scoring over an onnxruntime session: cleaning rules, probabilities, decisions, bands and reasons.

Nothing here knows about HTTP; the server, the batch scorer and tests call these functions.
"""

from __future__ import annotations

import asyncio
import sys
from bisect import bisect_right
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import msgspec
import numpy as np
import onnx
import onnxruntime
import pyarrow as pa

from cashscore.artefact import graph
from cashscore.artefact.store import OUTPUT, LoadedModel
from cashscore.core.rounding import round_like_python
from cashscore.features import contract, inputs, rules
from cashscore.scoring import reasons

# Risk bands by probability of default: upper bounds, exclusive.
BANDS = ((0.05, "very low"), (0.10, "low"), (0.20, "medium"), (0.40, "high"), (1.01, "very high"))
_UPPERS = np.array([upper for upper, _ in BANDS])
_NAMES = np.array([name for _, name in BANDS], dtype=object)
_BAND_ARRAY = pa.array([name for _, name in BANDS])
# A refused applicant's counter-offer: the amount asked for cut in this many parts first (the
# probability may rise and fall with the amount: a fine first look), then what is left between the
# largest approved and the next refused amount in this many, until they are one unit apart.
OFFER_FIRST_CUTS = 64
OFFER_CUTS = 8
# Model inputs of this many rows or more are scored in two halves at once, one per core.
SPLIT_ROWS = 256
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cashscore-onnx")


# Model runs that event loops have handed to the scoring threads and not yet got back.
_awaited_runs = 0


T = TypeVar("T")
# A scoring computation as steps: it yields each model run it needs, (session, feeds), and is sent
# back that run's outputs (one list per part the inputs were split into), until it returns its
# result. `Scorer._drive` runs the steps in the caller's thread, `Scorer.decide_awaiting` awaits
# them from an event loop: one path, two ways to wait for onnxruntime.
Steps = Generator[tuple[onnxruntime.InferenceSession, Mapping[str, np.ndarray]], list[Any], T]


def _probabilities(outputs: list[Any]) -> np.ndarray:
    """P(default) from the parts' outputs, as float64."""
    return np.concatenate([o[0][:, 1] for o in outputs]).astype(np.float64)


def _everything(outputs: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(default), contributions and base from the parts' outputs of the whole graph, as float64."""
    p = _probabilities(outputs)
    contributions = np.concatenate([o[1] for o in outputs]).astype(np.float64)
    base = np.concatenate([o[2][:, 0] for o in outputs]).astype(np.float64)
    return p, contributions, base


class InvalidApplicant(ValueError):
    """An applicant the contract rejects; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Scored(NamedTuple):
    """One applicant's score (a tuple: a frozen dataclass took 2 µs a row to build)."""

    default_probability: float
    decision: str
    risk_band: str
    reasons: list[reasons.Reason]
    base_log_odds: float
    contributions: dict[str, float]
    counter_offer: dict[str, float] | None
    # The cleaned values the model saw (numbers as float, categories canonical, None for missing),
    # when asked for: what the decision log keeps.
    inputs: dict[str, Any] | None = None


class Scores(NamedTuple):
    """What the model graph gives for each row: P(default), per-feature contributions and the base,
    in the calibrated log-odds space, with sigmoid(base + sum(contributions)) = P(default)."""

    p: np.ndarray
    contributions: np.ndarray
    base: np.ndarray


def band(p: float) -> str:
    """The risk band of a probability of default."""
    return str(_NAMES[bisect_right(_UPPERS, p)])


def bands(p: np.ndarray) -> np.ndarray:
    """`band` for a whole array of probabilities."""
    return _NAMES[np.searchsorted(_UPPERS, p, side="right")]


def band_array(p: np.ndarray) -> pa.Array:
    """`bands` as an Arrow string array, without a Python string per row."""
    return _BAND_ARRAY.take(pa.array(np.searchsorted(_UPPERS, p, side="right")))


def cleaned_records(cleaned: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Cleaned columns as one dict per row: floats, canonical strings, None for missing."""
    columns = [rules.as_python(cleaned[name]) for name in contract.NAMES]
    return [dict(zip(contract.NAMES, row, strict=True)) for row in zip(*columns, strict=True)]


# One applicant's cleaned values as the decision log keeps them: encoded, a struct is the dict of
# the same fields (the log sorts keys either way), at a tenth of the cost to build per row.
Inputs = msgspec.defstruct("Inputs", [(name, Any) for name in contract.NAMES], gc=False)


def inputs_records(cleaned: Mapping[str, np.ndarray]) -> list[Any]:
    """`cleaned_records` as `Inputs` structs, for the decision log."""
    return list(map(Inputs, *(rules.as_python(cleaned[name]) for name in contract.NAMES)))


def contribution_dicts(contributions: np.ndarray) -> list[dict[str, float]]:
    """Each row's contributions by feature name, to 6 places, as answers show them."""
    return [dict(zip(contract.NAMES, c, strict=True)) for c in round_like_python(contributions, 6).tolist()]


def category_problem(name: str, value: Any) -> str | None:
    """Why `value` is not a spelling of categorical feature `name` (any case, English or Portuguese
    synonyms), or None when it is one, or is blank for an optional feature."""
    if value is None or (isinstance(value, str) and not value.strip(contract.BLANKS)):
        # Refused as `cashscore score` and score_default() refuse it: blank is missing.
        return "required" if name in contract.REQUIRED else None
    categories = contract.BY_NAME[name].categories
    if rules.normalise_category(name, value) in categories:
        return None
    return f"unknown category {value!r}; expected one of {', '.join(categories)} (any case, or a synonym)"


def category_refusal(record: Mapping[str, Any]) -> InvalidApplicant | None:
    """Category spellings checked before cleaning: the refusal of the first (in contract order) that
    no synonym maps to a contract category, or that is blank where required; None when all pass."""
    for name in contract.CATEGORICAL:
        problem = category_problem(name, record.get(name))
        if problem is not None:
            return InvalidApplicant(name, problem)
    return None


class Decided(NamedTuple):
    """Applicants decided column by column, before each channel gives them its own shape."""

    cleaned: dict[str, np.ndarray]
    # Per row, why the contract's rules refuse it ("<field>: <problem>"), or None when it was scored.
    problems: np.ndarray
    scores: Scores  # NaN on refused rows
    why: list[list[reasons.Reason]]  # per row; empty when not asked for, or refused
    offers: list[dict[str, float] | None]


class Scorer:
    """A verified model loaded into onnxruntime, with its threshold and reference applicant.

    One path, column-wise, for every channel: clean (`rules.clean_columns`), feed, run, decide,
    explain. Written as steps (`Steps`) that yield each model run they need, so that a thread
    (`decide`) and an event loop (`decide_awaiting`) run the very same code.
    """

    def __init__(self, model: LoadedModel, threads: int = 1, split: bool = True) -> None:
        options = onnxruntime.SessionOptions()
        # One thread per request keeps latency flat when the other core serves another worker.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(model.onnx_bytes, options, providers=["CPUExecutionProvider"])
        # The same trees summing only the margin, for rows that need no explanation: bit-identical
        # probabilities at about 0.7 times the cost of the whole pass.
        plain = graph.margin_only(onnx.load_from_string(model.onnx_bytes), OUTPUT)
        self.plain_session = onnxruntime.InferenceSession(
            plain.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.model = model
        # Where one process owns one core (a Spark Python worker), a call never splits across two.
        self.split_rows = SPLIT_ROWS if split else sys.maxsize
        self.version = model.version
        self.threshold = model.threshold
        self.reference = rules.clean_record(model.card.reference)
        self.wordings = {language: reasons.Wording(self.reference, language) for language in reasons.LANGUAGES}

    def evaluate(self, cleaned: Mapping[str, np.ndarray], detail: bool = True) -> Scores:
        """The model on columns cleaned by `rules.clean_columns`.

        Args:
            cleaned: the columns.
            detail: with contributions and base (one tree pass gives all three), or the
                probabilities alone (NaN elsewhere) from the cheaper margin-only graph.

        Returns:
            Probabilities, contributions and base, row by row.
        """
        return self._drive(self._evaluating(cleaned, detail))

    def _evaluating(self, cleaned: Mapping[str, np.ndarray], detail: bool) -> Steps[Scores]:
        feeds = inputs.column_feeds(dict(cleaned))
        if not len(next(iter(feeds.values()))):
            return Scores(np.empty(0), np.empty((0, len(contract.NAMES))), np.empty(0))
        if detail:
            return Scores(*_everything((yield self.session, feeds)))
        p = _probabilities((yield self.plain_session, feeds))
        return Scores(p, np.full((len(p), len(contract.NAMES)), np.nan), np.full(len(p), np.nan))

    def clean_and_evaluate(
        self, columns: Mapping[str, Any], n: int, detail: bool = True
    ) -> tuple[dict[str, np.ndarray], np.ndarray, Scores]:
        """The contract's rules on whole columns, then the model on the rows they accept (with
        contributions when `detail`).

        Returns:
            (cleaned columns, per-row rejection reason or None, the model's outputs: NaN where rejected).
        """
        return self._drive(self._cleaning_and_evaluating(columns, n, detail))

    def _cleaning_and_evaluating(
        self, columns: Mapping[str, Any], n: int, detail: bool
    ) -> Steps[tuple[dict[str, np.ndarray], np.ndarray, Scores]]:
        cleaned, problems = rules.clean_columns(columns, n)
        ok = problems == None  # noqa: E711
        if ok.all():
            return cleaned, problems, (yield from self._evaluating(cleaned, detail))
        scores = Scores(np.full(n, np.nan), np.full((n, len(contract.NAMES)), np.nan), np.full(n, np.nan))
        if ok.any():
            good = yield from self._evaluating({k: v[ok] for k, v in cleaned.items()}, detail)
            scores.p[ok], scores.contributions[ok], scores.base[ok] = good.p, good.contributions, good.base
        return cleaned, problems, scores

    def decide(
        self,
        columns: Mapping[str, Any],
        n: int,
        explain: bool = True,
        contributions: bool = True,
        counter_offer: bool = False,
        language: str = "en",
    ) -> Decided:
        """Clean, run, explain and search counter-offers for whole columns of raw applicant fields:
        the one path the API's single applicants (gathered) and its batches (`decide_awaiting`,
        the same steps) take.

        Args:
            columns: feature name -> raw values (any category spelling; a missing column is all missing).
            n: the number of rows.
            explain: name the reasons of every scored row.
            contributions: run the graph's contributions even without reasons.
            counter_offer: search a counter-offer for each refusal (about 80 more model rows each).
            language: the reasons' words, one of reasons.LANGUAGES.
        """
        return self._drive(self._deciding(columns, n, explain, contributions, counter_offer, language))

    async def decide_awaiting(
        self,
        columns: Mapping[str, Any],
        n: int,
        explain: bool = True,
        contributions: bool = True,
        counter_offer: bool = False,
        language: str = "en",
    ) -> Decided:
        """`decide` for a coroutine: the same steps, the rules and reasons in the caller's thread and
        each model run in the scoring threads, awaited, so that the caller's event loop serves other
        requests while onnxruntime runs without the GIL (no thread of its own to hand the whole call
        to and back: 4 % more batches a second than `decide` in a worker thread)."""
        global _awaited_runs
        steps = self._deciding(columns, n, explain, contributions, counter_offer, language)
        loop = asyncio.get_running_loop()
        outputs: list[Any] | None = None
        while True:
            try:
                session, feeds = steps.send(outputs)  # type: ignore[arg-type]
            except StopIteration as done:
                return done.value
            # Halves on both cores only while no other request's model run is under way: under load the
            # requests keep both cores busy by themselves, and halves would add a GIL handoff and a wait
            # for the slower half to every run (bench/serve.py: +14 % batches a second at 2 connections;
            # a lone 1,000-row batch still answers in 22 ms rather than 29).
            parts = self._parts(feeds) if not _awaited_runs else [dict(feeds)]
            _awaited_runs += len(parts)
            try:
                outputs = list(
                    await asyncio.gather(*(loop.run_in_executor(_POOL, session.run, None, part) for part in parts))
                )
            finally:
                _awaited_runs -= len(parts)

    def _deciding(
        self, columns: Mapping[str, Any], n: int, explain: bool, contributions: bool, counter_offer: bool, language: str
    ) -> Steps[Decided]:
        cleaned, problems, scores = yield from self._cleaning_and_evaluating(columns, n, explain or contributions)
        ok = problems == None  # noqa: E711
        none: list[reasons.Reason] = []  # one empty list for every row, never appended to
        why = self.explain(cleaned, scores, ok, language) if explain else [none] * n
        offers: list[dict[str, float] | None] = [None] * n
        if counter_offer:
            offers = yield from self._offering(cleaned, scores, ok)
        return Decided(cleaned, problems, scores, why, offers)

    def probabilities(self, cleaned: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities of default for columns cleaned by `rules.clean_columns`."""
        return self.evaluate(cleaned, detail=False).p

    def decisions(self, p: np.ndarray) -> np.ndarray:
        """ "deny" where the probability of default reaches the threshold, "approve" elsewhere."""
        return np.where(np.asarray(p) >= self.threshold, "deny", "approve")

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's probability of default for each row of its inputs (the plain graph).

        From SPLIT_ROWS rows on, two halves are scored at once: each runs single-threaded
        (onnxruntime releases the GIL) and a row's score never depends on the rows beside it, so
        the results are bit-identical to one call.
        """
        return _probabilities(self._run(self.plain_session, feeds))

    def run_all(self, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All three outputs of the graph for each row of its inputs, as float64."""
        return _everything(self._run(self.session, feeds))

    def _parts(self, feeds: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """The inputs whole, or in two halves from `split_rows` rows on (one per core)."""
        n = len(next(iter(feeds.values())))
        if n < self.split_rows:
            return [dict(feeds)]
        half = n // 2
        return [{k: v[:half] for k, v in feeds.items()}, {k: v[half:] for k, v in feeds.items()}]

    def _run(self, session: onnxruntime.InferenceSession, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """Each part's outputs: a lone part in this thread, two halves at once in the scoring threads."""
        parts = self._parts(feeds)
        if len(parts) == 1:
            return [session.run(None, parts[0])]
        return list(_POOL.map(lambda part: session.run(None, part), parts))

    def _drive(self, steps: Steps[T]) -> T:
        """Run a scoring computation's model steps in this thread (and the scoring threads)."""
        outputs: list[Any] | None = None
        while True:
            try:
                session, feeds = steps.send(outputs)  # type: ignore[arg-type]
            except StopIteration as done:
                return done.value
            outputs = self._run(session, feeds)

    def explain(
        self, cleaned: Mapping[str, np.ndarray], scores: Scores, which: np.ndarray, language: str = "en"
    ) -> list[list[reasons.Reason]]:
        """The reasons of every row in `which` (an empty list elsewhere), from the graph's
        contributions, worded in `language` (one of reasons.LANGUAGES)."""
        return self.wordings[language].records(reasons.pick(scores.p, scores.contributions, which), cleaned)

    def reason_lists(
        self, cleaned: Mapping[str, np.ndarray], scores: Scores, which: np.ndarray, language: str = "en"
    ) -> list[Sequence[str]]:
        """The words of the reasons of every row in `which` (an empty list elsewhere)."""
        return self.wordings[language].texts(reasons.pick(scores.p, scores.contributions, which), cleaned)

    def reason_list_column(
        self, cleaned: Mapping[str, np.ndarray], scores: Scores, which: np.ndarray, language: str = "en"
    ) -> pa.Array:
        """The words of the reasons of every row in `which` as an Arrow list per row (empty elsewhere)."""
        return self.wordings[language].list_column(reasons.pick(scores.p, scores.contributions, which), cleaned)

    def reason_texts(
        self, cleaned: Mapping[str, np.ndarray], scores: Scores, which: np.ndarray, language: str = "en"
    ) -> pa.Array:
        """The reasons of every row in `which` as one string each, " | " between them ("" elsewhere)."""
        return self.wordings[language].column(reasons.pick(scores.p, scores.contributions, which), cleaned)

    def counter_offers(
        self, cleaned: Mapping[str, np.ndarray], scores: Scores, which: np.ndarray
    ) -> list[dict[str, float] | None]:
        """For each refused row in `which`: the largest loan the model would approve, or None.

        The search keeps, per applicant, an approved amount `lo` (0 at first: none yet) and a
        refused one `hi` (the amount asked for), and narrows them in stages. Each stage scores the
        whole amounts cutting (lo, hi) in parts (64 in the first, 8 after), with the applicant's
        other values and loan_percent_income derived again from each, all applicants' in one model
        call; `lo` becomes the largest approved one and `hi` the smallest refused one above it,
        until they are one unit apart (five stages, about 80 model rows a refusal on the real dump).

        Where the probability never falls as the amount grows, the offer is the largest approved
        whole amount, exactly. That holds when the model is non-decreasing in both loan_amnt and
        loan_percent_income; the contract holds only the share of income so (the amount too cost
        0.0009 held-out ROC-AUC on the real dump), so elsewhere the offer is approved with one unit
        more refused, and never below the largest approved amount k/64 of the one asked for.
        """
        return self._drive(self._offering(cleaned, scores, which))

    def _offering(
        self, cleaned: Mapping[str, np.ndarray], scores: Scores, which: np.ndarray
    ) -> Steps[list[dict[str, float] | None]]:
        out: list[dict[str, float] | None] = [None] * len(scores.p)
        amounts = cleaned["loan_amnt"]
        owners = np.flatnonzero(np.asarray(which, bool) & (scores.p >= self.threshold) & (amounts > 1))
        if not len(owners):
            return out
        lo = np.zeros(len(owners))
        hi = np.ceil(amounts[owners])
        p_lo = np.full(len(owners), np.nan)
        derived = [
            f.name
            for f in contract.FEATURES
            if f.derived and "loan_amnt" in (f.derived.numerator, f.derived.denominator)
        ]
        parts = OFFER_FIRST_CUTS
        while (open_ := np.flatnonzero(hi - lo > 1)).size:
            base, width = lo[open_], hi[open_] - lo[open_]
            points = base[:, None] + np.floor(width[:, None] * np.arange(1, parts) / parts)
            parts = OFFER_CUTS
            # Narrow intervals repeat amounts: each is scored once, and never lo again.
            fresh = (points > base[:, None]) & np.concatenate(
                [np.ones((len(open_), 1), bool), points[:, 1:] > points[:, :-1]], axis=1
            )
            rows, cols = np.nonzero(fresh)
            who = owners[open_[rows]]
            raw = {name: cleaned[name][who] for name in contract.NAMES}
            raw["loan_amnt"] = points[rows, cols]
            for name in derived:
                raw[name] = np.full(len(who), np.nan)
            again, problems = rules.clean_columns(raw, len(who))
            p = (yield from self._evaluating(again, False)).p
            grid_p = np.full(points.shape, np.nan)
            grid_p[rows, cols] = p
            approved = np.zeros(points.shape, bool)
            approved[rows, cols] = (p < self.threshold) & (problems == None)  # noqa: E711
            refused = fresh & ~approved
            found = approved.any(axis=1)
            at = np.arange(len(open_)), np.where(approved, points, -np.inf).argmax(axis=1)
            new_lo = np.where(found, points[at], base)
            above = refused & (points > new_lo[:, None])
            hi[open_] = np.minimum(np.where(above, points, np.inf).min(axis=1), hi[open_])
            p_lo[open_] = np.where(found, grid_p[at], p_lo[open_])
            lo[open_] = new_lo
        for i, amount, p_offer in zip(owners.tolist(), lo.tolist(), p_lo.tolist(), strict=True):
            if amount > 0:
                out[i] = {"loan_amnt": amount, "default_probability": round(p_offer, 6)}
        return out

    def score(
        self,
        records: Sequence[Mapping[str, Any]],
        explain: bool = True,
        counter_offer: bool = False,
        inputs: bool = False,
        language: str = "en",
    ) -> list[Scored]:
        """Score applicants: the same rules as the SQL mart, then the model, decision, band and reasons.

        Args:
            records: raw applicant fields (any category spelling; loan_percent_income may be absent).
            explain: name the reasons (the contributions come with every score).
            counter_offer: search a counter-offer for each refusal (about 80 more model rows each).
            inputs: keep the cleaned values in each result (for the decision log).
            language: the reasons' words, one of reasons.LANGUAGES.

        Returns:
            One result per record, in order.

        Raises:
            InvalidApplicant: the first refused record's: an unknown category spelling or a blank
                required one, or a value the contract's rules reject.
        """
        results = self.score_each(records, explain, counter_offer, inputs, language)
        for result in results:
            if isinstance(result, InvalidApplicant):
                raise result
        return results  # type: ignore[return-value]

    def score_each(
        self,
        records: Sequence[Mapping[str, Any]],
        explain: bool = True,
        counter_offer: bool = False,
        inputs: bool = False,
        language: str = "en",
    ) -> list[Scored | InvalidApplicant]:
        """`score` for applicants that do not stand or fall together (single requests the server
        gathered into one call): each gets its own result, or the InvalidApplicant that refuses it."""
        out: list[Scored | InvalidApplicant] = []
        valid: list[Mapping[str, Any]] = []
        for record in records:
            refusal = category_refusal(record)
            out.append(refusal)  # type: ignore[arg-type] # None: filled in below
            if refusal is None:
                valid.append(record)
        if not valid:
            return out
        n = len(valid)
        columns = {name: [r.get(name) for r in valid] for name in contract.NAMES}
        decided = self.decide(columns, n, explain, True, counter_offer, language)
        refused = decided.problems.tolist()
        ok = np.flatnonzero(decided.problems == None)  # noqa: E711 - elementwise comparison
        # Figures only for the rows the rules accept: a refused row's probability is NaN.
        p, contributions = decided.scores.p[ok], decided.scores.contributions[ok]
        kept = cleaned_records({k: v[ok] for k, v in decided.cleaned.items()}) if inputs else [None] * len(ok)
        rows = ok.tolist()
        accepted = map(
            Scored,
            p.tolist(),
            self.decisions(p).tolist(),
            bands(p).tolist(),
            [decided.why[i] for i in rows],
            round_like_python(decided.scores.base[ok], 6).tolist(),
            contribution_dicts(contributions),
            [decided.offers[i] for i in rows],
            kept,
        )
        scored = iter(
            next(accepted) if problem is None else InvalidApplicant(*str(problem).partition(": ")[::2])
            for problem in refused
        )
        return [next(scored) if result is None else result for result in out]
