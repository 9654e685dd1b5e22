"""The `cashscore` command: restore, export, sample, train, serve."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cashscore.core import config, sqlnames
from cashscore.core.errors import CashscoreError
from cashscore.features.contract import LANGUAGES
from cashscore.warehouse.dump import CHARSETS


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def cmd_restore(args: argparse.Namespace) -> int:
    from cashscore.warehouse.restore import restore

    conf: config.Settings = args.settings
    result = restore(
        args.paths,
        args.db,
        conf.paths.sql_dir,
        audit=not args.no_audits,
        force=args.force,
        max_shrink=conf.restore.max_shrink,
        raw_only=args.raw_only,
        charset=args.charset,
        lock_wait=conf.restore.lock_wait,
    )
    width = max((len(t) for t in result.rows), default=0)
    print(f"restored {len(result.rows)} tables into {result.db}")
    for table, rows in result.rows.items():
        print(f"  raw.{table:<{width}}  {rows:>10,} rows")
    mb = result.bytes_read / 1e6
    print(f"  {mb:.1f} MB in {result.seconds:.2f} s ({mb / max(result.seconds, 1e-9):.1f} MB/s)")
    failed = {name: n for name, n in result.audits.items() if n}
    for name, count in result.audits.items():
        print(f"  audit {name}: {'ok' if not count else f'{count} bad rows'}")
    if failed:
        print("warning: some audits found bad rows; see sql/audits/ for the queries", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cashscore.warehouse.export import export

    rows = export(args.db, args.out)
    print(f"exported {rows:,} applicants to {args.out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from cashscore.warehouse.sample import write_sample

    write_sample(args.out, rows=args.rows, seed=args.seed)
    print(f"wrote a synthetic dump of {args.rows:,} applications (seed {args.seed}) to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from cashscore.monitoring.fairness import parse_bands
    from cashscore.training import trainer

    trainer.run(
        args.db,
        args.models,
        settings=args.settings.training,
        age_bands=parse_bands(args.settings.monitoring.age_bands),
        quick=args.quick,
        policy=args.policy,
        lgd=args.lgd,
        margin=args.margin,
        approval_rate=args.approval_rate,
        seed=args.seed,
        families=tuple(args.families) if args.families else None,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from cashscore.artefact.store import load_verified
    from cashscore.server.run import serve

    conf: config.Settings = args.settings
    # The flags override the same fields the CASHSCORE_* variables set.
    settings = dataclasses.replace(
        conf,
        paths=dataclasses.replace(conf.paths, models=args.models.resolve(), db=args.db.resolve()),
        server=dataclasses.replace(
            conf.server, host=args.host, port=args.port, workers=args.workers, model_version=args.model_version
        ),
    )
    # Refuse to start, with the reason, before binding the port.
    card = load_verified(args.models, args.model_version).card
    base = f"http://{args.host}:{args.port}"
    print(
        f"serving model {card.model_version}: dashboard {base}/, API {base}/v1/score, docs {base}/schema/swagger",
        flush=True,
    )
    serve(settings)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from cashscore.artefact import store

    if args.use:
        store.load_verified(args.models, args.use)  # only a complete, intact version can become current
        store.switch(args.models, args.use)
        print(f"{args.models / store.CURRENT} now names {args.use}; reload a running server (SIGHUP or /admin/reload)")
        return 0
    current = store.current_version(args.models)
    found = store.versions(args.models)
    if not found:
        raise CashscoreError(f"{args.models}: no model versions; run `cashscore train --models {args.models}` first")
    # What an engineer needs to choose a version to roll back to: what it is, how well it did on
    # its held-out split, where it decides, what it learnt from, and whether it can be served.
    print(f"versions in {args.models / store.VERSIONS} (* = current)")
    head = ("", "version", "model", "test ROC-AUC", "threshold", "trained on", "status")
    lines = [head]
    for version in found:
        mark = "*" if version == current else ""
        try:
            card = store.load_verified(args.models, version).card
        except CashscoreError as exc:
            lines.append((mark, version, "", "", "", "", f"cannot be served: {exc}"))
            continue
        lines.append(
            (
                mark,
                version,
                f"{card.model.family} + {card.model.strategy}",
                f"{card.metrics.test.roc_auc:.4f}",
                f"{card.threshold.value:.4f} ({card.threshold.policy})",
                f"{card.data.rows:,} rows, {card.data.fingerprint[:12]}",
                "intact",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])
    return 0


@contextlib.contextmanager
def _out_of_memory_hint(memory: str | None) -> Iterator[None]:
    """DuckDB's Out of Memory error in a streaming pass, with what to change."""
    try:
        yield
    except CashscoreError as exc:
        if "Out of Memory" not in str(exc):
            raise
        if memory is not None:
            raise CashscoreError(
                f"{exc}; the query needs more than CASHSCORE_STREAM_MEMORY={memory}: raise or unset it"
            ) from None
        from cashscore.scoring.batch import CACHE_HEADROOM

        raise CashscoreError(
            f"{exc}; once its rows began, DuckDB's memory was bounded to what the query held then plus "
            f"{CACHE_HEADROOM // 2**20}MB for its block cache: give it a fixed limit the whole query fits in, "
            "CASHSCORE_STREAM_MEMORY=4GB for example"
        ) from None


