"""Model versions: a manifest over every file, versions derived from content, atomic publishing, rollback."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal

import duckdb
import msgspec
import pytest
from cashscore.server.app import create_app

from cashscore.artefact import store
from cashscore.cli import main
from cashscore.core.errors import CashscoreError


@pytest.fixture
def models(trained, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(trained[1], folder)
    return folder


def rewrite(folder, name, data: bytes) -> None:
    """Replace a file of a version and update the manifest to match, as a careful forger would."""
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / store.MANIFEST_FILE).read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (folder / store.MANIFEST_FILE).write_text(json.dumps(manifest))


def edited_card(folder, **changes) -> bytes:
    card = json.loads((folder / store.META_FILE).read_text())
    for path, value in changes.items():
        target = card
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return json.dumps(card, indent=2).encode()


def republish(models, **card_changes) -> str:
    loaded = store.load_verified(models)
    card = msgspec.structs.replace(loaded.card, **card_changes)
    return store.publish(
        models, loaded.onnx_bytes, card, lambda _: "<p>report</p>", before_switch=lambda _: None
    ).model_version


def test_an_edited_threshold_with_its_hash_updated_is_refused(models):
    folder = store.current_folder(models)
    rewrite(folder, store.META_FILE, edited_card(folder, threshold__value=0.99))
    with pytest.raises(CashscoreError, match=r"cashscore.json: its content and the model do not give version"):
        store.load_verified(models)


def test_another_onnx_with_every_hash_updated_is_refused(models, tmp_path):
    folder = store.current_folder(models)
    other = bytearray((folder / store.MODEL_FILE).read_bytes())
    other[-1] ^= 1
    rewrite(folder, store.MODEL_FILE, bytes(other))
    digest = hashlib.sha256(other).hexdigest()
    rewrite(folder, store.META_FILE, edited_card(folder, onnx__sha256=digest))
    with pytest.raises(CashscoreError, match="do not give version"):
        store.load_verified(models)


@pytest.mark.parametrize("name", [store.MODEL_FILE, store.META_FILE, store.REPORT_FILE])
def test_any_edited_file_is_refused_naming_it(models, name):
    folder = store.current_folder(models)
    (folder / name).write_bytes((folder / name).read_bytes() + b" ")
    with pytest.raises(CashscoreError, match=f"{name}: sha256 .* does not match the manifest"):
        store.load_verified(models)


def test_a_file_outside_the_manifest_is_refused(models):
    folder = store.current_folder(models)
    (folder / "extra.onnx").write_bytes(b"x")
    with pytest.raises(CashscoreError, match="extra.onnx: not part of model version"):
        store.load_verified(models)


@pytest.mark.parametrize("pointer", ["../../etc", "20260101T000000Z-0123456789ab\nmore", "", "x" * 500])
def test_a_pointer_naming_anything_but_a_present_version_is_refused(models, pointer):
    (models / store.CURRENT).write_text(pointer)
    with pytest.raises(CashscoreError):
        store.load_verified(models)


def test_the_version_is_derived_from_the_content(models):
    first = store.current_version(models)
    threshold = msgspec.structs.replace(store.load_verified(models).card.threshold, value=0.5)
    second = republish(models, threshold=threshold)
    assert second != first and second.split("-")[0] == first.split("-")[0]
    again = republish(models)  # the same content again gives the same version
    assert again == second


def test_rollback_and_pinning(models, capsys):
    old = store.current_version(models)
    new = republish(models, created_at="2030-01-01T00:00:00+00:00")
    assert store.versions(models) == sorted([old, new])
    assert main(["models", "--models", str(models)]) == 0
    listing = capsys.readouterr().out.splitlines()
    card = store.load_verified(models, new).card
    row = next(line for line in listing if new in line)
    assert row.startswith(f"*  {new}") and row.endswith("intact")
    assert f"{card.model.family} + {card.model.strategy}" in row and f"{card.metrics.test.roc_auc:.4f}" in row
    assert f"{card.threshold.value:.4f} ({card.threshold.policy})" in row
    assert next(line for line in listing if old in line).startswith(f"   {old}")
    from litestar.testing import TestClient

    with TestClient(app=create_app(models, api_key="", model_version=old)) as c:
        assert c.get("/health/ready").json()["model_version"] == old
    assert main(["models", "--models", str(models), "--use", old]) == 0
    assert store.load_verified(models).version == old
    assert main(["models", "--models", str(models), "--use", "20990101T000000Z-000000000000"]) == 1


def test_the_listing_names_a_version_that_cannot_be_served_and_why(models, capsys):
    old = store.current_version(models)
    new = republish(models, created_at="2030-01-01T00:00:00+00:00")
    (models / store.VERSIONS / old / store.MODEL_FILE).write_bytes(b"not a model")
    assert main(["models", "--models", str(models)]) == 0
    listing = capsys.readouterr().out
    broken = next(line for line in listing.splitlines() if old in line)
    assert "cannot be served:" in broken and "does not match the manifest" in broken
    assert next(line for line in listing.splitlines() if new in line).endswith("intact")


def test_old_versions_are_pruned_but_never_the_current_one(models):
    made = [republish(models, created_at=f"2030-01-0{i}T00:00:00+00:00") for i in range(1, 8)]
    kept = store.versions(models)
    assert len(kept) == store.KEEP_VERSIONS and kept == sorted(made)[-store.KEEP_VERSIONS :]
    assert store.current_version(models) == made[-1]


def test_model_eval_rows_are_kept_per_version(trained):
    db, _, meta = trained
    with duckdb.connect(str(db), read_only=True) as con:
        versions = {r[0] for r in con.execute("select distinct model_version from model_eval.roc_points").fetchall()}
    assert meta.model_version in versions


STEPS = [
    "wrote cashscore.onnx",
    "wrote cashscore.json",
    "wrote report.html",
    "wrote manifest",
    "renamed folder",
    "before switch",
    "switched",
]


def _publish_and_die_at(models, step, card) -> None:
    def fault(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    store._fault_point = fault
    onnx_bytes = (store.current_folder(models) / store.MODEL_FILE).read_bytes()
    store.publish(models, onnx_bytes, card, lambda _: "<p>new</p>", before_switch=lambda _: None)


@pytest.mark.parametrize("step", STEPS)
def test_a_publish_killed_at_any_step_leaves_the_old_or_the_new_complete_version(models, step):
    old = store.load_verified(models)
    card = msgspec.structs.replace(old.card, created_at="2031-01-01T00:00:00+00:00")
    new_version = store.content_version(old.onnx_bytes, card)
    proc = multiprocessing.get_context("fork").Process(target=_publish_and_die_at, args=(models, step, card))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    served = store.load_verified(models)  # whatever is current is complete and intact
    assert served.version == (new_version if step == "switched" else old.version)
    # The next publish sweeps what the killed one left half-written, and succeeds.
    again = store.publish(models, old.onnx_bytes, card, lambda _: "<p>new</p>", before_switch=lambda _: None)
    assert again.model_version == new_version and store.load_verified(models).version == new_version
    assert not [p for p in (models / store.VERSIONS).iterdir() if p.name.startswith(".")]
