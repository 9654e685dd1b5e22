"""Model versions on disk: manifest, content-derived versions, atomic publishing, rollback, verification on load."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import onnx

from cashscore.artefact.card import ModelCard, canonical, decode, encode
from cashscore.core.atomic import alive, fsync_dir
from cashscore.core.errors import CashscoreError
from cashscore.features import contract

MODEL_FILE = "cashscore.onnx"
META_FILE = "cashscore.json"
REPORT_FILE = "report.html"
OUTPUT = "probabilities"
# Per applicant, in the calibrated log-odds space: sigmoid(base_log_odds + sum(contributions)) = P(default).
CONTRIBUTIONS = "contributions"
BASE = "base_log_odds"
OUTPUTS = (OUTPUT, CONTRIBUTIONS, BASE)
FORMAT_VERSION = 2  # of the manifest
MANIFEST_FILE = "manifest.json"
# models/versions/<version>/ holds one complete model each; models/current names the one served.
VERSIONS = "versions"
CURRENT = "current"
VERSION_RE = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{12}")
ARTEFACTS = (MODEL_FILE, META_FILE, REPORT_FILE)
# Versions kept for rollback besides the current one; older ones are removed after a publish.
KEEP_VERSIONS = 5


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_version(onnx_bytes: bytes, card: ModelCard) -> str:
    """A model's version, derived from everything that decides a score: the graph and the card.

    Any change to the ONNX bytes, the threshold, the reference applicant or any other field of the
    card gives another version, so a version always names one behaviour.
    """
    digest = hashlib.sha256(b"cashscore-model\0" + hashlib.sha256(onnx_bytes).digest() + canonical(card))
    created = datetime.fromisoformat(card.created_at)
    return f"{created:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:12]}"


def _fault_point(step: str) -> None:
    """Called between the steps of a publish; the fault-injection test kills the process here."""


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def publish(
    models: Path,
    onnx_bytes: bytes,
    card: ModelCard,
    report: Callable[[ModelCard], str],
    before_switch: Callable[[str], None],
) -> ModelCard:
    """Publish a model as a new version folder, then switch `models/current` to it in one rename.

    A kill at any point leaves `current` naming the old complete version or the new complete one;
    a half-written folder is never named and is swept by the next publish.

    Args:
        models: the models folder.
        onnx_bytes: the ONNX graph.
        card: the model card; its `model_version` is set here, from its content.
        report: renders the readable report of the versioned card.
        before_switch: called with the version once its folder is complete, before `current`
            moves (training writes the version's model_eval rows there).

    Returns:
        The card with its version.
    """
    card = msgspec.structs.replace(card, model_version=content_version(onnx_bytes, card))
    version = card.model_version
    card_bytes = encode(card)
    versions = models / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    _sweep_partial(versions)
    staging = versions / f".{version}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    contents = {MODEL_FILE: onnx_bytes, META_FILE: card_bytes, REPORT_FILE: report(card).encode()}
    for name, data in contents.items():
        _write_synced(staging / name, data)
        _fault_point(f"wrote {name}")
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_version": version,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
    }
    _write_synced(staging / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
    fsync_dir(staging)
    _fault_point("wrote manifest")
    final = versions / version
    if final.exists():
        shutil.rmtree(staging)  # the same content was published before: the version is the same too
    else:
        os.rename(staging, final)
    fsync_dir(versions)
    _fault_point("renamed folder")
    before_switch(version)
    _fault_point("before switch")
    switch(models, version)
    _fault_point("switched")
    prune(models)
    return card


def switch(models: Path, version: str) -> None:
    """Point `models/current` at a version that is present, in one atomic rename (rollback uses it too).

    Raises:
        CashscoreError: when the version is malformed or absent.
    """
    if not VERSION_RE.fullmatch(version) or not (models / VERSIONS / version).is_dir():
        raise CashscoreError(f"{models / VERSIONS}: no model version {version[:80]!r}; see `cashscore models`")
    tmp = models / f".{CURRENT}.{os.getpid()}.tmp"
    _write_synced(tmp, version.encode() + b"\n")
    os.replace(tmp, models / CURRENT)
    fsync_dir(models)


def _sweep_partial(versions: Path) -> None:
    for entry in versions.iterdir():
        if entry.name.startswith(".") and ".partial-" in entry.name:
            pid = entry.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def current_version(models: Path) -> str | None:
    """The version `models/current` names, or None when nothing was published.

    Raises:
        CashscoreError: when the pointer holds anything but a version name.
    """
    pointer = models / CURRENT
    if not pointer.is_file():
        return None
    text = pointer.read_bytes()[:200].decode("utf-8", "replace").strip()
    if not VERSION_RE.fullmatch(text):
        raise CashscoreError(f"{pointer}: does not name a model version: {text[:80]!r}")
    return text


def current_folder(models: Path) -> Path:
    """The folder of the current version.

    Raises:
        CashscoreError: when nothing was published.
    """
    version = current_version(models)
    if version is None:
        raise CashscoreError(f"{models / CURRENT}: missing; run `cashscore train --models {models}` first")
    return models / VERSIONS / version


def versions(models: Path) -> list[str]:
    """The complete-looking version folders, oldest first."""
    folder = models / VERSIONS
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and VERSION_RE.fullmatch(p.name))


def prune(models: Path, keep: int = KEEP_VERSIONS) -> list[str]:
    """Remove all but the newest `keep` versions, never the current one."""
    current = current_version(models)
    old = [v for v in versions(models)[:-keep] if v != current] if keep else []
    for version in old:
        shutil.rmtree(models / VERSIONS / version, ignore_errors=True)
    return old


@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its bytes, metadata and where it came from."""

    path: Path
    onnx_bytes: bytes
    card: ModelCard
    folder: Path
    # The card's file as verified: what a copy shipped elsewhere must match, byte for byte.
    card_bytes: bytes

    @property
    def version(self) -> str:
        return self.card.model_version

    @property
    def threshold(self) -> float:
        return self.card.threshold.value


def load_verified(models: Path, version: str | None = None) -> LoadedModel:
    """Read a model version and refuse anything missing, corrupted, edited or incompatible.

    Every file of the version must match the manifest's sha256, the folder must hold nothing else,
    and the version must be the one derived from the ONNX bytes and the card's content.

    Args:
        models: the models folder.
        version: the version to load; `models/current` by default.

    Returns:
        The model, verified.

    Raises:
        CashscoreError: naming the file and what is wrong with it.
    """
    if version is None:
        version = current_version(models)
        if version is None:
            hint = " (an older cashscore's layout)" if (models / MODEL_FILE).exists() else ""
            raise CashscoreError(f"{models / CURRENT}: missing{hint}; run `cashscore train --models {models}` first")
    elif not VERSION_RE.fullmatch(version):
        raise CashscoreError(
            f"model version {version[:80]!r} is not a version name (like 20260101T000000Z-0123456789ab)"
        )
    folder = models / VERSIONS / version
    if not folder.is_dir():
        raise CashscoreError(f"{folder}: missing; `cashscore models --models {models}` lists the versions present")
    manifest_path = folder / MANIFEST_FILE
    manifest = _read_json(manifest_path)
    files = manifest.get("files")
    if manifest.get("model_version") != version or not isinstance(files, dict) or sorted(files) != sorted(ARTEFACTS):
        raise CashscoreError(f"{manifest_path}: does not describe version {version} and its files {list(ARTEFACTS)}")
    for entry in sorted(folder.iterdir()):
        if entry.name not in files and entry.name != MANIFEST_FILE:
            raise CashscoreError(f"{entry}: not part of model version {version} (not in its manifest)")
    contents: dict[str, bytes] = {}
    for name in ARTEFACTS:
        path = folder / name
        if not path.is_file():
            raise CashscoreError(f"{path}: missing from model version {version}")
        contents[name] = path.read_bytes()
        digest = hashlib.sha256(contents[name]).hexdigest()
        if digest != files[name]:
            raise CashscoreError(
                f"{path}: sha256 {digest[:12]}… does not match the manifest's {str(files[name])[:12]}…: "
                "the file was changed or corrupted"
            )
    meta_path, onnx_path = folder / META_FILE, folder / MODEL_FILE
    card = decode(contents[META_FILE], meta_path)
    data = contents[MODEL_FILE]
    try:
        derived = content_version(data, card)
    except ValueError:  # created_at that is not a date
        derived = None
    if card.model_version != version or derived != version:
        raise CashscoreError(
            f"{meta_path}: its content and the model do not give version {version}: "
            "the card or the model was edited after training"
        )
    declared = [(f.name, f.kind) for f in card.contract]
    expected = [(f.name, f.kind) for f in contract.FEATURES]
    if declared != expected:
        raise CashscoreError(f"{meta_path}: the model's feature contract differs from this cashscore's: {declared}")
    try:
        graph = onnx.load_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and others from protobuf
        raise CashscoreError(f"{onnx_path}: not a readable ONNX model: {exc}") from None
    inputs = [i.name for i in graph.graph.input]
    if inputs != list(contract.NAMES) or [o.name for o in graph.graph.output] != list(OUTPUTS):
        raise CashscoreError(f"{onnx_path}: inputs {inputs} / outputs do not match the feature contract")
    return LoadedModel(onnx_path, data, card, folder, contents[META_FILE])


def load_shipped(files: dict[str, Path], digests: dict[str, str], where: str) -> LoadedModel:
    """A copy of a verified model's graph and card (on a Spark executor), refused unless both match
    the digests the driver verified and still give the model's version.

    Raises:
        CashscoreError: naming `where`, the file and the mismatch.
    """
    contents = {}
    for name in (MODEL_FILE, META_FILE):
        data = files[name].read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != digests[name]:
            raise CashscoreError(
                f"{where}: {name} has sha256 {digest[:12]}…, not the verified {digests[name][:12]}…: "
                "the shipped model was changed or corrupted"
            )
        contents[name] = data
    card = decode(contents[META_FILE], files[META_FILE])
    if content_version(contents[MODEL_FILE], card) != card.model_version:
        raise CashscoreError(f"{where}: the shipped card and model do not give version {card.model_version}")
    return LoadedModel(files[MODEL_FILE], contents[MODEL_FILE], card, files[MODEL_FILE].parent, contents[META_FILE])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except OSError as exc:
        raise CashscoreError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CashscoreError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CashscoreError(f"{path}: expected a JSON object")
    return value
