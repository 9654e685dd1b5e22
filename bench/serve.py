"""Load-test `cashscore serve` and the FastAPI + pydantic + joblib baseline on loopback, in the same run,
beside two ceilings (bench/bare_app.py): a bare Litestar handler, and one that only calls Scorer.score.

Needs wrk (Debian package `wrk`; `make bench` installs it) and the `bench` extra (FastAPI, pydantic).
Run: `.venv/bin/python bench/serve.py --db data/cashscore.duckdb --models models` after `make run`
or a restore and train of the real dump. One worker each; 16 connections for single applicants, 2 and 4 for
batches of 1,000 (`--batch-connections`); bounded in time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import joblib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import median_seconds, refit, whole, wholes  # noqa: E402
from cashscore.features import contract, inputs, rules  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.audit import log as audit_log  # noqa: E402
from cashscore.scoring.scorer import Scorer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APPLICANT = {
    "person_age": 22, "person_income": 59000, "person_home_ownership": "Rent", "person_emp_length": 3,
    "loan_intent": "Personal", "loan_grade": "D", "loan_amnt": 35000, "loan_int_rate": 16.02,
    "loan_percent_income": 0.59, "cb_person_default_on_file": "Y", "cb_person_cred_hist_length": 3,
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start")


def wait_posts(url: str, seconds: float = 60) -> None:
    """Wait until a POST-only endpoint answers (any HTTP status means the server is up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start")


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of a process's main thread and of its other threads, ended ones included
    (Linux /proc; NaN elsewhere)."""
    if not Path(f"/proc/{pid}/stat").is_file():
        return math.nan, math.nan

    def used(stat: Path) -> float:
        # utime and stime: fields 14 and 15, counted after the parenthesised command name.
        fields = stat.read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    main = used(Path(f"/proc/{pid}/task/{pid}/stat"))
    return main, used(Path(f"/proc/{pid}/stat")) - main


def wrk(url: str, body: str, connections: int, seconds: int, work: Path, pid: int) -> dict[str, float]:
    """wrk's rate and latencies, and the CPU each request cost the server's (`pid`) main
    thread, its other threads (the scoring pool, onnxruntime, the log's writer) and wrk itself, in ms."""
    script = work / "post.lua"
    (work / "body.json").write_text(body)
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{work / "body.json"}", "r")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    before, client = thread_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    after, done = thread_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    served = float(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    wrk_cpu = done.ru_utime + done.ru_stime - client.ru_utime - client.ru_stime
    return {
        "rps": rate,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "errors": errors,
        "main_ms": 1e3 * (after[0] - before[0]) / served,
        "other_ms": 1e3 * (after[1] - before[1]) / served,
        "client_ms": 1e3 * wrk_cpu / served,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=ROOT / "data/cashscore.duckdb")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--seconds", type=whole(1, 3600), default=8, help="seconds per wrk run")
    rounds = whole(1, 100)
    parser.add_argument("--rounds", type=rounds, default=3, help="interleaved rounds per side (medians reported)")
    parser.add_argument(
        "--batch-connections",
        type=wholes(1, 256),
        default="2,4",
        help="connections for the batch runs, comma-separated: 2 has one batch in flight per core, so a core "
        "idles while its batch is on the wire or in wrk (latency-bound); 4 keeps both cores busy (capacity)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sk, card, X = refit(args.db, args.models)
        joblib.dump(sk, work / "baseline.joblib")
        ours, off, base, bare = free_port(), free_port(), free_port(), free_port()
        env = {
            **os.environ,
            "BASELINE_MODEL": str(work / "baseline.joblib"),
            "BASELINE_THRESHOLD": str(card.threshold.value),
            "BASELINE_A": str(card.calibration.a),
            "BASELINE_B": str(card.calibration.b),
            "BASELINE_ONNX": str(store.current_folder(args.models) / store.MODEL_FILE),
            "PYTHONPATH": str(ROOT / "bench"),
            "BARE_MODELS": str(args.models),
        }
        serve = [sys.executable, "-m", "cashscore.cli", "serve", "--models", str(args.models), "--port"]
        procs = [
            subprocess.Popen(
                [*serve, str(ours)],
                env={**os.environ, "CASHSCORE_AUDIT": "1", "CASHSCORE_AUDIT_LOG": str(work / "audit")},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [*serve, str(off)],
                env={**os.environ, "CASHSCORE_AUDIT": "0"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "baseline_app:app",
                    "--port",
                    str(base),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare), "--http", "httptools"]
                + ["--log-level", "warning", "--no-access-log"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        try:
            wait_ready(f"http://127.0.0.1:{ours}/health/ready")
            wait_ready(f"http://127.0.0.1:{off}/health/ready")
            wait_ready(f"http://127.0.0.1:{base}/docs")
            wait_posts(f"http://127.0.0.1:{bare}/v1/score")
            one = json.dumps(APPLICANT)
            # Interleaved rounds, medians reported: the machine's noise hits both sides alike.
            pids = {ours: procs[0].pid, off: procs[1].pid, base: procs[2].pid, bare: procs[3].pid}
            sides = {
                "cashscore POST /v1/score": (ours, "/v1/score"),
                "cashscore, decision log off": (off, "/v1/score"),
                "baseline FastAPI /predict": (base, "/predict"),
                "FastAPI + onnxruntime": (base, "/predict-onnx"),
                "bare Litestar, constant": (bare, "/v1/score"),
                "bare Litestar + Scorer.score": (bare, "/v1/score-model"),
            }
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, (port, path) in sides.items():
                    rounds[name].append(wrk(f"http://127.0.0.1:{port}{path}", one, 16, args.seconds, work, pids[port]))
            results = {
                name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in rounds.items()
            }
            records = X.head(1000).astype(object).where(X.head(1000).notna(), None).to_dict("records")
            batch = json.dumps([{k: v for k, v in r.items() if v not in ("", None)} for r in records])
            # The batches too in interleaved rounds, medians reported: one run each swung by 10 %.
            batch_urls = {
                (log_state, words): (port, f"http://127.0.0.1:{port}/v1/score/batch{query}")
                for port, log_state in ((ours, "log on"), (off, "log off"))
                for query, words in (("", "with reasons"), ("?reasons=false", "?reasons=false"))
            }
            # The limit for batches: onnxruntime alone on both cores over the same rows (the ones the
            # contract accepts), as cashscore runs it, inputs built beforehand; measured in this process
            # right before each batch run, while the servers idle: the machine's speed drifts by a
            # quarter within minutes, so each run is set against the raw rate of its own moment.
            scorer = Scorer(store.load_verified(args.models))
            columns = {k: [r.get(k) for r in records] for k in contract.NAMES}
            cleaned, problems = rules.clean_columns(columns, len(records))
            ok = problems == None  # noqa: E711
            feeds = inputs.column_feeds({k: v[ok] for k, v in cleaned.items()})
            rows = int(ok.sum())
            connections = args.batch_connections
            batch_rounds: dict[tuple[str, str, int], list[dict[str, float]]] = {
                (*side, c): [] for side in batch_urls for c in connections
            }
            raw_all_rates = []
            for _ in range(args.rounds):
                raw_all_rates.append(rows / median_seconds(lambda: scorer.run_all(feeds), 100))
                for (log_state, words), (port, url) in batch_urls.items():
                    for c in connections:
                        raw_rate = rows / median_seconds(lambda: scorer.run(feeds), 100)
                        run = wrk(url, batch, c, args.seconds, work, pids[port])
                        of_raw = run["rps"] * rows / raw_rate
                        batch_rounds[(log_state, words, c)].append({**run, "raw": raw_rate, "of_raw": of_raw})
            batches = {
                side: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                for side, runs in batch_rounds.items()
            }
            audit_records = sum(1 for _, _, _ in audit_log.records(work / "audit"))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=20)
    print(f"## serving, one worker each, 16 connections, wrk on loopback, median of {args.rounds} interleaved rounds")
    for name, r in results.items():
        print(
            f"{name:<28} {r['rps']:>9,.0f} req/s   p50 {r['p50_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms   "
            f"errors {r['errors']:.0f}   CPU a request: {cpu(r)}"
        )
    # Round by round: each round's two runs are minutes apart at most, the rounds further.
    each = [
        ours_run["rps"] / base_run["rps"]
        for ours_run, base_run in zip(
            rounds["cashscore POST /v1/score"], rounds["baseline FastAPI /predict"], strict=True
        )
    ]
    ratio = statistics.median(each)
    logged = results["cashscore POST /v1/score"]["rps"] / results["cashscore, decision log off"]["rps"]
    print(f"decision log on: {logged:.0%} of the throughput with it off (the limit is 85%)")
    base_rps = results["baseline FastAPI /predict"]["rps"]
    ceiling = results["bare Litestar, constant"]["rps"] / base_rps
    scoring = results["bare Litestar + Scorer.score"]["rps"] / base_rps
    onnx_ratio = results["cashscore POST /v1/score"]["rps"] / results["FastAPI + onnxruntime"]["rps"]
    print(
        f"throughput ratio: {ratio:.1f}x the baseline, median of the rounds' ratios "
        f"({', '.join(f'{r:.1f}x' for r in each)}; goal 25x); references: a bare Litestar handler {ceiling:.1f}x, "
        f"the same calling Scorer.score once per request (cashscore gathers the requests read together) "
        f"{scoring:.1f}x; cashscore vs FastAPI + onnxruntime (no reasons, no rules): {onnx_ratio:.2f}x"
    )
    print(f"decisions in the log after the run: {audit_records:,} (every answered one)")
    raws = [r["raw"] for runs in batch_rounds.values() for r in runs]
    print(
        f"raw onnxruntime, both cores, the batch's {rows} valid rows: {statistics.median(raws):,.0f} rows/s, median "
        f"of {len(raws)} measures, one right before each batch run ({min(raws):,.0f} to {max(raws):,.0f}); "
        f"{statistics.median(raw_all_rates):,.0f} with contributions"
    )
    cores = os.cpu_count() or 1
    for (log_state, words, c), run in batches.items():
        rate = run["rps"] * rows
        each_run = ", ".join(f"{r['of_raw']:.0%}" for r in batch_rounds[(log_state, words, c)])
        print(
            f"batch of 1,000 ({rows} valid), {log_state:<7} {words:<15} ({c} connections): {rate:>9,.0f} rows/s, "
            f"p50 {run['p50_ms']:.1f} ms, errors {run['errors']:.0f}; {run['of_raw']:.0%} of raw onnxruntime "
            f"(median of each run against the raw rate measured right before it: "
            f"{each_run})"
        )
        # What the CPU spent allows: every core busy all the time, or the main thread (the GIL's
        # serial part) busy all the time, whichever bounds first.
        spent = run["main_ms"] + run["other_ms"] + run["client_ms"]
        bound = min(rows * cores / spent, rows / run["main_ms"]) * 1e3  # NaN without /proc
        print(
            f"    CPU a batch: {cpu(run)}; at most {bound:,.0f} rows/s ({bound / run['raw']:.0%} of raw) with every "
            f"core or the main thread busy all the time"
        )
    for log_state in ("log on", "log off"):
        for c in connections:
            with_reasons, without = batches[(log_state, "with reasons", c)], batches[(log_state, "?reasons=false", c)]
            print(
                f"{log_state}, {c} connections: batches with reasons at "
                f"{with_reasons['rps'] / without['rps']:.0%} of the rate without"
            )


def cpu(run: dict[str, float]) -> str:
    return f"main thread {run['main_ms']:.2f} ms, other threads {run['other_ms']:.2f} ms, wrk {run['client_ms']:.2f} ms"


if __name__ == "__main__":
    main()
