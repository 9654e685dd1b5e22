"""A real MariaDB server for the differential restore test: a private socket, no TCP, a temporary data folder.

Debian's mariadb-server and mariadb-client provide the binaries (.ci/run installs them when missing).
The server runs as the current user, with a data folder made by mariadb-install-db in a temporary
folder, listens on a Unix socket only (--skip-networking) and is stopped, folder and all, at the end.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import socket as socketlib
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql

SERVER = shutil.which("mariadbd") or shutil.which("mysqld")
INSTALL = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
DUMP = shutil.which("mariadb-dump") or shutil.which("mysqldump")
MISSING = [name for name, found in (("mariadbd", SERVER), ("mariadb-install-db", INSTALL), ("mariadb-dump", DUMP))
           if found is None]  # fmt: skip


@dataclass
class MariaDB:
    """A running server: its socket, and the user the tests connect as."""

    socket: Path
    folder: Path

    def connect(self, database: str | None = None) -> pymysql.Connection:
        """A utf8mb4 connection in UTC: TIMESTAMP values come back as mariadb-dump writes them."""
        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            init_command="SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        )

    def dump(self, database: str, out: Path, options: Sequence[str] = (), gzipped: bool = False) -> Path:
        """Run mariadb-dump on one database with the given options; the text, optionally gzipped, goes to `out`."""
        command = [DUMP, "--no-defaults", f"--socket={self.socket}", "--user=root", *options, database]
        done = subprocess.run(command, capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-dump {' '.join(options)} failed: {done.stderr.decode(errors='replace')}")
        if gzipped:
            with gzip.open(out, "wb") as handle:
                handle.write(done.stdout)
        else:
            out.write_bytes(done.stdout)
        return out


def _accepting(path: Path) -> bool:
    """The server listens on its socket (probed with a plain socket, closed at once)."""
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def running(folder: Path) -> Iterator[MariaDB]:
    """Install a data folder under `folder`, start the server on a socket there, stop it at the end."""
    data, socket = folder / "data", folder / "mariadb.sock"
    install = [INSTALL, "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db",
               "--auth-root-authentication-method=normal"]  # fmt: skip
    done = subprocess.run(install, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed: {done.stderr.decode(errors='replace')}")
    log = folder / "mariadb.err"
    server = subprocess.Popen(
        [
            SERVER,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={socket}",
            "--skip-networking",
            "--user=root",
            f"--pid-file={folder / 'mariadb.pid'}",
            f"--log-error={log}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            "--max-allowed-packet=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = MariaDB(socket, folder)
    try:
        deadline = time.monotonic() + 60
        while not _accepting(socket):
            if server.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"MariaDB did not start: {text}")
            time.sleep(0.1)
        yield db
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
