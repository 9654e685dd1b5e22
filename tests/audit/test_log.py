"""The decision log's chain: every kind of tampering is caught, crashes are repaired, workers share one chain."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import shutil
from datetime import UTC, datetime, timedelta

import msgspec
import pyarrow.parquet as pq
import pytest
from cashscore.features import contract

from cashscore.audit import commit, log
from cashscore.audit.export import export
from cashscore.cli import main
from cashscore.core.errors import CashscoreError
from cashscore.scoring.reasons import WORDING
from cashscore.scoring.scorer import Inputs

KEY = "k3y-for-tests"


def decision(i: int, time: str | None = None) -> log.Record:
    return commit.decision(
        f"req-{i}",
        "api",
        "20260101T000000Z-000000000000",
        0.2,
        {"person_age": 30.0 + i, "loan_grade": "B"},
        0.01 * (i % 100),
        "deny" if i % 3 == 0 else "approve",
        [f"reason {i}"] if i % 3 == 0 else None,
        time=time,
    )


def filled(folder, key=None, n=12):
    decisions = log.DecisionLog(folder, key)
    for start in range(0, n, 4):
        decisions.append([decision(i) for i in range(start, min(n, start + 4))])
    decisions.close()
    (segment,) = log.segments(folder)
    return segment


def lines(segment):
    return segment.read_bytes().splitlines(keepends=True)


def rehash(record: dict, key: str | None) -> dict:
    """What a forger who knows the format (and maybe the key) writes after an edit."""
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    digest = hashlib.sha256(log.canonical(body)).hexdigest()
    out = {**body, "hash": digest}
    if key:
        import hmac

        out["mac"] = hmac.new(key.encode(), digest.encode(), hashlib.sha256).hexdigest()
    return out


def test_an_untouched_log_verifies(tmp_path):
    filled(tmp_path / "a")
    verdict = log.verify(tmp_path / "a")
    assert verdict.problem is None and verdict.records == 12


def test_a_record_is_stored_as_its_dict_with_sorted_keys_and_its_unset_fields_left_out(tmp_path):
    given = [30.0, 5e4, "RENT", None, "EDUCATION", "B", 1e4, 11.5, 0.2, "N", 3.0]
    values = dict(zip(contract.NAMES, given, strict=True))
    offer = {"loan_amnt": 9000.0, "default_probability": 0.18}
    kept = [
        commit.decision("r1", "api", "v1", 0.2, Inputs(*values.values()), 0.31, "deny", ["a", "b"], "pt",
                        id="row-7", worker=42, counter_offer=offer),
        commit.decision("r2", "batch", "v1", 0.2, values, 0.01, "approve", None, id=None),
    ]  # fmt: skip
    log.DecisionLog(tmp_path / "a").append(kept)
    assert log.verify(tmp_path / "a").problem is None
    stored = lines(log.segments(tmp_path / "a")[0])
    first, second = (json.loads(line) for line in stored)
    # Each line is the canonical JSON of the record read back as a dict: sorted keys, the hash last.
    for line, record in zip(stored, (first, second), strict=True):
        body = {k: v for k, v in record.items() if k != "hash"}
        assert line == log.canonical(body)[:-1] + f',"hash":"{record["hash"]}"}}\n'.encode()
    assert first["input"] == second["input"] == values
    assert [first[k] for k in ("language", "wording", "id", "worker", "counter_offer", "seq")] == [
        "pt", WORDING, "row-7", 42, offer, 1
    ]  # fmt: skip
    # Unset fields are left out; a null id stays null (a batch row whose id column is null).
    assert not {"language", "wording", "worker", "counter_offer"} & set(second) and second["id"] is None


@pytest.mark.parametrize("key", [None, KEY])
@pytest.mark.parametrize("tamper", ["edit", "delete", "delete_last", "insert", "reorder"])
def test_every_kind_of_tampering_is_caught(tmp_path, key, tamper):
    segment = filled(tmp_path / "a", key)
    rows = lines(segment)
    if tamper == "edit":
        record = json.loads(rows[5])
        record["decision"] = "approve" if record["decision"] == "deny" else "deny"
        rows[5] = log.canonical(record) + b"\n"
    elif tamper == "delete":
        del rows[5]
    elif tamper == "delete_last":
        del rows[-1]
    elif tamper == "insert":
        rows.insert(5, rows[2])
    else:
        rows[4], rows[5] = rows[5], rows[4]
    segment.write_bytes(b"".join(rows))
    verdict = log.verify(tmp_path / "a", key)
    assert verdict.problem is not None
    first_bad = {"edit": 6, "delete": 6, "insert": 6, "reorder": 5}.get(tamper)
    if first_bad:
        assert f"{segment.name}:{first_bad}:" in verdict.problem  # the first bad record is named
    assert verdict.records <= 11


def test_an_edit_with_recomputed_hashes_needs_the_key_to_be_caught(tmp_path):
    for key in (None, KEY):
        folder = tmp_path / str(key)
        segment = filled(folder, key)
        rows = [json.loads(r) for r in lines(segment)]
        rows[3]["default_probability"] = 0.99
        # The forger recomputes every hash after the edit, without the key.
        prev = rows[2]["hash"]
        for r in rows[3:]:
            r["prev"] = prev
            r.update(rehash(r, None))
            prev = r["hash"]
        segment.write_bytes(b"".join(log.canonical(r) + b"\n" for r in rows))
        head = json.loads((folder / log.HEAD).read_bytes())
        head["hash"] = prev
        (folder / log.HEAD).write_bytes(log.canonical(head))
        verdict = log.verify(folder, key)
        if key is None:
            assert verdict.problem is None  # the stated limit without a key
        else:
            assert verdict.problem is not None


def test_the_cli_exits_1_naming_the_record(tmp_path, capsys, monkeypatch):
    segment = filled(tmp_path / "a", KEY)
    monkeypatch.setenv("CASHSCORE_AUDIT_KEY", KEY)
    assert main(["audit", "verify", "--log", str(tmp_path / "a")]) == 0
    rows = lines(segment)
    segment.write_bytes(b"".join(rows[:3] + rows[4:]))
    assert main(["audit", "verify", "--log", str(tmp_path / "a")]) == 1
    assert f"{segment.name}:4" in capsys.readouterr().err
    monkeypatch.setenv("CASHSCORE_AUDIT_KEY", "another key")
    segment.write_bytes(b"".join(rows))
    assert main(["audit", "verify", "--log", str(tmp_path / "a")]) == 1


def test_a_torn_last_line_is_cut_and_the_chain_goes_on(tmp_path):
    folder = tmp_path / "a"
    segment = filled(folder)
    with segment.open("ab") as handle:
        handle.write(b'{"channel":"api","decision":"de')  # a write a SIGKILL interrupted
    assert log.verify(folder).problem is None  # never acknowledged: not tampering
    decisions = log.DecisionLog(folder)
    decisions.append([decision(99)])
    decisions.close()
    verdict = log.verify(folder)
    assert verdict.problem is None and verdict.records == 13


def test_a_log_cut_before_its_head_refuses_new_records(tmp_path):
    folder = tmp_path / "a"
    segment = filled(folder)
    segment.write_bytes(b"".join(lines(segment)[:-2]))
    decisions = log.DecisionLog(folder)
    with pytest.raises(Exception, match="records were removed"):
        decisions.append([decision(99)])


def _writer(folder: str, worker: int) -> None:
    decisions = log.DecisionLog(folder, KEY)
    for i in range(50):
        decisions.append([decision(worker * 1000 + i), decision(worker * 1000 + i + 500)])


def test_several_processes_extend_one_chain(tmp_path):
    folder = tmp_path / "a"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(folder), w)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    verdict = log.verify(folder, KEY)
    assert verdict.problem is None and verdict.records == 300


def test_group_commit_resolves_every_waiting_future(tmp_path):
    committer = commit.GroupCommitter(log.DecisionLog(tmp_path / "a"))
    futures = [committer.submit([decision(i)]) for i in range(200)]
    for f in futures:
        assert f.result(10) is None
    committer.close()
    assert log.verify(tmp_path / "a").records == 200


def test_records_are_durable_before_the_head_moves_and_a_crash_between_loses_nothing(tmp_path):
    folder, crashed = tmp_path / "a", tmp_path / "crashed"
    filled(folder, KEY)
    decisions = log.DecisionLog(folder, KEY)
    seen = []

    def durable():
        # What a crash right now would leave: the new records on disk, the head not yet moved.
        seen.append((log.verify(folder, KEY).records, json.loads((folder / log.HEAD).read_text())["seq"]))
        shutil.copytree(folder, crashed)

    decisions.append([decision(i) for i in range(20, 25)], durable)
    decisions.close()
    assert seen == [(17, 12)]
    assert json.loads((folder / log.HEAD).read_text())["seq"] == 17
    after = log.DecisionLog(crashed, KEY)
    assert after.recover().seq == 17  # the records beyond the head are adopted
    after.append([decision(99)])
    after.close()
    verdict = log.verify(crashed, KEY)
    assert verdict.problem is None and verdict.records == 18


def test_a_head_that_cannot_be_replaced_fails_no_decision_already_kept(tmp_path, monkeypatch, caplog):
    committer = commit.GroupCommitter(log.DecisionLog(tmp_path / "a"))
    assert committer.submit([decision(0)]).result(10) is None
    real = log._write_json
    failures = iter([OSError(28, "No space left on device")])

    def flaky(path, value, key):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(path, value, key)

    monkeypatch.setattr(log, "_write_json", flaky)
    with caplog.at_level(logging.ERROR, logger="cashscore.audit"):
        assert committer.submit([decision(1), decision(2)]).result(10) is None
        assert committer.submit([decision(3)]).result(10) is None  # the next commit reads the end again
    # Said once the writer is past that commit (its requests were answered before).
    assert "the records are kept but the head was not replaced" in caplog.text
    committer.close()
    verdict = log.verify(tmp_path / "a")
    assert verdict.problem is None and verdict.records == 4


def test_prune_keeps_the_retention_period_and_the_chain_verifies(tmp_path):
    folder = tmp_path / "a"
    decisions = log.DecisionLog(folder, KEY)
    for month in ("2023-01", "2023-06", "2024-11", "2026-10", "2026-11"):
        decisions.append([decision(i, f"{month}-15T10:00:00.000000Z") for i in range(3)])
    removed = decisions.prune(25, today=datetime(2026, 11, 27, tzinfo=UTC))
    assert [p.name for p in removed] == ["decisions-2023-01.jsonl", "decisions-2023-06.jsonl"]
    assert [p.name for p in log.segments(folder)] == [
        "decisions-2024-11.jsonl",
        "decisions-2026-10.jsonl",
        "decisions-2026-11.jsonl",
    ]
    verdict = log.verify(folder, KEY)
    assert verdict.problem is None and verdict.records == 9
    # Removing a month by hand (not by prune) is still caught.
    (folder / "decisions-2024-11.jsonl").unlink()
    assert log.verify(folder, KEY).problem is not None


def test_export_writes_the_period_as_parquet(tmp_path):
    folder = tmp_path / "a"
    decisions = log.DecisionLog(folder)
    october = [decision(i, f"2026-10-{10 + i:02d}T08:00:00.000000Z") for i in range(10)]
    offer = {"loan_amnt": 12000.0, "default_probability": 0.15}
    october[3] = msgspec.structs.replace(october[3], language="pt", counter_offer=offer)
    decisions.append(october)
    decisions.append([decision(i, "2026-11-02T08:00:00.000000Z") for i in range(10, 13)])
    out = tmp_path / "oct.parquet"
    assert export(folder, out, since="2026-10-12", until="2026-11-01") == 8
    table = pq.read_table(out).to_pylist()
    assert [r["request_id"] for r in table] == [f"req-{i}" for i in range(2, 10)]
    assert table[0]["person_age"] == 32.0 and table[0]["loan_grade"] == "B"
    assert table[1]["reasons"] == "reason 3" and table[0]["reasons"] is None
    assert (table[1]["language"], table[1]["counter_offer_amount"], table[1]["counter_offer_probability"]) == (
        "pt",
        12000.0,
        0.15,
    )
    assert table[0]["language"] is None and table[0]["counter_offer_amount"] is None  # no reasons, no offer
    assert table[4]["language"] == "en"  # explained, in English


def test_export_reads_only_the_months_of_its_period(tmp_path):
    folder = tmp_path / "a"
    decisions = log.DecisionLog(folder)
    for month in ("09", "10", "11"):
        decisions.append([decision(i, f"2026-{month}-15T08:00:00.000000Z") for i in range(3)])
    # September's segment is not read for October: a line there that is not JSON does not stop it.
    with (folder / "decisions-2026-09.jsonl").open("ab") as segment:
        segment.write(b"not json\n")
    out = tmp_path / "oct.parquet"
    assert export(folder, out, since="2026-10-01", until="2026-11-01") == 3
    assert {r["time"].month for r in pq.read_table(out).to_pylist()} == {10}
    with pytest.raises(CashscoreError, match="decisions-2026-09.jsonl:4: not a JSON record"):
        export(folder, tmp_path / "all.parquet", since="2026-09-01")


def segment_of(folder):
    (segment,) = log.segments(folder)
    return segment.name


def test_find_reads_only_the_lines_of_its_request_and_matches_exactly(tmp_path):
    from cashscore.audit import lookup

    folder = tmp_path / "a"
    odd = 'quote " backslash \\ é 💳'
    records = [decision(i) for i in range(12)]
    records[4].request_id = odd
    records[7].request_id = odd + "-later"
    log.DecisionLog(folder).append(records)
    assert [(f.record["request_id"], f.where) for f in lookup.find(folder, odd)] == [(odd, f"{segment_of(folder)}:5")]
    assert [f.record["request_id"] for f in lookup.find(folder, "req-1")] == ["req-1"]  # not req-10, req-11
    assert list(lookup.find(folder, "req-")) == []
    (segment,) = log.segments(folder)
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(b"".join(lines[:2]) + b"not json\n" + b"".join(lines[3:]))
    assert [f.record["request_id"] for f in lookup.find(folder, "req-11")] == ["req-11"]  # the prefilter skips it
    with pytest.raises(CashscoreError, match="not a JSON record"):
        list(log.records(folder))  # which verify and replay still read


@pytest.mark.parametrize(
    "ns",
    [0, 1_764_374_400_000_000_000, 1_764_374_399_999_999_999, 1_767_225_599_000_001_000, 1_767_225_600_000_000_999],
)
def test_a_records_time_is_utc_to_the_microsecond_across_seconds_and_months(monkeypatch, ns):
    # Each time read twice: the second reuses the whole seconds formatted by the first.
    for _ in range(2):
        monkeypatch.setattr(log.time, "time_ns", lambda: ns)
        want = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert log.now() == want
