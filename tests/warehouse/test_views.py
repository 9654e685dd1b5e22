"""The SQL layers: staging normalisation, the applicants mart's rules, audits, real-data figures."""

from __future__ import annotations

import math

import duckdb
import pytest
from cashscore.features import contract, rules
from helpers.dumps import SQL_DIR, full_dump, table_sql

from cashscore.warehouse import views
from cashscore.warehouse.restore import restore


def test_staging_normalises_blanks_case_and_synonyms(small_db, query):
    got = query(
        small_db,
        "select loan_id, person_home_ownership, loan_intent, loan_grade, "
        "cb_person_default_on_file from marts.applicants order by loan_id",
    )
    assert got == [
        ("l1", "Rent", "Education", "B", "Y"),
        ("l2", "Mortgage", "Medical", "A", "N"),
        ("l3", None, None, None, None),
    ]


@pytest.mark.parametrize(
    ("feature", "spelling", "category"),
    [
        ("person_home_ownership", "ALUGADA", "Rent"),
        ("person_home_ownership", "própria", "Own"),
        ("person_home_ownership", "Propria", "Own"),
        ("person_home_ownership", "Hipotecada", "Mortgage"),
        ("person_home_ownership", "outros", "Other"),
        ("loan_intent", "Pagamento de débitos", "Debtconsolidation"),
        ("loan_intent", "MELHORA DO LAR", "Homeimprovement"),
        ("loan_intent", "Empreendimento", "Venture"),
        # The seed author's spellings, refused with a 400 before.
        ("person_home_ownership", "Alugado", "Rent"),
        ("person_home_ownership", "Financiado", "Mortgage"),
        ("loan_intent", "Dividas", "Debtconsolidation"),
        ("loan_intent", "Reforma", "Homeimprovement"),
        ("loan_intent", "saúde", "Medical"),
        ("cb_person_default_on_file", "sim", "Y"),
        ("cb_person_default_on_file", "NÃO", "N"),
        ("cb_person_default_on_file", "false", "N"),
        ("cb_person_default_on_file", "1", "Y"),
    ],
)
def test_synonyms_in_sql_and_python_agree(feature, spelling, category):
    con = duckdb.connect()
    views.seed(con)
    found = con.execute(
        "select category from ref.category_synonyms where feature = ? and spelling = lower(trim(?))",
        [feature, f"  {spelling} "],
    ).fetchall()
    assert found == [(category,)]
    assert rules.normalise_category(feature, f"  {spelling} ") == category


def test_unknown_spelling_is_audited_and_nulled(tmp_path, write, query):
    loans = table_sql(
        "emprestimos",
        "('l1','Gambling','B',1000,10.0,1,0.1),('l2','Venture','B',1000,10.0,0,0.1),"
        "('l3','Venture','Z',1000,10.0,0,0.1)",
    )
    db = tmp_path / "x.duckdb"
    result = restore([write("a.sql", full_dump(emprestimos=loans))], db, SQL_DIR, say=lambda _: None)
    assert result.audits["audit_stg_unknown_categories"] == 2
    assert result.audits["audit_applicants_known_categories"] == 0
    assert query(db, "select loan_intent, loan_grade from marts.applicants order by loan_id") == [
        (None, "B"),
        ("Venture", "B"),
        ("Venture", None),
    ]


RULE_CASES = [
    # age, income, emp, amount, percent, hist -> expected age, income, emp, percent, hist
    ((144, 50000, 5, 5000, 0.1, 3), (None, 50000, 5, 0.1, 3)),
    ((30, 6_000_000, 5, 5000, 0.0, 3), (30, 1_000_000, 5, 0.0, 3)),
    ((30, 60000, 5, 5000, 0.0, 3), (30, 60000, 5, 0.0, 3)),
    ((30, 50000, 123, 5000, 0.1, 3), (30, 50000, None, 0.1, 3)),
    ((22, 50000, 9, 5000, 0.1, 9), (22, 50000, None, 0.1, None)),
    ((30, 50000, 5, 5000, None, 3), (30, 50000, 5, 0.1, 3)),
    ((30, 2_000_000, 5, 5000, None, 3), (30, 1_000_000, 5, 0.01, 3)),
    ((30, 50000, 5, 5000, 0.5, 3), (30, 50000, 5, 0.5, 3)),
    ((30, 0, 5, 5000, None, 3), (30, 0, 5, None, 3)),
    ((30, 50000, 5, 5000, 0.11, 3), (30, 50000, 5, 0.11, 3)),
    ((30, None, 5, 5000, 0.3, 3), (30, None, 5, 0.3, 3)),
    ((None, 50000, 40, None, 0.3, 40), (None, 50000, 40, 0.3, 40)),
]


