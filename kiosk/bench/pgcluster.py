"""A throwaway PostgreSQL cluster: ``initdb`` + ``pg_ctl`` in a temporary folder, on a Unix
socket only. Used by `kiosk bench --sections district` (a shipped command) and by the
tests' PostgreSQL fixtures (tests/conftest.py, tests/district_helpers.py,
tests/test_postgres.py): one copy, in neither the benchmark nor the tests."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_missing() -> str | None:
    """Why a throwaway PostgreSQL cluster cannot be started here, or None."""
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed (pip install '.[postgres]'; bash install.sh --test does)"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") or not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        return "the PostgreSQL server is not installed (bash install.sh --test installs it)"
    if os.geteuid() == 0:        # the server refuses to run as root: it is started as postgres
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to start the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing (needed to start the server as postgres)"
    return None


class PostgresCluster:
    """A throwaway PostgreSQL cluster: initdb + pg_ctl in a temporary folder (not under
    pytest's temp folder, which is private to the user running the tests), listening on a
    Unix socket only, started as the postgres user when run as root (the server refuses
    root). ``db``: a database created at once (``url``); ``new_db()`` makes more.
    ``fsync=False`` for tests (faster; nothing to keep); the benchmark keeps it on.
    ``keep_in``: a folder the cluster lives in and is kept in (not a temporary one): a
    cluster found there is started again as it is (`kiosk bench --sections console` builds
    its big district once); ``stop`` then leaves the folder."""

    def __init__(self, *, db: str | None = "kiosk", fsync: bool = True, max_connections: int = 200,
                 settings: dict | None = None, prefix: str = "kiosk-pg-", keep_in: Path | None = None) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL server not installed: run `bash install.sh --test`")
        self.bindir = os.path.dirname(bins[-1])
        self.keep = keep_in is not None
        if keep_in is not None:
            self.base = Path(keep_in)
            self.base.mkdir(parents=True, exist_ok=True)
        else:
            self.base = Path(tempfile.mkdtemp(prefix=prefix))
        self.data, self.sock = self.base / "data", self.base / "sock"
        self.sock.mkdir(exist_ok=True)
        existed = (self.data / "PG_VERSION").exists()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.n = 0
        opts = {"listen_addresses": "''", "max_connections": str(max_connections), **(settings or {})}
        if not fsync:
            opts["fsync"] = "off"
        try:
            if not existed:
                self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "kiosk", "-E", "UTF8",
                          "--locale=C.UTF-8")
            self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.base / "log"), "-o",
                      f"-k {self.sock} -p {self.port} " + " ".join(f"-c {k}={v}" for k, v in opts.items()), "start")
            if existed and db:
                self.url = self.db_url(db)
            else:
                self.url = self.new_db(db) if db else None
        except BaseException:
            self.stop()
            raise

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(self.as_user + [f"{self.bindir}/{tool}", *args], check=True, capture_output=True)

    def new_db(self, name: str | None = None) -> str:
        """Create a database (``district1``, ``district2``, ... by default); its URL."""
        if name is None:
            self.n += 1
            name = f"district{self.n}"
        self._run("createdb", "-h", str(self.sock), "-p", str(self.port), "-U", "kiosk", name)
        return self.db_url(name)

    def db_url(self, name: str) -> str:
        return f"postgresql+psycopg://kiosk@/{name}?host={self.sock}&port={self.port}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if (self.data / "PG_VERSION").exists():
            subprocess.run(self.as_user + [f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "fast", "stop"],
                           capture_output=True)
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
