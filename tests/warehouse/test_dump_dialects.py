# ruff: noqa: E501 - the recorded dump and the expected messages read better unwrapped
"""What MySQL 8 writes and MariaDB does not (recorded by hand from MySQL's documentation), and the refusals.

The differential test (test_mariadb_differential.py) covers everything a real MariaDB server writes;
MySQL 8's mysqldump adds `/*!80016 ... */` clauses, `utf8mb4_0900_ai_ci`, `_binary` literals and
invisible keys. Types and values cashscore does not restore are refused with FILE:LINE naming them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest
from helpers.dumps import SQL_DIR

from cashscore.core.errors import CashscoreError
from cashscore.warehouse.export import connect
from cashscore.warehouse.restore import restore

# mysqldump 8.0.36 on a utf8mb4 server, as its documentation and source describe the output.
MYSQL8 = r"""-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: localhost    Database: bank
-- ------------------------------------------------------
-- Server version	8.0.36

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!50503 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `bank` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci */ /*!80016 DEFAULT ENCRYPTION='N' */;

USE `bank`;

--
-- Table structure for table `loans`
--

DROP TABLE IF EXISTS `loans`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!50503 SET character_set_client = utf8mb4 */;
CREATE TABLE `loans` (
  `id` int NOT NULL AUTO_INCREMENT,
  `amount` decimal(12,2) NOT NULL,
  `doc` blob,
  `flags` bit(3) DEFAULT NULL,
  `status` enum('open','closed') CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci DEFAULT 'open',
  `opened` datetime(3) DEFAULT NULL,
  `note` varchar(40) COLLATE utf8mb4_0900_ai_ci DEFAULT NULL,
  `meta` json DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_status` (`status`) /*!80000 INVISIBLE */
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `loans`
--

LOCK TABLES `loans` WRITE;
/*!40000 ALTER TABLE `loans` DISABLE KEYS */;
INSERT INTO `loans` VALUES (1,1234.50,_binary 'PDF\0\\x41\'',b'101','open','2024-01-02 03:04:05.678','café \'ok\' 😀','{\"a\": [1, \"x\"]}'),(2,-0.01,_binary '',b'0','closed',NULL,NULL,NULL),(3,0.00,NULL,NULL,'open','1000-01-01 00:00:00.000','',NULL);
/*!40000 ALTER TABLE `loans` ENABLE KEYS */;
UNLOCK TABLES;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;

-- Dump completed on 2024-03-01 10:00:00
"""


def restored(tmp_path, text: str | bytes, name: str = "dump.sql") -> list[tuple]:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    db = tmp_path / "restored.duckdb"
    restore([path], db, SQL_DIR, say=lambda _: None, raw_only=True)
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select * from raw.loans order by id").fetchall()


def test_mysql8_mysqldump(tmp_path):
    rows = restored(tmp_path, MYSQL8)
    assert rows == [
        (1, Decimal("1234.50"), b"PDF\0\\x41'", 5, "open", dt.datetime(2024, 1, 2, 3, 4, 5, 678000),
         "café 'ok' 😀", '{"a": [1, "x"]}'),
        (2, Decimal("-0.01"), b"", 0, "closed", None, None, None),
        (3, Decimal("0.00"), None, None, "open", dt.datetime(1000, 1, 1), "", None),
    ]  # fmt: skip


def test_mysql8_hex_blob_and_complete_insert(tmp_path):
    text = MYSQL8.replace(
        "INSERT INTO `loans` VALUES (1,1234.50,_binary 'PDF\\0\\\\x41\\'',",
        "INSERT INTO `loans` (`id`, `amount`, `doc`, `flags`, `status`, `opened`, `note`, `meta`) VALUES "
        "(1,1234.50,0x5044460000,",
    )
    assert "0x5044460000" in text
    assert restored(tmp_path, text)[0][2] == b"PDF\0\0"


def test_a_raw_only_restore_never_replaces_a_database_silently(tmp_path):
    restored(tmp_path, MYSQL8)
    with pytest.raises(
        CashscoreError, match=r"restored.duckdb exists; a --raw-only restore replaces it only with --force"
    ):
        restored(tmp_path, MYSQL8)


def test_a_database_named_after_a_schema_is_refused(tmp_path):
    (tmp_path / "dump.sql").write_text(MYSQL8)
    with pytest.raises(CashscoreError, match=r"raw.duckdb: a database named after one of its schemas"):
        restore([tmp_path / "dump.sql"], tmp_path / "raw.duckdb", SQL_DIR, say=lambda _: None, raw_only=True)
    # A good database copied to such a name is refused by every command that opens it, with the
    # same words, not DuckDB's "Ambiguous reference to catalog or schema".
    restored(tmp_path, MYSQL8)
    (tmp_path / "restored.duckdb").rename(tmp_path / "Raw.duckdb")
    with pytest.raises(CashscoreError, match=r"Raw.duckdb: a database named after one of its schemas"):
        connect(tmp_path / "Raw.duckdb")


def one_column(sql_type: str, value: str) -> str:
    return (
        "/*!40101 SET NAMES utf8mb4 */;\n"
        f"CREATE TABLE `loans` (`id` int NOT NULL, `x` {sql_type});\n"
        f"INSERT INTO `loans` VALUES (1,{value});\n"
    )


@pytest.mark.parametrize(
    ("dump", "message"),
    [
        (one_column("decimal(65,30)", "1.5"), r"dump.sql:2: column `x` is DECIMAL\(65,30\): DuckDB holds at most 38"),
        (one_column("geometry", "NULL"), r"dump.sql:2: column `x` has type GEOMETRY, which cashscore does not restore"),
        (one_column("date", "'0000-00-00'"), r"dump.sql:3: INSERT into `loans`, row 1: .*0000-00-00"),
        (one_column("datetime", "'2024-02-30 00:00:00'"), r"dump.sql:3: INSERT into `loans`, row 1: .*2024-02-30"),
        (one_column("tinyint unsigned", "300"), r"dump.sql:3: INSERT into `loans`, row 1: .*300"),
        (one_column("varchar(10)", "NOW()"), r"dump.sql:3: .*malformed VALUES list"),
        ("SET NAMES cp1251;\n" + one_column("text", "'x'"), r"dump.sql:1: the dump is written in character set 'cp1251'"),
        (one_column("text", "'caf\xe9'").encode("latin-1"), r"dump.sql:3: row 1 of this INSERT, column `x`: bytes that are not UTF-8"),
    ],
    ids=["decimal-65", "geometry", "zero-date", "impossible-date", "out-of-range", "function", "charset", "bytes-in-text"],
)  # fmt: skip
def test_what_cashscore_does_not_restore_is_refused_with_file_and_line(tmp_path, dump, message):
    with pytest.raises(CashscoreError, match=message):
        restored(tmp_path, dump)
    assert not (tmp_path / "restored.duckdb").exists()


def test_cli_restores_a_compact_latin1_dump_given_its_charset(tmp_path, capsys):
    from cashscore.cli import main

    # --compact writes no SET NAMES: the bytes are latin1 and only --charset says so.
    dump = tmp_path / "compact.sql"
    dump.write_bytes("CREATE TABLE `t` (`id` int, `name` varchar(10));\nINSERT INTO `t` VALUES (1,'Crédito €');\n"
                     .encode("cp1252"))  # fmt: skip
    db = tmp_path / "compact.duckdb"
    assert main(["restore", "--raw-only", str(dump), "--db", str(db)]) == 1  # read as utf8mb4: refused
    assert "bytes that are not UTF-8" in capsys.readouterr().err
    assert main(["restore", "--raw-only", "--charset", "latin1", str(dump), "--db", str(db)]) == 0
    assert "raw.t" in capsys.readouterr().out
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select name from raw.t").fetchall() == [("Crédito €",)]
