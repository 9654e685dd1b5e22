"""Power BI: the M in powerbi/ parses with Microsoft's parser, and its requests, re-enacted, work.

Each re-enactment (tests/helpers/powerquery.py) sends what the M sends; the first tests check the M
still holds every step the re-enactment relies on.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import time

import duckdb
import pyarrow.parquet as pq
import pytest
from cashscore.features import contract
from cashscore.server.app import create_app, session_token
from helpers.powerquery import MError, m_json, score_applicant, score_table
from litestar.testing import TestClient

from cashscore import cli
from cashscore.artefact.store import load_verified
from cashscore.core import config
from cashscore.scoring import batch
from cashscore.scoring.scorer import Scorer

POWERBI = config.PROJECT_ROOT / "powerbi"
CHECK = POWERBI / "check"
KEY = "pbi-key"


def m_source(name: str) -> str:
    return (POWERBI / name).read_text(encoding="utf-8")


def m_list(name: str, step: str) -> list[str]:
    block = m_source(name).split(f"{step} = {{", 1)[1].split("}", 1)[0]
    return re.findall(r'"(\w+)"', block)


def test_m_functions_use_the_contract_fields_and_endpoints():
    table = m_source("ScoreTable.pq")
    assert m_list("ScoreTable.pq", "Fields") == list(contract.NAMES)
    assert m_list("ScoreTable.pq", "Numbers") == [f.name for f in contract.FEATURES if f.kind == "numeric"]
    assert m_list("ScoreTable.pq", "Categories") == list(contract.CATEGORICAL)
    record = m_source("ScoreApplicant.pq").split("Applicant = [", 1)[1].split("],", 1)[0]
    assert re.findall(r"(\w+) = ", record) == list(contract.NAMES)
    assert "optional loan_percent_income as any" in m_source("ScoreApplicant.pq")
    # The steps the re-enactment relies on.
    for step in (
        'Table.Buffer(Table.AddIndexColumn(Source, "cashscore_row"',  # one evaluation of the source
        "Number.FromText(Text.Trim(value), Culture)",  # numbers as text
        "BatchSize >= 1 and BatchSize <= 10000",
        "Table.Split(Renamed, CheckedSize)",
        'RelativePath = "v1/score/batch"',
        'Query = [reasons = if CheckedReasons then "true" else "false", lang = CheckedLanguage]',
        'if Language = "en" or Language = "pt" then Language',
        "ManualStatusHandling = {400, 401",
        "Table.FromRows(",  # typed even when empty
        "JoinKind.LeftOuter",
    ):
        assert step in table, step
    for source in (table, m_source("ScoreApplicant.pq")):
        # A static base URL (refreshable in the service), the key only through the credential store.
        assert 'Web.Contents(BaseUrl & "v1/token", [ApiKeyName = "api_key"])' in source
        assert "ApiKey" not in source.replace("ApiKeyName", "")
        assert re.findall(r"Web\.Contents\(\s*(\w+)", source) == ["BaseUrl", "BaseUrl"]
        assert '"Bearer " & Token' in source


# ---- Microsoft's parser ----------------------------------------------------------------------


def parse(*files: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (CHECK / "node_modules" / "@microsoft" / "powerquery-parser").is_dir():
        if os.environ.get("CI"):
            pytest.fail(
                "node or @microsoft/powerquery-parser missing: `make test` installs it (npm ci in powerbi/check)"
            )
        pytest.skip("node or @microsoft/powerquery-parser missing: run `make test`, which installs it")
    return subprocess.run([node, str(CHECK / "parse.js"), *files], capture_output=True, text=True, timeout=60)


def test_every_m_file_parses_with_microsofts_parser():
    files = sorted(str(p) for p in POWERBI.glob("*.pq"))
    assert len(files) >= 2
    done = parse(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"ok {f}" for f in files]


def test_the_parser_refuses_broken_m_with_its_line(tmp_path):
    broken = tmp_path / "broken.pq"
    # A missing comma between two steps: the kind of slip that reaches users when M is never parsed.
    broken.write_text(m_source("ScoreTable.pq").replace('Present & {"cashscore_row"}),', "Present)"), "utf-8")
    done = parse(str(broken))
    assert done.returncode == 1
    assert re.match(rf"{re.escape(str(broken))}:\d+:\d+: ", done.stdout), done.stdout


# ---- the re-enacted requests -----------------------------------------------------------------


@pytest.fixture
def client(trained):
    with TestClient(app=create_app(trained[1], api_key=KEY)) as c:
        yield c


@pytest.fixture(scope="module")
def applicants(trained):
    with duckdb.connect(str(trained[0]), read_only=True) as con:
        table = con.execute("select * from marts.applicants order by loan_id limit 2500").df()
    rows = []
    for record in table.to_dict("records"):
        row = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
        rows.append({"loan_id": row["loan_id"], **{n: row[n] for n in contract.NAMES}})
    return rows


def by_loan(client, rows):
    """Each row's probability scored on its own terms (one batch, ids are the loan ids)."""
    body = [{**{n: r[n] for n in contract.NAMES}, "id": r["loan_id"]} for r in rows]
    results = client.post("/v1/score/batch", content=m_json(body), headers={"X-API-Key": KEY}).json()["results"]
    return {r["id"]: (r["score"]["default_probability"] if r["ok"] else None) for r in results}


