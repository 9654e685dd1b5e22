"""The Litestar app: thin handlers over server.scoring, model lifecycle, auth, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import hmac
import logging
import operator
import os
import signal
import time
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
from cashscore.features import contract
from cashscore.server import challenge, dashboard, edge, gather, metrics
from cashscore.server.schemas import (
    REQUIRED_IN_ORDER,
    Applicant,
    BatchApplicant,
    BatchApplicantPartial,
    BatchResult,
    BatchRow,
    CounterOffer,
    Probabilities,
    Score,
    batch_body_schema,
    query_parameters,
    to_record,
)
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader, Cookie, State
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromQuery, JSONBody
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE

from cashscore.artefact.store import load_verified
from cashscore.audit import commit
from cashscore.audit.log import DecisionLog, now
from cashscore.core import config
from cashscore.core.errors import CashscoreError
from cashscore.core.rounding import round_like_python
from cashscore.monitoring.live import Tracker
from cashscore.scoring.scorer import (
    BANDS,
    Decided,
    InvalidApplicant,
    Scored,
    Scorer,
    bands,
    category_problem,
    contribution_dicts,
    inputs_records,
)

log = logging.getLogger("cashscore.server")
SESSION_COOKIE = "cashscore_session"
# A dashboard sign-in lasts this long; the cookie proves the key was given, it does not hold it.
SESSION_SECONDS = 12 * 3600
# A bearer token from GET /v1/token lasts this long: one Power BI refresh, not a second key.
TOKEN_SECONDS = 3600
# GET /v1/score takes one parameter per contract field (and api_key): far more is a mistake or an attack.
MAX_QUERY_PARAMS = 32
# Requests handled at once by one worker; more answer 503 with Retry-After (CASHSCORE_MAX_IN_FLIGHT).
MAX_IN_FLIGHT = 256
# Tracked objects allocated (net) between young collections while serving: 700 by default.
GC_YOUNG = 20_000
LANGUAGES = contract.LANGUAGES
# `?lang=`: a query parameter of this type is refused with a 400 naming the choices.
Language = Literal[LANGUAGES]  # type: ignore[valid-type]


# msgspec raises these Python errors, not its own, for a client's malformed JSON.
_MALFORMED = {
    RecursionError: "Malformed JSON: nested too deeply",
    UnicodeDecodeError: "Malformed JSON: a string holds bytes that are not UTF-8",
}


@contextlib.contextmanager
def malformed_json_is_400() -> Iterator[None]:
    """msgspec raises these Python errors for a client's malformed JSON: answer 400, never 500."""
    try:
        yield
    except (RecursionError, UnicodeDecodeError) as exc:
        raise ValidationException(detail=_MALFORMED[type(exc)]) from None


class StrictRequest(Request):
    """A request whose JSON body, however malformed, is a 400 and never a 500."""

    async def json(self) -> Any:
        with malformed_json_is_400():
            return await super().json()


def decode(body: bytes, kind: Any) -> Any:
    """msgspec's JSON decoding, with the client mistakes it raises as Python errors made 400s.

    Raises:
        msgspec.ValidationError, msgspec.DecodeError: as msgspec does, for the caller to word.
        ValidationException: on nesting deeper than Python's recursion limit or invalid UTF-8.
    """
    with malformed_json_is_400():
        return msgspec.json.decode(body, type=kind)


