"""The Litestar app: thin handlers over server.scoring, model lifecycle, auth, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from cashscore import settings as settings_module
from cashscore.errors import CashscoreError
from cashscore.modelfile import load_verified
from features import contract
from server import dashboard, metrics
from server.schemas import Applicant, BatchApplicant, BatchResult, BatchRow, Reason, Score, to_record
from server.scoring import BANDS, InvalidApplicant, Scored, Scorer, validate_categories

log = logging.getLogger("cashscore.server")


class ModelHolder:
    """The serving model; replaced whole on reload, so a request sees the old model or the new one."""

    def __init__(self, models: Path) -> None:
        self.models = models
        self.scorer: Scorer | None = None

    def load(self) -> Scorer:
        """Load and verify the model folder; on failure the current model keeps serving."""
        scorer = Scorer(load_verified(self.models))
        self.scorer = scorer
        log.info("serving model %s from %s", scorer.version, self.models)
        return scorer

    def current(self) -> Scorer:
        if self.scorer is None:
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail="no verified model is loaded")
        return self.scorer


async def require_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """With CASHSCORE_API_KEY set, /v1/* needs it as X-API-Key header or api_key parameter.

    Async on purpose: Litestar runs a sync guard in a worker thread, a handoff on every request.
    """
    key = connection.app.state.api_key
    if not key:
        return
    given = connection.headers.get("x-api-key") or connection.query_params.get("api_key") or ""
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise NotAuthorizedException(detail="missing or wrong API key (X-API-Key header or api_key parameter)")


def _score_response(scorer: Scorer, result: Scored) -> Score:
    return Score(
        default_probability=round(result.default_probability, 6),
        decision=result.decision,
        threshold=scorer.threshold,
        risk_band=result.risk_band,
        model_version=scorer.version,
        reasons=[Reason(**r) for r in result.reasons],
    )


def _score_one(holder: ModelHolder, record: dict[str, Any]) -> Score:
    scorer = holder.current()
    try:
        (result,) = scorer.score([record])
    except InvalidApplicant as exc:
        raise ValidationException(
            detail=f"Validation failed: {exc}", extra=[{"key": exc.field, "message": exc.message}]
        ) from None
    return _score_response(scorer, result)


@post("/v1/score", summary="Score one applicant", tags=["scoring"], guards=[require_key])
async def score_post(data: JSONBody[Applicant], request: Request) -> Score:  # type: ignore[valid-type]
    """Probability of default, decision, risk band and reasons for one applicant (JSON body)."""
    return _score_one(request.app.state.holder, to_record(data))


@get(
    "/v1/score", summary="Score one applicant from query parameters (Power BI)", tags=["scoring"], guards=[require_key]
)
async def score_get(request: Request) -> Score:
    """The same as POST /v1/score, with the applicant's fields as query parameters."""
    params = {k: v for k, v in request.query_params.items() if k != "api_key"}
    for key in params:
        if len(request.query_params.getall(key)) > 1:
            raise ValidationException(detail=f"Validation failed: {key} is given more than once")
    try:
        applicant = msgspec.convert(params, Applicant, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=f"Validation failed: {exc}") from None
    return _score_one(request.app.state.holder, to_record(applicant))


def _row_id(raw: msgspec.Raw) -> str | int | None:
    """The caller's id of an invalid batch row, when it has a usable one."""
    item = msgspec.json.decode(raw)
    row_id = item.get("id") if isinstance(item, dict) else None
    return row_id if isinstance(row_id, str | int) and not isinstance(row_id, bool) else None


@post("/v1/score/batch", summary="Score many applicants", tags=["scoring"], guards=[require_key])
async def score_batch(request: Request, reasons: FromQuery[bool] = True) -> BatchResult:
    """A JSON array of applicants (each may carry an `id`, echoed back); invalid rows get their own error.

    `?reasons=false` skips the reasons: one model row per applicant instead of twelve.
    """
    scorer = request.app.state.holder.current()
    max_batch = request.app.state.max_batch
    body = await request.body()
    try:
        # Fast path: the whole array is valid, decoded and checked by msgspec in one call.
        items: list[Any] = msgspec.json.decode(body, type=list[BatchApplicant])
    except msgspec.ValidationError:
        # Some rows are invalid: split the array into raw rows and decode each on its own.
        try:
            items = msgspec.json.decode(body, type=list[msgspec.Raw])
        except msgspec.ValidationError:
            raise ValidationException(detail="Validation failed: the body must be a JSON array of applicants") from None
        except msgspec.DecodeError as exc:
            raise ValidationException(detail=f"Malformed JSON: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValidationException(detail=f"Malformed JSON: {exc}") from None
    if len(items) > max_batch:
        raise ValidationException(detail=f"Validation failed: {len(items)} applicants; the maximum is {max_batch}")
    rows: list[BatchRow] = []
    valid: list[tuple[int, dict[str, Any]]] = []
    for i, item in enumerate(items):
        if isinstance(item, BatchApplicant):
            applicant = item
        else:
            try:
                applicant = msgspec.json.decode(item, type=BatchApplicant)
            except msgspec.ValidationError as exc:
                rows.append(BatchRow(index=i, id=_row_id(item), ok=False, error=str(exc)))
                continue
        try:
            record = validate_categories(to_record(applicant))
        except InvalidApplicant as exc:
            rows.append(BatchRow(index=i, id=applicant.id, ok=False, error=str(exc)))
            continue
        rows.append(BatchRow(index=i, id=applicant.id))
        valid.append((len(rows) - 1, record))
    results = scorer.score_valid([r for _, r in valid], explain=reasons)
    for (pos, _), result in zip(valid, results, strict=True):
        rows[pos].score = _score_response(scorer, result)
    return BatchResult(model_version=scorer.version, scored=len(valid), rejected=len(items) - len(valid), results=rows)


@get(
    "/v1/model",
    summary="The serving model: version, metrics, threshold policy, feature contract",
    tags=["model"],
    guards=[require_key],
)
async def model_info(request: Request) -> dict[str, Any]:
    meta = request.app.state.holder.current().model.meta
    return {
        "model_version": meta["model_version"],
        "created_at": meta["created_at"],
        "model": meta["model"],
        "threshold": meta["threshold"],
        "calibration": meta["calibration"],
        "metrics": meta["metrics"]["test"],
        "parity": meta["parity"],
        "contract": meta["contract"],
        "risk_bands": [{"below": upper, "band": name} for upper, name in BANDS],
    }


@get("/", media_type=MediaType.HTML, include_in_schema=False, sync_to_thread=True)
def dashboard_page(request: Request) -> str:
    """The dashboard: model card, portfolio of the latest stored scores, what-if form."""
    return dashboard.render(request.app.state.holder.current().model.meta, request.app.state.db)


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
def metrics_text(request: Request) -> str:
    holder = request.app.state.holder
    return metrics.REGISTRY.render(holder.scorer.version if holder.scorer else "none")


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


def create_app(
    models: Path | None = None, api_key: str | None = None, admin_key: str | None = None, db: Path | None = None
) -> Litestar:
    """Build the app; settings come from the environment unless given.

    Args:
        models: the model folder (CASHSCORE_MODELS).
        api_key: require this key on /v1/* (CASHSCORE_API_KEY), as X-API-Key header or api_key parameter.
        admin_key: the key for POST /admin/reload (CASHSCORE_ADMIN_KEY); reload by SIGHUP needs none.
        db: the database the dashboard reads (CASHSCORE_DB): model_eval and scores tables.

    Returns:
        The Litestar application.
    """
    conf = settings_module.load()
    holder = ModelHolder(models or conf.models)
    key = api_key if api_key is not None else conf.api_key
    admin = admin_key if admin_key is not None else conf.admin_key

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        holder.load()  # refuses to start on a missing, corrupted, tampered or incompatible model
        loop = asyncio.get_running_loop()
        # Not in the main thread (tests) or no signals on this platform: reload by HTTP only.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, _reload_quietly, holder)
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it out
        # of the garbage collector's scans, which a 1,000-row batch otherwise triggers many times.
        gc.collect()
        gc.freeze()
        yield

    return Litestar(
        route_handlers=[
            dashboard_page,
            score_post,
            score_get,
            score_batch,
            model_info,
            live,
            ready,
            metrics_text,
            reload_model,
        ],
        state=State(
            {"holder": holder, "max_batch": conf.max_batch, "admin_key": admin, "api_key": key, "db": db or conf.db}
        ),
        lifespan=[lifespan],
        middleware=[metrics.middleware],
        request_max_body_size=conf.max_body_bytes,
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
