"""A deterministic synthetic Alura Cash dump: the real schema, its quirks and a realistic default signal."""

from __future__ import annotations

import gzip
import string
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cashscore.core.atomic import write_atomic
from cashscore.features.contract import BY_NAME

ROWS_PER_INSERT = 2000
HOME = ("Rent", "Mortgage", "Own", "Other")
HOME_P = (0.505, 0.412, 0.079, 0.004)
INTENTS = BY_NAME["loan_intent"].categories
INTENT_P = (0.198, 0.186, 0.175, 0.169, 0.16, 0.112)
GRADES = BY_NAME["loan_grade"].categories
GRADE_P = (0.33, 0.32, 0.198, 0.111, 0.03, 0.0085, 0.0025)
GRADE_RATE = (7.3, 11.0, 13.5, 15.4, 17.0, 18.6, 20.2)
GRADE_PRIOR_DEFAULT = (0.0, 0.0, 0.42, 0.55, 0.55, 0.62, 0.75)
# Spellings the staging views must normalise, as a bank's other systems write them.
MESSY = {
    "Rent": ("RENT", "rent", "Alugada"),
    "Mortgage": ("MORTGAGE", "Hipotecada"),
    "Own": ("own", "Própria", "Propria"),
    "Other": ("OTHER", "Outros"),
    "Education": ("EDUCATION", "Educativo"),
    "Medical": ("medical", "Médico"),
    "Venture": ("VENTURE", "Empreendimento"),
    "Personal": ("personal", "Pessoal"),
    "Debtconsolidation": ("DEBTCONSOLIDATION", "Pagamento de débitos"),
    "Homeimprovement": ("homeimprovement", "Melhora do lar"),
    "Y": ("y", "S", "Sim", "YES"),
    "N": ("n", "NAO", "Não", "no"),
}
TABLES = {
    "dados_mutuarios": (
        "  `person_id` varchar(16) DEFAULT NULL,\n  `person_age` int DEFAULT NULL,\n"
        "  `person_income` int DEFAULT NULL,\n  `person_home_ownership` varchar(8) DEFAULT NULL,\n"
        "  `person_emp_length` double DEFAULT NULL"
    ),
    "emprestimos": (
        "  `loan_id` varchar(16) DEFAULT NULL,\n  `loan_intent` varchar(32) DEFAULT NULL,\n"
        "  `loan_grade` varchar(1) DEFAULT NULL,\n  `loan_amnt` int DEFAULT NULL,\n"
        "  `loan_int_rate` double DEFAULT NULL,\n  `loan_status` int DEFAULT NULL,\n"
        "  `loan_percent_income` double DEFAULT NULL"
    ),
    "historicos_banco": (
        "  `cb_id` varchar(16) DEFAULT NULL,\n  `cb_person_default_on_file` varchar(1) DEFAULT NULL,\n"
        "  `cb_person_cred_hist_length` int DEFAULT NULL"
    ),
    "ids": (
        "  `person_id` varchar(16) DEFAULT NULL,\n  `loan_id` varchar(16) DEFAULT NULL,\n"
        "  `cb_id` varchar(16) DEFAULT NULL"
    ),
}
ALPHABET = np.array(list(string.ascii_letters + string.digits))


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ids shaped like the bank's (`JAz2tRvQ-14cy`), unique."""
    chars = ALPHABET[rng.integers(0, len(ALPHABET), size=(n, 12))]
    ids = np.array(["".join(r[:8]) + "-" + "".join(r[8:]) for r in chars], dtype=object)
    # A clash among 62^12 values is rare but must not break the link table.
    _, first = np.unique(ids, return_index=True)
    dup = np.setdiff1d(np.arange(n), first)
    for i in dup:
        ids[i] = ids[i][:-4] + f"{i % 10000:04d}"
    return ids


