"""Group commit: requests hand their records to one writer thread, which makes everything waiting
durable with one write and one fsync, then lets them all answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import msgspec

from cashscore.audit.log import DecisionLog, Record, now
from cashscore.scoring.reasons import WORDING

logger = logging.getLogger("cashscore.audit")
# Records committed at most at once; more wait for the next commit.
MAX_GROUP = 50_000


class GroupCommitter:
    """One writer thread per process over a `DecisionLog`. `submit` returns a future that completes
    once the records are durable (or fails with the log's error); `wait` is its asyncio form."""

    def __init__(self, log: DecisionLog) -> None:
        self.log = log
        self._queue: queue.SimpleQueue[tuple[Sequence[Record], Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cashscore-audit", daemon=True)
        self._thread.start()

    def submit(self, records: Sequence[Record]) -> Future:
        done: Future = Future()
        self._queue.put((records, done))
        return done

    async def wait(self, records: Sequence[Record]) -> None:
        """Append from a coroutine: returns once the records are durable."""
        done = asyncio.get_running_loop().create_future()
        self._queue.put((records, done))
        await done

    def close(self) -> None:
        """Commit what is waiting, then stop the thread."""
        self._queue.put(None)
        self._thread.join()
        self.log.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            # No commit_delay: the server already gathers the requests read in one turn of its loop
            # into one call (server.gather), and a 1 ms wait here was a fifth of a single
            # applicant's answer; what queued meanwhile joins this commit all the same.
            group = [item]
            count = len(item[0])
            stop = False
            while count < MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
                count += len(more[0])
            self._commit([r for records, _ in group for r in records], [done for _, done in group])
            if stop:
                return

    def _commit(self, records: list[Record], waiting: list[Any]) -> None:
        """Append one group's records; its requests answer as soon as the records are durable."""
        answered = False

        def durable() -> None:
            # The records are on disk: the requests answer while the log's head is replaced.
            nonlocal answered
            answered = True
            _settle(waiting, None)

        error: Exception | None = None
        try:
            self.log.append(records, durable)
        except Exception as exc:  # every waiting request learns that its decision was not kept
            if answered:
                # Only the head failed: the next commit reads the log's end again and adopts these.
                logger.error("decision log: the records are kept but the head was not replaced: %s", exc)
            else:
                error = exc
        if not answered:
            _settle(waiting, error)


def _settle(waiting: list[Any], error: Exception | None) -> None:
    """Complete every waiting future: one wake-up per event loop, not one per request."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
    for done in waiting:
        if isinstance(done, Future):
            done.set_exception(error) if error else done.set_result(None)
        else:
            loops.setdefault(done.get_loop(), []).append(done)
    for loop, futures in loops.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_here, futures, error)


def _settle_here(futures: list[asyncio.Future], error: Exception | None) -> None:
    for done in futures:
        if not done.done():
            done.set_exception(error) if error else done.set_result(None)


def decision(
    request_id: str,
    channel: str,
    model_version: str,
    threshold: float,
    inputs: Any,
    probability: float,
    outcome: str,
    reasons: list[str] | None,
    language: str = "en",
    *,
    time: str | None = None,
    id: Any = msgspec.UNSET,  # noqa: A002 - the record's own field name
    worker: int | msgspec.UnsetType = msgspec.UNSET,
    counter_offer: Any = msgspec.UNSET,
) -> Record:
    """One decision as the log keeps it (the log adds seq, prev, hash and mac).

    Args:
        request_id: the request (API) or run and row (batch) it answered.
        channel: "api" or "batch".
        model_version: the version that decided; `audit replay` scores the record with it again.
        threshold: the probability from which the model denies.
        inputs: the cleaned values the model saw (a dict, or a struct of them).
        probability: the probability of default, as answered.
        outcome: "approve" or "deny".
        reasons: the reasons' words as answered, or None when none were asked for; with them, the
            version of the words (`wording`).
        language: the reasons' language; recorded when not English (records from before languages
            are English), so that `audit replay` words them again in it.
        time: when it was decided (`now()`, the default): the rows of one request share it.
        id: a batch row's id, when it has one.
        worker: the server process that answered.
        counter_offer: a refusal's counter-offer, when one was asked for and found.
    """
    return Record(
        time=time or now(),
        request_id=request_id,
        channel=channel,
        model_version=model_version,
        threshold=threshold,
        input=inputs,
        default_probability=probability,
        decision=outcome,
        reasons=reasons,
        wording=msgspec.UNSET if reasons is None else WORDING,
        language=msgspec.UNSET if language == "en" else language,
        id=id,
        worker=worker,
        counter_offer=counter_offer,
    )
