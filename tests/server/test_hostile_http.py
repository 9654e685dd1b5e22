"""Hostile and careless HTTP clients: every mistake a 4xx, every 5xx logged with its request id, bounded reads."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import duckdb
import numpy as np
import pytest
from cashscore.features import rules
from cashscore.server import edge
from cashscore.server.app import create_app
from cashscore.server.protocol import MAX_HEAD_BYTES, MAX_HEADERS
from helpers.applicants import GOOD
from helpers.processes import serve_process
from litestar.testing import TestClient
from prometheus_client import REGISTRY

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("path", ["/v1/score", "/v1/score/batch"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"loan_intent": "EDUCA\xff\xfeTION"}', "not UTF-8"),
        (b'[{"loan_intent": "EDUCA\xffTION"}]', "not UTF-8"),
    ],
    ids=["nesting", "utf8-object", "utf8-array"],
)
def test_malformed_bodies_are_400(client, path, body, message):
    if path.endswith("batch") and body.startswith(b"{"):
        message = "must be a JSON array"  # refused before its strings are read
    r = client.post(path, content=body, headers=JSON)
    assert r.status_code == 400 and message in r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/v1/score", "a JSON object of the applicant's fields"), ("/v1/score/batch", "a JSON array of applicants")],
)
def test_an_empty_body_is_refused_by_name(client, path, expected):
    r = client.post(path, content=b"", headers=JSON)
    assert r.status_code == 400
    assert r.json()["detail"] == f"Validation failed: the body is empty; expected {expected}"


@pytest.mark.parametrize("value", ["1e999", "-1e999", "1e400"])
def test_non_finite_numbers_anywhere_in_a_batch_are_the_rows_own_error(client, value):
    row = json.dumps({**GOOD, "id": 1}).replace('"loan_amnt": 35000', f'"loan_amnt": {value}')
    body = f'[{row}, {{"id": {value}}}, {json.dumps(GOOD)}]'.encode()
    r = client.post("/v1/score/batch", content=body, headers=JSON)
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["ok"] for x in results] == [False, False, True]
    assert "out of range" in results[0]["error"]
    single = client.post("/v1/score", content=row.encode(), headers=JSON)
    assert single.status_code == 400


def test_a_blank_required_category_is_refused_by_every_channel(client, trained):
    blank = {**GOOD, "loan_grade": "  "}
    r = client.post("/v1/score", json=blank)
    assert r.status_code == 400 and r.json()["extra"] == [{"key": "loan_grade", "message": "required"}]
    rows = client.post("/v1/score/batch", json=[blank]).json()["results"]
    assert rows[0]["ok"] is False and rows[0]["error"] == "loan_grade: required"
    columns = {k: np.array([v], dtype=object) for k, v in blank.items()}
    from cashscore.artefact.store import load_verified
    from cashscore.scoring.scorer import Scorer

    _, problems, _ = Scorer(load_verified(trained[1])).clean_and_evaluate(columns, 1)
    assert problems.tolist() == ["loan_grade: required"]


def test_an_income_near_zero_derives_a_huge_share_instead_of_a_500(client):
    # loan_percent_income is derived as loan_amnt / person_income, rounded to 2 places: over an
    # income of 1e-300 (valid: above 0) it overflows, which Decimal's rounding once refused with a 500.
    tiny = {k: v for k, v in GOOD.items() if k != "loan_percent_income"} | {"person_income": 1e-300}
    for income in (1e-300, 5e-324, 1e-20):
        r = client.post("/v1/score", json={**tiny, "person_income": income})
        assert r.status_code == 200, r.text
        assert r.json()["decision"] in ("approve", "deny")
    rows = client.post("/v1/score/batch", json=[tiny, GOOD]).json()["results"]
    assert [row["ok"] for row in rows] == [True, True]
    cleaned, problems = rules.clean_columns({k: [v] for k, v in tiny.items()}, 1)
    assert problems.tolist() == [None] and cleaned["loan_percent_income"][0] > 1e300


def test_query_parameters_are_parsed_once_and_bounded(client):
    many = "&".join(f"p{i}=1" for i in range(5000))
    r = client.get(f"/v1/score?{many}")
    assert r.status_code == 400 and "more than 32 query parameters" in r.json()["detail"]
    params = "&".join(f"{k}={v}" for k, v in GOOD.items())
    r = client.get(f"/v1/score?{params}&loan_grade=A")
    assert r.status_code == 400 and "loan_grade is given more than once" in r.json()["detail"]


def test_a_server_error_is_logged_with_its_request_id_and_no_applicant_data(trained, caplog):
    app = create_app(trained[1], api_key="")
    with TestClient(app=app, raise_server_exceptions=False) as c:
        scorer = app.state.holder.current()

        def broken(records, *_, **__):
            raise RuntimeError(json.dumps(records[0]))  # an error whose message holds the applicant

        scorer.score_each = broken
        with caplog.at_level(logging.ERROR, logger="cashscore.server"):
            r = c.post("/v1/score", json=GOOD, headers={"X-Request-ID": "req-42"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "req-42" and r.json()["request_id"] == "req-42"
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "request req-42: POST /v1/score failed with RuntimeError" in logged
    assert "59000" not in logged and "Personal" not in logged


def test_request_ids_are_echoed_when_tame_and_made_up_otherwise(client):
    assert client.get("/health/live", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/health/live", headers={"X-Request-ID": "evil id; <script>"}).headers["x-request-id"]
    assert len(made) == 32 and made.isalnum()


def test_security_headers_on_every_response(client):
    for r in (client.get("/"), client.get("/health/live"), client.get("/nowhere")):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    page = client.get("/")
    assert "script-src 'sha256-" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_metrics_count_every_status(client):
    client.get("/no/such/page")
    client.delete("/v1/score")
    text = client.get("/metrics").text
    assert 'method="GET",route="other",status="404"' in text
    assert 'method="DELETE",route="/v1/score",status="405"' in text


def test_an_aborted_request_is_counted_as_499_not_500():
    async def abandoned(scope, receive, send):
        raise asyncio.CancelledError  # the client went away before any answer

    app = edge.wrap(abandoned, max_in_flight=4)
    scope = {"type": "http", "method": "POST", "path": "/v1/score/batch", "headers": []}
    labels = {"method": "POST", "route": "/v1/score/batch", "status": "499"}
    before = REGISTRY.get_sample_value("cashscore_requests_total", labels) or 0
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(app(scope, None, None))
    assert REGISTRY.get_sample_value("cashscore_requests_total", labels) == before + 1


def test_overload_answers_503_with_retry_after_instead_of_queueing():
    async def run() -> list[tuple[int, dict]]:
        release = asyncio.Event()

        async def slow(scope, receive, send):
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        app = edge.wrap(slow, max_in_flight=2)
        answers: list[tuple[int, dict]] = []

        async def call() -> None:
            async def send(message):
                if message["type"] == "http.response.start":
                    answers.append((message["status"], dict(message["headers"])))

            await app({"type": "http", "method": "GET", "path": "/v1/score", "headers": []}, None, send)

        tasks = [asyncio.create_task(call()) for _ in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*tasks)
        return answers

    answers = asyncio.run(run())
    assert sorted(s for s, _ in answers) == [200, 200, 503, 503, 503]
    assert all(h[b"retry-after"] == b"1" for s, h in answers if s == 503)


def test_dashboard_and_its_what_if_form_behind_the_api_key(trained):
    with TestClient(app=create_app(trained[1], api_key="k3y", db=trained[0])) as c:
        page = c.get("/")
        assert page.status_code == 401 and 'name="api_key"' in page.text and "Model" not in page.text
        assert c.post("/login", data={"api_key": "nope"}, follow_redirects=False).status_code == 401
        ok = c.post("/login", data={"api_key": "k3y"}, follow_redirects=False)
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "k3y" not in cookie
        assert c.get("/").status_code == 200
        assert c.post("/v1/score", json=GOOD).status_code in (200, 201)  # the form's own call
    with TestClient(app=create_app(trained[1], api_key="k3y")) as other:
        other.cookies.set("cashscore_session", "99999999999.forged")
        assert other.get("/").status_code == 401
        assert other.post("/v1/score", json=GOOD).status_code == 401


def test_a_stored_table_name_never_runs_as_sql_in_the_dashboard(trained, tmp_path):
    db = tmp_path / "dash.duckdb"
    shutil.copy(trained[0], db)
    canary = tmp_path / "owned.csv"
    name = f"x; copy (select 1) to '{canary}'; --"
    with duckdb.connect(str(db)) as con:
        con.execute("create schema if not exists scores")
        con.execute(
            f"create table scores.\"{name}\" as select 0.5::double as default_probability, 'deny' as decision, "
            "'B' as loan_grade, 'PERSONAL' as loan_intent, '<b>v</b>' as model_version, now() as scored_at"
        )
    with TestClient(app=create_app(trained[1], api_key="", db=db)) as c:
        page = c.get("/")
    assert page.status_code == 200 and not canary.exists()
    assert "&lt;b&gt;v&lt;/b&gt;" in page.text and "<b>v</b>" not in page.text


def raw_request(base: str, data: bytes, pause: float = 0.0) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        try:
            for i in range(0, len(data), 4096):
                s.sendall(data[i : i + 4096])
                time.sleep(pause)
        except OSError:
            pass  # the server answered and closed before the whole request was sent
        s.settimeout(10)
        try:
            return s.recv(4096)
        except OSError:
            return b""


def test_real_server_bounds_headers_and_slow_requests(trained):
    with serve_process(trained[1], env={"CASHSCORE_READ_TIMEOUT": "1"}) as (base, _):
        many = b"".join(b"x-h%d: v\r\n" % i for i in range(MAX_HEADERS + 10))
        assert raw_request(base, b"GET /health/live HTTP/1.1\r\nhost: x\r\n" + many + b"\r\n").startswith(
            b"HTTP/1.1 431"
        )
        big = b"x-big: " + b"a" * (MAX_HEAD_BYTES * 4) + b"\r\n"
        assert raw_request(base, b"GET /health/live HTTP/1.1\r\nhost: x\r\n" + big + b"\r\n").startswith(
            b"HTTP/1.1 431"
        )
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n")  # ... and the rest never comes
            started = time.monotonic()
            assert s.recv(4096).startswith(b"HTTP/1.1 408")
            assert time.monotonic() - started < 8
        with urllib.request.urlopen(f"{base}/health/live", timeout=5) as r:  # still serving
            assert r.status == 200


def test_scoring_into_the_database_while_the_dashboard_reads_it(trained, tmp_path):
    db = tmp_path / "busy.duckdb"
    shutil.copy(trained[0], db)
    statuses: list[int] = []
    stop = threading.Event()
    with serve_process(trained[1], db=db) as (base, _):

        def hammer() -> None:
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(f"{base}/", timeout=10) as r:
                        statuses.append(r.status)
                except urllib.error.HTTPError as exc:
                    statuses.append(exc.code)

        reader = threading.Thread(target=hammer)
        reader.start()
        try:
            for name in ("first", "second", "third"):
                done = subprocess.run(
                    [sys.executable, "-m", "cashscore.cli", "score", "--table", "marts.applicants", "--into", name,
                     "--reasons", "none", "--db", str(db), "--models", str(trained[1])],
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr
        finally:
            stop.set()
            reader.join()
        with urllib.request.urlopen(f"{base}/", timeout=10) as r:
            assert "scores.third" in r.read().decode()
    assert statuses and set(statuses) == {200}
