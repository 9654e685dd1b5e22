"""Score files on Apache Spark with the same artefact, rules and code as `cashscore score`.

Spark reads the rows (Parquet or CSV: a file, a folder or a glob); each Python worker verifies the
shipped model against the digests the driver verified, keeps one single-threaded onnxruntime
session, and scores every Arrow batch with `batch.split_chunk` and `batch.decide_chunk`, the
functions the DuckDB path runs. Scored rows are written as Parquet with exactly the columns
`cashscore score` writes; rejected rows go to `OUT.rejects` with their `reject_reason`.

Who writes them depends on `OUT`:
- a path (a folder every executor and the driver see: local mode, NFS, Databricks' /Volumes): the
  Python workers write their Parquet parts themselves, scores and rejects in one pass over the
  input. Spark's own writer would turn each Arrow batch back into rows and encode them again in
  the JVM: on 2 cores that was a third of the job's CPU, and the rejects took a second pass.
- a URI (s3://, abfss://, hdfs://, file://): Spark's writer and committer, with the cluster's
  credentials; the rejects come from a second pass that runs the rules alone.

Also a `spark-submit` entry point: `spark-submit [--master URL] cashscore/scoring/spark.py --input
PATH --out PATH --models DIR` (see the README's "Scoring on Spark").
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from cashscore.artefact import store
from cashscore.core.errors import CashscoreError
from cashscore.features import contract
from cashscore.scoring.reasons import LANGUAGES

# Columns `decide_chunk` adds, in its order, and their Arrow types.
SCORED = (
    ("default_probability", pa.float64()),
    ("decision", pa.string()),
    ("risk_band", pa.string()),
    ("reasons", pa.string()),
    ("model_version", pa.string()),
)
OFFER = (("counter_offer_amount", pa.float64()), ("counter_offer_probability", pa.float64()))
REJECT = "reject_reason"
# Rows per Arrow batch handed to a Python worker: large enough that onnxruntime's per-call cost
# vanishes, small enough to keep a worker's memory flat.
BATCH_ROWS = 20_000
# Input splits per core: small enough that the last wave of tasks does not leave cores idle.
SPLITS_PER_CORE = 4

# pyspark checks the pandas version whenever Arrow is used, and warns about pandas 3, which
# cashscore's Arrow-only path never hands a frame to.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

# One scorer per Python worker and model digest: workers are reused across tasks.
_SCORERS: dict[str, Any] = {}


@dataclass
class Outcome:
    scored: int
    rejected: int
    seconds: float
    out: str
    rejects: str | None


def _executor_scorer(names: dict[str, str], digests: dict[str, str]) -> Any:
    """The worker's scorer for the shipped model (files `names`), verified once per worker and run."""
    key = names[store.MODEL_FILE]
    if key not in _SCORERS:
        from pyspark import SparkFiles

        from cashscore.scoring.scorer import Scorer

        files = {name: Path(SparkFiles.get(names[name])) for name in (store.MODEL_FILE, store.META_FILE)}
        where = f"Spark executor (pid {os.getpid()})"
        _SCORERS[key] = Scorer(store.load_shipped(files, digests, where), threads=1, split=False)
    return _SCORERS[key]


def score_batches(
    batches: Iterator[pa.RecordBatch],
    names: dict[str, str],
    digests: dict[str, str],
    schema: pa.Schema,
    reasons: str,
    counter_offer: bool,
    language: str = "en",
) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function for the scores: each input batch's rows the contract accepts, scored."""
    from cashscore.scoring import batch as chunks

    scorer = _executor_scorer(names, digests)
    detail = reasons != "none"
    for rows in batches:
        chunk = chunks.split_chunk(rows)
        if chunk.kept.num_rows:
            scores = scorer.evaluate(chunk.good, detail)
            table, _, _ = chunks.decide_chunk(scorer, chunk, scores, reasons, counter_offer, language)
            yield from table.cast(schema).to_batches()