def _scoring_connection(db: Path, models: Path, read_only: bool, memory: str | None = None) -> tuple[Any, Any]:
    from cashscore.scoring.connection import open_scoring

    if memory is not None:
        memory = config.memory_size(memory, "CASHSCORE_STREAM_MEMORY")
    return open_scoring(db, models, read_only, memory)


def _source_query(args: argparse.Namespace) -> str:
    """The rows --table or --sql names (a table name is checked and quoted, never pasted)."""
    if args.table:
        parts = sqlnames.relation_name(args.table, "--table")
        return f"select * from {'.'.join(sqlnames.quote(p) for p in parts)}"
    return str(args.sql)


def _measure(args: argparse.Namespace) -> Any:
    """One streamed pass over --table/--sql: drift and fairness of the population, stored unless --no-store."""
    from cashscore.monitoring import drift, fairness, tables

    bands = fairness.parse_bands(args.age_bands, "--age-bands")
    memory = args.settings.batch.stream_memory
    con, scorer = _scoring_connection(args.db, args.models, read_only=args.no_store, memory=memory)
    try:
        label = f"table {args.table}" if args.table else f"sql {args.sql}"
        with _out_of_memory_hint(memory):
            found = drift.measure(con, scorer, _source_query(args), label[:500], bands, bound_cache=memory is None)
        if not args.no_store:
            tables.store(con, found, drift=args.command == "monitor", fairness=args.command == "fairness")
    finally:
        con.close()
    return found


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def _as_json(found: Any, leave_out: str) -> str:
    import msgspec

    content = msgspec.to_builtins(found)  # dataclasses and card structs alike; NaN becomes null below
    content.pop(leave_out, None)
    return msgspec.json.encode(content).decode()


def cmd_monitor(args: argparse.Namespace) -> int:
    found = _measure(args)
    if args.json:
        print(_as_json(found, leave_out="fairness"))
    else:
        print(
            f"{found.population}: {found.rows:,} rows scored by model {found.model_version}"
            f" ({found.rejected:,} rejected by the feature contract)"
        )
        print(f"{'feature':<28} {'rows':>9} {'PSI':>7} {'chi-square':>12} {'p-value':>9}  status")
        for d in found.drift:
            print(
                f"{d.feature:<28} {d.rows:>9,} {_figure(d.psi, '.4f'):>7} {_figure(d.statistic, ',.1f'):>12} "
                f"{_figure(d.p_value, '.3g'):>9}  {d.status}"
            )
        realised = (
            f", realised default {found.realised_rate:.2%} over {found.labelled:,} labelled rows"
            if found.realised_rate is not None
            else ""
        )
        print(f"mean predicted default {_figure(found.mean_predicted, '.2%')}{realised}")
        print("PSI: ok below 0.1, watch below 0.25, alert from 0.25; the chi-square p-value reads with the row count")
        if not args.no_store:
            print("stored in monitoring.drift")
    order = {"ok": 0, "unknown": 0, "watch": 1, "alert": 2}
    worst = max((order[d.status] for d in found.drift), default=0)
    return 3 if args.fail_on and worst >= order[args.fail_on] else 0


