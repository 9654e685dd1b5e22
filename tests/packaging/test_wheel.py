"""The package as a user installs it: a wheel in a fresh environment, its layer contracts, run from elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from cashscore.core.config import PROJECT_ROOT

SCORE = {
    "person_age": 30, "person_income": 50000, "person_home_ownership": "Rent", "loan_intent": "Education",
    "loan_grade": "B", "loan_amnt": 5000, "loan_int_rate": 11.0, "cb_person_default_on_file": "N",
}  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A wheel built from the checkout, installed into a fresh virtual environment: (its bin folder, a work folder).

    The environment sees this one's third-party libraries through a .pth file (installing them
    again would only test the package index), but not the checkout: `cashscore` comes from the wheel.
    """
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tracked files: a stale build/ folder in the checkout never leaks in.
    source = root / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    for name in tracked.decode().split("\0"):
        if name and (PROJECT_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, source / name)
    dist = root / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), "."],
        cwd=source,
        check=True,
        capture_output=True,
        text=True,
    )
    # Our own metadata must not make setuptools warn (a deprecated license table did).
    assert "Warning" not in built.stdout + built.stderr, built.stderr
    (wheel,) = dist.glob("cashscore-*.whl")
    env = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "_project_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    work = root / "elsewhere"
    work.mkdir()
    return env / "bin", work


def run(installed: tuple[Path, Path], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    bin_dir, work = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHSCORE_")}
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=work, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_the_wheel_is_the_package_imported(installed):
    done = run(
        installed, "python", "-c", "import cashscore, cashscore.sql, cashscore.server; print(cashscore.__file__)"
    )
    assert done.returncode == 0, done.stderr
    assert str(installed[0].parent) in done.stdout and str(PROJECT_ROOT) not in done.stdout
    names = run(
        installed,
        "python",
        "-c",
        "import importlib.util as u; print([u.find_spec(n) for n in ('features', 'server', 'train')])",
    )
    assert names.stdout.strip() == "[None, None, None]"


def test_every_sql_file_ships_in_the_wheel(installed):
    # A layer folder missing from pyproject's packages would silently drop its views from installs.
    listing = (
        "import pathlib, cashscore.sql as s; root = pathlib.Path(s.__file__).parent; "
        "print(sorted(str(p.relative_to(root)) for p in root.rglob('*.sql')))"
    )
    done = run(installed, "python", "-c", listing)
    assert done.returncode == 0, done.stderr
    shipped = sorted(str(p.relative_to(PROJECT_ROOT / "sql")) for p in (PROJECT_ROOT / "sql").rglob("*.sql"))
    assert done.stdout.strip() == str(shipped)


def test_layer_contracts_hold_and_there_is_no_cycle(installed):
    done = run(installed, "python", "-c", "import sys; from importlinter.cli import lint_imports_command; "
               f"sys.argv = ['lint-imports', '--config', {str(PROJECT_ROOT / 'pyproject.toml')!r}]; "
               "sys.exit(lint_imports_command())")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    # Layers forbid cycles between packages; this finds any inside one.
    probe = (
        "import grimp; g = grimp.build_graph('cashscore'); "
        "print(sorted(m for m in g.modules if g.find_upstream_modules(m) & g.find_downstream_modules(m)))"
    )
    cycles = run(installed, "python", "-c", probe)
    assert cycles.returncode == 0, cycles.stderr
    assert cycles.stdout.strip() == "[]"


def test_the_serving_process_never_loads_training_libraries(installed):
    probe = (
        "import sys; import cashscore.server.app, cashscore.server.run, cashscore.scoring.batch; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'imblearn', 'lightgbm', 'skl2onnx') "
        "or m.startswith('cashscore.training')); print(bad)"
    )
    done = run(installed, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_installed_wheel_restores_trains_scores_and_serves(installed, real_data_dir):
    _, work = installed
    assert run(installed, "cashscore", "restore", str(real_data_dir), "--db", "w.duckdb").returncode == 0
    quick = ["--quick", "--families", "logreg", "lightgbm"]
    trained = run(installed, "cashscore", "train", "--db", "w.duckdb", "--models", "m", *quick)
    assert trained.returncode == 0, trained.stderr
    where = ["--db", "w.duckdb", "--models", "m"]
    scored = run(installed, "cashscore", "score", "--table", "marts.applicants", "--out", "s.parquet", *where)
    assert scored.returncode == 0, scored.stderr
    assert (work / "s.parquet").is_file()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir, _ = installed
    server = subprocess.Popen(
        [str(bin_dir / "cashscore"), "serve", "--port", str(port), "--models", "m", "--db", "w.duckdb"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/score", data=json.dumps(SCORE).encode(),
                    headers={"content-type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(request, timeout=5) as r:
                    assert json.loads(r.read())["decision"] in ("approve", "deny")
                break
            except OSError:
                assert time.monotonic() < deadline, "the installed server never answered"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=20)
