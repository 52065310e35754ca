"""`kiosk backup` / `kiosk restore`: an online copy taken while a thread sells, restored
on another machine (every order committed before the backup there, the audit chain
intact, the faces identified with the restored key) and over the old store (only with
confirmation); a wrong passphrase and a corrupt archive refused with nothing changed.
The same on PostgreSQL (pg_dump)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kiosk.config import load_settings
from kiosk.db.models import Order
from kiosk.services.context import App
from kiosk.services.security import generate_key
from kiosk.timeutil import CST

from tests.conftest import add_test_staff, shared_engine, staff_actor

KIOSK = [sys.executable, "-m", "kiosk.cli.main"]
LUNCH = datetime(2026, 11, 23, 12, 5, tzinfo=CST)
PASS = "correct horse battery"


def _env(home: Path, **kw: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_") or k in ("KIOSK_MODEL_DIR", "KIOSK_AUDIO")}
    env.update(KIOSK_HOME=str(home), KIOSK_BACKUP_PASSPHRASE=PASS, **kw)
    return env


def _kiosk(args: list[str], env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(KIOSK + args, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL if stdin is None else None, input=stdin)


@pytest.fixture
def kiosk_here(monkeypatch, capsys):
    """The CLI in this process (faster than a subprocess) with the given KIOSK_* environment."""
    from types import SimpleNamespace

    from kiosk.cli.main import main
    from kiosk.config import get_settings

    def run(args: list[str], env: dict) -> SimpleNamespace:
        for k in [k for k in os.environ if k.startswith("KIOSK_") and k not in ("KIOSK_MODEL_DIR", "KIOSK_AUDIO")]:
            monkeypatch.delenv(k)
        for k, v in env.items():
            if k.startswith("KIOSK_"):
                monkeypatch.setenv(k, v)
        get_settings.cache_clear()
        capsys.readouterr()
        code = main(args)
        got = capsys.readouterr()
        get_settings.cache_clear()
        return SimpleNamespace(returncode=code, stdout=got.out, stderr=got.err)
    return run


class Seller(threading.Thread):
    """Sells lunches one after another on its own App (as a second process would) and
    records each order once its commit returned."""

    def __init__(self, settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.committed: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        app = App(self.settings)
        try:
            i = 0
            while not self.stop.is_set():
                r = app.billing.settle(("R0001", "R0002", "R0003")[i % 3], [("D002", "D004", "D005")[i % 3]],
                                       at=LUNCH, pay="cash")
                self.committed.append(r.order_id)
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            app.close()

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.committed) < n and self.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.error is None and len(self.committed) >= n, self.error


def _backup_while_selling(seller: Seller, env: dict, out: Path) -> tuple[list[str], dict]:
    seller.start()
    seller.wait_for(15)
    before = list(seller.committed)                  # committed before the backup started
    r = _kiosk(["backup", "--out", str(out), "--json"], env)
    during = len(seller.committed) - len(before)
    seller.wait_for(len(seller.committed) + 5)       # and it goes on selling after
    seller.stop.set()
    seller.join(30)
    assert r.returncode == 0, r.stderr
    assert during > 0, "the thread sold nothing while the backup ran: the test did not test an online backup"
    return before, json.loads(r.stdout)


def _orders(app: App) -> set[str]:
    with app.db.session() as s:
        return set(s.scalars(select(Order.id)))


def _audit_verify(env: dict) -> dict:
    """The chain intact, and its newest entry the restore itself."""
    r = _kiosk(["audit", "verify", "--json"], env)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["intact"], out
    last = json.loads(_kiosk(["audit", "--json"], env).stdout)[-1]
    assert last["action"] == "store.restore" and last["actor"] == "system", last
    return out


def test_backup_while_selling_restores_every_order_and_the_faces_elsewhere(shop, obama, biden, tmp_path):
    from kiosk.enrollment.batch import enroll_files

    s01 = staff_actor(shop, "S01")
    enroll_files(shop, "R0001", [obama[0], obama[1]], consent="self", actor=s01)
    enroll_files(shop, "R0002", [biden], consent="self", actor=s01)
    home = shop.settings.home
    env = _env(home, KIOSK_TEMPLATE_KEY=shop.settings.template_key)
    out = tmp_path / "backups" / "canteen.kbak"
    before, res = _backup_while_selling(Seller(shop.settings), env, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and res["dialect"] == "sqlite"
    assert res["counts"]["orders"] >= len(before) and res["counts"]["face_templates"] == 3

    # another machine: an empty home, no key yet (the key file comes out of the archive)
    home2, keyfile2 = tmp_path / "elsewhere" / "home", tmp_path / "elsewhere" / "config" / "template.key"
    env2 = _env(home2, KIOSK_TEMPLATE_KEY_FILE=str(keyfile2))
    r = _kiosk(["restore", str(out), "--json"], env2)
    assert r.returncode == 0, r.stderr
    assert keyfile2.read_text().strip() == shop.settings.template_key
    assert stat.S_IMODE(keyfile2.stat().st_mode) == 0o600
    _audit_verify(env2)
    app2 = App(load_settings(home=home2, template_key_file=keyfile2), engine=shared_engine("sface"))
    try:
        restored = _orders(app2)
        assert set(before) <= restored and len(restored) == res["counts"]["orders"]
        assert app2.faces.identify_file(obama[2]).resident_id == "R0001"   # templates open with the restored key
    finally:
        app2.close()

    # over the store it came from: refused without confirmation, nothing changed ...
    now = _orders(shop)
    assert len(now) > res["counts"]["orders"]                 # sold after the backup
    r = _kiosk(["restore", str(out)], env)
    assert r.returncode == 2 and "--yes" in r.stderr and "覆盖" in r.stderr
    assert _orders(shop) == now
    # ... and with it, the store is the backup's again (sales after it are gone), chain intact
    r = _kiosk(["restore", str(out), "--yes", "--json"], env)
    assert r.returncode == 0, r.stderr
    assert _orders(shop) == restored
    _audit_verify(env)


def _small_store(tmp_path: Path, run) -> tuple[Path, dict, Path]:
    """A store with a few sales and its backup."""
    from kiosk.services.importing import import_menu, import_policy, import_roster
    from kiosk.terminal.demo import FORMATS

    home, key = tmp_path / "home", generate_key()
    app = App(load_settings(home=home, template_key=key))
    try:
        import_roster(app, FORMATS / "roster.example.csv")
        import_menu(app, FORMATS / "menu.example.csv")
        import_policy(app, FORMATS / "policy.example.yaml")
        add_test_staff(app)
        for rid in ("R0001", "R0002"):
            app.billing.settle(rid, ["D002"], at=LUNCH, pay="cash")
    finally:
        app.close()
    env = _env(home, KIOSK_TEMPLATE_KEY=key)
    out = tmp_path / "b.kbak"
    r = run(["backup", "--out", str(out)], env)
    assert r.returncode == 0, r.stderr
    return out, env, home


def test_a_wrong_passphrase_and_a_corrupt_archive_are_refused_and_nothing_is_written(tmp_path, kiosk_here):
    _kiosk = kiosk_here
    out, env, _home = _small_store(tmp_path, kiosk_here)
    target, keyfile = tmp_path / "t" / "home", tmp_path / "t" / "key"
    env_t = _env(target, KIOSK_TEMPLATE_KEY_FILE=str(keyfile))

    def refused(archive: Path, says: str, **extra: str) -> None:
        r = _kiosk(["restore", str(archive)], {**env_t, **extra})
        assert r.returncode == 2 and says in r.stderr, (r.stdout, r.stderr)
        assert not (target / "kiosk.db").exists() and not keyfile.exists()
        assert not [p for p in target.parent.rglob("*") if p.name.startswith(".kiosk-restore-")]

    refused(out, "口令不对", KIOSK_BACKUP_PASSPHRASE="wrong passphrase")
    data = out.read_bytes()
    # one byte of the database member changed
    with tarfile.open(out) as tar:
        off = tar.getmember("kiosk.db").offset_data
    bad = tmp_path / "flipped.kbak"
    bad.write_bytes(data[:off + 5000] + bytes([data[off + 5000] ^ 1]) + data[off + 5001:])
    refused(bad, "损坏")
    cut = tmp_path / "cut.kbak"
    cut.write_bytes(data[: len(data) // 2])
    refused(cut, "损坏")
    junk = tmp_path / "junk.kbak"
    junk.write_bytes(b"not an archive" * 100)
    refused(junk, "损坏或不是")
    # the manifest edited (say, counts made to match another copy): the passphrase no longer opens the key
    with tarfile.open(out) as tar:
        moff, msize = tar.getmember("manifest.json").offset_data, tar.getmember("manifest.json").size
    manifest = data[moff:moff + msize]
    edited = manifest.replace(b'"orders": 2', b'"orders": 3')
    assert edited != manifest and len(edited) == len(manifest)
    ed = tmp_path / "edited.kbak"
    ed.write_bytes(data[:moff] + edited + data[moff + msize:])
    refused(ed, "口令不对（或备份清单被改动过）")
    # the good archive checks, and restores
    r = _kiosk(["restore", str(out), "--check", "--json"], env_t)
    assert r.returncode == 0 and json.loads(r.stdout)["counts"]["orders"] == 2
    assert not (target / "kiosk.db").exists()
    assert _kiosk(["restore", str(out)], env_t).returncode == 0
    r = _kiosk(["audit", "verify", "--json"], env_t)
    assert r.returncode == 0 and json.loads(r.stdout)["intact"]


def test_backup_refuses_an_existing_file_a_short_passphrase_or_none(tmp_path, kiosk_here):
    _kiosk = kiosk_here
    out, env, _home = _small_store(tmp_path, kiosk_here)
    r = _kiosk(["backup", "--out", str(out)], env)
    assert r.returncode == 2 and "已存在" in r.stderr
    r = _kiosk(["backup", "--out", str(tmp_path / "x.kbak")], {**env, "KIOSK_BACKUP_PASSPHRASE": "short"})
    assert r.returncode == 2 and "至少 8" in r.stderr and not (tmp_path / "x.kbak").exists()
    r = _kiosk(["backup", "--out", str(tmp_path / "y.kbak")], {k: v for k, v in env.items()
                                                               if k != "KIOSK_BACKUP_PASSPHRASE"})
    assert r.returncode == 2 and "KIOSK_BACKUP_PASSPHRASE" in r.stderr


@pytest.mark.postgres
def test_postgres_backup_while_selling_and_restore_into_another_database(tmp_path):
    from kiosk.services.importing import import_menu, import_policy, import_roster
    from kiosk.terminal.demo import FORMATS
    from tests.district_helpers import PostgresCluster

    cluster = PostgresCluster()
    try:
        url, url2 = cluster.new_db(), cluster.new_db()
        key = generate_key()
        settings = load_settings(home=tmp_path / "home", template_key=key, database_url=url)
        app = App(settings)
        try:
            import_roster(app, FORMATS / "roster.example.csv")
            import_menu(app, FORMATS / "menu.example.csv")
            import_policy(app, FORMATS / "policy.example.yaml")
            add_test_staff(app)
            env = _env(settings.home, KIOSK_TEMPLATE_KEY=key, KIOSK_DATABASE_URL=url)
            out = tmp_path / "district.kbak"
            before, res = _backup_while_selling(Seller(settings), env, out)
            assert res["dialect"] == "postgresql" and res["counts"]["orders"] >= len(before)
            now = _orders(app)
        finally:
            app.close()
        env2 = _env(tmp_path / "home2", KIOSK_TEMPLATE_KEY=key, KIOSK_DATABASE_URL=url2)
        r = _kiosk(["restore", str(out), "--json"], env2)
        assert r.returncode == 0, r.stderr
        app2 = App(load_settings(home=tmp_path / "home2", template_key=key, database_url=url2))
        try:
            restored = _orders(app2)
        finally:
            app2.close()
        assert set(before) <= restored and len(restored) == res["counts"]["orders"] < len(now)
        _audit_verify(env2)
        # a second restore over it: refused without --yes, then replaces it whole
        r = _kiosk(["restore", str(out)], env2)
        assert r.returncode == 2 and "--yes" in r.stderr
        r = _kiosk(["restore", str(out), "--yes"], env2)
        assert r.returncode == 0, r.stderr
        app2 = App(load_settings(home=tmp_path / "home2", template_key=key, database_url=url2))
        try:
            assert _orders(app2) == restored
            with app2.db.session() as s:
                assert s.scalar(select(func.count()).select_from(Order)) == len(restored)
        finally:
            app2.close()
        _audit_verify(env2)
    finally:
        cluster.stop()
