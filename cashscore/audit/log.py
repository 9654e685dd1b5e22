"""The decision log: append-only JSON lines, each record chained to the one before by SHA-256.

Layout of the folder (`CASHSCORE_AUDIT_LOG`):
- `decisions-YYYY-MM.jsonl`: one record per line, by the UTC month of its time;
- `head.json`: the last record's sequence number and hash, and where the log ends, rewritten
  after every commit, so that deleting the last records is caught too;
- `anchor.json`: where the chain starts once `prune` has removed old months (absent: at the
  genesis, sequence 1 after the all-zero hash);
- `.lock`: taken (flock) for each commit, so several workers extend one chain.

A record's `hash` is SHA-256 over its canonical JSON without `hash` and `mac`, which includes the
previous record's hash (`prev`) and its sequence number (`seq`). With `CASHSCORE_AUDIT_KEY`, `mac`
is HMAC-SHA256 over the hash and head and anchor are signed the same way: without the key, the
chain catches edits made without recomputing it; with it, any edit at all.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from cashscore.core.atomic import fsync_dir
from cashscore.core.errors import CashscoreError

GENESIS = "0" * 64
HEAD = "head.json"
ANCHOR = "anchor.json"
LOCK = ".lock"
SEGMENT = re.compile(r"decisions-(\d{4})-(\d{2})\.jsonl")


# msgspec's encoder: sorted keys, no spaces, UTF-8, shortest round-trip floats, at about a tenth
# of the json module's cost (which was most of what logging a decision cost the server).
canonical = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.decode


# The last whole second `now` formatted, and its text (one tuple: threads read and replace it whole).
_second: tuple[int, str] = (-1, "")


def now() -> str:
    """A record's time: UTC, ISO 8601, microseconds (datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")).

    The whole seconds are formatted once a second: a batch logs a record per row, and strftime
    for each was 14 % of the server's GIL time on a logged batch of 1,000."""
    global _second
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    seen = _second
    if seen[0] != second:
        seen = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{seen[1]}.{micro:06d}Z"


def segment_name(time: str) -> str:
    """The segment a record of this time belongs to."""
    return f"decisions-{time[:4]}-{time[5:7]}.jsonl"


def segments(folder: Path) -> list[Path]:
    """The log's segments, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if SEGMENT.fullmatch(p.name))


def _digest(value: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def _signed(value: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    return {**value, "mac": _mac(key, _digest(value))} if key else value


def _check_signed(path: Path, value: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    body = {k: v for k, v in value.items() if k != "mac"}
    if key and not hmac.compare_digest(str(value.get("mac")), _mac(key, _digest(body))):
        raise CashscoreError(f"{path}: its signature does not match (edited, or another key)")
    return body


def _read_json(path: Path, key: bytes | None) -> dict[str, Any] | None:
    try:
        value = _decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as exc:
        raise CashscoreError(f"{path}: unreadable: {exc}") from None
    if not isinstance(value, dict):
        raise CashscoreError(f"{path}: expected a JSON object")
    return _check_signed(path, value, key)


def _write_json(path: Path, value: dict[str, Any], key: bytes | None) -> int:
    """Replace `path` with `value` (signed), durably; returns the new file's inode."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, canonical(_signed(value, key)))
        os.fsync(fd)
        inode = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return inode


class Record(msgspec.Struct, kw_only=True, gc=False):
    """One decision as the log keeps it, before `seal` numbers and chains it (`commit.decision`
    builds it). Its canonical JSON sorts the keys, exactly as a dict's (so records read back as
    dicts verify alike), and leaves out the UNSET fields; a struct rather than a dict costs less
    to build and to encode, once per row of a logged batch."""

    time: str
    request_id: str
    channel: str
    model_version: str
    threshold: float
    input: Any  # the cleaned values the model saw: a dict, or a struct of them (`scorer.inputs_records`)
    default_probability: float
    decision: str
    reasons: list[str] | None
    wording: int | msgspec.UnsetType = msgspec.UNSET
    language: str | msgspec.UnsetType = msgspec.UNSET
    id: Any = msgspec.UNSET
    worker: int | msgspec.UnsetType = msgspec.UNSET
    counter_offer: Any = msgspec.UNSET
    seq: int | msgspec.UnsetType = msgspec.UNSET
    prev: str | msgspec.UnsetType = msgspec.UNSET


