"""The HTTP service: every endpoint, validation, batch errors, auth, reload, metrics, a real process."""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import msgspec
import numpy as np
import pytest
from cashscore.features import contract, inputs
from cashscore.server.app import GC_YOUNG, create_app
from helpers.applicants import GOOD
from helpers.processes import serve_process
from litestar.testing import TestClient

from cashscore.artefact import store
from cashscore.scoring.scorer import Scorer


@pytest.fixture
def models(trained, tmp_path):
    """A private copy of the trained model folder (tests may tamper with it)."""
    folder = tmp_path / "models"
    shutil.copytree(trained[1], folder)
    return folder


def republish(models, **changes):
    """Publish the current model again with some card fields changed: a new, valid version."""
    loaded = store.load_verified(models)
    card = msgspec.structs.replace(loaded.card, **changes)
    published = store.publish(models, loaded.onnx_bytes, card, lambda _: "<p>report</p>", before_switch=lambda _: None)
    return published.model_version


@pytest.fixture
def client(models):
    with TestClient(app=create_app(models, api_key="", admin_key="admin-secret")) as c:
        yield c


def test_score_post(client, trained):
    r = client.post("/v1/score", json=GOOD)
    assert r.status_code == 201 or r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] in ("approve", "deny")
    assert 0 <= body["default_probability"] <= 1
    assert body["model_version"] == trained[2].model_version
    assert body["threshold"] == trained[2].threshold.value
    assert body["risk_band"] in {"very low", "low", "medium", "high", "very high"}
    assert 1 <= len(body["reasons"]) <= 4
    assert all(reason["impact"] > 0 for reason in body["reasons"])
    assert all(reason["text"] for reason in body["reasons"])


def test_score_get_matches_post(client):
    post = client.post("/v1/score", json=GOOD).json()
    get = client.get("/v1/score", params={k: str(v) for k, v in GOOD.items()})
    assert get.status_code == 200, get.text
    assert get.json() == post


def test_reasons_in_portuguese_change_only_the_words(client):
    refused = {**GOOD, "loan_amnt": 30000.0, "loan_percent_income": None}
    english = client.post("/v1/score", json=refused).json()
    portuguese = client.post("/v1/score?lang=pt", json=refused)
    assert portuguese.status_code == 200, portuguese.text
    pt = portuguese.json()
    assert {k: v for k, v in pt.items() if k != "reasons"} == {k: v for k, v in english.items() if k != "reasons"}
    assert len(pt["reasons"]) == len(english["reasons"]) >= 1
    for ours, theirs in zip(pt["reasons"], english["reasons"], strict=True):
        assert {k: v for k, v in ours.items() if k != "text"} == {k: v for k, v in theirs.items() if k != "text"}
        assert ours["text"].startswith(f"{ours['label_pt']} é ")
        assert ", o que multiplica a chance de inadimplência por " in ours["text"]
    get = client.get("/v1/score", params={**{k: str(v) for k, v in refused.items() if v is not None}, "lang": "pt"})
    assert get.json() == pt
    batch = client.post("/v1/score/batch?lang=pt", json=[{**refused, "id": 1}]).json()
    assert batch["results"][0]["score"]["reasons"] == pt["reasons"]
    for refusal in (
        client.post("/v1/score?lang=fr", json=refused),
        client.get("/v1/score", params={**{k: str(v) for k, v in GOOD.items()}, "lang": "fr"}),
        client.post("/v1/score/batch?lang=fr", json=[refused]),
    ):
        assert refusal.status_code == 400 and "lang" in refusal.text, refusal.text


def test_synonyms_any_case_and_derived_share_of_income(client):
    portuguese = {
        **GOOD,
        "person_home_ownership": "ALUGADA",
        "loan_intent": "pessoal",
        "cb_person_default_on_file": "Sim",
    }
    assert client.post("/v1/score", json=portuguese).json() == client.post("/v1/score", json=GOOD).json()
    without = {k: v for k, v in GOOD.items() if k != "loan_percent_income"}
    stated = {**GOOD, "loan_percent_income": round(35000 / 59000, 2)}
    assert client.post("/v1/score", json=without).json() == client.post("/v1/score", json=stated).json()