def test_an_unordered_source_keeps_every_row_with_its_own_score(client, applicants):
    expected = by_loan(client, applicants)
    shuffler = random.Random(7)

    def unordered():  # a view without ORDER BY: every evaluation may come in another order
        rows = list(applicants)
        shuffler.shuffle(rows)
        return rows

    scored = score_table(client, unordered, KEY, {"BatchSize": 1000})
    assert len(scored) == len(applicants)
    assert all(row["default_probability"] == expected[row["loan_id"]] for row in scored)
    # The old function read the source twice: rows got other rows' scores.
    old = score_table(client, unordered, KEY, {"BatchSize": 1000}, buffered=False)
    assert sum(row["default_probability"] != expected[row["loan_id"]] for row in old) > len(applicants) // 2


def as_text(value, culture):
    if value is None or isinstance(value, str):
        return value
    text = repr(float(value)) if value != int(value) else f"{int(value)}"
    return text.replace(".", ",") if culture == "pt-BR" else text


@pytest.mark.parametrize("culture", ["pt-BR", "en-US"])
def test_numbers_typed_as_text_score_as_numbers(client, applicants, culture):
    rows = applicants[:300]
    numeric = score_table(client, lambda: rows, KEY, {"BatchSize": 100})
    texts = [{k: (as_text(v, culture) if k in contract.NUMERIC else v) for k, v in r.items()} for r in rows]
    assert any("," in str(r["loan_int_rate"]) for r in texts) == (culture == "pt-BR")
    typed = score_table(client, lambda: texts, KEY, {"BatchSize": 100, "Culture": culture})
    assert [r["default_probability"] for r in typed] == [r["default_probability"] for r in numeric]
    assert sum(r["decision"] != "rejected" for r in typed) > 250
    # Sent as text (the old function), the service refuses them row by row.
    sent_raw = client.post(
        "/v1/score/batch", content=m_json([{**r, "id": i} for i, r in enumerate(texts)]), headers={"X-API-Key": KEY}
    ).json()
    assert sent_raw["scored"] == 0


def test_an_empty_source_gives_an_empty_result_without_a_request(client):
    before = client.get("/metrics").text
    assert score_table(client, list, KEY) == []
    assert client.get("/metrics").text.count("/v1/score/batch") == before.count("/v1/score/batch")


def test_a_refused_batch_stops_with_the_servers_message(trained, applicants, monkeypatch):
    monkeypatch.setenv("CASHSCORE_MAX_BATCH", "500")
    with TestClient(app=create_app(trained[1], api_key=KEY)) as c:
        score_table(c, lambda: applicants[:1000], KEY, {"BatchSize": 500})  # within the limit: fine
        with pytest.raises(MError, match=r"^batch 1 \(rows 0-599\): HTTP 400: .*600 applicants; the maximum is 500"):
            score_table(c, lambda: applicants[:1000], KEY, {"BatchSize": 600})


@pytest.mark.parametrize("size", [0, 10_001, 2.5, "1000"])
def test_batch_size_outside_1_to_10000_is_refused_before_any_request(client, applicants, size):
    with pytest.raises(MError, match="BatchSize must be a whole number from 1 to 10,000"):
        score_table(client, lambda: applicants[:10], KEY, {"BatchSize": size})