def seal(record: Record, seq: int, prev: str, key: bytes | None) -> tuple[bytes, str]:
    """The record's line as stored (its canonical JSON with `seq` and `prev`, then `hash` and
    `mac` appended), and its hash."""
    body = canonical(msgspec.structs.replace(record, seq=seq, prev=prev))
    digest = hashlib.sha256(body).hexdigest()
    tail = f',"hash":"{digest}"' + (f',"mac":"{_mac(key, digest)}"' if key else "") + "}\n"
    return body[:-1] + tail.encode(), digest


@dataclass
class Head:
    """Where the chain ends: the last record's number and hash, and the byte where its segment ends."""

    seq: int
    hash: str
    segment: str | None
    size: int


def _key(key: str | bytes | None) -> bytes | None:
    if key is None or key == "":
        return None
    return key.encode() if isinstance(key, str) else key


class DecisionLog:
    """Appends records to the chain; safe across threads and processes (one commit at a time)."""

    def __init__(self, folder: Path, key: str | bytes | None = None) -> None:
        self.folder = Path(folder)
        self.key = _key(key)
        self._known: tuple[Head, int] | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CashscoreError(f"{self.folder}: cannot open the decision log: {exc.strerror}") from None

    def close(self) -> None:
        os.close(self._lock)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def append(self, records: Sequence[Record], durable: Callable[[], None] | None = None) -> list[str]:
        """Seal and append records, durable (fsync) when this returns.

        Args:
            records: the decisions, each with a `time` from `now()`.
            durable: called once the records are durable, before the head is replaced: whoever
                waits for them can go on while the head's own write and fsync take place (a crash
                in between leaves complete records beyond the head, which `recover` adopts).

        Returns:
            The records' hashes.

        Raises:
            CashscoreError: when the log cannot be written or its end does not match its head.
        """
        if not records:
            return []
        with self._locked():
            head = self._head()
            lines: dict[str, list[bytes]] = {}
            hashes = []
            seq, prev = head.seq, head.hash
            for record in records:
                seq += 1
                line, prev = seal(record, seq, prev, self.key)
                hashes.append(prev)
                lines.setdefault(segment_name(record.time), []).append(line)
            try:
                for name, chunk in lines.items():
                    path = self.folder / name
                    fresh = not path.exists()
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    try:
                        os.write(fd, b"".join(chunk))
                        os.fsync(fd)
                        size = os.fstat(fd).st_size
                    finally:
                        os.close(fd)
                    if fresh:
                        fsync_dir(self.folder)
                    head = Head(seq, prev, name, size)
                if durable is not None:
                    durable()
                self._known = (head, _write_json(self.folder / HEAD, head.__dict__, self.key))
            except OSError as exc:
                self._known = None
                raise CashscoreError(f"{self.folder}: cannot write the decision log: {exc.strerror}") from None
        return hashes

    def prune(self, months: int, today: datetime | None = None) -> list[Path]:
        """Remove the months of records older than the last `months` (the current one included).

        The anchor first moves to the first record kept, so the chain still verifies from there.

        Returns:
            The segments removed.
        """
        today = today or datetime.now(UTC)
        keep_from = today.year * 12 + today.month - 1 - (months - 1)
        with self._locked():
            head = self._recover()
            found = segments(self.folder)
            old = [p for p in found if _month(p) < keep_from]
            if not old:
                return []
            kept = [p for p in found if _month(p) >= keep_from]
            first = next((r for p, _, r in records_in(kept)), None)
            anchor = {"seq": first["seq"], "prev": first["prev"]} if first else {"seq": head.seq + 1, "prev": head.hash}
            _write_json(self.folder / ANCHOR, anchor, self.key)
            for path in old:
                path.unlink()
            fsync_dir(self.folder)
        return old

    def _head(self) -> Head:
        """The head: the one this process wrote last when no other process has committed since
        (head.json is replaced by each commit, so its inode says) and its segment still ends
        where it did; else read and checked again."""
        if self._known is not None:
            head, inode = self._known
            try:
                same = os.stat(self.folder / HEAD).st_ino == inode
                if same and head.segment and os.stat(self.folder / head.segment).st_size == head.size:
                    return head
            except OSError:
                pass
        self._known = None
        return self._recover()

    def recover(self) -> Head:
        """Check the log's end against its head (repairing what a crash left), under the lock.

        Raises:
            CashscoreError: when records were removed from its end, or it cannot be read.
        """
        with self._locked():
            return self._recover()

    def _recover(self) -> Head:
        """The head, after adopting complete records a crash left beyond it and cutting a torn last line.

        Raises:
            CashscoreError: when the log ends before its head (records were removed).
        """
        stored = _read_json(self.folder / HEAD, self.key)
        anchor = read_anchor(self.folder, self.key)
        head = Head(**stored) if stored else Head(anchor["seq"] - 1, anchor["prev"], None, 0)
        found = segments(self.folder)
        last = found[-1] if found else None
        if last is None:
            if head.segment is not None:
                raise CashscoreError(f"{self.folder}: the log's segments are gone (head says {head.segment})")
            return head
        size = last.stat().st_size
        if head.segment is not None and (last.name < head.segment or (last.name == head.segment and size < head.size)):
            raise CashscoreError(
                f"{self.folder}: the log ends before its head (record {head.seq} in {head.segment}): "
                "records were removed"
            )
        start = head.size if last.name == head.segment else 0
        if size == start:
            return head
        with last.open("rb+") as handle:
            handle.seek(start)
            tail = handle.read()
            complete = tail[: tail.rfind(b"\n") + 1]
            for line in complete.splitlines():
                record = _decode(line)
                if record.get("prev") != head.hash or record.get("seq") != head.seq + 1:
                    raise CashscoreError(f"{last}: records after the head do not continue the chain")
                head = Head(record["seq"], record["hash"], last.name, 0)
            head.size = start + len(complete)
            if len(complete) < len(tail):  # an interrupted write, never acknowledged
                handle.truncate(head.size)
                os.fsync(handle.fileno())
        return head