@pytest.mark.parametrize(("given", "expected"), RULE_CASES)
def test_mart_rules_match_python_rules(given, expected, tmp_path, write, query):
    age, income, emp, amount, percent, hist = (("NULL" if v is None else v) for v in given)
    db = tmp_path / "x.duckdb"
    dump = full_dump(
        dados_mutuarios=table_sql("dados_mutuarios", f"('p1',{age},{income},'Rent',{emp})"),
        emprestimos=table_sql("emprestimos", f"('l1','Venture','B',{amount},10.0,0,{percent})"),
        historicos_banco=table_sql("historicos_banco", f"('c1','N',{hist})"),
        ids=table_sql("ids", "('p1','l1','c1')"),
    )
    restore([write("a.sql", dump)], db, SQL_DIR, say=lambda _: None)
    row = query(
        db,
        "select person_age, person_income, person_emp_length, loan_percent_income, "
        "cb_person_cred_hist_length from marts.applicants",
    )[0]
    assert row == expected
    names = (
        "person_age",
        "person_income",
        "person_emp_length",
        "loan_amnt",
        "loan_percent_income",
        "cb_person_cred_hist_length",
    )
    cleaned = rules.clean_record(dict(zip(names, given, strict=True)))
    assert tuple(cleaned[n] for n in names if n != "loan_amnt") == expected


def test_mart_columns_follow_the_contract(small_db, query):
    columns = [
        r[0]
        for r in query(
            small_db,
            "select column_name from information_schema.columns "
            "where table_schema='marts' and table_name='applicants' order by ordinal_position",
        )
    ]
    assert columns == [*contract.ID_COLUMNS, *contract.NAMES, contract.TARGET]


def pt_columns() -> list[str]:
    """pt.applicants' columns as the contract names them: ids, features, label."""
    return [
        *(contract.COLUMNS_PT[c] for c in contract.ID_COLUMNS),
        *(f.column_pt for f in contract.FEATURES),
        contract.COLUMNS_PT[contract.TARGET],
    ]


def test_every_portuguese_value_reads_back_as_its_category():
    for feature, category, label in contract.label_rows():
        assert rules.normalise_category(feature, label) == category


# Each pt value read back through the synonyms (the way it would come back from Power BI) must give
# the mart's category; each number must be the mart's. Returns the rows where either differs.
PT_DIFFERENCES = """
select count(*) from marts.applicants as m
join pt.applicants as p on p.id_emprestimo is not distinct from m.loan_id
left join ref.category_synonyms as home
    on home.feature = 'person_home_ownership' and home.spelling = lower(p.situacao_propriedade)
left join ref.category_synonyms as intent
    on intent.feature = 'loan_intent' and intent.spelling = lower(p.motivo_emprestimo)
left join ref.category_synonyms as flag
    on flag.feature = 'cb_person_default_on_file' and flag.spelling = lower(p.inadimplencia_historico)
where home.category is distinct from m.person_home_ownership
   or intent.category is distinct from m.loan_intent
   or p.pontuacao_emprestimos is distinct from m.loan_grade
   or p.idade is distinct from m.person_age
   or p.salario_ano is distinct from m.person_income
   or p.valor_emprestimo is distinct from m.loan_amnt
   or p.renda_percentual is distinct from m.loan_percent_income
   or p.inadimplencia is distinct from m.loan_status
"""


def test_pt_applicants_is_the_mart_in_portuguese(small_db, query):
    columns = query(
        small_db,
        "select column_name from information_schema.columns "
        "where table_schema='pt' and table_name='applicants' order by ordinal_position",
    )
    assert [c for (c,) in columns] == pt_columns()
    assert query(
        small_db,
        "select id_emprestimo, situacao_propriedade, motivo_emprestimo, inadimplencia_historico "
        "from pt.applicants order by 1",
    ) == [
        ("l1", "Alugada", "Educativo", "S"),
        ("l2", "Hipotecada", "Médico", "N"),
        ("l3", None, None, None),
    ]
    assert query(small_db, PT_DIFFERENCES) == [(0,)]


def test_views_are_created_in_dependency_order():
    order = [v.qualified for v in views.read_views(SQL_DIR)]
    assert order.index("staging.stg_links") < order.index("marts.applicants") < order.index("marts.training_set")


# ---- the real Alura Cash dump -------------------------------------------------------------


def test_real_dump_raw_tables(real_db, query):
    for table in ("dados_mutuarios", "emprestimos", "historicos_banco", "ids"):
        assert query(real_db, f"select count(*) from raw.{table}") == [(34_489,)]


def test_real_dump_blanks_and_nulls_match_source_md(real_db, query):
    blanks = query(
        real_db,
        """
        select
            count(*) filter (where person_id = ''),
            count(*) filter (where person_home_ownership = ''),
            count(*) filter (where person_age is null),
            count(*) filter (where person_emp_length is null)
        from raw.dados_mutuarios""",
    )
    assert blanks == [(4, 331, 321, 1254)]
    assert query(
        real_db,
        "select count(*) filter (where loan_int_rate is null), "
        "count(*) filter (where loan_status is null) from raw.emprestimos",
    ) == [(3627, 343)]


