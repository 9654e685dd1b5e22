"""Write files and folders so that readers see the old version or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

STAGING_MARK = ".cashscore-build-"


def _staging_prefix(target: Path, purpose: str) -> str:
    return f".{target.name}{STAGING_MARK}{purpose}-"


def alive(pid: int) -> bool:
    """Whether a process with this pid runs (a build folder's owner, for instance)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(target: Path) -> list[Path]:
    """Remove build folders that a killed cashscore process left beside `target`.

    A SIGKILL gives no chance to clean up, so each build folder carries its owner's pid and the
    next run removes those whose owner is gone.

    Args:
        target: the file whose build folders to sweep.

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    prefix = f".{target.name}{STAGING_MARK}"
    for entry in target.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        try:
            pid = int(entry.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid != os.getpid() and not alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def build_dir(target: Path, purpose: str) -> Iterator[Path]:
    """A private folder beside `target` (same file system, so os.replace is atomic), always removed.

    Args:
        target: the file that the build will replace.
        purpose: a word in the folder's name.

    Yields:
        The folder.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(target, purpose)}{os.getpid()}-", dir=target.parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Let `write` produce a file in a private folder, fsync it, then rename it over `target`.

    Args:
        target: the file to create or replace.
        write: called with the temporary path to write to.
    """
    sweep_stale(target)
    with build_dir(target, "write") as work:
        tmp = work / target.name
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)


def file_identity(path: Path) -> tuple[int, int] | None:
    """Which file `path` names now (device, inode), None when none: a file renamed over it is another."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a file created, renamed or removed in it) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Tests only: a process started with this variable naming a step kills itself there with SIGKILL,
# so crash tests hit each moment of a swap exactly instead of hoping a random sleep does.
KILL_AT = "CASHSCORE_TEST_KILL_AT"


def fault_point(step: str) -> None:
    """A named moment of a multi-step write where a crash test may stop the process dead."""
    if os.environ.get(KILL_AT) == step:
        os.kill(os.getpid(), signal.SIGKILL)
