"""Two worker processes: one coherent /metrics, one decision log chain."""

from __future__ import annotations

import json
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from helpers.applicants import GOOD
from helpers.processes import serve_process

from cashscore.audit import log

N = 60


def post(url: str) -> int:
    request = urllib.request.Request(url, data=json.dumps(GOOD).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def count(text: str, status: str) -> float:
    pattern = rf'cashscore_requests_total\{{method="POST",route="/v1/score",status="{status}"\}} ([\d.e+]+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_two_workers_count_every_request_once_and_share_one_chain(trained, audit_log):
    _, models, _ = trained
    sent = 0
    with serve_process(models, args=["--workers", "2"]) as (base, _):
        # Readiness is one worker's answer; the other may still be starting and the kernel may hand
        # it nothing for a while: send rounds until both have decided (each record names its process).
        for _ in range(20):
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: post(f"{base}/v1/score"), range(N)))
            assert statuses == [200] * N
            sent += N
            if len({r["worker"] for _, _, r in log.records(audit_log)}) == 2:
                break
        for _ in range(8):  # each scrape may be answered by either worker
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
                text = response.read().decode()
            assert count(text, "200") == sent
    verdict = log.verify(audit_log)
    assert verdict.problem is None and verdict.records == sent
    # Both workers decided: the totals above add two registries.
    assert len({r["worker"] for _, _, r in log.records(audit_log)}) == 2