def session_token(key: str, expires: int, purpose: str = "dashboard") -> str:
    """A session: its expiry and an HMAC of it and its purpose under the API key (the key never leaves the server).

    The purpose keeps a dashboard cookie from passing as a bearer token and the other way round.
    """
    mac = hmac.new(key.encode(), f"cashscore-{purpose}:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def valid_session(key: str, token: str, purpose: str = "dashboard") -> bool:
    expires, _, _ = token.partition(".")
    if not expires.isdigit() or len(expires) > 12 or int(expires) < time.time():
        return False
    return hmac.compare_digest(token.encode(), session_token(key, int(expires), purpose).encode())


class ModelHolder:
    """The serving model; replaced whole on reload, so a request sees the old model or the new one."""

    def __init__(self, models: Path, version: str | None = None) -> None:
        self.models = models
        self.version = version
        self.scorer: Scorer | None = None

    def load(self) -> Scorer:
        """Load and verify the current (or pinned) version; on failure the model in use keeps serving."""
        try:
            scorer = Scorer(load_verified(self.models, self.version))
        except CashscoreError:
            metrics.MODEL_LOADS.labels("refused").inc()
            raise
        metrics.MODEL_LOADS.labels("loaded").inc()
        self.scorer = scorer
        log.info("serving model %s from %s", scorer.version, self.models)
        return scorer

    def current(self) -> Scorer:
        if self.scorer is None:
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail="no verified model is loaded")
        return self.scorer


async def require_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """With CASHSCORE_API_KEY set, /v1/* needs it as X-API-Key header or api_key parameter, or a token.

    The token (`Authorization: Bearer`, from GET /v1/token) is for Power BI, whose POST requests can only
    be anonymous: the key stays in its credential store and only the token travels in the POSTs.
    Async on purpose: Litestar runs a sync guard in a worker thread, a handoff on every request.
    """
    key = connection.app.state.api_key
    if not key or _signed_in(connection, key):
        return
    scheme, _space, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if valid_session(key, token.strip(), "api"):
            return
        raise NotAuthorizedException(detail="expired or wrong bearer token: get a new one from GET /v1/token")
    given = connection.headers.get("x-api-key") or connection.query_params.get("api_key") or ""
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise NotAuthorizedException(
            detail="missing or wrong API key (X-API-Key header, api_key parameter or a bearer token from /v1/token)"
        )