def cmd_fairness(args: argparse.Namespace) -> int:
    found = _measure(args)
    if args.json:
        print(_as_json(found, leave_out="drift"))
        return 0
    print(f"{found.population}: {found.rows:,} rows scored by model {found.model_version}")
    print(
        f"{'age band':<12} {'rows':>8} {'approved':>9} {'AIR':>6} {'predicted':>10} {'realised':>9}"
        f" {'TPR':>6} {'FPR':>6} {'TPR gap':>8} {'FPR gap':>8}"
    )
    for b in found.fairness:
        print(
            f"{b.band:<12} {b.rows:>8,} {_figure(b.approval_rate, '.1%'):>9}"
            f" {_figure(b.adverse_impact_ratio, '.2f'):>6}{'*' if b.flagged else ' '}"
            f"{_figure(b.mean_predicted, '.1%'):>9} {_figure(b.realised_rate, '.1%'):>9}"
            f" {_figure(b.true_positive_rate, '.2f'):>6} {_figure(b.false_positive_rate, '.2f'):>6}"
            f" {_figure(b.tpr_gap, '+.2f'):>8} {_figure(b.fpr_gap, '+.2f'):>8}"
        )
    print(
        "AIR: approval rate over the most-approved band's; * below 0.8, the four-fifths rule of US employment"
        " law, a heuristic for where to look rather than a legal test of credit decisions. TPR: defaulters"
        " refused; FPR: good payers refused; gaps against the most-approved band."
    )
    if not args.no_store:
        print("stored in monitoring.fairness")
    return 0