class _Part:
    """One task's Parquet part in one output folder: written under a name of its own, renamed to
    `part-NNNNN.parquet` (the partition's number) when the task's input is done. A retried or
    speculative attempt of the partition writes the same rows and renames over the same name."""

    def __init__(self, folder: Path, name: str, attempt: str, schema: pa.Schema) -> None:
        self.final = folder / name
        self.temp = folder / f".{name}.{attempt}.tmp"
        self.schema = schema
        self.writer: Any = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema)
        if self.writer is None:
            import pyarrow.parquet as pq

            from cashscore.scoring.sinks import dictionary_columns

            # As `cashscore score` writes Parquet: no dictionary for the reasons, ids and probabilities.
            self.writer = pq.ParquetWriter(self.temp, self.schema, use_dictionary=dictionary_columns(table))
        self.writer.write_table(table)
        self.rows += table.num_rows

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            os.replace(self.temp, self.final)

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.temp.unlink(missing_ok=True)


# What each task of the one-pass job answers the driver: its partition and what it wrote.
TASK_SUMMARY = pa.schema([("partition", pa.int32()), ("scored", pa.int64()), ("rejected", pa.int64())])


def write_batches(
    batches: Iterator[pa.RecordBatch],
    names: dict[str, str],
    digests: dict[str, str],
    schemas: tuple[pa.Schema, pa.Schema],
    folders: tuple[str, str],
    reasons: str,
    counter_offer: bool,
    language: str = "en",
) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function for the one-pass job: the task's scored rows and rejects written as
    one Parquet part in each of `folders`, as they come; one summary row answered."""
    from pyspark import TaskContext

    from cashscore.scoring import batch as chunks

    for folder in folders:  # the driver made them: not here, this executor does not share the path
        if not Path(folder).is_dir():
            raise CashscoreError(
                f"Spark executor on {socket.gethostname()}: {folder} does not exist here: a path given as --out "
                "must be a folder the driver and every executor share; on a cluster without one, give a URI "
                "(s3://, abfss://, hdfs://)"
            )
    scorer = _executor_scorer(names, digests)
    detail = reasons != "none"
    context = TaskContext.get()
    if context is None:  # only ever called inside a Spark task
        raise RuntimeError("score_partition runs inside a Spark task")
    name = f"part-{context.partitionId():05d}.parquet"
    attempt = f"{context.attemptNumber()}-{uuid.uuid4().hex[:8]}"
    scored, rejected = parts = [_Part(Path(f), name, attempt, s) for f, s in zip(folders, schemas, strict=True)]
    try:
        for rows in batches:
            chunk = chunks.split_chunk(rows)
            if chunk.kept.num_rows:
                scores = scorer.evaluate(chunk.good, detail)
                scored.write(chunks.decide_chunk(scorer, chunk, scores, reasons, counter_offer, language)[0])
            if chunk.rejected is not None:
                rejected.write(chunk.rejected)
        for part in parts:
            part.commit()
    finally:
        for part in parts:
            part.abandon()
    yield pa.record_batch([[context.partitionId()], [scored.rows], [rejected.rows]], schema=TASK_SUMMARY)


def reject_batches(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function for the rejects: each input batch's rows the contract refuses, with
    their reason. The rules alone: no model is loaded, so this pass costs a fraction of scoring."""
    from cashscore.scoring import batch as chunks

    for rows in batches:
        rejected = chunks.split_chunk(rows).rejected
        if rejected is not None:
            yield from rejected.cast(schema).to_batches()


def _reader(spark: Any, path: str, fmt: str | None) -> Any:
    kind = fmt or ("csv" if path.rstrip("/*").lower().endswith((".csv", ".csv.gz")) else "parquet")
    try:
        if kind == "csv":
            # Every value as text: the contract's rules read numbers from text exactly as they do
            # for DuckDB's CSV rows, and refuse what is not one.
            return spark.read.option("header", True).option("inferSchema", False).csv(path)
        return spark.read.parquet(path)
    except Exception as exc:  # AnalysisException and Py4J errors: the path or its format is wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CashscoreError(f"--input {path}: Spark cannot read it as {kind}: {first[:300]}") from None


