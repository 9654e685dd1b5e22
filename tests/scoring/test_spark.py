"""`cashscore score --engine spark`: the same artefact on Spark (local[2]) gives exactly what the DuckDB path gives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from helpers.parquet import dictionaries

from cashscore.artefact import store
from cashscore.cli import main
from cashscore.core.errors import CashscoreError

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None or not _has_pyspark():
        if os.environ.get("CI"):
            pytest.fail("CI must install pyspark (make install: the [spark] extra) and Java (.ci/run)")
        pytest.skip("pyspark or Java is not installed (make install adds pyspark; Debian: openjdk-17-jre-headless)")
    from cashscore.scoring import spark as engine

    session = engine.session("local[2]", app="cashscore tests")
    yield session
    session.stop()


def _has_pyspark() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def _duckdb_scores(db: Path, models: Path, source: str, out: Path, *extra: str) -> tuple:
    reader = "read_csv" if source.endswith(".csv") else "read_parquet"
    query = f"select * from {reader}('{source}')"
    assert main(["score", "--sql", query, "--db", str(db), "--models", str(models), "--out", str(out), *extra]) == 0
    rejects = out.with_name(f"{out.stem}.rejects{out.suffix}")
    return pq.read_table(out).sort_by("loan_id"), pq.read_table(rejects).sort_by("loan_id")


def _spark_scores(out: str) -> tuple:
    return (
        ds.dataset(out, format="parquet").to_table().sort_by("loan_id"),
        ds.dataset(out + ".rejects", format="parquet").to_table().sort_by("loan_id"),
    )


def _export(db: Path, out: Path) -> Path:
    assert main(["export", "--db", str(db), "--out", str(out)]) == 0
    return out


def test_spark_equals_cashscore_score_on_every_real_applicant(spark, real_db, real_model, tmp_path):
    from cashscore.scoring import spark as engine

    source = _export(real_db, tmp_path / "applicants.parquet")
    flags = ("--reasons", "all", "--counter-offer")
    duck, duck_rejects = _duckdb_scores(real_db, real_model, str(source), tmp_path / "duck.parquet", *flags)
    outcome = engine.score_files(spark, real_model, str(source), str(tmp_path / "spark"), "all", True)
    scored, rejects = _spark_scores(str(tmp_path / "spark"))
    assert (outcome.scored, outcome.rejected) == (duck.num_rows, duck_rejects.num_rows) == (33_190, 1_299)
    # Exactly the columns `cashscore score` writes, in its order and types, and every value equal:
    # probabilities to the bit, decisions, bands, reasons, counter-offers; the rejects and their reasons.
    assert scored.schema == duck.schema
    assert scored.equals(duck)
    assert rejects.schema == duck_rejects.schema and rejects.equals(duck_rejects)
    # Stored as `cashscore score` stores them: no dictionary for free text and near-unique values.
    parts = sorted((tmp_path / "spark").glob("part-*.parquet"))
    assert parts and all(not {"reasons", "loan_id", "default_probability"} & set(dictionaries(p)) for p in parts)
    # A URI goes through Spark's own writer and committer (two passes): the same rows, to the bit.
    uri = (tmp_path / "by-spark").as_uri()
    again = engine.score_files(spark, real_model, str(source), uri, "all", True)
    assert (again.scored, again.rejected, again.rejects) == (outcome.scored, outcome.rejected, uri + ".rejects")
    by_spark, by_spark_rejects = _spark_scores(str(tmp_path / "by-spark"))
    assert by_spark.equals(scored) and by_spark_rejects.equals(rejects)


def test_csv_input_and_the_command_line(trained, tmp_path):
    """The CLI in its own process (its own JVM): CSV in, the same answers (in Portuguese) as the DuckDB path."""
    if shutil.which("java") is None or not _has_pyspark():
        if os.environ.get("CI"):
            pytest.fail("CI must install pyspark and Java")
        pytest.skip("pyspark or Java is not installed")
    db, models = trained[0], trained[1]
    source = tmp_path / "applicants.csv"
    _export(db, source)
    flags = ("--reasons", "all", "--lang", "pt")
    duck, duck_rejects = _duckdb_scores(db, models, str(source), tmp_path / "duck.parquet", *flags)
    out = tmp_path / "scores [2026] {v1}"  # Hadoop reads [ ] { } as a glob: the output must not be one
    command = [sys.executable, "-m", "cashscore.cli", "score", "--engine", "spark", "--master", "local[2]",
               "--input", str(source), "--out", str(out), "--models", str(models), *flags]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"scored {duck.num_rows:,} rows into {out}" in done.stdout
    scored, rejects = _spark_scores(str(out))
    assert scored.schema.names == duck.schema.names
    for column in ("loan_id", "default_probability", "decision", "risk_band", "reasons"):
        assert scored.column(column).to_pylist() == duck.column(column).to_pylist(), column
    assert rejects.column("reject_reason").to_pylist() == duck_rejects.column("reject_reason").to_pylist()
    assert any(" é " in text for text in scored.column("reasons").to_pylist())


def test_a_corrupted_model_is_refused_on_the_executors(spark, trained, tmp_path):
    from cashscore.scoring import spark as engine

    db, models = trained[0], trained[1]
    source = _export(db, tmp_path / "applicants.parquet")
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.parquet").write_bytes(b"the last good run")
    corrupted = tmp_path / "copy" / store.MODEL_FILE
    corrupted.parent.mkdir()
    data = bytearray(store.load_verified(models).onnx_bytes)
    data[len(data) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    with pytest.raises(CashscoreError, match=r"Spark executor .*cashscore.onnx has sha256 .* changed or corrupted"):
        engine.score_files(spark, models, str(source), str(out), "none", ship=corrupted)
    assert (out / "previous.parquet").read_bytes() == b"the last good run"  # the old output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["applicants.parquet", "copy", "out"]  # nothing half-built


def test_every_row_rejected_gives_an_empty_scored_folder_with_its_columns(spark, trained, tmp_path):
    from cashscore.scoring import spark as engine

    db, models = trained[0], trained[1]
    rows = pq.read_table(_export(db, tmp_path / "applicants.parquet")).slice(0, 50)
    bad = tmp_path / "bad.parquet"
    pq.write_table(rows.set_column(rows.schema.get_field_index("loan_amnt"), "loan_amnt", pa.array([-1.0] * 50)), bad)
    stale = tmp_path / "out.rejects"
    (tmp_path / "out").write_bytes(b"a file a previous tool wrote")  # replaced by the folder, none of it left
    outcome = engine.score_files(spark, models, str(bad), str(tmp_path / "out"))
    assert not list(tmp_path.glob(".out*"))
    assert (outcome.scored, outcome.rejected, outcome.rejects) == (0, 50, str(stale))
    scored, rejects = _spark_scores(str(tmp_path / "out"))
    assert scored.num_rows == 0 and scored.schema.names[-5:] == ["default_probability", "decision", "risk_band",
                                                                  "reasons", "model_version"]  # fmt: skip
    why = rejects.column("reject_reason").to_pylist()
    assert len(why) == 50 and all(why) and "loan_amnt: outside 0..10000000" in why
    assert (tmp_path / "out" / "_SUCCESS").exists()
    # Scored again from an empty input, the stale rejects folder goes: it would describe another run.
    empty = tmp_path / "empty.parquet"
    pq.write_table(rows.schema.empty_table(), empty)
    outcome = engine.score_files(spark, models, str(empty), str(tmp_path / "out"))
    assert (outcome.scored, outcome.rejected, outcome.rejects) == (0, 0, None) and not stale.exists()
    stale.write_bytes(b"not a folder")  # a stale file is removed as a stale folder is
    assert engine.score_files(spark, models, str(empty), str(tmp_path / "out")).rejects is None
    assert not stale.exists()


def test_parts_the_driver_cannot_see_are_refused(tmp_path):
    """On a cluster, a plain path that is not shared leaves each executor's parts on its own disk."""
    from cashscore.scoring import spark as engine

    # An executor that does not see the folder the driver made refuses before it scores a row.
    missing = str(tmp_path / ".out.building")
    with pytest.raises(CashscoreError, match=r"Spark executor on .*\.out\.building does not exist here"):
        next(engine.write_batches(iter(()), {}, {}, (pa.schema([]), pa.schema([])), (missing, missing), "deny", False))

    (tmp_path / "part-00000.parquet").write_bytes(b"")
    engine.check_parts(tmp_path, [(0, 10), (1, 0)], "scores")  # partition 1 wrote nothing: nothing to see
    with pytest.raises(CashscoreError, match=r"--out scores: the driver cannot see .* 1 task\(s\) .*partition 3\)"):
        engine.check_parts(tmp_path, [(0, 10), (3, 5)], "scores")