def test_api_scores_equal_the_onnx_model(client, models, trained):
    import duckdb

    with duckdb.connect(str(trained[0]), read_only=True) as con:
        mart = con.execute("select * from marts.applicants order by loan_id limit 300").df()
    frame = inputs.frame(mart)
    scorer = Scorer(store.load_verified(models))
    expected = scorer.session.run(None, inputs.onnx_feeds(frame))[0][:, 1]
    payload = []
    for record in mart[list(contract.NAMES)].to_dict("records"):
        payload.append(
            {
                k: (None if isinstance(v, float) and np.isnan(v) else v)
                for k, v in record.items()
                if not (v is None or (isinstance(v, float) and np.isnan(v)))
            }
        )
    body = client.post("/v1/score/batch", json=payload).json()
    got = []
    for row in body["results"]:
        got.append(row["score"]["default_probability"] if row["ok"] else None)
    # Rows the API rejects are the mart's rows without a required field (none here by construction).
    assert body["rejected"] == sum(
        1
        for p in payload
        if not all(k in p for k in ("person_age", "person_income", "loan_amnt", "loan_intent", "loan_grade"))
    )
    pairs = [(g, e) for g, e in zip(got, expected, strict=True) if g is not None]
    assert pairs and max(abs(g - e) for g, e in pairs) < 1e-6


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**GOOD, "person_age": 144}, "person_age"),
        ({**GOOD, "person_income": -5}, "person_income"),
        ({**GOOD, "loan_grade": "Z"}, "loan_grade"),
        ({**GOOD, "loan_intent": "Gambling"}, "loan_intent"),
        ({**GOOD, "favourite_colour": "blue"}, "favourite_colour"),
        ({**GOOD, "loan_amnt": "lots"}, "loan_amnt"),
        ({k: v for k, v in GOOD.items() if k != "loan_grade"}, "loan_grade"),
    ],
)
def test_invalid_applicants_get_400_naming_the_field(client, payload, field):
    r = client.post("/v1/score", json=payload)
    assert r.status_code == 400, r.text
    assert field in r.text


