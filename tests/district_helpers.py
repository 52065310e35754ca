"""A district for the tests: a real `kiosk server` process on loopback over a store
(SQLite, or a throwaway PostgreSQL cluster), and terminals with their own KIOSK_HOME."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from kiosk.bench.pgcluster import PostgresCluster as _Cluster, free_port  # noqa: F401  (free_port: tests)
from kiosk.config import load_settings
from kiosk.services.context import App
from kiosk.services.security import generate_key
from kiosk.timeutil import now_cst

from tests.conftest import add_test_passwords, add_test_staff, shared_engine

KIOSK = [sys.executable, "-m", "kiosk.cli.main"]   # the command line, run with this interpreter


class PostgresCluster(_Cluster):
    """The district tests' throwaway cluster (kiosk.bench.pgcluster.PostgresCluster, without
    fsync): one database per test with ``new_db()``."""

    def __init__(self) -> None:
        super().__init__(db=None, fsync=False, prefix="kiosk-pg-district-")


def today_menu(path: Path, formats: Path) -> Path:
    """The example menu's lunch, dated today (China Standard Time)."""
    day = now_cst().date().isoformat()
    lines = (formats / "menu.example.csv").read_text(encoding="utf-8-sig").splitlines()
    out = [lines[0]] + [re.sub(r"^\d{4}-\d{2}-\d{2}", day, ln) for ln in lines[1:] if ln.strip()]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


class District:
    """The server store (set up in-process), the server process, and terminals."""

    def __init__(self, root: Path, formats: Path, db_url: str | None = None) -> None:
        from kiosk.district.domain.terminals import add_terminal
        from kiosk.services.importing import import_menu, import_policy, import_roster

        self.root = root
        self.home = root / "server"
        self.key = generate_key()
        self.db_url = db_url
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = self.server_app("C1")
        import_roster(app, formats / "roster.example.csv")
        import_policy(app, formats / "policy.example.yaml")
        add_test_staff(app)
        menu = today_menu(root / "menu_today.csv", formats)
        import_menu(app, menu)
        app.close()
        app2 = self.server_app("C2")
        import_menu(app2, menu)
        self.tokens = {}
        for c in ("C1", "C2"):
            ident, tok = add_terminal(app2, c)
            self.tokens[c] = (ident.terminal_id, tok)
        from kiosk.db.models import CanteenStaff

        with app2.db.session() as s:     # the counters' staff lists: S01 and SUP at both canteens, ADM at none
            s.add_all([CanteenStaff(canteen_id=c, staff_id=sid, added_by="ADM")
                       for c in ("C1", "C2") for sid in ("S01", "SUP")])
        add_test_passwords(app2)         # the server's command line takes passwords (it has terminals)
        app2.close()
        self.terminals: list[App] = []

    def server_env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KIOSK_") or k in ("KIOSK_MODEL_DIR", "KIOSK_AUDIO")}
        env.update(KIOSK_HOME=str(self.home), KIOSK_TEMPLATE_KEY=self.key, KIOSK_AUDIO="off")
        if self.db_url:
            env["KIOSK_DATABASE_URL"] = self.db_url
        return env

    def server_app(self, canteen: str = "C1") -> App:
        kw = {"database_url": self.db_url} if self.db_url else {}
        return App(load_settings(home=self.home, template_key=self.key, canteen_id=canteen, **kw))

    def cli(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        e = self.server_env()
        e.update(env or {})
        r = subprocess.run(KIOSK + list(args), env=e, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"kiosk {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    # -- the server process ---------------------------------------------------------
    def start(self) -> None:
        self.proc = subprocess.Popen(KIOSK + ["server", "--port", str(self.port)], env=self.server_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert "listening on" in line, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        import httpx
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/v1/ping", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("server did not answer")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    # -- terminals ------------------------------------------------------------------
    def terminal_settings(self, canteen: str, home: Path | None = None):
        home = home or self.root / f"term-{canteen}"
        key_file = self.root / f"key-{canteen}"
        if not key_file.exists():
            key_file.write_text(generate_key())
        return load_settings(home=home, template_key=key_file.read_text(), server_url=self.url,
                             server_token=self.tokens[canteen][1])

    def terminal(self, canteen: str) -> App:
        app = App(self.terminal_settings(canteen), engine=shared_engine("sface"))
        self.terminals.append(app)
        return app

    def terminal_env(self, canteen: str) -> dict:
        s = self.terminal_settings(canteen)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KIOSK_") or k in ("KIOSK_MODEL_DIR", "KIOSK_AUDIO")}
        env.update(KIOSK_HOME=str(s.home), KIOSK_TEMPLATE_KEY=s.template_key, KIOSK_SERVER_URL=self.url,
                   KIOSK_SERVER_TOKEN=self.tokens[canteen][1], KIOSK_AUDIO="off")
        return env

    def close(self) -> None:
        for t in self.terminals:
            t.close()
        self.stop()
