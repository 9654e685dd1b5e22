"""Prometheus text metrics kept in process: requests, errors and latency, labelled by model version."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Paths are labelled by route, never by raw URL, so label cardinality stays bounded.
ROUTES = (
    "/",
    "/v1/score",
    "/v1/score/batch",
    "/v1/model",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/admin/reload",
    "/login",
)


class Registry:
    """Counters and a latency histogram; a lock makes updates safe under threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(method, route, status)] += 1
            self.buckets[route][bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[route] += seconds

    def render(self, version: str) -> str:
        """The metrics in Prometheus text exposition format 0.0.4."""
        lines = [
            "# HELP cashscore_requests_total HTTP requests by route and status.",
            "# TYPE cashscore_requests_total counter",
        ]
        with self.lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(
                    f'cashscore_requests_total{{method="{method}",route="{route}",status="{status}",'
                    f'model_version="{version}"}} {n}'
                )
            lines += [
                "# HELP cashscore_request_errors_total HTTP requests answered with a 4xx or 5xx status.",
                "# TYPE cashscore_request_errors_total counter",
            ]
            errors: dict[tuple[str, str], int] = defaultdict(int)
            for (_, route, status), n in self.requests.items():
                if status >= 400:
                    errors[(route, "client" if status < 500 else "server")] += n
            for (route, kind), n in sorted(errors.items()):
                lines.append(
                    f'cashscore_request_errors_total{{route="{route}",kind="{kind}",model_version="{version}"}} {n}'
                )
            lines += [
                "# HELP cashscore_request_seconds Request latency.",
                "# TYPE cashscore_request_seconds histogram",
            ]
            for route, counts in sorted(self.buckets.items()):
                total = 0
                labels = f'route="{route}",model_version="{version}"'
                for upper, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                    total += n
                    le = "+Inf" if upper == float("inf") else repr(upper)
                    lines.append(f'cashscore_request_seconds_bucket{{{labels},le="{le}"}} {total}')
                lines.append(f"cashscore_request_seconds_sum{{{labels}}} {self.sums[route]:.6f}")
                lines.append(f"cashscore_request_seconds_count{{{labels}}} {total}")
        return "\n".join(lines) + "\n"


REGISTRY = Registry()