def test_real_dump_applicants_and_labels(real_db, query):
    # One row per link row: 34,489. SOURCE.md's 34,501 counts the 4 blank person ids joining 4x4
    # (12 spurious rows, 9 labelled 0 and 3 labelled 1), which cashscore does not create.
    assert query(real_db, "select count(*), count(distinct loan_id) from marts.applicants") == [(34_489, 34_489)]
    labels = query(real_db, "select loan_status, count(*) from marts.training_set group by 1 order by 1")
    assert labels == [(0, 26_705 - 9), (1, 7_453 - 3)]


def test_real_dump_pt_applicants(real_db, query):
    assert query(real_db, "select count(*) from pt.applicants") == [(34_489,)]
    assert query(real_db, PT_DIFFERENCES) == [(0,)]
    intents = query(real_db, "select motivo_emprestimo, count(*) from pt.applicants group by 1 order by 1 nulls last")
    assert [i for i, _ in intents] == sorted(contract.BY_NAME["loan_intent"].categories_pt) + [None]


def test_real_dump_rules_fire_where_source_md_says(real_db, query):
    raw = query(
        real_db,
        """
        select
            count(*) filter (where person_age > 100),
            count(*) filter (where person_emp_length > 60),
            count(*) filter (where person_income > 1000000)
        from raw.dados_mutuarios""",
    )
    assert raw == [(5, 2, 9)]
    mart = query(
        real_db,
        """
        select max(person_age), max(person_emp_length), max(person_income),
               count(*) filter (where loan_percent_income = 0),
               count(*) filter (where abs(loan_percent_income - loan_amnt / person_income) > 0.02),
               count(*) filter (where loan_percent_income is null)
        from marts.applicants""",
    )
    # Stated shares are kept, even the 1,115 that disagree with amount / income; 259 of the 316
    # missing ones are derived, 57 stay missing because the amount or the income is.
    assert mart == [(94.0, 41.0, 1_000_000.0, 9, 1_115, 57)]


def test_real_dump_audits_return_no_rows(real_db):
    with duckdb.connect(str(real_db), read_only=True) as con:
        assert views.run_audits(con, SQL_DIR) == {p.stem: 0 for p in views.audit_files(SQL_DIR)}


def test_real_dump_python_rules_agree_with_the_mart(real_db):
    with duckdb.connect(str(real_db), read_only=True) as con:
        raw = con.execute("""
            select i.loan_id, d.*, e.*, h.*
            from raw.ids i
            left join raw.dados_mutuarios d on nullif(i.person_id, '') = d.person_id
            left join raw.emprestimos e using (loan_id)
            left join raw.historicos_banco h using (cb_id)""").df()
        mart = con.execute("select * from marts.applicants").df().set_index("loan_id")
    mismatches = 0
    for record in raw.to_dict("records"):
        expected = mart.loc[record["loan_id"]]
        got = rules.clean_record(record)
        for name in contract.NAMES:
            want = expected[name]
            have = got[name]
            if isinstance(want, float) and math.isnan(want):
                want = None
            if want != have and not (want is not None and have is not None and abs(want - have) < 1e-9):
                mismatches += 1
    assert mismatches == 0


def test_padded_spellings_read_the_same_in_the_mart_and_the_api(tmp_path, write, query):
    # Tabs, line breaks and mixed case, as a hand-edited spreadsheet leaves them, through a real restore.
    borrowers = table_sql(
        "dados_mutuarios", r"('p1',22,59000,'\tAlugada',3),('p2',35,120000,' MORTGAGE\r\n',10),('p3',40,5e4,'own',2)"
    )
    loans = table_sql(
        "emprestimos",
        r"('l1','\tEducativo','b\t',1000,10.0,1,0.1),('l2',' médico\n','\nA',1000,10.0,0,0.1),"
        r"('l3','VENTURE ','c',1000,10.0,0,0.1)",
    )
    history = table_sql("historicos_banco", r"('c1','\tsim\n',3),('c2',' N ',14),('c3','Y',2)")
    links = table_sql("ids", "('p1','l1','c1'),('p2','l2','c2'),('p3','l3','c3')")
    db = tmp_path / "x.duckdb"
    dump = full_dump(dados_mutuarios=borrowers, emprestimos=loans, historicos_banco=history, ids=links)
    restore([write("a.sql", dump)], db, SQL_DIR, say=lambda _: None)
    mart = query(
        db,
        "select person_home_ownership, loan_intent, loan_grade, cb_person_default_on_file "
        "from marts.applicants order by loan_id",
    )
    assert mart == [("Rent", "Education", "B", "Y"), ("Mortgage", "Medical", "A", "N"), ("Own", "Venture", "C", "Y")]
    given = {
        "person_home_ownership": ["\tAlugada", " MORTGAGE\r\n", "own"],
        "loan_intent": ["\tEducativo", " médico\n", "VENTURE "],
        "loan_grade": ["b\t", "\nA", "c"],
        "cb_person_default_on_file": ["\tsim\n", " N ", "Y"],
    }
    api = [tuple(rules.normalise_category(f, given[f][i]) for f in given) for i in range(3)]
    assert api == mart
