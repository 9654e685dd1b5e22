"""Prometheus metrics through prometheus_client: requests, errors, latency and decisions.

With several workers (`--workers N`), `run.serve` points PROMETHEUS_MULTIPROC_DIR at a fresh
folder before the workers start: each worker's counters live in files there and `/metrics`, in
whichever worker answers, adds them all up, so the view is one and coherent. prometheus_client
does this (mmap'd values, a collector that merges them) better than a hand-kept registry could.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Paths are labelled by route, never by raw URL, so label cardinality stays bounded.
ROUTES = (
    "/",
    "/v1/score",
    "/v1/score/batch",
    "/v1/model",
    "/v1/token",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/admin/reload",
    "/login",
)
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("cashscore_requests", "HTTP requests by route and status.", ["method", "route", "status"])
ERRORS = Counter(
    "cashscore_request_errors", "HTTP requests answered with a 4xx (client) or 5xx (server) status.", ["route", "kind"]
)
LATENCY = Histogram("cashscore_request_seconds", "Request latency.", ["route"], buckets=BUCKETS)
DECISIONS = Counter(
    "cashscore_decisions", "Decisions answered, by outcome and model version.", ["decision", "model_version"]
)
# How many single applicants each scoring call took together (server.gather): 1 when idle, more under load.
GATHERED = Histogram(
    "cashscore_gathered_applicants",
    "Single applicants (POST or GET /v1/score) scored together in one call.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
MODEL_LOADS = Counter(
    "cashscore_model_loads",
    "Model loads (start, SIGHUP, POST /admin/reload) by outcome: loaded, or refused with the old model kept.",
    ["outcome"],
)

# Live drift, per worker (each keeps its own window of recent applicants): with several workers
# every worker's series is kept, labelled with its pid.
DRIFT = Gauge(
    "cashscore_drift_psi",
    "PSI of the latest applicants against the training population, by feature (default_probability: the score).",
    ["feature", "model_version"],
    multiprocess_mode="liveall",
)
DRIFT_ROWS = Gauge(
    "cashscore_drift_window_applicants",
    "Applicants in the live drift window.",
    ["model_version"],
    multiprocess_mode="liveall",
)


def drift(version: str, psi: dict[str, float], rows: int) -> None:
    """Publish a window's PSI per feature."""
    for feature, value in psi.items():
        DRIFT.labels(feature, version).set(value)
    DRIFT_ROWS.labels(version).set(rows)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered (or abandoned: 499) request."""
    REQUESTS.labels(method, route, str(status)).inc()
    if status >= 400:
        ERRORS.labels(route, "client" if status < 500 else "server").inc()
    LATENCY.labels(route).observe(seconds)


def decided(decisions: list[str], version: str) -> None:
    """Count answered decisions."""
    for outcome in ("approve", "deny"):
        n = decisions.count(outcome)
        if n:
            DECISIONS.labels(outcome, version).inc(n)


def render() -> bytes:
    """Every metric in Prometheus text format: all workers' together when there are several."""
    if os.environ.get(MULTIPROCESS):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
