"""Single applicants read together are scored in one call, and each still gets exactly its own answer."""

from __future__ import annotations

import asyncio
import json

import pytest
from cashscore.server.app import create_app
from cashscore.server.gather import Gatherer
from helpers.applicants import GOOD
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from cashscore.audit import log


def gathered() -> tuple[float, float]:
    """(calls, applicants) the server's gatherer has made and scored so far in this process."""
    count = REGISTRY.get_sample_value("cashscore_gathered_applicants_count") or 0.0
    total = REGISTRY.get_sample_value("cashscore_gathered_applicants_sum") or 0.0
    return count, total


def test_items_awaited_in_one_turn_share_one_call_per_key_in_order():
    calls = []

    async def run(key, items):
        calls.append((key, list(items)))
        return [f"{key}:{item}" for item in items]

    async def main():
        gather = Gatherer(run)
        asks = [("en", 1), ("pt", 2), ("en", 3), ("en", 4), ("pt", 5)]
        return await asyncio.gather(*(gather(key, item) for key, item in asks))

    assert asyncio.run(main()) == ["en:1", "pt:2", "en:3", "en:4", "pt:5"]
    assert calls == [("en", [1, 3, 4]), ("pt", [2, 5])]


def test_a_lone_item_is_answered_without_waiting_for_company():
    calls = []

    async def run(key, items):
        calls.append(len(items))
        return items

    async def main():
        gather = Gatherer(run)
        first = await gather("k", 1)
        second = await gather("k", 2)
        return first, second

    assert asyncio.run(main()) == (1, 2)
    assert calls == [1, 1]


def test_the_limit_splits_a_crowd_into_calls_of_that_size():
    sizes = []

    async def run(key, items):
        sizes.append(len(items))
        return items

    async def main():
        gather = Gatherer(run, limit=3, observe=lambda n: None)
        return await asyncio.gather(*(gather("k", i) for i in range(8)))

    assert asyncio.run(main()) == list(range(8))
    assert sizes == [3, 3, 2]


def test_an_item_refused_fails_its_caller_alone_and_a_failed_call_fails_only_its_own():
    async def run(key, items):
        if key == "broken":
            raise RuntimeError("the call failed")
        return [ValueError(f"bad {item}") if item < 0 else item for item in items]

    async def main():
        gather = Gatherer(run)
        return await asyncio.gather(
            gather("ok", 1), gather("ok", -2), gather("broken", 3), gather("ok", 4), return_exceptions=True
        )

    one, bad, broken, four = asyncio.run(main())
    assert (one, four) == (1, 4)
    assert isinstance(bad, ValueError) and str(bad) == "bad -2"
    assert isinstance(broken, RuntimeError) and str(broken) == "the call failed"


def test_a_caller_that_went_away_does_not_disturb_the_others():
    async def run(key, items):
        await asyncio.sleep(0.01)
        return items

    async def main():
        gather = Gatherer(run)
        leaving = asyncio.ensure_future(gather("k", 1))
        staying = asyncio.ensure_future(gather("k", 2))
        await asyncio.sleep(0.001)
        leaving.cancel()
        return await staying

    assert asyncio.run(main()) == 2


def test_a_wrong_count_of_results_fails_the_callers_instead_of_misanswering_them():
    async def run(key, items):
        return items[:-1]

    async def main():
        gather = Gatherer(run)
        return await asyncio.gather(gather("k", 1), gather("k", 2), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) and "2 items but got 1" in str(r) for r in asyncio.run(main()))


# Applicants of every kind: accepted, refused by a category, refused by the contract's rules,
# with a counter-offer, in Portuguese; each is sent alone first, then all at once.
ASKS = [
    ("/v1/score", GOOD),
    ("/v1/score", {**GOOD, "loan_amnt": 1000, "person_income": 90000}),
    ("/v1/score", {**GOOD, "loan_grade": "Z"}),
    ("/v1/score", {**GOOD, "person_age": 300}),
    ("/v1/score?counter_offer=true", {**GOOD, "loan_amnt": 30000, "person_income": 20000, "loan_grade": "F"}),
    ("/v1/score?lang=pt", {**GOOD, "loan_intent": "Educação"}),
    ("/v1/score", {**GOOD, "person_home_ownership": "own", "cb_person_default_on_file": "N"}),
    ("/v1/score?counter_offer=true", GOOD),
]


async def post(app, url: str, body: dict, rid: str) -> tuple[int, dict, str]:
    """POST straight through the app's ASGI interface (a test client's own awaits would stagger the
    requests over several turns of the loop; a server reads them in one)."""
    path, _, query = url.partition("?")
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [*headers, (b"x-request-id", rid.encode())], "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent = []

    async def receive():
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start, *bodies = sent
    answer = json.loads(b"".join(m.get("body", b"") for m in bodies))
    return start["status"], answer, dict(start["headers"])[b"x-request-id"].decode()


@pytest.mark.parametrize("copies", [1, 6])
def test_requests_scored_together_get_the_answers_they_get_alone_and_each_is_logged_as_its_own(
    trained, audit_log, copies
):
    _, models, _ = trained
    app = create_app(models, api_key="")

    async def main():
        async with AsyncTestClient(app=app):  # the app's startup and shutdown
            alone = [await post(app, url, body, f"alone-{i}") for i, (url, body) in enumerate(ASKS)]
            asks = [(f"{i}-{k}", url, body) for k in range(copies) for i, (url, body) in enumerate(ASKS)]
            before = gathered()
            together = await asyncio.gather(*(post(app, url, body, rid) for rid, url, body in asks))
            return alone, asks, together, before, gathered()

    alone, asks, together, before, after = asyncio.run(main())
    assert [status for status, _, _ in alone] == [200, 200, 400, 400, 200, 200, 200, 200]
    for (rid, _, _), (status, answer, echoed) in zip(asks, together, strict=True):
        expected_status, expected, _ = alone[int(rid.split("-")[0])]
        assert (status, echoed) == (expected_status, rid)
        assert {k: v for k, v in answer.items() if k != "request_id"} == {
            k: v for k, v in expected.items() if k != "request_id"
        }
    calls, applicants = after[0] - before[0], after[1] - before[1]
    # Every request the schema let through (the unknown grade never reaches the model) was scored,
    # in one call per set of options: plain English, counter-offers, Portuguese.
    assert applicants == len(asks) - copies
    assert calls == 3
    # Each decision carries the id of the request that asked for it; the refused left nothing.
    accepted = {rid for (rid, _, _), (status, _, _) in zip(asks, together, strict=True) if status == 200}
    logged = [r["request_id"] for _, _, r in log.records(audit_log) if not r["request_id"].startswith("alone")]
    assert sorted(logged) == sorted(accepted)
    assert log.verify(audit_log).problem is None


def test_the_gathered_sizes_are_published(trained):
    _, models, _ = trained
    app = create_app(models, api_key="")

    async def main():
        async with AsyncTestClient(app=app) as client:
            await asyncio.gather(*(client.post("/v1/score", json=GOOD) for _ in range(4)))
            return (await client.get("/metrics")).text

    text = asyncio.run(main())
    assert "cashscore_gathered_applicants_bucket" in text and "cashscore_gathered_applicants_count" in text