def _score_on_spark(args: argparse.Namespace) -> int:
    if args.input is None or args.out is None:
        raise CashscoreError("--engine spark reads --input PATH and writes --out PATH (a Parquet folder)")
    if args.into is not None or args.audit:
        raise CashscoreError("--into and --audit need the duckdb engine (the decision log is one machine's file)")
    try:
        from cashscore.scoring import spark
    except ImportError as exc:
        raise CashscoreError(f"--engine spark needs pyspark: pip install 'cashscore[spark]' ({exc})") from None
    session = spark.session(args.master or "local[*]")
    try:
        outcome = spark.score_files(
            session,
            args.models,
            args.input,
            str(args.out),
            args.reasons,
            args.counter_offer,
            args.input_format,
            language=args.lang,
        )
    finally:
        session.stop()
    print(f"scored {outcome.scored:,} rows into {outcome.out} on Spark in {outcome.seconds:.1f} s")
    if outcome.rejects:
        print(f"rejected {outcome.rejected:,} rows that fail the feature contract: {outcome.rejects}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from cashscore.scoring import batch
    from cashscore.scoring.sinks import FileSink, TableSink

    if args.engine == "spark":
        return _score_on_spark(args)
    if args.input is not None or args.master is not None or args.input_format is not None:
        raise CashscoreError("--input, --master and --input-format go with --engine spark")
    if args.table is None and args.sql is None:
        raise CashscoreError("say which rows to score: --table NAME or --sql QUERY")
    if args.out is None and args.into is None:
        raise CashscoreError("say where the scores go: --out FILE, --into TABLE, or both")
    out_sink = FileSink(args.out) if args.out is not None else None  # an unknown format fails here, first
    memory = args.settings.batch.stream_memory
    con, scorer = _scoring_connection(args.db, args.models, read_only=args.into is None, memory=memory)
    try:
        query = _source_query(args)
        # The progress bar's total runs the query a second time (1.5 s for the 1M-row sample's mart,
        # a fifth of scoring it): counted only when someone watches the bar in a terminal.
        total = None
        if sys.stderr.isatty():
            try:
                total = con.execute(f"select count(*) from ({query})").fetchall()[0][0]
            except Exception as exc:  # duckdb raises many error types; all mean the query is wrong
                raise CashscoreError(f"the query failed: {str(exc).splitlines()[0]}") from None
        with contextlib.ExitStack() as stack:
            # Every sink commits only if the whole run succeeds; each chunk is written, then dropped.
            sinks: list[FileSink | TableSink] = [stack.enter_context(out_sink)] if out_sink is not None else []
            table_sink = stack.enter_context(TableSink(con, args.into)) if args.into is not None else None
            sinks += [table_sink] if table_sink is not None else []
            rejects: list[FileSink] = []

            def on_rejected(chunk: Any) -> None:
                if args.out is None:
                    return
                if not rejects:
                    path = args.out.with_name(f"{args.out.stem}.rejects{args.out.suffix}")
                    rejects.append(stack.enter_context(FileSink(path)))
                rejects[0].write(chunk)

            on_decided = None
            if args.audit:
                on_decided = _audit_batch(stack, args.settings, scorer, args.lang)
            progress = batch.Progress(total)
            try:
                with _out_of_memory_hint(memory):
                    outcome = batch.score_relation(
                        con,
                        scorer,
                        query,
                        on_scored=lambda chunk: _write_all(sinks, chunk),
                        on_rejected=on_rejected,
                        reasons=args.reasons,
                        progress=progress,
                        counter_offer=args.counter_offer,
                        on_decided=on_decided,
                        language=args.lang,
                        bound_cache=memory is None,
                    )
            finally:
                progress.close()
        if args.out is not None:
            print(
                f"scored {outcome.scored:,} rows into {args.out} with model {scorer.version} in {outcome.seconds:.2f} s"
            )
            if outcome.rejected:
                print(f"rejected {outcome.rejected:,} rows that fail the feature contract: {rejects[0].target}")
        if table_sink is not None:
            print(f"stored {outcome.scored:,} scores in scores.{table_sink.name}")
            if outcome.rejected and args.out is None:
                print(
                    f"rejected {outcome.rejected:,} rows that fail the feature contract "
                    f"(not stored; use --out to keep them)"
                )
    finally:
        con.close()
    return 0


def _iso(text: str) -> str:
    from datetime import datetime

    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an ISO date or time (e.g. 2026-11-01)") from None
    return text


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from cashscore.audit import log

    key = args.settings.audit.key
    verdict = log.verify(args.log, key)
    signed = "hashes and HMACs" if key else "hashes (no CASHSCORE_AUDIT_KEY: edits that recompute them pass)"
    if verdict.problem:
        print(f"{args.log}: NOT intact after {verdict.records:,} good records: {verdict.problem}", file=sys.stderr)
        return 1
    print(f"{args.log}: intact, {verdict.records:,} records ({signed} checked)")
    return 0


def cmd_audit_replay(args: argparse.Namespace) -> int:
    from cashscore.audit.replay import replay
    from cashscore.scoring import batch

    done = replay(args.log, args.models, progress=batch.Progress(None))
    sys.stderr.write("\n")
    for line in done.differences:
        print(line)
    if done.differing:
        print(f"{done.differing:,} of {done.records:,} records differ when scored again", file=sys.stderr)
        return 1
    print(f"all {done.records:,} records scored again give the same probability, decision and reasons")
    if done.reworded:
        print(
            f"({done.reworded:,} of them were explained in words an earlier cashscore used: their probability and"
            " decision were compared, and their reasons' words are kept as they were answered)"
        )
    return 0


# Records `audit show` prints for one request; a batch request answers many rows.
SHOW_MAX = 20


def cmd_audit_show(args: argparse.Namespace) -> int:
    from cashscore.audit import log, lookup

    verdict = log.verify(args.log, args.settings.audit.key)
    found = list(itertools.islice(lookup.find(args.log, args.request_id, args.id), SHOW_MAX + 1))
    if not found:
        which = f"request {args.request_id!r}" + (f", row id {args.id!r}" if args.id is not None else "")
        raise CashscoreError(f"{args.log}: no decision answers {which}")
    scorers: dict[str, Any] = {}
    for item in found[:SHOW_MAX]:
        replayed = None if args.no_replay else lookup.rescore(item.record, args.models, scorers)
        if args.json:
            print(json.dumps({"where": item.where, "record": item.record, "scored_again": replayed}))
        else:
            print(lookup.describe(item, replayed), end="\n\n")
    if len(found) > SHOW_MAX:
        print(f"... and more: this request scored a batch; the first {SHOW_MAX} are shown; name a row with --id",
              file=sys.stderr)  # fmt: skip
    if verdict.problem:
        print(f"{args.log}: NOT intact, so these records cannot be trusted: {verdict.problem}", file=sys.stderr)
        return 1
    print(f"the log is intact: {verdict.records:,} records, chained by hash", file=sys.stderr)
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from cashscore.audit.export import export

    count = export(args.log, args.out, args.since, args.until)
    print(f"wrote {count:,} records to {args.out}")
    return 0


def cmd_audit_prune(args: argparse.Namespace) -> int:
    from cashscore.audit.log import DecisionLog

    decisions = DecisionLog(args.log, args.settings.audit.key)
    try:
        removed = decisions.prune(args.months)
    finally:
        decisions.close()
    print(
        f"removed {len(removed)} month(s) older than {args.months} months: {', '.join(p.name for p in removed) or '-'}"
    )
    return 0


def _write_all(sinks: Sequence[Any], chunk: Any) -> None:
    """One scored chunk into every sink."""
    for sink in sinks:
        sink.write(chunk)


def _audit_batch(stack: Any, settings: config.Settings, scorer: Any, language: str) -> Any:
    """A batch run's decisions to the decision log: each chunk durable before it is written out."""
    import uuid

    import msgspec

    from cashscore.audit import commit
    from cashscore.audit.log import DecisionLog, now

    decisions = DecisionLog(settings.audit.log, settings.audit.key)
    stack.callback(decisions.close)
    run = uuid.uuid4().hex
    done = 0

    def on_decided(table: Any, inputs: list[Any], why: list[list[str] | None]) -> None:
        nonlocal done
        names = table.column_names
        column = "loan_id" if "loan_id" in names else "id" if "id" in names else None
        ids = table.column(column).to_pylist() if column else [msgspec.UNSET] * table.num_rows
        p = table.column("default_probability").to_pylist()
        outcomes = table.column("decision").to_pylist()
        # The rows of a chunk are decided together: one time for all of them.
        when, version, threshold = now(), scorer.version, scorer.threshold
        records = [
            commit.decision(
                f"{run}:{done + i}", "batch", version, threshold, inputs[i], p[i], outcomes[i], why[i], language,
                time=when, id=ids[i],
            )
            for i in range(len(p))
        ]  # fmt: skip
        decisions.append(records)
        done += len(p)

    return on_decided


# DuckDB's words for a statement that would change a database opened read-only.
_READ_ONLY = re.compile(r"read-only mode")
# DuckDB's words for a call to a function nobody registered (the shell opened without a model).
_SCORE_FUNCTION = re.compile(r"Function with name score(_default|_decision|_pt)? does not exist")


def cmd_sql(args: argparse.Namespace) -> int:
    from cashscore.artefact.store import current_version
    from cashscore.scoring import batch
    from cashscore.shell import Shell
    from cashscore.warehouse.export import connect

    scorer = None

    def open_() -> Any:  # a DuckDB connection
        nonlocal scorer
        if current_version(args.models) is None:
            # The views are worth exploring before any model is trained; a model that is there but
            # fails its checks still stops the shell (below), as it stops every other command.
            scorer = None
            return connect(args.db, read_only=not args.write)
        con, scorer = _scoring_connection(args.db, args.models, read_only=not args.write)
        return con

    con = open_()
    if scorer is None:
        print(
            f"cashscore sql: no model in {args.models} yet (`cashscore train --models {args.models}`): "
            "the views are here, the score functions are not",
            file=sys.stderr,
        )

    def explain(message: str) -> str:
        if not args.write and _READ_ONLY.search(message):
            return (
                f"{message} (the shell opens the database read-only, so that the dashboard and the nightly job "
                "can go on using it; start it with --write to change it)"
            )
        if scorer is None and _SCORE_FUNCTION.search(message):
            return f"{message} (no model in {args.models}: run `cashscore train --models {args.models}` first)"
        hint = batch.misuse_hint(message) if scorer is not None else None
        return f"{message} ({hint})" if hint else message

    shell = Shell(con, explain, args.db, open_)
    try:
        if args.command_text is not None:
            one = shell.dot if args.command_text.lstrip().startswith(".") else shell.statement
            return 0 if one(args.command_text) else 1
        interactive = sys.stdin.isatty()
        mode = (
            " (writable: while it is open no other process can open the file, not even the dashboard)"
            if args.write
            else " (read-only; --write to change it)"
        )
        functions = (
            f"model {scorer.version}: score(a), score_default(a) and score_decision(a) take a whole row "
            "(from marts.applicants a) or the 11 contract fields; score_pt(a) words the reasons in Portuguese; "
            "score_model_version() names the model"
            if scorer is not None
            else "no model: the views only"
        )
        banner = f"cashscore sql on {args.db}{mode}, {functions}. End statements with ';'; .help lists the commands."
        # A terminal's session always exits 0; a script's exit status says whether every statement ran.
        return 0 if shell.loop(interactive, banner) or interactive else 1
    finally:
        if shell.con is not None:
            shell.con.close()


def build_parser(settings: config.Settings | None = None) -> argparse.ArgumentParser:
    """The argument parser of every subcommand, its defaults from the settings."""
    settings = settings or config.load()
    paths, server = settings.paths, settings.server

    def db(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--db", type=Path, default=paths.db, help=f"{what} (default {paths.db})")

    def models(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--models", type=Path, default=paths.models, help=f"{what} (default {paths.models})")

    parser = argparse.ArgumentParser(
        prog="cashscore",
        description="Credit-risk scoring for Alura Cash: restore the MySQL dump into DuckDB, "
        "train and export an ONNX model, serve and batch-score it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("restore", help="restore mysqldump files into a DuckDB database")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="dump files (.sql, .sql.gz) or folders of them")
    db(p, "database to create or replace")
    p.add_argument("--no-audits", action="store_true", help="skip the SQL audits (they read the whole mart)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the database even with empty required tables, a table shrinking by more than "
        f"{settings.restore.max_shrink * 100:.0f}%% (CASHSCORE_RESTORE_MAX_SHRINK) or a file that is not a database",
    )
    p.add_argument(
        "--raw-only",
        action="store_true",
        help="any dump: load every table into raw and stop (no Alura tables required, no views, no audits)",
    )
    p.add_argument(
        "--charset",
        choices=sorted(CHARSETS),
        default="utf8mb4",
        help="the dump's character set until it names one with SET NAMES (a --compact dump names none; "
        "default utf8mb4)",
    )
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("export", help="export the joined applicants mart as CSV or Parquet")
    db(p, "database to read")
    p.add_argument("--out", type=Path, required=True, help="output file: .csv or .parquet")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sample", help="write a deterministic synthetic mysqldump")
    p.add_argument("--rows", type=_positive, default=5000, help="loan applications (default 5000)")
    p.add_argument("--seed", type=_int, default=42, help="random seed (default 42)")
    p.add_argument("--out", type=Path, required=True, help="output file: .sql or .sql.gz")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train", help="train, compare and calibrate models; export ONNX, metadata and report")
    db(p, "database to read")
    models(p, "output folder")
    p.add_argument("--quick", action="store_true", help="smaller models, fewer folds: for small data and tests")
    p.add_argument("--policy", choices=("profit", "approval", "f1"), help="threshold policy (default profit)")
    p.add_argument("--lgd", type=float, help="loss given default, share of the amount (default 0.75)")
    p.add_argument("--margin", type=float, help="interest margin earned on a repaid loan (default 0.15)")
    p.add_argument("--approval-rate", type=float, help="share approved, with --policy approval (default 0.70)")
    p.add_argument("--seed", type=_int, help="random seed (default 42)")
    p.add_argument(
        "--families",
        nargs="+",
        choices=("logreg", "random_forest", "hist_gb", "knn", "lightgbm"),
        help="model families to compare (default all); the best of lightgbm and logreg is served, so keep one",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", help="serve the model over HTTP (Litestar on uvicorn, onnxruntime)")
    p.add_argument("--host", default=server.host, help=f"address to bind (default {server.host})")
    p.add_argument("--port", type=_positive, default=server.port, help=f"port (default {server.port})")
    p.add_argument(
        "--workers", type=_positive, default=server.workers, help=f"worker processes (default {server.workers})"
    )
    models(p, "model folder")
    db(p, "database the dashboard reads")
    p.add_argument(
        "--model-version",
        default=server.model_version,
        help="serve this version instead of the current one (CASHSCORE_MODEL_VERSION)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="list the model versions kept, or make one current (rollback)")
    models(p, "model folder")
    p.add_argument("--use", metavar="VERSION", help="verify VERSION and make it the current model")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("score", help="score a DuckDB table or query (or files on Spark) and write the scores")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--table", help="a table or view, e.g. marts.applicants")
    source.add_argument("--sql", help="a SELECT returning the contract's columns")
    source.add_argument("--input", help="with --engine spark: Parquet or CSV files (a file, folder or glob)")
    p.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="duckdb (default): this machine; spark: Apache Spark, same model and rules (extra 'cashscore[spark]')",
    )
    p.add_argument("--master", help="with --engine spark: the Spark master, e.g. local[2] (default local[*])")
    p.add_argument("--input-format", choices=("parquet", "csv"), help="with --input: by default from the extension")
    p.add_argument("--out", type=Path, help="output file: .csv, .parquet or .json (rejects beside it)")
    p.add_argument("--into", help="store the scores as table scores.NAME instead of (or as well as) a file")
    p.add_argument(
        "--reasons",
        choices=("all", "deny", "none"),
        default="deny",
        help="rows that get reasons (default deny: every refusal is explained)",
    )
    p.add_argument(
        "--lang",
        choices=LANGUAGES,
        default="en",
        help="the reasons' language: en (default) or pt (Brazilian Portuguese, the contract's labels)",
    )
    p.add_argument(
        "--counter-offer",
        action="store_true",
        help="for refused rows, the largest loan amount the model would approve (counter_offer_amount)",
    )
    p.add_argument(
        "--audit",
        action="store_true",
        help="append every decision to the decision log (CASHSCORE_AUDIT_LOG) before the output is committed",
    )
    db(p, "database")
    models(p, "model folder")
    p.set_defaults(func=cmd_score)

    for name, what, extra in (
        ("monitor", "drift of a population against the model's training population (PSI, chi-square)", True),
        ("fairness", "approval, adverse impact and error rates of a population by age band", False),
    ):
        p = sub.add_parser(name, help=what)
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--table", help="a table or view, e.g. marts.applicants")
        source.add_argument("--sql", help="a SELECT returning the contract's columns (and loan_status, when known)")
        p.add_argument(
            "--age-bands",
            default=settings.monitoring.age_bands,
            help=f"ages where bands start (default {settings.monitoring.age_bands})",
        )
        p.add_argument("--no-store", action="store_true", help=f"print only; do not append to monitoring.{name}")
        p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
        if extra:
            p.add_argument(
                "--fail-on",
                choices=("watch", "alert"),
                help="exit 3 when a feature or the score reaches this status (for nightly jobs)",
            )
        db(p, "database")
        models(p, "model folder")
        p.set_defaults(func=cmd_monitor if extra else cmd_fairness, fail_on=None)

    p = sub.add_parser("audit", help="verify, show, replay, export or prune the decision log")
    audit_sub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_log = settings.audit.log

    def log_flag(q: argparse.ArgumentParser) -> None:
        q.add_argument("--log", type=Path, default=audit_log, help=f"the decision log (default {audit_log})")

    q = audit_sub.add_parser("verify", help="check every record's hash (and HMAC), the chain and its end")
    log_flag(q)
    q.set_defaults(func=cmd_audit_verify)
    q = audit_sub.add_parser("replay", help="score every record again with its model version and compare")
    log_flag(q)
    models(q, "model folder holding the versions")
    q.set_defaults(func=cmd_audit_replay)
    q = audit_sub.add_parser(
        "show", help="one decision in words: why, what the model saw, and whether its model answers the same again"
    )
    log_flag(q)
    q.add_argument("request_id", metavar="REQUEST_ID", help="the X-Request-ID the answer carried (run:row in batch)")
    q.add_argument("--id", help="the row's id, for a batch request's rows")
    q.add_argument("--no-replay", action="store_true", help="do not score the record again")
    q.add_argument("--json", action="store_true", help="one JSON object per record")
    models(q, "model folder holding the versions")
    q.set_defaults(func=cmd_audit_show)
    q = audit_sub.add_parser("export", help="write a period's records to Parquet")
    log_flag(q)
    q.add_argument("--out", type=Path, required=True, help="the .parquet file")
    q.add_argument("--since", type=_iso, help="first day or time, UTC (e.g. 2026-11-01)")
    q.add_argument("--until", type=_iso, help="end, excluded, UTC (e.g. 2026-12-01)")
    q.set_defaults(func=cmd_audit_export)
    q = audit_sub.add_parser("prune", help="remove months older than the retention period")
    log_flag(q)
    q.add_argument(
        "--months",
        type=_positive,
        default=settings.audit.retention_months,
        help=f"months kept, the current one included (default {settings.audit.retention_months})",
    )
    q.set_defaults(func=cmd_audit_prune)

    p = sub.add_parser("sql", help="an SQL shell (or one query) with score_default() and the views")
    p.add_argument("-c", dest="command_text", metavar="QUERY", help="run one query, print it, and exit")
    access = p.add_mutually_exclusive_group()
    access.add_argument(
        "--write",
        action="store_true",
        help="open the database for writing (create tables, store results); while this shell is open no other "
        "process can open the file: the dashboard, the nightly restore and `score --into` wait for it",
    )
    access.add_argument(
        "--read-only",
        action="store_true",
        help="the default: no statement can change the database, and the dashboard, the nightly job and "
        "other shells go on using it while this one is open",
    )
    db(p, "database")
    models(p, "model folder")
    p.set_defaults(func=cmd_sql)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand.

    Args:
        argv: the arguments, without the program name; sys.argv by default.

    Returns:
        The exit code: 0 on success, 1 on a user error (with a message on stderr).
    """
    try:
        settings = config.load()
    except CashscoreError as exc:
        print(f"cashscore: error: {exc}", file=sys.stderr)
        return 1
    args = build_parser(settings).parse_args(argv)
    args.settings = settings
    try:
        return int(args.func(args))
    except CashscoreError as exc:
        print(f"cashscore {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A path the user named cannot be read or written: say which, without a traceback.
        print(f"cashscore {args.command}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cashscore {args.command}: interrupted; nothing was replaced", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
