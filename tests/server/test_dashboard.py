"""The dashboard at GET /: rendered by the server, and used for real in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cashscore.features import contract
from cashscore.server import dashboard
from cashscore.server.app import create_app
from helpers.processes import serve_process
from litestar.testing import TestClient

from cashscore.cli import main
from cashscore.core import config

ARTIFACTS = config.PROJECT_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def scored_db(trained, tmp_path):
    db = tmp_path / "dash.duckdb"
    shutil.copy(trained[0], db)
    assert (
        main(
            [
                "score",
                "--table",
                "marts.applicants",
                "--into",
                "portfolio",
                "--db",
                str(db),
                "--models",
                str(trained[1]),
                "--reasons",
                "none",
            ]
        )
        == 0
    )
    for command in ("monitor", "fairness"):
        assert main([command, "--table", "marts.applicants", "--db", str(db), "--models", str(trained[1])]) == 0
    return db


def test_dashboard_renders_model_portfolio_and_form(trained, scored_db):
    with TestClient(app=create_app(trained[1], api_key="", db=scored_db)) as client:
        page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert trained[2].model_version in text
    assert "scores.portfolio" in text and "By grade" in text and "By loan intent" in text
    assert 'aria-label="ROC curve"' in text
    # Every chart has its axes titled and valued: ROC, calibration, the PD histogram.
    assert "false positive rate" in text and "true positive rate" in text and ">0.25</text>" in text
    assert "predicted probability of default" in text and "observed default rate" in text
    assert 'id="pd-histogram"' in text and "applicants · clientes" in text and ">40 %</text>" in text
    # The model and its metrics in words, in English and Portuguese.
    family, strategy = trained[2].model.family, trained[2].model.strategy
    assert "".join(dashboard.model_words(family, strategy)[0].split()) in "".join(text.split())
    assert "ROC-AUC: area under the ROC curve" in text and "área sob a curva ROC" in text
    top1 = trained[2].explanation.top1_agreement_treeshap
    said = "path contributions of its trees) that add up to the probability; the top reason is exact TreeSHAP's for"
    assert f"{said} {top1:.0%}" in text
    # The challenge's panels.
    for panel in (
        'id="payers"',
        'id="rate-grade"',
        'id="rate-home"',
        'id="rate-intent"',
        'id="scatter"',
        'id="filters"',
    ):
        assert panel in text, panel
    assert "Good payers · Bons pagadores" in text and "Rent (Alugada)" in text
    # Drift and fairness: the stored measurements of `cashscore monitor` and `cashscore fairness`.
    assert 'id="drift-batch"' in text and "table marts.applicants" in text
    assert 'id="fairness"' in text and "(cashscore fairness)" in text and "60+" in text
    for name in contract.NAMES:
        assert f'name="{name}"' in text
    assert "http://" not in text and "https://" not in text  # nothing from a CDN: works offline


def challenge_counts(client, **params):
    page = client.get("/", params=params)
    return page.status_code, page.text


def test_challenge_filters_narrow_every_panel_and_read_portuguese(trained, scored_db, query):
    with TestClient(app=create_app(trained[1], api_key="", db=scored_db)) as client:
        status, everything = challenge_counts(client)
        status_a, grade_a = challenge_counts(client, grade="A", home="Alugada")
        status_bad, bad = challenge_counts(client, grade="A' or 1=1 --", intent="Gambling")
        twice = client.get("/?grade=A&grade=B")
    (expected,) = query(
        scored_db, "select count(*) from marts.applicants where loan_grade = 'A' and person_home_ownership = 'Rent'"
    )
    (total,) = query(scored_db, "select count(*) from marts.applicants")
    assert status == status_a == 200
    assert f"{total[0]:,} loans · empréstimos: all applicants" in everything
    assert f"{expected[0]:,} loans · empréstimos: A, Rent (Alugada)" in grade_a
    assert '<option value="A" selected>' in grade_a
    # A filter no spelling reads is a 400 naming it, and the page shows everything.
    assert status_bad == 400
    assert "filter grade: &quot;A&#x27; or 1=1 --&quot; is not one of A, B" in bad
    assert "filter intent: &#x27;Gambling&#x27; is not one of" in bad
    assert f"{total[0]:,} loans · empréstimos: all applicants" in bad
    assert twice.status_code == 400 and "filter grade is given 2 times; give it once" in twice.text


def test_dashboard_without_stored_scores(trained, tmp_path):
    with TestClient(app=create_app(trained[1], api_key="", db=tmp_path / "none.duckdb")) as client:
        page = client.get("/")
    assert page.status_code == 200 and "no database configured" in page.text


def test_dashboard_says_how_a_linear_models_reasons_are_computed(trained_linear):
    db, models, card = trained_linear
    with TestClient(app=create_app(models, api_key="", db=db)) as client:
        text = client.get("/").text
    assert "logistic regression" in text and "each coefficient times the distance from the training mean" in text
    assert "TreeSHAP" not in text


def test_dashboard_names_a_database_it_cannot_read(trained, tmp_path):
    db = tmp_path / "marts.duckdb"
    db.write_bytes(trained[0].read_bytes())
    with TestClient(app=create_app(trained[1], api_key="", db=db)) as client:
        page = client.get("/")
    assert page.status_code == 200 and "a database named after one of its schemas" in page.text


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
@pytest.mark.slow
def test_dashboard_in_headless_chromium(trained, scored_db):
    if not os.environ.get("CI"):
        pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install adds it)")
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "CI must install Debian's chromium (see .ci/run)"
    ARTIFACTS.mkdir(exist_ok=True)
    with serve_process(trained[1], scored_db) as (base, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(base + "/")
            assert "cashscore" in page.title()
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            page.fill("input[name=person_age]", "23")
            page.fill("input[name=person_income]", "21000")
            page.fill("input[name=loan_amnt]", "15000")
            page.fill("input[name=loan_int_rate]", "19.5")
            page.select_option("select[name=loan_grade]", "E")
            page.select_option("select[name=cb_person_default_on_file]", "Y")
            page.select_option("select[name=loan_intent]", "Debtconsolidation")
            page.click("#whatif button[type=submit]")
            page.wait_for_selector("#decision", timeout=10_000)
            decision = page.inner_text("#decision")
            probability = page.inner_text("#probability")
            page.screenshot(path=str(ARTIFACTS / "dashboard-whatif.png"), full_page=True)
            page.locator("#whatif-panel").screenshot(path=str(ARTIFACTS / "dashboard-client.png"))
            evaluated = page.locator("#evaluated-inputs tr").all_inner_texts()
            repay = page.locator("#probabilities tr").all_inner_texts()
            offer = page.locator("#counter-offer").count()
            english = page.locator("#reasons li").all_inner_texts()
            page.select_option("select[name=lang]", "pt")
            page.click("#whatif button[type=submit]")
            page.wait_for_selector("#reasons li:has-text('chance de inadimplência')", timeout=10_000)
            portuguese = page.locator("#reasons li").all_inner_texts()
            page.locator("#whatif-panel").screenshot(path=str(ARTIFACTS / "dashboard-client-pt.png"))
            # The what-if applicant is now in the live drift window.
            page.goto(base + "/")
            live_rows = page.locator("#drift-live tr").count()
            batch_rows = page.locator("#drift-batch tr").count()
            bands = page.locator("#fairness tr").all_inner_texts()
            page.locator("#drift-panel").screenshot(path=str(ARTIFACTS / "dashboard-drift.png"))
            page.locator("#fairness-panel").screenshot(path=str(ARTIFACTS / "dashboard-fairness.png"))
            # The challenge's panels, then filtered through the form.
            page.locator("#challenge").screenshot(path=str(ARTIFACTS / "dashboard-challenge.png"))
            points = page.locator("#scatter circle").count()
            # Side by side in a column grid: the charts of one row start at one height, each caption under its chart.
            tops = {f: page.locator(f"#{f}").bounding_box()["y"] for f in ("payers", "rate-grade", "rate-intent")}
            # A phone: one column, nothing wider than the screen (tables scroll inside their section).
            page.set_viewport_size({"width": 400, "height": 900})
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.select_option("select[name=grade]", "G")
            page.click("#filters button[type=submit]")
            page.wait_for_url("**grade=G**")
            filtered = page.inner_text("#challenge")
            filtered_points = page.locator("#scatter circle").count()
            browser.close()
        # A header and one row per feature and the score, in both drift tables.
        assert live_rows == batch_rows == len(contract.NAMES) + 2
        assert any(b.startswith("<25") for b in bands) and any(b.startswith("60+") for b in bands)
        assert Path(ARTIFACTS / "dashboard-drift.png").stat().st_size > 10_000
        assert decision in ("approve", "deny")
        assert probability.endswith("%")
        assert Path(ARTIFACTS / "dashboard-whatif.png").stat().st_size > 10_000
        # The evaluated client's inputs beside the decision, both probabilities and the counter-offer.
        assert len(evaluated) == len(contract.NAMES)
        assert any(row.startswith("Amount requested") and "15,000" in row for row in evaluated)
        # Left blank, the share of income is derived by the rules, and the client's table says so.
        share = contract.BY_NAME["loan_percent_income"].description
        assert any(row.startswith(share) and "derived: Amount requested ÷ Yearly income" in row for row in evaluated)
        assert any(row.startswith("Purpose of the loan") and "Debt consolidation" in row for row in evaluated)
        assert any("Probability of repaying" in row for row in repay) and offer == (decision == "deny")
        # The same reasons in Portuguese: as many, each worded with the contract's labels.
        assert english and len(portuguese) == len(english) and all(" é " in text for text in portuguese)
        assert points > 100 and 0 < filtered_points < points
        assert tops["payers"] == tops["rate-grade"] < tops["rate-intent"]
        assert overflow <= 0
        assert "empréstimos: G" in filtered
        assert Path(ARTIFACTS / "dashboard-challenge.png").stat().st_size > 20_000


def test_a_page_opens_the_database_once_and_shows_its_last_reading_while_a_writer_holds_it(
    trained, scored_db, monkeypatch
):
    import duckdb
    from cashscore.server import reading

    opened = []
    real_open = reading.open_waiting

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(reading, "open_waiting", counting)
    with TestClient(app=create_app(trained[1], api_key="", db=scored_db)) as client:
        first = client.get("/", params={"grade": "B"}).text
        assert len(opened) == 1  # portfolio, model card, monitoring and challenge panels share it
        # A writer in another process holds the file: every panel shows what it read last.
        writer = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
             "print('held', flush=True); time.sleep(60)", str(scored_db)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert writer.stdout.readline().strip() == "held"
            with pytest.raises(duckdb.Error):
                duckdb.connect(str(scored_db), read_only=True)
            busy = client.get("/", params={"grade": "B"}).text
        finally:
            writer.kill()
            writer.communicate()  # reaps it and closes its pipe
    assert "(shown as last read: the database is being written)" in busy
    assert "shown as last read: the database is being written</p>" in busy  # the challenge panel
    loans = first.split('id="challenge"', 1)[1].split(" loans · ", 1)[0].rsplit(">", 1)[1]
    assert f"{loans} loans · empréstimos: B" in busy