def read_anchor(folder: Path, key: bytes | None) -> dict[str, Any]:
    """Where the chain starts: after `prune`, the first kept record and the hash before it."""
    return _read_json(folder / ANCHOR, key) or {"seq": 1, "prev": GENESIS}


def _month(path: Path) -> int:
    match = SEGMENT.fullmatch(path.name)
    assert match is not None
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def records(folder: Path, holding: bytes | None = None) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """Every complete record, oldest first: (segment, line number, record).

    Args:
        folder: the log.
        holding: only the lines holding these bytes are decoded and given (a lookup's prefilter:
            decoding every line was most of the cost of finding one decision).

    Raises:
        CashscoreError: for a line that is not a JSON object.
    """
    return records_in(segments(folder), holding)


def records_in(paths: list[Path], holding: bytes | None = None) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """`records` of the given segments."""
    for path in paths:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    break  # a torn last line: an interrupted write, never acknowledged
                if holding is not None and holding not in line:
                    continue
                try:
                    record = _decode(line)
                except msgspec.DecodeError:
                    raise CashscoreError(f"{path}:{number}: not a JSON record") from None
                if not isinstance(record, dict):
                    raise CashscoreError(f"{path}:{number}: not a JSON record")
                yield path, number, record


@dataclass
class Verdict:
    """What `verify` found: the number of intact records, and the first problem (None when intact)."""

    records: int
    problem: str | None


def verify(folder: Path, key: str | bytes | None = None) -> Verdict:
    """Check every record's hash (and MAC), the chain from the anchor, and that it ends at the head.

    An edit, a deletion, an insertion or a reordering anywhere is reported at the first record
    where the chain breaks.
    """
    key = _key(key)
    try:
        anchor = read_anchor(folder, key)
        head = _read_json(folder / HEAD, key)
        seq, prev, count = anchor["seq"] - 1, anchor["prev"], 0
        for path, number, record in records(folder):
            if head is not None and seq == head.get("seq") and prev != head.get("hash"):
                return Verdict(count, f"record {seq} is not the one the head names: the log was rewritten")
            where = f"{path.name}:{number}"
            digest = _digest({k: v for k, v in record.items() if k not in ("hash", "mac")})
            if record.get("hash") != digest:
                return Verdict(count, f"{where}: record {record.get('seq')} was edited (its hash does not match)")
            if key and not hmac.compare_digest(str(record.get("mac")), str(_mac(key, digest))):
                return Verdict(count, f"{where}: record {record.get('seq')}'s signature does not match")
            if record.get("seq") != seq + 1 or record.get("prev") != prev:
                return Verdict(
                    count,
                    f"{where}: record {record.get('seq')} does not follow record {seq}: "
                    "a record was deleted, inserted or moved before it",
                )
            if path.name != segment_name(str(record.get("time"))):
                return Verdict(count, f"{where}: record {seq + 1} is in the wrong month's segment")
            seq, prev, count = seq + 1, digest, count + 1
    except CashscoreError as exc:
        return Verdict(0, str(exc))
    if head is None:
        return Verdict(count, None if count == 0 else f"{folder / HEAD}: missing; the log's end cannot be checked")
    if head.get("seq", 0) > seq or (head.get("seq") == seq and head.get("hash") != prev):
        named = head.get("seq")
        return Verdict(count, f"the log ends at record {seq} but its head names record {named}: records deleted")
    return Verdict(count, None)