def _signed_in(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> bool:
    """A dashboard session cookie (SameSite=Strict: another site's page cannot send it)."""
    token = connection.cookies.get(SESSION_COOKIE)
    return token is not None and token != "" and valid_session(key, token)


def _score_responses(
    scorer: Scorer,
    p: np.ndarray,
    decisions: list[str],
    risk_bands: list[str],
    reasons: list[list[Any]],
    bases: list[float] | list[None],
    contributions: Sequence[dict[str, float] | None],
    offers: Sequence[dict[str, float] | None | msgspec.UnsetType],
) -> list[Score]:
    """Applicants' answers, column by column (one applicant is a one-row call); a counter-offer is
    left out unless it was asked for (UNSET)."""
    threshold, version, unset = scorer.threshold, scorer.version, msgspec.UNSET
    shown, repay = round_like_python(p, 6).tolist(), round_like_python(1.0 - p, 6).tolist()
    # Positional, in the struct's field order: keywords cost a third more a row.
    return [
        Score(
            prob,
            Probabilities(prob, back),
            decision,
            threshold,
            band,
            version,
            named,
            base,
            by,
            offer if offer is unset or offer is None else CounterOffer(**offer),
        )
        for prob, back, decision, band, named, base, by, offer in zip(
            shown, repay, decisions, risk_bands, reasons, bases, contributions, offers, strict=True
        )
    ]


async def _score_one(request: Request, record: dict[str, Any], counter_offer: bool = False, lang: str = "en") -> Score:
    """One applicant's answer, scored in one call with those of the requests read beside it (server.gather)."""
    scorer = request.app.state.holder.current()
    return await request.app.state.gatherer((scorer, counter_offer, lang), (edge.request_id(request.scope), record))


async def _score_gathered(
    state: State, key: tuple[Scorer, bool, str], asks: list[tuple[str, dict[str, Any]]]
) -> list[Score | Exception]:
    """Single applicants (request id, raw fields) from requests read together, scored, logged and
    counted as one batch: each gets its answer, or the 422 that refuses it alone."""
    scorer, counter_offer, lang = key
    wants_inputs = state.audit is not None or state.tracker is not None
    results = scorer.score_each([record for _, record in asks], True, counter_offer, wants_inputs, lang)
    done = [(rid, r) for (rid, _), r in zip(asks, results, strict=True) if not isinstance(r, InvalidApplicant)]
    scored = [r for _, r in done]
    answers: Iterator[Score | Exception] = iter(())
    if scored:
        logged: list[Decision] = [
            (None, r.inputs, r.default_probability, r.decision, [x.text for x in r.reasons], r.counter_offer)
            for r in scored
        ]
        try:
            await _keep(state.audit, [rid for rid, _ in done], scorer, logged, lang)
        except HTTPException as exc:
            answers = iter([exc] * len(scored))
        else:
            answers = iter(_gathered_answers(state, scorer, scored, counter_offer))
    return [_invalid(r) if isinstance(r, InvalidApplicant) else next(answers) for r in results]


def _gathered_answers(state: State, scorer: Scorer, scored: list[Scored], counter_offer: bool) -> list[Score]:
    """Logged single applicants' answers, after the drift window and the decision counters saw them."""
    p = np.array([r.default_probability for r in scored])
    if state.tracker is not None:
        population = scorer.model.card.population
        state.tracker.observe(scorer.version, population, [r.inputs or {} for r in scored], p.tolist())
    decisions = [r.decision for r in scored]
    metrics.decided(decisions, scorer.version)
    unset = msgspec.UNSET
    return _score_responses(
        scorer,
        p,
        decisions,
        [r.risk_band for r in scored],
        [r.reasons for r in scored],
        [r.base_log_odds for r in scored],
        [r.contributions for r in scored],
        [r.counter_offer if counter_offer else unset for r in scored],
    )


def _invalid(exc: InvalidApplicant) -> ValidationException:
    return ValidationException(detail=f"Validation failed: {exc}", extra=[{"key": exc.field, "message": exc.message}])


# One decision for the log: the caller's row id (None for a single applicant), the cleaned inputs,
# the probability, the decision, the reasons' words (None when not asked for), the counter-offer.
Decision = tuple[Any, dict[str, Any] | None, float, str, list[str] | None, dict[str, float] | None]


async def _keep(
    committer: commit.GroupCommitter | None,
    rids: Sequence[str],
    scorer: Scorer,
    decisions: list[Decision],
    language: str = "en",
) -> None:
    """Log the decisions (each with the id of the request that asked for it) durably before any of
    them is answered; a record worded in another language than English says which, for `audit replay`.

    Raises:
        HTTPException: 503 when the decision log cannot be written: no decision leaves unrecorded.
    """
    if committer is None or not decisions:
        return
    # Decided together, at one time, by this worker.
    when, worker, version, threshold, unset = now(), os.getpid(), scorer.version, scorer.threshold, msgspec.UNSET
    records = [
        commit.decision(
            rid, "api", version, threshold, inputs, p, decision, texts, language, time=when, worker=worker,
            id=unset if row_id is None else row_id, counter_offer=unset if offer is None else offer,
        )
        for rid, (row_id, inputs, p, decision, texts, offer) in zip(rids, decisions, strict=True)
    ]  # fmt: skip
    try:
        await committer.wait(records)
    except CashscoreError as exc:
        log.error("decision log: %s", exc)
        raise HTTPException(
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            detail="the decision log cannot be written, so no decision was given; retry later",
            headers={"Retry-After": "5"},
        ) from None


async def _body_given(request: Request) -> None:
    """An empty body is refused by name (Litestar's own refusal names only its `data` parameter, and
    msgspec's says the JSON was truncated)."""
    if not await request.body():
        expected = request.route_handler.opt["body"]
        raise ValidationException(detail=f"Validation failed: the body is empty; expected {expected}")


@post(
    "/v1/score",
    summary="Score one applicant",
    tags=["scoring"],
    guards=[require_key],
    before_request=_body_given,
    opt={"body": "a JSON object of the applicant's fields"},
    status_code=200,
)
async def score_post(
    data: JSONBody[Applicant],
    request: Request,
    counter_offer: FromQuery[bool] = False,
    lang: FromQuery[Language] = "en",
) -> Score:
    """Probability of default, decision, risk band, reasons and contributions for one applicant (JSON body).

    `?counter_offer=true` adds, for a refusal, the largest loan the model would approve (or null);
    `?lang=pt` words the reasons in Brazilian Portuguese.
    """
    return await _score_one(request, to_record(data), counter_offer, lang)


@dataclass
class _ScoreGetOperation(Operation):
    """GET /v1/score reads its query itself (duplicates and limits checked once); OpenAPI still lists each field."""

    def __post_init__(self) -> None:
        self.parameters = [*query_parameters(), *(self.parameters or [])]


@get(
    "/v1/score",
    summary="Score one applicant from query parameters (Power BI)",
    tags=["scoring"],
    guards=[require_key],
    operation_class=_ScoreGetOperation,
)
async def score_get(request: Request) -> Score:
    """The same as POST /v1/score, with the applicant's fields as query parameters."""
    params: dict[str, str] = {}
    # One pass over the pairs: a duplicate or one parameter too many is refused at once.
    for count, (key, value) in enumerate(request.query_params.multi_items(), start=1):
        if count > MAX_QUERY_PARAMS:
            raise ValidationException(detail=f"Validation failed: more than {MAX_QUERY_PARAMS} query parameters")
        if key in params:
            raise ValidationException(detail=f"Validation failed: {key[:40]} is given more than once")
        params[key] = value
    params.pop("api_key", None)
    offer = params.pop("counter_offer", "false").lower()
    if offer not in ("true", "false", "1", "0"):
        raise ValidationException(detail="Validation failed: counter_offer must be true or false")
    lang = params.pop("lang", "en")
    if lang not in LANGUAGES:
        raise ValidationException(detail=f"Validation failed: lang must be one of {', '.join(LANGUAGES)}")
    try:
        applicant = msgspec.convert(params, Applicant, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=f"Validation failed: {exc}") from None
    return await _score_one(request, to_record(applicant), offer in ("true", "1"), lang)


def _row_id(raw: msgspec.Raw) -> str | int | None:
    """The caller's id of an invalid batch row, when it has a usable one."""
    try:
        item = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    row_id = item.get("id") if isinstance(item, dict) else None
    return row_id if isinstance(row_id, str | int) and not isinstance(row_id, bool) else None


@dataclass
class _BatchOperation(Operation):
    """The batch body is decoded row by row in the handler (to report each invalid row); OpenAPI still shows it."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={"application/json": OpenAPIMediaType(schema=batch_body_schema())},
        )


@post(
    "/v1/score/batch",
    summary="Score many applicants",
    tags=["scoring"],
    guards=[require_key],
    before_request=_body_given,
    opt={"body": "a JSON array of applicants"},
    operation_class=_BatchOperation,
    status_code=200,
)
async def score_batch(
    request: Request,
    reasons: FromQuery[bool] = True,
    contributions: FromQuery[bool] = False,
    counter_offer: FromQuery[bool] = False,
    lang: FromQuery[Language] = "en",
) -> Response[BatchResult]:
    """A JSON array of applicants (each may carry an `id`, echoed back); invalid rows get their own error.

    `?reasons=false` leaves the reasons out; `?contributions=true` adds each feature's contribution;
    `?counter_offer=true` searches a counter-offer for each refusal; `?lang=pt` words the reasons in
    Brazilian Portuguese.
    """
    scorer = request.app.state.holder.current()
    items = _batch_items(await request.body(), request.app.state.max_batch)
    rows, applicants = _decode_rows(items)
    if not applicants:
        return Response(BatchResult(model_version=scorer.version, scored=0, rejected=len(items), results=rows))
    # Column by column from here: the rows' fields, one scoring call, then the answers.
    n = len(applicants)
    columns = _columns(applicants)
    # The model runs in the scoring threads without the GIL while the loop reads and answers other requests.
    decided = await scorer.decide_awaiting(columns, n, reasons, contributions, counter_offer, lang)
    positions = [row.index for row in rows if row.ok]
    for j in np.flatnonzero(decided.problems != None).tolist():  # noqa: E711 - elementwise comparison
        row = rows[positions[j]]
        row.ok, row.error = False, _refusal(applicants[j], decided.problems[j])
    scored = np.flatnonzero(decided.problems == None)  # noqa: E711
    kept = scored.tolist()
    p = decided.scores.p[scored]
    decisions = scorer.decisions(p).tolist()
    good = decided.cleaned if len(kept) == n else {k: v[scored] for k, v in decided.cleaned.items()}
    if request.app.state.audit is not None:
        ids = [rows[positions[j]].id for j in kept]
        texts = [[r.text for r in decided.why[j]] for j in kept] if reasons else [None] * len(kept)
        offers = [decided.offers[j] for j in kept]
        logged = zip(ids, inputs_records(good), p.tolist(), decisions, texts, offers, strict=True)
        await _keep(request.app.state.audit, [edge.request_id(request.scope)] * len(kept), scorer, list(logged), lang)
    for j, answer in zip(kept, _answers(scorer, decided, scored, decisions, contributions, counter_offer), strict=True):
        rows[positions[j]].score = answer
    result = BatchResult(model_version=scorer.version, scored=len(kept), rejected=len(items) - len(kept), results=rows)
    # The drift window and the counters see the batch once it is answered: neither changes the answer.
    return Response(result, background=BackgroundTask(_observed, request.app.state.tracker, scorer, good, p, decisions))


async def _observed(
    tracker: Tracker | None, scorer: Scorer, cleaned: dict[str, np.ndarray], p: np.ndarray, decisions: list[str]
) -> None:
    """Answered applicants into the live drift window and the decision counters.

    On the event loop, not in a worker thread (Litestar's way with a sync task): it needs the GIL
    throughout, so a thread would only add handoffs with the loop (+8 % batches a second)."""
    if tracker is not None:
        tracker.observe_columns(scorer.version, scorer.model.card.population, cleaned, p)
    metrics.decided(decisions, scorer.version)


def _decode_rows(items: list[Any]) -> tuple[list[BatchRow], list[Any]]:
    """A row per item, and the applicants among them: an item still raw (the body held invalid
    rows) is decoded alone, and an invalid one becomes a refused row with msgspec's words, as does
    a partial one that leaves a required field out."""
    if all(type(item) is BatchApplicant for item in items):
        # Every row decoded and valid (the common batch): its rows at once, none refused.
        return list(map(BatchRow, range(len(items)), map(_ID, items))), items
    rows: list[BatchRow] = []
    applicants: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, BatchApplicantPartial):
            given = _REQUIRED_OF(item)
            if msgspec.UNSET in given:
                name = REQUIRED_IN_ORDER[given.index(msgspec.UNSET)]
                rows.append(BatchRow(index=i, id=item.id, ok=False, error=f"Object missing required field `{name}`"))
                continue
        elif not isinstance(item, BatchApplicant):
            try:
                item = _BATCH_ROW.decode(item)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
                error = _MALFORMED.get(type(exc)) or str(exc)
                rows.append(BatchRow(index=i, id=_row_id(item), ok=False, error=error))
                continue
        rows.append(BatchRow(index=i, id=item.id))
        applicants.append(item)
    return rows, applicants


def _columns(applicants: list[Any]) -> dict[str, list[Any]]:
    """The applicants' contract fields, column by column: each struct as one tuple (half the time
    of reading its fields by name). Both batch structs list their fields in the same order."""
    by_field = list(zip(*map(msgspec.structs.astuple, applicants), strict=True))
    return {name: list(by_field[at]) for name, at in _CONTRACT_AT}


def _answers(
    scorer: Scorer,
    decided: Decided,
    scored: np.ndarray,
    decisions: list[str],
    contributions: bool,
    counter_offer: bool,
) -> list[Score]:
    """The answer of each scored row (`scored`: their positions in `decided`), read column by column."""
    p = decided.scores.p[scored]
    kept = scored.tolist()
    by_feature = contribution_dicts(decided.scores.contributions[scored]) if contributions else [None] * len(kept)
    base = decided.scores.base[scored]
    bases = [None] * len(kept) if np.isnan(base).all() else round_like_python(base, 6).tolist()
    offers = [decided.offers[j] for j in kept] if counter_offer else [msgspec.UNSET] * len(kept)
    why = [decided.why[j] for j in kept]
    return _score_responses(scorer, p, decisions, bands(p).tolist(), why, bases, by_feature, offers)


def _refusal(applicant: Any, problem: str) -> str:
    """Why a batch row was refused: its first category problem in contract order, in the words that
    show the spelling given (as a single applicant's 400 words it), else the contract's rule."""
    for name in contract.CATEGORICAL:
        found = category_problem(name, getattr(applicant, name))
        if found is not None:
            return f"{name}: {found}"
    return str(problem)


# The batch's rows one at a time, for a body whose array holds invalid ones.
_BATCH_ROW = msgspec.json.Decoder(BatchApplicant)
_ID = operator.attrgetter("id")
# Where each contract field sits in a batch struct's tuple.
_CONTRACT_AT = [(name, BatchApplicant.__struct_fields__.index(name)) for name in contract.NAMES]
_REQUIRED_OF = operator.attrgetter(*REQUIRED_IN_ORDER)


def _batch_items(body: bytes, max_batch: int) -> list[Any]:
    """The batch's applicants, decoded whole when every row is valid; otherwise each row's raw JSON,
    for the caller to decode one at a time and report the invalid ones.

    Raises:
        ValidationException: for a body that is not a JSON array, or holds more than `max_batch` rows.
    """
    try:
        # Fast path: the whole array is valid, decoded and checked by msgspec in one call.
        items: list[Any] = decode(body, list[BatchApplicant])
    except msgspec.ValidationError:
        # msgspec stops at the first invalid row. Rows that only leave required fields out are still
        # decoded in one call; any other invalid row splits the array into raw rows, decoded alone.
        try:
            items = decode(body, list[BatchApplicantPartial])
        except msgspec.ValidationError:
            try:
                items = decode(body, list[msgspec.Raw])
            except msgspec.ValidationError:
                detail = "Validation failed: the body must be a JSON array of applicants"
                raise ValidationException(detail=detail) from None
    except msgspec.DecodeError as exc:
        raise ValidationException(detail=f"Malformed JSON: {exc}") from None
    if len(items) > max_batch:
        raise ValidationException(detail=f"Validation failed: {len(items)} applicants; the maximum is {max_batch}")
    return items


class Token(msgspec.Struct, frozen=True):
    """A bearer token for the POST endpoints, and when it stops working (null when no key is required)."""

    token: str | None
    expires_at: str | None


@get(
    "/v1/token",
    summary="A short-lived bearer token for the POST endpoints (Power BI keeps the key in its credential store)",
    tags=["auth"],
    guards=[require_key],
    sync_to_thread=False,
    cache_control=CacheControlHeader(no_store=True),
)
def issue_token(request: Request) -> Token:
    """Send the key as `api_key` (Power BI's `ApiKeyName`), get a token for `Authorization: Bearer`."""
    key = request.app.state.api_key
    if not key:
        return Token(token=None, expires_at=None)
    expires = int(time.time()) + TOKEN_SECONDS
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    return Token(token=session_token(key, expires, "api"), expires_at=when)


@get(
    "/v1/model",
    summary="The serving model: version, metrics, threshold policy, feature contract",
    tags=["model"],
    guards=[require_key],
)
async def model_info(request: Request) -> dict[str, Any]:
    card = request.app.state.holder.current().model.card
    return {
        "model_version": card.model_version,
        "created_at": card.created_at,
        "model": card.model,
        "threshold": card.threshold,
        "calibration": card.calibration,
        "metrics": card.metrics.test,
        "parity": card.parity,
        # How the reasons are computed, and the protected-age guarantee: what an auditor asks first.
        "explanation": card.explanation,
        "protected_age": card.protected_age,
        "contract": card.contract,
        "risk_bands": [{"below": upper, "band": name} for upper, name in BANDS],
    }


def _html(page: str, status: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    headers = {"Content-Security-Policy": dashboard.CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"}
    return Response(page, status_code=status, media_type=MediaType.HTML, headers=headers, cookies=cookies)


@get("/", include_in_schema=False, sync_to_thread=True)
def dashboard_page(request: Request) -> Response[str]:
    """The dashboard: model card, portfolio of the latest stored scores, what-if form.

    With an API key configured it shows nothing before a sign-in with that key.
    """
    key = request.app.state.api_key
    if key and not _signed_in(request, key):
        return _html(dashboard.login_page(), status=401)
    tracker = request.app.state.tracker
    snapshot = tracker.snapshot() if tracker is not None else (None, {}, 0)
    # An unreadable filter is the client's mistake: a 400, with the page saying which one and why.
    filters = challenge.read_filters(request.query_params.multi_items())
    page = dashboard.render(request.app.state.holder.current().model.card, request.app.state.db, snapshot, filters)
    return _html(page, status=400 if filters.problems else 200)


@post("/login", include_in_schema=False, status_code=303)
async def login(request: Request) -> Response[Any]:
    """Check the API key typed into the sign-in page and set an HttpOnly, SameSite=Strict session cookie."""
    key = request.app.state.api_key
    if not key:
        return Redirect("/", status_code=303)
    form = await request.form()
    given = form.get("api_key")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), key.encode()):
        return _html(dashboard.login_page("wrong API key"), status=401)
    expires = int(time.time()) + SESSION_SECONDS
    cookie = Cookie(
        key=SESSION_COOKIE,
        value=session_token(key, expires),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return Redirect("/", status_code=303, cookies=[cookie])


@get("/health/live", tags=["health"], sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "alive"}


@get("/health/ready", tags=["health"], sync_to_thread=False)
def ready(request: Request) -> Response[dict[str, str]]:
    holder = request.app.state.holder
    if holder.scorer is None:
        return Response({"status": "no verified model"}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"status": "ready", "model_version": holder.scorer.version})


@get("/metrics", tags=["health"], media_type="text/plain; version=0.0.4", sync_to_thread=False)
def metrics_text(request: Request) -> bytes:
    tracker = request.app.state.tracker
    if tracker is not None:
        tracker.flush()  # this worker's window as of now; the others publish as they score
    return metrics.render()


@post("/admin/reload", tags=["admin"], status_code=200)
async def reload_model(request: Request) -> dict[str, str]:
    """Load the model folder again; a bad new model is refused and the old one keeps serving."""
    holder, admin_key = request.app.state.holder, request.app.state.admin_key
    given = request.headers.get("x-admin-key", "")
    if not admin_key or not hmac.compare_digest(given.encode(), admin_key.encode()):
        raise NotAuthorizedException(detail="reload needs the X-Admin-Key header (CASHSCORE_ADMIN_KEY)")
    old = holder.scorer.version if holder.scorer else None
    try:
        new = holder.load().version
    except CashscoreError as exc:
        raise HTTPException(status_code=409, detail=f"new model refused, still serving {old}: {exc}") from None
    return {"status": "reloaded", "previous": str(old), "model_version": new}


def _server_error(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """Log a 5xx with its request id and where it happened; never the message or the request's data."""
    rid = edge.request_id(request.scope)
    if isinstance(exc, HTTPException):
        return Response(
            {"status_code": exc.status_code, "detail": exc.detail, "request_id": rid}, status_code=exc.status_code
        )
    log.error(
        "request %s: %s %s failed with %s\n%s",
        rid,
        request.method,
        request.scope.get("path") if request.scope.get("path") in metrics.ROUTES else "other",
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
    )
    return Response(
        {"status_code": 500, "detail": "internal server error", "request_id": rid},
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


class CashscoreApp(Litestar):
    """Litestar with the edge (request ids, headers, shedding, metrics) around everything, 404s included."""

    def __init__(self, *args: Any, max_in_flight: int = MAX_IN_FLIGHT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._edge = edge.wrap(super().__call__, max_in_flight)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._edge(scope, receive, send)


def create_app(
    models: Path | None = None,
    api_key: str | None = None,
    admin_key: str | None = None,
    db: Path | None = None,
    model_version: str | None = None,
    settings: config.Settings | None = None,
) -> Litestar:
    """Build the app from the settings (read from the environment unless given); arguments override them.

    Args:
        models: the model folder (`paths.models`).
        api_key: require this key on /v1/* and the dashboard (`server.api_key`), as X-API-Key header,
            api_key parameter or the dashboard's session cookie.
        admin_key: the key for POST /admin/reload (`server.admin_key`); reload by SIGHUP needs none.
        db: the database the dashboard reads (`paths.db`): model_eval and scores tables.
        model_version: serve this version, not `models/current` (`server.model_version`): a pin for rollback.
        settings: every setting; `cashscore serve` passes them, tests usually let the environment speak.

    Returns:
        The Litestar application.
    """
    conf = settings or config.load()
    server = conf.server
    holder = ModelHolder(models or conf.paths.models, model_version or server.model_version)
    key = api_key if api_key is not None else server.api_key
    admin = admin_key if admin_key is not None else server.admin_key

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        holder.load()  # refuses to start on a missing, corrupted, tampered or incompatible model
        if conf.audit.enabled:
            # Refuses to start on a log it cannot write or whose end was cut off.
            decisions = DecisionLog(conf.audit.log, conf.audit.key)
            decisions.recover()
            app.state.audit = commit.GroupCommitter(decisions)
        loop = asyncio.get_running_loop()
        # Not in the main thread (tests) or no signals on this platform: reload by HTTP only.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, _reload_quietly, holder)
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it out
        # of the garbage collector's scans, which a 1,000-row batch otherwise triggers many times.
        gc.collect()
        gc.freeze()
        # A batch's short-lived containers (a tuple per row, its columns' lists) set off a young
        # collection every 700 (0.3 ms each, 0.39 ms a 1,000-row batch, 6 % of the loop's CPU).
        # They die with their request, so the count rarely nears GC_YOUNG; cycles are still
        # collected, less often.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(GC_YOUNG, thresholds[0]), *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            if app.state.audit is not None:
                app.state.audit.close()

    state = State(
        {
            "holder": holder,
            "max_batch": server.max_batch,
            "admin_key": admin,
            "api_key": key,
            "db": db or conf.paths.db,
            "audit": None,
            "tracker": Tracker(conf.monitoring.drift_window, metrics.drift)
            if conf.monitoring.drift_window > 0
            else None,
        }
    )
    # Single applicants read in the same turn of the event loop are scored, logged and counted together.
    state.gatherer = gather.Gatherer(functools.partial(_score_gathered, state), observe=metrics.GATHERED.observe)

    return CashscoreApp(
        route_handlers=[
            dashboard_page,
            login,
            score_post,
            score_get,
            score_batch,
            model_info,
            issue_token,
            live,
            ready,
            metrics_text,
            reload_model,
        ],
        state=state,
        lifespan=[lifespan],
        request_class=StrictRequest,
        exception_handlers={HTTP_500_INTERNAL_SERVER_ERROR: _server_error},
        max_in_flight=server.max_in_flight,
        request_max_body_size=server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="cashscore",
            version="1",
            description="Probability of default, decision and reasons for Alura Cash applicants. "
            f"Features: {', '.join(contract.NAMES)}.",
        ),
        logging_config=None,
    )


def _reload_quietly(holder: ModelHolder) -> None:
    try:
        holder.load()
    except CashscoreError as exc:
        log.error("reload refused, still serving %s: %s", holder.scorer.version if holder.scorer else None, exc)