@pytest.mark.parametrize("raw", [b'{"person_age": NaN}', b'{"person_age": Infinity}', b"{not json", b"[1,2]", b""])
def test_malformed_json_is_400(client, raw):
    r = client.post("/v1/score", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text


def test_oversized_body_is_413(models, monkeypatch):
    monkeypatch.setenv("CASHSCORE_MAX_BODY_BYTES", "2000")
    with TestClient(app=create_app(models, api_key="")) as c:
        r = c.post("/v1/score/batch", json=[GOOD] * 50)
    assert r.status_code == 413


def test_batch_scores_valid_rows_and_reports_invalid_ones(client):
    rows = [{**GOOD, "id": "a"}, {**GOOD, "person_age": 999, "id": "b"}, {**GOOD, "id": 7, "loan_grade": "?"}, "x"]
    r = client.post("/v1/score/batch", json=rows)
    assert r.status_code in (200, 201), r.text
    body = r.json()
    assert (body["scored"], body["rejected"]) == (1, 3)
    first, second, third, fourth = body["results"]
    assert first["ok"] and first["id"] == "a" and first["score"]["decision"] in ("approve", "deny")
    assert not second["ok"] and second["id"] == "b" and "person_age" in second["error"]
    assert not third["ok"] and third["id"] == 7 and "loan_grade" in third["error"]
    assert not fourth["ok"] and fourth["index"] == 3


def test_a_batch_answers_each_row_as_the_single_endpoint_does(client):
    # The batch is scored column-wise off the event loop, the single applicant as a one-row call:
    # every answer and every refusal's words must be the same.
    rows = [
        GOOD,
        {**GOOD, "loan_grade": "g", "person_home_ownership": "rent", "loan_amnt": 30_000},
        {**GOOD, "person_income": 9_000, "cb_person_default_on_file": "y"},
        {**GOOD, "loan_grade": "Z"},
        {**GOOD, "loan_intent": "   "},
        {**GOOD, "person_home_ownership": "castle", "loan_grade": "Q"},
    ]
    query = "contributions=true&counter_offer=true&lang=pt"
    batch = client.post(f"/v1/score/batch?{query}", json=rows).json()
    assert (batch["scored"], batch["rejected"]) == (3, 3)
    for row, sent in zip(batch["results"], rows, strict=True):
        single = client.post("/v1/score?counter_offer=true&lang=pt", json=sent)
        if row["ok"]:
            assert single.status_code == 200 and row["score"] == single.json()
        else:
            assert single.status_code == 400 and row["error"] in single.json()["detail"], row["error"]
    assert "person_home_ownership: unknown category 'castle'" in batch["results"][5]["error"]
    nobody = client.post("/v1/score/batch", json=rows[3:]).json()
    assert (nobody["scored"], nobody["rejected"]) == (0, 3)
    assert [r["error"] for r in nobody["results"]] == [r["error"] for r in batch["results"][3:]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"person_age": 30}', "must be a JSON array"),
        (b'[{"person_age": 30', "Malformed JSON"),
        (b"", "the body is empty; expected a JSON array of applicants"),
    ],
)
def test_batch_body_that_is_not_an_array_of_objects(client, body, message):
    r = client.post("/v1/score/batch", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and message in r.text


def test_batch_limit(models, monkeypatch):
    monkeypatch.setenv("CASHSCORE_MAX_BATCH", "3")
    with TestClient(app=create_app(models, api_key="")) as c:
        r = c.post("/v1/score/batch", json=[GOOD] * 4)
    assert r.status_code == 400 and "maximum is 3" in r.text


def test_model_health_and_openapi(client, trained):
    info = client.get("/v1/model").json()
    assert info["model_version"] == trained[2].model_version
    assert [f["name"] for f in info["contract"]] == list(contract.NAMES)
    assert info["explanation"]["method"].startswith("path (Saabas) contributions")
    assert info["explanation"]["top1_agreement_treeshap"] == trained[2].explanation.top1_agreement_treeshap
    assert info["protected_age"] == msgspec.to_builtins(trained[2].protected_age)
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/health/ready").json()["status"] == "ready"
    schema = client.get("/schema/openapi.json").json()
    applicant = schema["components"]["schemas"]["Applicant"]["properties"]
    assert applicant["person_age"]["maximum"] == 100
    assert "Mortgage" in json.dumps(applicant["person_home_ownership"])


def test_metrics_in_prometheus_format(client, trained):
    client.post("/v1/score", json=GOOD)
    client.post("/v1/score", json={**GOOD, "person_age": 1000})
    text = client.get("/metrics").text
    version = trained[2].model_version
    assert 'cashscore_requests_total{method="POST",route="/v1/score",status="400"}' in text
    assert 'cashscore_request_errors_total{kind="client",route="/v1/score"}' in text
    assert 'cashscore_request_seconds_bucket{le="0.0005",route="/v1/score"}' in text
    assert f'cashscore_decisions_total{{decision="deny",model_version="{version}"}}' in text


def test_api_key(models):
    with TestClient(app=create_app(models, api_key="k3y")) as c:
        assert c.post("/v1/score", json=GOOD).status_code == 401
        assert c.post("/v1/score", json=GOOD, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/score", json=GOOD, headers={"X-API-Key": "k3y"}).status_code in (200, 201)
        params = {**{k: str(v) for k, v in GOOD.items()}, "api_key": "k3y"}
        assert c.get("/v1/score", params=params).status_code == 200
        assert c.get("/health/live").status_code == 200


def test_reload_swaps_a_good_model_and_refuses_a_bad_one(client, models, trained):
    assert client.post("/admin/reload").status_code == 401
    ok = client.post("/admin/reload", headers={"X-Admin-Key": "admin-secret"})
    assert ok.status_code == 200 and ok.json()["model_version"] == trained[2].model_version
    (store.current_folder(models) / store.MODEL_FILE).write_bytes(b"tampered")
    bad = client.post("/admin/reload", headers={"X-Admin-Key": "admin-secret"})
    assert bad.status_code == 409 and "sha256" in bad.text
    assert client.post("/v1/score", json=GOOD).status_code in (200, 201)  # the old model keeps serving


@pytest.mark.parametrize("damage", ["missing", "tampered", "bad-json", "other-contract"])
def test_refuses_to_start_on_a_bad_model(models, damage):
    from cashscore.core.errors import CashscoreError

    meta_path = store.current_folder(models) / store.META_FILE
    if damage == "missing":
        (store.current_folder(models) / store.MODEL_FILE).unlink()
    elif damage == "tampered":
        data = bytearray((store.current_folder(models) / store.MODEL_FILE).read_bytes())
        data[-1] ^= 1
        (store.current_folder(models) / store.MODEL_FILE).write_bytes(bytes(data))
    elif damage == "bad-json":
        meta_path.write_text("{", encoding="utf-8")
    else:
        meta = json.loads(meta_path.read_text())
        meta["contract"] = meta["contract"][:-1]
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(CashscoreError):
        store.load_verified(models)
    with pytest.raises(BaseException) as info, TestClient(app=create_app(models, api_key="")):
        pass
    assert any(isinstance(e, CashscoreError) for e in flatten(info.value))


def flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [inner for e in exc.exceptions for inner in flatten(e)]
    return [exc]


def test_reasons_come_from_additive_contributions_and_only_raise_risk(models):
    scorer = Scorer(store.load_verified(models))
    first = scorer.score([GOOD])[0]
    assert first == scorer.score([GOOD])[0]
    p, z = first.default_probability, first.base_log_odds + sum(first.contributions.values())
    assert 1 / (1 + np.exp(-z)) == pytest.approx(p, abs=1e-6)
    ranked = sorted((c for c in first.contributions.values() if c > 0), reverse=True)
    assert [r.contribution for r in first.reasons] == ranked[: len(first.reasons)]
    assert len(first.reasons) <= 4 and all(r.impact >= 0.0005 for r in first.reasons)
    for reason in first.reasons:
        without = 1 / (1 + np.exp(-(z - reason.contribution)))
        assert p - without == pytest.approx(reason.impact, abs=1e-5)
        assert reason.impact > 0


def test_real_cashscore_serve_process_over_loopback(models):
    with serve_process(models) as (base, _):
        request = urllib.request.Request(
            f"{base}/v1/score", data=json.dumps(GOOD).encode(), headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert json.loads(r.read())["decision"] in ("approve", "deny")


def test_serve_refuses_a_missing_model_with_a_clear_message(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cashscore.cli", "serve", "--models", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "current: missing; run `cashscore train" in done.stderr


def test_batch_without_reasons_scores_the_same(client):
    rows = [{**GOOD, "id": i, "loan_amnt": 500 * (i + 1)} for i in range(60)]  # > 32: the vectorised path
    full = client.post("/v1/score/batch", json=rows).json()["results"]
    lean = client.post("/v1/score/batch?reasons=false", json=rows).json()["results"]
    assert [r["score"]["default_probability"] for r in full] == [r["score"]["default_probability"] for r in lean]
    assert all(r["score"]["reasons"] == [] for r in lean)
    assert any(r["score"]["reasons"] for r in full)
    # The margin-only graph gives no base: null, as the schema says, not a number.
    assert all(r["score"]["base_log_odds"] is None for r in lean)
    assert all(isinstance(r["score"]["base_log_odds"], float) for r in full)
    with_contributions = client.post("/v1/score/batch?reasons=false&contributions=true", json=rows).json()["results"]
    assert [r["score"]["base_log_odds"] for r in with_contributions] == [r["score"]["base_log_odds"] for r in full]
    score = client.get("/schema/openapi.json").json()["components"]["schemas"]["Score"]["properties"]
    assert {"type": "null"} in score["base_log_odds"]["oneOf"]


def model_loads(base: str, outcome: str) -> float:
    """cashscore_model_loads_total{outcome} as the server reports it."""
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    found = re.search(rf'^cashscore_model_loads_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def after_sighup(base: str, pid: int, outcome: str) -> None:
    """Send SIGHUP and wait until the server has counted the reload's outcome (never a fixed sleep)."""
    before = model_loads(base, outcome)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while model_loads(base, outcome) == before:
        assert time.monotonic() < deadline, f"no {outcome} reload counted 30 s after SIGHUP"
        time.sleep(0.05)


def test_sighup_reload_refuses_a_bad_model_and_keeps_serving(models, trained):
    with serve_process(models) as (base, server_pid):
        version = json.loads(urllib.request.urlopen(f"{base}/health/ready", timeout=5).read())["model_version"]
        assert version == trained[2].model_version
        original = (store.current_folder(models) / store.MODEL_FILE).read_bytes()
        (store.current_folder(models) / store.MODEL_FILE).write_bytes(b"tampered")
        after_sighup(base, server_pid, "refused")
        request = urllib.request.Request(
            f"{base}/v1/score", data=json.dumps(GOOD).encode(), headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert json.loads(r.read())["model_version"] == trained[2].model_version
        (store.current_folder(models) / store.MODEL_FILE).write_bytes(original)
        # A valid model with another version: the reload must take it.
        new = republish(models, created_at="2031-01-01T00:00:00+00:00")
        after_sighup(base, server_pid, "loaded")
        ready = json.loads(urllib.request.urlopen(f"{base}/health/ready", timeout=5).read())
        assert ready == {"status": "ready", "model_version": new}


def test_a_score_never_depends_on_its_batch(models, trained):
    import duckdb

    with duckdb.connect(str(trained[0]), read_only=True) as con:
        mart = con.execute("select * from marts.applicants order by loan_id limit 600").df()
    feeds = inputs.onnx_feeds(inputs.frame(mart))
    scorer = Scorer(store.load_verified(models))
    together = scorer.run(feeds)  # 600 rows: two halves scored at once
    alone = [scorer.run({k: v[i : i + 1] for k, v in feeds.items()})[0] for i in range(len(together))]
    assert together.tolist() == alone


def test_reload_to_a_new_version_under_load_fails_no_request(models, trained):
    old = trained[2].model_version
    answers: list[tuple[float, int, str]] = []  # (start time, status, model version)
    stop = threading.Event()
    body = json.dumps(GOOD).encode()

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            request = urllib.request.Request(
                f"{base}/v1/score", data=body, headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    answers.append((started, r.status, json.loads(r.read())["model_version"]))
            except urllib.error.HTTPError as exc:
                answers.append((started, exc.code, ""))
            except OSError:  # refused, reset, timed out: a failed request all the same
                answers.append((started, 0, ""))

    with serve_process(models, env={"CASHSCORE_ADMIN_KEY": "admin-k"}) as (base, _):
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(answers) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        new = republish(models, created_at="2031-01-01T00:00:00+00:00")
        reload = urllib.request.Request(f"{base}/admin/reload", data=b"", headers={"X-Admin-Key": "admin-k"})
        with urllib.request.urlopen(reload, timeout=30) as r:
            assert json.loads(r.read())["model_version"] == new
        switched = time.monotonic()
        count = len(answers)
        while len(answers) < count + 100 and time.monotonic() < deadline + 60:
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(10)
    assert {status for _, status, _ in answers} == {200}  # not one request failed across the swap
    assert {version for _, _, version in answers} == {old, new}
    assert all(version == new for started, _, version in answers if started > switched)


def test_serving_raises_the_young_collection_threshold_and_restores_it(models):
    before = gc.get_threshold()
    with TestClient(app=create_app(models, api_key="")) as c:
        assert c.get("/health/ready").status_code == 200
        assert gc.get_threshold() == (max(GC_YOUNG, before[0]), *before[1:])
    assert gc.get_threshold() == before