def generate(rows: int, seed: int) -> dict[str, list[tuple[object, ...]]]:
    """Build the four tables' rows.

    Args:
        rows: loan applications.
        seed: random seed; the same seed gives the same rows.

    Returns:
        Rows per table, in dump column order, with None for NULL.
    """
    rng = np.random.default_rng(seed)
    n = rows
    age = np.clip(np.round(20 + rng.gamma(1.6, 4.6, n)), 20, 84).astype(int)
    income = np.clip(np.round(np.exp(rng.normal(np.log(56000), 0.52, n)), -2), 4000, 900_000).astype(int)
    home = rng.choice(len(HOME), n, p=HOME_P)
    emp = np.minimum(np.round(rng.exponential(4.6, n)), age - 16).astype(float)
    intent = rng.choice(len(INTENTS), n, p=INTENT_P)
    grade = rng.choice(len(GRADES), n, p=GRADE_P)
    rate = np.round(np.clip(np.asarray(GRADE_RATE)[grade] + rng.normal(0, 1.2, n), 5.42, 23.22), 2)
    amount = np.clip(np.round(np.exp(rng.normal(np.log(8000), 0.6, n)), -2) // 25 * 25, 500, 35000).astype(int)
    percent = np.round(amount / income, 2)
    prior = rng.random(n) < np.asarray(GRADE_PRIOR_DEFAULT)[grade]
    hist = np.clip(np.round((age - 20) * 0.85 + rng.uniform(2, 4.5, n)), 2, 30).astype(int)
    logit = (
        9.0 * percent
        + 0.55 * grade
        + 0.9 * (home == 0)
        - 0.6 * (home == 2)
        + 0.35 * np.isin(intent, (1, 4, 5))
        - 0.35 * np.isin(intent, (0, 2))
        + 0.3 * prior
        - 0.35 * np.log(income / 56000)
        + rng.logistic(0, 0.6, n)
    )
    # The intercept that gives the real data's 21.8 % defaults.
    status = (logit > np.quantile(logit, 1 - 0.218)).astype(int)

    person_ids, loan_ids, cb_ids = _ids(rng, n), _ids(rng, n), _ids(rng, n)
    home_s = np.array(HOME, dtype=object)[home]
    intent_s = np.array(INTENTS, dtype=object)[intent]
    grade_s = np.array(GRADES, dtype=object)[grade]
    prior_s = np.where(prior, "Y", "N").astype(object)
    age_o, income_o, emp_o = age.astype(object), income.astype(object), emp.astype(object)
    amount_o, rate_o, percent_o = amount.astype(object), rate.astype(object), percent.astype(object)
    status_o, hist_o = status.astype(object), hist.astype(object)

    def some(share: float) -> np.ndarray:
        return rng.random(n) < share

    # The quirks of the real dump: blanks for missing text, NULL for missing numbers, outliers.
    for col, share in ((home_s, 0.0096), (intent_s, 0.009), (grade_s, 0.009), (prior_s, 0.0106)):
        col[some(share)] = ""
    for col, share in (
        (age_o, 0.0093),
        (income_o, 0.0097),
        (emp_o, 0.036),
        (amount_o, 0.0096),
        (rate_o, 0.105),
        (status_o, 0.0099),
        (percent_o, 0.0092),
        (hist_o, 0.0001),
    ):
        col[some(share)] = None
    outliers = rng.choice(n, size=min(n, 12), replace=False)
    for k, i in enumerate(outliers):
        if k < 3:
            age_o[i] = (144, 123)[k % 2]
        elif k < 4:
            emp_o[i] = 123.0
        elif k < 8:
            income_o[i] = int(rng.integers(1_200_000, 6_000_001))
        else:
            percent_o[i] = 0.0
    for col in (home_s, intent_s, prior_s):
        messy = np.flatnonzero(some(0.02) & (col != ""))
        for i in messy:
            col[i] = MESSY[col[i]][int(rng.integers(len(MESSY[col[i]])))]
    blank = rng.choice(n, size=min(n, 2 if n >= 100 else 0), replace=False)
    person_ids[blank] = ""

    def shuffled(table: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        order = rng.permutation(len(table))
        return [table[i] for i in order]

    return {
        "dados_mutuarios": shuffled(list(zip(person_ids, age_o, income_o, home_s, emp_o, strict=True))),
        "emprestimos": shuffled(
            list(zip(loan_ids, intent_s, grade_s, amount_o, rate_o, status_o, percent_o, strict=True))
        ),
        "historicos_banco": shuffled(list(zip(cb_ids, prior_s, hist_o, strict=True))),
        "ids": shuffled(list(zip(person_ids, loan_ids, cb_ids, strict=True))),
    }


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, float | np.floating):
        return repr(float(value)).removesuffix(".0") if float(value).is_integer() else repr(float(value))
    return str(value)


def dump_lines(tables: dict[str, list[tuple[object, ...]]]) -> Iterator[str]:
    """The dump's text, statement by statement, as mysqldump 8 writes it."""
    yield "-- MySQL dump 10.13  Distrib 8.0.30 (cashscore synthetic sample)\n--\n"
    yield "-- Host: localhost    Database: analise_risco\n"
    yield "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n/*!50503 SET NAMES utf8mb4 */;\n"
    yield "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\n"
    yield "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `analise_risco` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n"
    yield "\nUSE `analise_risco`;\n"
    for table, rows in tables.items():
        yield f"\n--\n-- Table structure for table `{table}`\n--\n\nDROP TABLE IF EXISTS `{table}`;\n"
        yield "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
        yield f"CREATE TABLE `{table}` (\n{TABLES[table]}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3;\n"
        yield f"\nLOCK TABLES `{table}` WRITE;\n/*!40000 ALTER TABLE `{table}` DISABLE KEYS */;\n"
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            values = ",".join("(" + ",".join(_literal(v) for v in row) + ")" for row in chunk)
            yield f"INSERT INTO `{table}` VALUES {values};\n"
        yield f"/*!40000 ALTER TABLE `{table}` ENABLE KEYS */;\nUNLOCK TABLES;\n"
    yield "/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n\n-- Dump completed\n"


def write_sample(out: Path, rows: int = 5000, seed: int = 42) -> None:
    """Write a synthetic dump (gzip when `out` ends in .gz) with CRLF line ends like the real one.

    Args:
        out: the file to write, replaced atomically.
        rows: loan applications.
        seed: random seed.
    """
    tables = generate(rows, seed)

    def write(tmp: Path) -> None:
        opener = gzip.open if out.suffix == ".gz" else open
        with opener(tmp, "wb") as handle:
            for text in dump_lines(tables):
                handle.write(text.replace("\n", "\r\n").encode("utf-8"))

    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, write)