def _literal(path: str) -> str:
    """A path Spark reads as it is: Hadoop takes [ ] { } * ? in a path it reads as a glob."""
    return re.sub(r"([\[\]{}*?\\])", r"\\\1", path)


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def session(master: str | None, app: str = "cashscore score") -> Any:
    """A Spark session: `master` (e.g. local[2], spark://host:7077) or the one spark-submit set up.

    In local mode the Python workers run this interpreter, so they see the same cashscore.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app)
    if master:
        builder = builder.master(master)
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a master that does not answer
        raise CashscoreError(f"Spark did not start (master {master or 'from spark-submit'}): {exc}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def score_files(
    spark: Any,
    models: Path,
    source: str,
    out: str,
    reasons: str = "deny",
    counter_offer: bool = False,
    input_format: str | None = None,
    ship: Path | None = None,
    language: str = "en",
) -> Outcome:
    """Score every row of `source` on Spark and write Parquet to `out` (rejects to `out.rejects`).

    Args:
        spark: the session.
        models: the model folder; the current version is verified here, on the driver.
        source: a Parquet or CSV file, folder or glob (any URI Spark reads).
        out: the output folder; a local one is replaced atomically, only when the job succeeds.
        reasons: all, deny or none, as `cashscore score --reasons`.
        counter_offer: add the counter-offer columns.
        input_format: parquet or csv; by default from the extension (folders: parquet).
        ship: the graph file to ship instead of the verified one (tests: a corrupted copy).
        language: the reasons' words, one of reasons.LANGUAGES.

    Raises:
        CashscoreError: on a path Spark cannot read, missing required columns, a model the
            executors refuse, or a failed job; a local `out` is then left as it was.
    """
    started = time.perf_counter()
    _refuse_overlap(source, out)
    model = store.load_verified(models)
    # The bytes the driver verified: the digests executors check, and (but for a test's `ship`) what is shipped.
    verified = {store.MODEL_FILE: model.onnx_bytes, store.META_FILE: model.card_bytes}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in verified.items()}
    df = _reader(spark, source, input_format)
    missing = [n for n in contract.REQUIRED if n not in df.columns]
    if missing:
        raise CashscoreError(
            f"--input {source}: lacks required column(s) {', '.join(missing)}; has {', '.join(df.columns)}"
        )
    if REJECT in df.columns or any(name in df.columns for name, _ in SCORED):
        raise CashscoreError(f"--input {source}: already holds output columns ({REJECT} or {SCORED[0][0]}...)")
    shipped = {**verified, **({store.MODEL_FILE: ship.read_bytes()} if ship else {})}
    names = {name: _ship(spark, name, data) for name, data in shipped.items()}
    spark.conf.set("spark.sql.files.minPartitionNum", str(SPLITS_PER_CORE * spark.sparkContext.defaultParallelism))

    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_in = to_arrow_schema(df.schema)
    scored_schema = pa.schema([*arrow_in, *(pa.field(n, t) for n, t in (*SCORED, *(OFFER if counter_offer else ())))])
    rejects_schema = pa.schema([*arrow_in, pa.field(REJECT, pa.string())])

    rejects = out.rstrip("/") + ".rejects"
    tag = uuid.uuid4().hex[:8]
    if "://" not in out:
        n_scored, n_rejected = _one_pass(df, names, digests, (scored_schema, rejects_schema), out, rejects, tag,
                                         reasons, counter_offer, language)  # fmt: skip
        return Outcome(n_scored, n_rejected, time.perf_counter() - started, out, rejects if n_rejected else None)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return score_batches(batches, names, digests, scored_schema, reasons, counter_offer, language)

    def refuse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return reject_batches(batches, rejects_schema)

    # Spark's writer: two passes over the input, each written once: the scores, then the rejects by
    # the rules alone. Cheaper than one pass whose rows are cached, counted and written twice by the JVM.
    built: list[tuple[str, str]] = []
    try:
        for target, function, schema in ((out, score, scored_schema), (rejects, refuse, rejects_schema)):
            try:
                built.append((_build(_mapped(df, function, schema), target, tag), target))
            except Exception as exc:  # the executors' error arrives wrapped in Py4J / PythonException text
                raise CashscoreError(f"the Spark job failed: {_executor_message(exc)}") from None
        n_scored, n_rejected = (spark.read.parquet(_literal(path)).count() for path, _ in built)
        if not n_rejected:
            _discard(built.pop()[0])
            if _is_local(rejects):
                _remove(_local(rejects))  # a stale one would describe another run
        for path, target in built:
            _commit(path, target, tag)
        built.clear()
    finally:
        for path, _ in built:
            _discard(path)
    return Outcome(n_scored, n_rejected, time.perf_counter() - started, out, rejects if n_rejected else None)


def _refuse_overlap(source: str, out: str) -> None:
    """Refuse an output that would replace the input it is read from (or the folder holding it):
    the rows would be swapped for their scores, and the rejects moved out of them."""
    if not (_is_local(source) and _is_local(out)):
        return
    prefix = re.split(r"[\[\]{}*?]", source, maxsplit=1)[0]  # a glob: the part before it
    read = _local(prefix).resolve()
    for target in (out.rstrip("/"), out.rstrip("/") + ".rejects"):
        written = _local(target).resolve()
        if read == written or written in read.parents:
            raise CashscoreError(f"--out {out}: it would replace --input {source}, the rows it scores; choose another")
        if prefix == source and read.is_dir() and read in written.parents:
            raise CashscoreError(
                f"--out {out}: it is inside --input {source}, whose next reading would take the scores for rows; "
                "choose a folder outside it"
            )


def _mapped(df: Any, function: Any, schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    with warnings.catch_warnings():
        # pyspark warns about pandas 3 whenever it plans Arrow work; cashscore hands it no frame.
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        return df.mapInArrow(function, from_arrow_schema(schema))


def _one_pass(
    df: Any,
    names: dict[str, str],
    digests: dict[str, str],
    schemas: tuple[pa.Schema, pa.Schema],
    out: str,
    rejects: str,
    tag: str,
    reasons: str,
    counter_offer: bool,
    language: str,
) -> tuple[int, int]:
    """Score and reject in one pass, each task writing its own parts into folders built beside the
    targets; the targets are swapped in only when every part the tasks reported is there.

    Returns:
        (rows scored, rows rejected).
    """
    targets = [Path(out), Path(rejects)]
    folders = [_building(t, tag) for t in targets]
    for folder in folders:
        folder.mkdir(parents=True)
    try:

        def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            folder_names = (str(folders[0]), str(folders[1]))
            return write_batches(batches, names, digests, schemas, folder_names, reasons, counter_offer, language)

        try:
            tasks = _mapped(df, write, TASK_SUMMARY).collect()
        except Exception as exc:  # the executors' error arrives wrapped in Py4J / PythonException text
            raise CashscoreError(f"the Spark job failed: {_executor_message(exc)}") from None
        totals = [sum(t[i] for t in tasks) for i in (1, 2)]
        for folder, schema, i in zip(folders, schemas, (1, 2), strict=True):
            for stray in folder.glob(".*.tmp"):  # a failed or killed attempt's
                stray.unlink()
            check_parts(folder, [(t[0], t[i]) for t in tasks], out)
            if not totals[i - 1] and i == 1:
                _write_empty(folder / "part-00000.parquet", schema)  # the columns, for whoever reads it
            (folder / "_SUCCESS").touch()
        if not totals[1]:
            shutil.rmtree(folders.pop())
            targets.pop()
            _remove(Path(rejects))  # a stale one would describe another run
        for folder, target in zip(folders, targets, strict=True):
            _commit(str(folder), str(target), tag)
        folders.clear()
        return totals[0], totals[1]
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def check_parts(folder: Path, written: list[tuple[int, int]], out: str) -> None:
    """Refuse to commit unless the driver sees the part of every task that wrote rows
    (`written`: partition, rows): on a cluster, a path only some machines see loses rows silently.
    """
    unseen = [str(part) for part, rows in written if rows and not (folder / f"part-{part:05d}.parquet").exists()]
    if unseen:
        raise CashscoreError(
            f"--out {out}: the driver cannot see the parts {len(unseen)} task(s) wrote in {folder} (partition "
            f"{', '.join(unseen[:5])}): a path must be a folder the driver and every executor share; on a "
            "cluster without one, give a URI (s3://, abfss://, hdfs://)"
        )


def _write_empty(path: Path, schema: pa.Schema) -> None:
    import pyarrow.parquet as pq

    pq.write_table(schema.empty_table(), path)


_SHIPPED: list[Path] = []


def _ship(spark: Any, filename: str, data: bytes) -> str:
    """Add a file for the executors under a name made of its content's sha256, and return the name.

    A context refuses a second file of one name with other contents (a retrained model, another run
    in the same session), and executors fetch every file added so far before each task: the copies
    live in one folder per process until it exits.
    """
    name = f"{hashlib.sha256(data).hexdigest()[:16]}-{filename}"
    if not _SHIPPED:
        _SHIPPED.append(Path(tempfile.mkdtemp(prefix="cashscore-ship-")))
        atexit.register(shutil.rmtree, _SHIPPED[0], True)
    copy = _SHIPPED[0] / name
    if not copy.exists():
        copy.write_bytes(data)
    spark.sparkContext.addFile(str(copy))
    return name


def _build(frame: Any, target: str, tag: str) -> str:
    """Write Parquet where it will not be mistaken for the output: beside a local target, or in
    place on an object store (Spark's committer)."""
    if not _is_local(target):
        frame.write.mode("overwrite").parquet(target)
        return target
    building = _building(_local(target), tag)
    frame.write.mode("errorifexists").parquet(str(building))
    return str(building)


def _building(target: Path, tag: str) -> Path:
    """Where a run builds a local target, beside it and hidden from readers (Spark skips `.` names)."""
    return target.with_name(f".{target.name}.{tag}.building")


def _commit(built: str, target: str, tag: str) -> None:
    """Swap a locally built folder in for the target."""
    if built == target:
        return
    final, building = _local(target), Path(built)
    if final.exists():
        old = final.with_name(f".{final.name}.{tag}.old")
        os.replace(final, old)
        os.replace(building, final)
        _remove(old)
    else:
        os.replace(building, final)


def _remove(path: Path) -> None:
    """Remove what a previous run (or a user) left at an output's path: a folder or a file."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _discard(built: str) -> None:
    path = Path(built)
    if path.name.endswith(".building") and path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _executor_message(exc: Exception) -> str:
    """The CashscoreError an executor raised, out of the Java stack trace around it."""
    text = str(exc)
    for line in text.splitlines():
        if "CashscoreError:" in line:
            return line.split("CashscoreError:", 1)[1].strip()
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: the same flags as `cashscore score --engine spark`."""
    parser = argparse.ArgumentParser(prog="cashscore-spark", description="score files on Spark")
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--master", help="default: what spark-submit set")
    parser.add_argument("--reasons", choices=("all", "deny", "none"), default="deny")
    parser.add_argument("--counter-offer", action="store_true")
    parser.add_argument("--lang", choices=LANGUAGES, default="en")
    parser.add_argument("--input-format", choices=("parquet", "csv"))
    args = parser.parse_args(argv)
    try:
        spark = session(args.master)
        outcome = score_files(
            spark,
            args.models,
            args.input,
            args.out,
            args.reasons,
            args.counter_offer,
            args.input_format,
            language=args.lang,
        )
    except CashscoreError as exc:
        print(f"cashscore spark: error: {exc}", file=sys.stderr)
        return 1
    print(f"scored {outcome.scored:,} rows into {outcome.out} in {outcome.seconds:.1f} s")
    if outcome.rejects:
        print(f"rejected {outcome.rejected:,} rows that fail the feature contract: {outcome.rejects}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
