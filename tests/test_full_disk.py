"""A full disk (issue 17, point 8): reads still work, writes are refused with
存储空间不足 (DiskFullError), nothing is half-written.

For real, on a small filesystem: a tmpfs mounted with ``size=`` (needs root and
mount(8); skipped with the reason otherwise), KIOSK_HOME on it, a store built there, the
disk then filled with a file. Every command is a new ``kiosk`` process, as a user runs
it: opening SQLite in WAL mode needs disk space for the wal-index (-shm) when no other
process holds the store open, which made every command fail before.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import STAFF_PINS, load_settings, sample, shared_engine, staff_actor

ROOT = Path(__file__).resolve().parents[1]
LUNCH = "2026-11-23T12:05"


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs; None when done, else why not."""
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root"
    if shutil.which("mount") is None:
        return "mount(8) is not installed"
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "kiosk-full-disk-test", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}"
    return None


@pytest.fixture
def disk(tmp_path):
    where = tmp_path / "disk"
    why = _mount_tmpfs(where, "24m")
    if why:
        pytest.skip(why)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill the filesystem to the last byte."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    st = os.statvfs(disk)
    assert st.f_bavail * st.f_frsize < 8192, "the disk is not full"
    return filler


@pytest.fixture
def store(disk, monkeypatch):
    """The example canteen on the small disk: the roster, menu and policy, test staff, 100
    yuan topped up for R0001, her face enrolled from a sample photo, one lunch sold."""
    from kiosk.config import get_settings
    from kiosk.services.context import App
    from kiosk.services.importing import import_menu, import_policy, import_roster
    from kiosk.services.security import generate_key
    from kiosk.terminal.demo import FORMATS
    from tests.conftest import add_test_staff

    home = disk / "home"
    key = generate_key()
    monkeypatch.setenv("KIOSK_HOME", str(home))
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY", key)
    for k in ("KIOSK_DATABASE_URL", "KIOSK_BACKEND", "KIOSK_SERVER_URL", "KIOSK_SERVER_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    app = App(load_settings(), engine=shared_engine("sface"))
    import_roster(app, FORMATS / "roster.example.csv")
    import_menu(app, FORMATS / "menu.example.csv")
    import_policy(app, FORMATS / "policy.example.yaml")
    add_test_staff(app)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update(KIOSK_HOME=str(home), KIOSK_TEMPLATE_KEY=key, PYTHONPATH=str(ROOT),
               KIOSK_STAFF_PIN=STAFF_PINS["ADM"])
    r = _kiosk(env, "enroll", "R0001", str(sample("face_recognition", "obama.jpg")), "--staff", "ADM",
               "--consent", "self", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    app.billing.topup("R0001", 10000, actor=staff_actor(app, "S01"))
    app.billing.settle("R0001", ["D001"], at=_at(LUNCH), pay="balance")
    app.close()          # the last connection: SQLite checkpoints and removes -wal and -shm
    get_settings.cache_clear()
    yield env, home
    get_settings.cache_clear()


def _at(s: str):
    from datetime import datetime

    from kiosk.timeutil import CST
    return datetime.fromisoformat(s).replace(tzinfo=CST)


def _kiosk(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from kiosk.cli.main import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=180, env=env)


def _json(r: subprocess.CompletedProcess) -> dict:
    return json.loads(r.stdout.strip().splitlines()[-1])


def _snapshot(db: Path) -> dict:
    c = sqlite3.connect(db)
    try:
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("orders", "order_lines", "ledger_entries", "audit_log", "face_templates")}
    finally:
        c.close()       # the last connection gone: SQLite removes -wal and -shm, as after a restart


def _integrity(db: Path) -> str:
    c = sqlite3.connect(db)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def test_full_disk_reads_work_and_writes_are_refused(store, disk):
    env, home = store
    before_balance = _kiosk(env, "accounts", "balance", "R0001")
    assert before_balance.returncode == 0, before_balance.stderr
    before_report = _json(_kiosk(env, "report", "monthly", "--month", "2026-11", "--json"))
    before_rows = _snapshot(home / "kiosk.db")
    assert before_rows["orders"] == 1 and before_rows["face_templates"] >= 1

    assert not (home / "kiosk.db-shm").exists(), "no process holds the store open"
    filler = fill(disk)

    # reads: balance, identify, the monthly report, sync status
    r = _kiosk(env, "accounts", "balance", "R0001")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == before_balance.stdout
    r = _kiosk(env, "identify", str(sample("face_recognition", "obama2.jpg")), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    got = _json(r)
    assert (got["status"], got["resident_id"]) == ("matched", "R0001"), got
    r = _kiosk(env, "report", "monthly", "--month", "2026-11", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _json(r) == before_report
    r = _kiosk(env | {"KIOSK_SERVER_URL": "http://127.0.0.1:9", "KIOSK_SERVER_TOKEN": "t" * 32},
               "sync-status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pending" in _json(r)
    r = _kiosk(env, "audit", "verify", "--json")
    assert r.returncode == 0 and _json(r)["intact"] is True, r.stdout + r.stderr

    # writes: refused with 存储空间不足, by its own exception class
    for args in (("checkout", "--resident", "R0001", "--dish", "D002", "--at", LUNCH, "--pay", "balance", "--json"),
                 ("accounts", "topup", "R0001", "5", "--staff", "ADM", "--json"),
                 ("staff", "add", "S09", "--name", "新人", "--role", "staff", "--pin", "4321", "--staff", "ADM",
                  "--json"),
                 ("report", "monthly", "--month", "2026-11", "--out", str(disk / "r.xlsx"), "--json")):
        r = _kiosk(env, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        err = _json(r)
        assert "存储空间不足" in err["error"] and err["type"] == "DiskFullError", (args, err)
    assert not (disk / "r.xlsx").exists() and not (disk / "r.xlsx.tmp").exists()

    # nothing half-written; with space again the store is whole and takes writes
    filler.unlink()
    assert _snapshot(home / "kiosk.db") == before_rows
    assert _integrity(home / "kiosk.db") == "ok"
    r = _kiosk(env, "audit", "verify", "--json")
    assert r.returncode == 0 and _json(r)["intact"] is True, r.stdout + r.stderr
    r = _kiosk(env, "checkout", "--resident", "R0001", "--dish", "D002", "--at", LUNCH, "--pay", "balance", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _snapshot(home / "kiosk.db")["orders"] == before_rows["orders"] + 1


def test_disk_fills_while_the_kiosk_runs(store, disk):
    """A running process (the kiosk) whose disk fills: a sale is refused with
    存储空间不足 and leaves no trace; its reads go on; after space is freed it sells."""
    from kiosk.errors import DiskFullError
    from kiosk.services.checkout import balance_of
    from kiosk.services.context import App

    env, home = store
    app = App(load_settings(), engine=shared_engine("sface"))
    try:
        with app.db.session() as s:
            balance = balance_of(s, "R0001")
        app.db.scrub()           # the WAL truncated: the next commit must take new space
        rows = _snapshot(home / "kiosk.db")
        filler = fill(disk)
        with pytest.raises(DiskFullError) as exc:
            app.billing.settle("R0001", ["D002"], at=_at(LUNCH), pay="balance",
                               idempotency_key=uuid.uuid4().hex)
        assert "存储空间不足" in exc.value.user_message
        with app.db.session(read_only=True) as s:
            assert balance_of(s, "R0001") == balance
        assert app.billing.quote("R0001", ["D002"], at=_at(LUNCH)).quote.total_fen == 600   # a read: still quotes
        filler.unlink()
        assert _snapshot(home / "kiosk.db") == rows
        r = app.billing.settle("R0001", ["D002"], at=_at(LUNCH), pay="balance")
        assert r.order_id
    finally:
        app.close()
    assert _integrity(home / "kiosk.db") == "ok"
    r = _kiosk(env, "audit", "verify", "--json")
    assert r.returncode == 0 and _json(r)["intact"] is True, r.stdout + r.stderr


def test_a_new_store_on_a_full_disk_is_refused_as_such(disk):
    """No store yet and no space to make one: 存储空间不足, not a generic failure."""
    from kiosk.services.security import generate_key

    home = disk / "home"
    home.mkdir(mode=0o700)
    fill(disk)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update(KIOSK_HOME=str(home), KIOSK_TEMPLATE_KEY=generate_key(), PYTHONPATH=str(ROOT))
    r = _kiosk(env, "staff", "list", "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    err = _json(r)
    assert "存储空间不足" in err["error"] and err["type"] == "DiskFullError", err