def test_reasons_only_on_request(client, applicants):
    rows = applicants[:400]
    plain = score_table(client, lambda: rows, KEY)
    worded = score_table(client, lambda: rows, KEY, {"Reasons": True})
    assert all(r["reasons"] is None for r in plain)
    assert any(r["reasons"] for r in worded if r["decision"] == "deny")
    assert [r["default_probability"] for r in plain] == [r["default_probability"] for r in worded]
    rejected = [r for r in plain if r["decision"] == "rejected"]
    assert rejected and all(r["error"] and r["default_probability"] is None for r in rejected)
    # In Portuguese: the same rows and numbers, the same number of reasons, other words.
    pt = score_table(client, lambda: rows, KEY, {"Reasons": True, "Language": "pt"})
    assert [r["default_probability"] for r in pt] == [r["default_probability"] for r in worded]
    for ours, theirs in zip(pt, worded, strict=True):
        assert (ours["reasons"] or "").count("; ") == (theirs["reasons"] or "").count("; ")
    assert any("o que multiplica a chance de inadimplência" in (r["reasons"] or "") for r in pt)
    with pytest.raises(MError, match='Language must be "en" or "pt"'):
        score_table(client, lambda: rows, KEY, {"Language": "fr"})


# ---- the key stays in the credential store ---------------------------------------------------


def test_posts_need_a_token_from_the_credential_store_key(client, applicants):
    body = m_json([{**{n: applicants[0][n] for n in contract.NAMES}, "id": 0}])
    anonymous = {"Content-Type": "application/json"}
    assert client.post("/v1/score/batch", content=body, headers=anonymous).status_code == 401
    assert client.get("/v1/token").status_code == 401
    assert client.get("/v1/token", params={"api_key": "wrong"}).status_code == 401
    answer = client.get("/v1/token", params={"api_key": KEY})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    token = answer.json()["token"]
    assert KEY not in token
    bearer = {**anonymous, "Authorization": f"Bearer {token}"}
    assert client.post("/v1/score/batch", content=body, headers=bearer).status_code == 200
    # An expired token, a forged one, and a dashboard cookie passed off as a token are refused.
    past = int(time.time()) - 1
    for forged in (session_token(KEY, past, "api"), session_token("other", past + 3600, "api"),
                   session_token(KEY, past + 3600), f"{past + 3600}.{'0' * 64}", "x" * 5000):  # fmt: skip
        refused = client.post(
            "/v1/score/batch", content=body, headers={**anonymous, "Authorization": f"Bearer {forged}"}
        )
        assert refused.status_code == 401 and "/v1/token" in refused.json()["detail"]


def test_without_a_key_the_token_is_null_and_posts_go_anonymous(trained, applicants):
    with TestClient(app=create_app(trained[1], api_key="")) as c:
        assert c.get("/v1/token").json() == {"token": None, "expires_at": None}
        assert len(score_table(c, lambda: applicants[:20], None)) == 20


# ---- ScoreApplicant --------------------------------------------------------------------------


def test_score_applicant_answers_with_both_probabilities_and_a_counter_offer(client):
    fields = {
        "person_age": "22", "person_income": "59.000", "person_home_ownership": "Alugado",
        "person_emp_length": None, "loan_intent": "Pessoal", "loan_grade": "D", "loan_amnt": "35.000",
        "loan_int_rate": "16,02", "cb_person_default_on_file": "S", "cb_person_cred_hist_length": "3",
    }  # fmt: skip
    row = score_applicant(client, KEY, fields, culture="pt-BR")
    assert abs(row["default_probability"] + row["repay_probability"] - 1) < 1e-9
    assert row["decision"] in ("approve", "deny")
    english = score_applicant(
        client,
        KEY,
        fields
        | {
            "person_home_ownership": "Rent",
            "loan_intent": "Personal",
            "cb_person_default_on_file": "Y",
            "loan_percent_income": round(35_000 / 59_000, 2),
        },  # fmt: skip
        culture="pt-BR",
    )
    assert english == row  # loan_percent_income left out is derived as amount / income
    if row["decision"] == "deny":
        assert row["counter_offer_amount"] is None or row["counter_offer_amount"] < 35_000
    pt = score_applicant(client, KEY, fields, culture="pt-BR", language="pt")
    assert {k: v for k, v in pt.items() if k != "reasons"} == {k: v for k, v in row.items() if k != "reasons"}
    assert pt["reasons"].count("; ") == row["reasons"].count("; ") and " é " in pt["reasons"]
    with pytest.raises(MError, match='Language must be "en" or "pt"'):
        score_applicant(client, KEY, fields, language="EN")