def test_bad_input_is_refused_by_name(spark, trained, tmp_path):
    from cashscore.scoring import spark as engine

    models = trained[1]
    with pytest.raises(CashscoreError, match="--input .*missing.parquet: Spark cannot read it"):
        engine.score_files(spark, models, str(tmp_path / "missing.parquet"), str(tmp_path / "o"))
    # An output that would replace its own input (or the folder holding it) is refused before Spark reads.
    source = tmp_path / "in" / "applicants.parquet"
    source.parent.mkdir()
    source.write_bytes(b"the portfolio")
    for out in (source, source.parent, f"file://{source.parent}", str(source.parent) + "/"):
        with pytest.raises(CashscoreError, match="it would replace --input"):
            engine.score_files(spark, models, str(source), str(out))
    with pytest.raises(CashscoreError, match="it would replace --input"):
        engine.score_files(spark, models, str(tmp_path / "in" / "*.parquet"), str(tmp_path / "in"))
    with pytest.raises(CashscoreError, match="it is inside --input"):
        engine.score_files(spark, models, str(source.parent), str(source.parent / "scores"))
    assert source.read_bytes() == b"the portfolio"
    partial = tmp_path / "partial.parquet"
    spark.range(3).withColumnRenamed("id", "person_age").write.parquet(str(partial))
    with pytest.raises(CashscoreError, match="lacks required column"):
        engine.score_files(spark, models, str(partial), str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_spark_flags_are_checked(trained, tmp_path, capsys):
    models = str(trained[1])
    assert main(["score", "--engine", "spark", "--out", str(tmp_path / "o"), "--models", models]) == 1
    assert "--input" in capsys.readouterr().err
    assert main(["score", "--input", "x.parquet", "--out", str(tmp_path / "o.parquet"), "--models", models]) == 1
    assert "--engine spark" in capsys.readouterr().err
    assert main(["score", "--engine", "spark", "--input", "x", "--out", "o", "--into", "t", "--models", models]) == 1
    assert "--into and --audit" in capsys.readouterr().err
