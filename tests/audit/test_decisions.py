"""Decisions reach the log before their answer, in every channel, and replay to the same answer."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
from cashscore.server.app import create_app
from helpers.applicants import GOOD
from helpers.processes import serve_process
from litestar.testing import TestClient

from cashscore.audit import log
from cashscore.audit import replay as replay_module
from cashscore.audit.replay import replay
from cashscore.cli import main
from cashscore.scoring import reasons


def kept(folder):
    return [r for _, _, r in log.records(folder)]


def test_the_api_logs_each_decision_it_answers_and_nothing_it_refuses(trained, audit_log):
    _, models, _ = trained
    with TestClient(app=create_app(models, api_key="")) as client:
        one = client.post("/v1/score", json=GOOD, headers={"X-Request-ID": "case-1"})
        assert one.status_code == 200
        assert client.post("/v1/score", json={**GOOD, "loan_grade": "Z"}).status_code == 400
        rows = [{**GOOD, "id": "a"}, {**GOOD, "id": "b", "person_age": 300}, {**GOOD, "id": "c", "loan_amnt": 1000}]
        many = client.post("/v1/score/batch", json=rows, headers={"X-Request-ID": "case-2"})
        assert many.status_code == 200 and many.json()["scored"] == 2
        got = client.get("/v1/score", params={k: str(v) for k, v in GOOD.items()}, headers={"X-Request-ID": "case-3"})
        assert got.status_code == 200
    records = kept(audit_log)
    assert [(r["request_id"], r.get("id")) for r in records] == [
        ("case-1", None),
        ("case-2", "a"),
        ("case-2", "c"),
        ("case-3", None),
    ]
    answer = one.json()
    first = records[0]
    assert round(first["default_probability"], 6) == answer["default_probability"]
    assert first["decision"] == answer["decision"] and first["model_version"] == answer["model_version"]
    assert first["reasons"] == [r["text"] for r in answer["reasons"]]
    assert first["input"]["loan_grade"] == "D" and first["input"]["person_age"] == 22.0
    by_id = {row["id"]: row for row in many.json()["results"]}
    assert records[2]["default_probability"] == pytest.approx(by_id["c"]["score"]["default_probability"], abs=1e-6)
    assert log.verify(audit_log).problem is None


def test_no_answer_leaves_when_its_decision_cannot_be_kept(trained, audit_log):
    _, models, _ = trained
    with TestClient(app=create_app(models, api_key="")) as client:
        assert client.post("/v1/score", json=GOOD).status_code == 200
        assert client.post("/v1/score", json=GOOD).status_code == 200
        (segment,) = log.segments(audit_log)
        segment.write_bytes(segment.read_bytes().splitlines(keepends=True)[0])  # someone cut the log
        refused = client.post("/v1/score", json=GOOD)
        assert refused.status_code == 503 and "decision log" in refused.json()["detail"]
        assert "default_probability" not in refused.json()
    assert len(kept(audit_log)) == 1


def test_audit_off_keeps_nothing(trained, audit_log, monkeypatch):
    monkeypatch.setenv("CASHSCORE_AUDIT", "0")
    _, models, _ = trained
    with TestClient(app=create_app(models, api_key="")) as client:
        assert client.post("/v1/score", json=GOOD).status_code == 200
    assert not log.segments(audit_log)


def test_batch_and_api_decisions_replay_exactly(trained, audit_log, tmp_path, capsys):
    db, models, _ = trained
    out = tmp_path / "s.parquet"
    assert main(["score", "--table", "marts.applicants", "--out", str(out), "--db", str(db)]
                + ["--models", str(models), "--audit"]) == 0  # fmt: skip
    with TestClient(app=create_app(models, api_key="")) as client:
        for age in (22, 40, 70):
            assert client.post("/v1/score", json={**GOOD, "person_age": age}).status_code == 200
    records = kept(audit_log)
    assert {r["channel"] for r in records} == {"batch", "api"}
    assert any(r["reasons"] for r in records if r["channel"] == "batch")  # refusals explained
    done = replay(audit_log, models)
    assert done.records == len(records) and done.differing == 0, done.differences
    # A record edited to another probability is caught by replay too.
    (segment,) = log.segments(audit_log)
    rows = segment.read_bytes().splitlines(keepends=True)
    record = json.loads(rows[0])
    record["default_probability"] = 0.123
    segment.write_bytes(log.canonical(record) + b"\n" + b"".join(rows[1:]))
    assert main(["audit", "replay", "--log", str(audit_log), "--models", str(models)]) == 1
    assert "0.123 then" in capsys.readouterr().out


def test_audit_show_explains_one_decision_and_checks_it(trained, audit_log, capsys):
    _, models, _ = trained
    refused = {**GOOD, "loan_amnt": 30000.0, "loan_percent_income": None}
    with TestClient(app=create_app(models, api_key="")) as client:
        answer = client.post("/v1/score", json=refused, headers={"X-Request-ID": "review-7"}).json()
        rows = [{**GOOD, "id": "a"}, {**GOOD, "id": "b", "loan_amnt": 1000}]
        assert client.post("/v1/score/batch", json=rows, headers={"X-Request-ID": "batch-1"}).status_code == 200
    show = ["audit", "show", "--log", str(audit_log), "--models", str(models)]
    assert main([*show, "review-7"]) == 0
    out, err = capsys.readouterr()
    assert f"decision: {answer['decision']}: probability of default {answer['default_probability']:.2%}" in out
    assert all(f". {reason['text']}" in out for reason in answer["reasons"])
    assert "Amount requested (loan_amnt): 30,000" in out
    assert f"scored again with model {answer['model_version']}: the same probability, decision and reasons" in out
    assert "the log is intact: 3 records" in err
    # A batch request's row by its id; --json for tools.
    assert main([*show, "batch-1", "--id", "b", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    shown = json.loads(line)
    assert shown["record"]["id"] == "b" and shown["record"]["input"]["loan_amnt"] == 1000.0
    assert main([*show, "nobody"]) == 1
    assert "no decision answers request 'nobody'" in capsys.readouterr().err
    # An edited record: its model gives another answer, and the chain no longer holds.
    (segment,) = log.segments(audit_log)
    lines = segment.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[0])
    record["default_probability"] = 0.0123
    segment.write_bytes(log.canonical(record) + b"\n" + b"".join(lines[1:]))
    assert main([*show, "review-7"]) == 1
    out, err = capsys.readouterr()
    assert "NOT the same: probability 0.0123 then" in out and "NOT intact" in err


def test_decisions_worded_in_portuguese_keep_their_language_and_replay(trained, audit_log, tmp_path, capsys):
    db, models, _ = trained
    refused = {**GOOD, "loan_amnt": 30000.0, "loan_percent_income": None}
    with TestClient(app=create_app(models, api_key="")) as client:
        pt = client.post("/v1/score?lang=pt", json=refused, headers={"X-Request-ID": "pt-1"}).json()
        assert client.post("/v1/score", json=refused, headers={"X-Request-ID": "en-1"}).status_code == 200
    assert main(["score", "--table", "marts.applicants", "--out", str(tmp_path / "s.parquet"), "--db", str(db),
                 "--models", str(models), "--audit", "--lang", "pt"]) == 0  # fmt: skip
    records = kept(audit_log)
    assert records[0]["reasons"] == [r["text"] for r in pt["reasons"]] and records[0]["language"] == "pt"
    assert "language" not in records[1]  # English, as every record before languages
    batch = records[2:]
    assert {r.get("language") for r in batch} == {"pt"} and any(r["reasons"] for r in batch)
    assert all(" é " in text for r in batch for text in r["reasons"] or [])
    done = replay(audit_log, models)
    assert done.records == len(records) and done.differing == 0, done.differences
    assert main(["audit", "show", "--log", str(audit_log), "--models", str(models), "pt-1"]) == 0
    shown = capsys.readouterr().out
    assert "reasons, as answered (language pt):" in shown and f"1. {pt['reasons'][0]['text']}" in shown
    assert "the same probability, decision and reasons" in shown
    # Its language edited away, the record's reasons are not what the model says in English.
    (segment,) = log.segments(audit_log)
    lines = segment.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[0])
    del record["language"]
    segment.write_bytes(log.canonical(record) + b"\n" + b"".join(lines[1:]))
    assert [d.split("): ")[1] for d in replay(audit_log, models).differences] == ["the reasons differ"]
    # A language no reasons are worded in is a finding, named, not a crash.
    record["language"] = "xx"
    segment.write_bytes(log.canonical(record) + b"\n" + b"".join(lines[1:]))
    (found,) = replay(audit_log, models).differences
    assert "its reasons' language 'xx' is none of en, pt" in found


def test_reasons_worded_by_earlier_words_are_not_compared_word_for_word(trained, audit_log, capsys):
    """Rewording the reasons (a new cashscore) must not make every old record differ on replay."""
    _, models, _ = trained
    refused = {**GOOD, "loan_amnt": 30000.0, "loan_percent_income": None}
    with TestClient(app=create_app(models, api_key="")) as client:
        for n in range(3):
            assert client.post("/v1/score", json=refused, headers={"X-Request-ID": f"r-{n}"}).status_code == 200
    (segment,) = log.segments(audit_log)
    records = [json.loads(line) for line in segment.read_bytes().splitlines()]
    assert all(r["wording"] == reasons.WORDING and r["reasons"] for r in records)
    records[0] |= {"wording": reasons.WORDING - 1, "reasons": ["raises the probability of default by 11.5 points"]}
    del records[1]["wording"]  # from before the words were versioned
    records[1]["reasons"] = ["raises the probability of default by 11.5 points"]
    records[2]["reasons"] = records[2]["reasons"][::-1] + ["edited"]  # today's words, edited
    segment.write_bytes(b"".join(log.canonical(r) + b"\n" for r in records))
    done = replay(audit_log, models)
    assert (done.records, done.differing, done.reworded) == (3, 2, 1)
    assert [d.split("): ")[1] for d in done.differences] == [
        "the reasons differ (recorded before the words were versioned: perhaps only worded differently)",
        "the reasons differ",
    ]
    assert main(["audit", "show", "--log", str(audit_log), "--models", str(models), "r-0"]) == 1  # the chain is cut
    assert "the same probability and decision (the reasons were worded by an earlier" in capsys.readouterr().out


def test_every_record_of_a_missing_version_counts_in_every_chunk(trained, audit_log, tmp_path, monkeypatch):
    _, models, _ = trained
    with TestClient(app=create_app(models, api_key="")) as client:
        for age in range(20, 27):
            assert client.post("/v1/score", json={**GOOD, "person_age": age}).status_code == 200
    monkeypatch.setattr(replay_module, "CHUNK", 3)  # seven records: chunks of 3, 3 and 1
    done = replay(audit_log, tmp_path / "no-models")  # their version is not there
    assert done.records == 7 and done.differing == 7
    assert len(done.differences) == 1 and "cannot be loaded" in done.differences[0]


def test_real_dump_decisions_replay_exactly(real_db, real_model, audit_log, tmp_path):
    out = tmp_path / "real.parquet"
    assert main(["score", "--table", "marts.applicants", "--out", str(out), "--db", str(real_db)]
                + ["--models", str(real_model), "--audit", "--reasons", "all"]) == 0  # fmt: skip
    done = replay(audit_log, real_model)
    assert done.records == 33_190 and done.differing == 0, done.differences
    assert log.verify(audit_log).records == 33_190


def test_sigkill_under_load_loses_no_answered_decision(trained, audit_log):
    _, models, _ = trained
    answered: list[str] = []
    stop = threading.Event()
    body = json.dumps(GOOD).encode()

    def client(worker: int) -> None:
        n = 0
        while not stop.is_set():
            rid = f"w{worker}-{n}"
            n += 1
            request = urllib.request.Request(
                f"{base}/v1/score", data=body, headers={"Content-Type": "application/json", "X-Request-ID": rid}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        answered.append(rid)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if stop.is_set():
                    return
                time.sleep(0.01)

    with serve_process(models) as (base, pid):
        threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(answered) < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)  # mid-load: requests are in flight, commits under way
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(10)
    assert len(answered) >= 400
    logged = {r["request_id"] for r in kept(audit_log)}
    missing = [rid for rid in answered if rid not in logged]
    assert not missing, f"{len(missing)} answered decisions are not in the log, e.g. {missing[:3]}"
    assert log.verify(audit_log).problem is None