def test_score_applicant_surfaces_the_servers_words(client):
    fields = {"person_age": 17, "person_income": 1000, "loan_intent": "Education", "loan_grade": "A", "loan_amnt": 10}
    with pytest.raises(MError, match=r"HTTP 400: .*person_age"):
        score_applicant(client, KEY, fields)
    with pytest.raises(MError, match=r"HTTP 400: .*loan_intent"):
        score_applicant(client, KEY, fields | {"person_age": 30, "loan_intent": "Gambling"})


# ---- the seed author's Portuguese spellings, in every channel --------------------------------

ENGLISH = {"person_home_ownership": "Rent", "loan_intent": "Debtconsolidation"}
SEED_AUTHOR = [
    {"person_home_ownership": "Alugado", "loan_intent": "Dividas"},
    {"person_home_ownership": "  FINANCIADO", "loan_intent": "Reforma "},
    {"person_home_ownership": "Própria", "loan_intent": "Melhora do lar"},
]


def test_the_seed_authors_spellings_score_as_the_english_categories(client, trained, applicants, tmp_path):
    base = next(r for r in applicants if None not in r.values())
    english = [
        {**base, "person_home_ownership": "Rent", "loan_intent": "Debtconsolidation"},
        {**base, "person_home_ownership": "Mortgage", "loan_intent": "Homeimprovement"},
        {**base, "person_home_ownership": "Own", "loan_intent": "Homeimprovement"},
    ]
    portuguese = [{**base, **spelling} for spelling in SEED_AUTHOR]
    expected = [score_applicant(client, KEY, r)["default_probability"] for r in english]
    assert len(set(expected)) > 1  # the categories matter to this applicant
    # The API, one by one and in a batch.
    assert [score_applicant(client, KEY, r)["default_probability"] for r in portuguese] == expected
    assert [r["default_probability"] for r in score_table(client, lambda: portuguese, KEY)] == expected
    # SQL: score_default over a table holding the spellings, and `cashscore score` on it.
    db = tmp_path / "pt.duckdb"
    names = list(contract.NAMES)
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table applicants as select * from (values "
            + ", ".join("(" + ", ".join("?" for _ in names) + ")" for _ in portuguese)
            + ") as t("
            + ", ".join(names)
            + ")",  # fmt: skip
            [r[n] for r in portuguese for n in names],
        )
        batch.register_udfs(con, Scorer(load_verified(trained[1])))
        in_sql = [p for (p,) in con.execute("select score_default(a) from applicants a").fetchall()]
    assert [round(p, 6) for p in in_sql] == expected
    out = tmp_path / "scored.parquet"
    assert (
        cli.main(["score", "--table", "applicants", "--db", str(db), "--models", str(trained[1]), "--out", str(out)])
        == 0
    )
    assert [round(p, 6) for p in pq.read_table(out).column("default_probability").to_pylist()] == expected


def test_model_card_reads_fields_the_service_returns(client):
    source = m_source("ModelCard.pq")
    assert 'Web.Contents(\n        BaseUrl & "v1/model",\n        [ApiKeyName = "api_key"' in source
    assert client.get("/v1/model").status_code == 401
    body = client.get("/v1/model", params={"api_key": KEY}).json()  # what ApiKeyName sends
    # Every Body[...] and Metrics[...] the M reads, present and of the type its table declares.
    for path in re.findall(r"(Body(?:\[\w+\])+|Metrics\[\w+\])", source.split("{{", 1)[1]):
        value = body["metrics"] if path.startswith("Metrics") else body
        for part in re.findall(r"\[(\w+)\]", path):
            value = value[part]
        assert isinstance(value, str | float | int), path
