"""A stolen terminal opens nothing beyond itself, and console logins cannot lock the
counter (issue 17, points 3 and 5): the feed sends a terminal only its canteen's staff;
the console and the district server's command line take passwords, never PINs; wrong
passwords back off per account and per client address, apart from PIN lockouts; an
unknown id and a wrong password get the same answer."""
from __future__ import annotations

import json
import re
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kiosk.cli.main import main
from kiosk.db.models import LoginThrottle, PinLockout, Staff, StaffPassword
from kiosk.district.domain import passwords
from kiosk.errors import PermissionDeniedError, TooManyAttemptsError, ValidationError

from tests.conftest import STAFF_PASSWORDS, STAFF_PINS, add_test_passwords, add_test_staff

S02_PIN = "4321"
S01_PASSWORD = "li-jie-counter-2026"


# ------------------------------------------------------------------------------ a district store
@pytest.fixture
def district(env, formats):
    """A server store (SQLite) with canteens C1 and C2 and a terminal each. Lists: C1 has
    S01 (staff) and SUP (supervisor); C2 has S02 (staff); ADM (admin) is on none.
    ADM and SUP have console passwords."""
    from kiosk.config import get_settings
    from kiosk.district.domain.terminals import add_terminal
    from kiosk.services.context import App
    from kiosk.services.importing import import_roster
    from kiosk.services.security import hash_pin

    get_settings.cache_clear()
    app = App()
    import_roster(app, formats / "roster.example.csv")
    add_test_staff(app)
    with app.db.session() as s:
        s.add(Staff(id="S02", name="周师傅", role="staff", pin_hash=hash_pin(S02_PIN)))
    tokens = {c: add_terminal(app, c)[1] for c in ("C1", "C2")}
    adm = app.auth.verify("ADM", STAFF_PINS["ADM"])          # in-process, as the services take it
    for sid, c in (("S01", "C1"), ("SUP", "C1"), ("S02", "C2")):
        passwords.add_to_canteen(app, sid, c, adm)
    add_test_passwords(app)
    yield {"app": app, "tokens": tokens, "adm": adm}
    app.close()


def _api(app):
    from kiosk.district.app import create_app

    return create_app(app.settings, kiosk_app=app)


def _pull(app, token: str, since: int = 0) -> tuple[list[dict], str, int]:
    """Every page of the feed from ``since``, as a terminal reads it: records, raw text, version."""
    from fastapi.testclient import TestClient

    records, text, cursor = [], "", None
    with TestClient(_api(app)) as c:
        while True:
            params = {"since": since} | ({"cursor": cursor} if cursor else {})
            r = c.get("/api/v1/changes", params=params, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            text += r.text
            page = r.json()
            records += page["changes"]
            since, cursor = page["since"], page["cursor"]
            if not page["more"]:
                return records, text, since


def _hashes(app) -> dict[str, str]:
    with app.db.session(read_only=True) as s:
        return {st.id: st.pin_hash for st in s.scalars(select(Staff))}


def _password_hashes(app) -> list[str]:
    with app.db.session(read_only=True) as s:
        return list(s.scalars(select(StaffPassword.password_hash)))


def test_the_feed_holds_only_its_canteens_staff_and_one_taken_off_the_list_disappears(district, tmp_path):
    from kiosk.config import load_settings
    from kiosk.services.context import App
    from kiosk.terminal.sync.replica import apply_records

    app = district["app"]
    pins = _hashes(app)
    records, text, v1 = _pull(app, district["tokens"]["C1"])
    staff = {r["key"]: r["data"] for r in records if r["entity"] == "staff"}
    assert {k for k, d in staff.items() if d} == {"S01", "SUP"}
    assert pins["S01"] in text and pins["SUP"] in text
    assert pins["ADM"] not in text and pins["S02"] not in text            # the admin's, another canteen's
    assert _password_hashes(app) and not any(h in text for h in _password_hashes(app))
    assert "$argon2id$" not in text.replace(pins["S01"], "").replace(pins["SUP"], "")
    records2, text2, _ = _pull(app, district["tokens"]["C2"])
    assert {r["key"] for r in records2 if r["entity"] == "staff" and r["data"]} == {"S02"}
    assert all(pins[s] not in text2 for s in ("ADM", "SUP", "S01"))

    # the terminal of C1 applies what it pulled; then SUP leaves C1's list, S01 is deactivated
    term = App(load_settings(home=tmp_path / "term", server_url="http://127.0.0.1:9", template_key=app.settings.template_key,
                             server_token=district["tokens"]["C1"], canteen_id="C1"))
    try:
        apply_records(term, [r for r in records if r["entity"] == "staff"])
        with term.db.session(read_only=True) as s:
            assert set(s.scalars(select(Staff.id))) == {"S01", "SUP"}
        passwords.remove_from_canteen(app, "SUP", "C1", district["adm"])
        app.auth.deactivate("S01", actor=district["adm"])
        later, text3, _ = _pull(app, district["tokens"]["C1"], since=v1)
        assert {r["key"]: r["data"] for r in later if r["entity"] == "staff"} == {"SUP": None, "S01": None}
        assert pins["SUP"] not in text3 and pins["S01"] not in text3
        apply_records(term, later)                                   # the next sync
        with term.db.session(read_only=True) as s:
            assert list(s.scalars(select(Staff.id))) == []
    finally:
        term.close()


# ------------------------------------------------------------------------------ the console
def _console_login(client, staff_id: str, password: str):
    r = client.get("/console/login")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    return client.post("/console/login", data={"staff_id": staff_id, "password": password, "csrf_token": pre})


def _flash(resp) -> str:
    m = re.search(r'class="flash error">([^<]*)<', resp.text)
    return m.group(1) if m else ""


def test_a_cracked_pin_opens_neither_the_console_nor_the_servers_command_line(district, monkeypatch, capsys):
    from fastapi.testclient import TestClient

    app = district["app"]
    with TestClient(_api(app), follow_redirects=False) as c:
        r = _console_login(c, "SUP", STAFF_PINS["SUP"])              # the PIN found from C1's disk
        assert r.status_code == 401 and _flash(r) == passwords.WRONG
        r = _console_login(c, "ADM", STAFF_PINS["ADM"])
        assert r.status_code == 401 and _flash(r) == passwords.WRONG
        r = _console_login(c, "SUP", STAFF_PASSWORDS["SUP"])
        assert r.status_code == 303 and r.headers["location"].endswith("/console/")

    # the server's command line: this store has issued terminal tokens, so the PIN is no proof
    passwords.set_password(app, "S01", S01_PASSWORD, actor=district["adm"])
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["S01"])
    assert main(["accounts", "topup", "R0001", "10", "--staff", "S01", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert "KIOSK_STAFF_PASSWORD" in out["error"] and "不是 PIN" in out["error"]
    monkeypatch.setenv("KIOSK_STAFF_PASSWORD", STAFF_PINS["S01"])   # the PIN given as the password
    assert main(["accounts", "topup", "R0001", "10", "--staff", "S01", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == passwords.WRONG
    monkeypatch.setenv("KIOSK_STAFF_PASSWORD", STAFF_PASSWORDS["ADM"])
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])
    assert main(["staff", "disable", "S02", "--staff", "ADM", "--json"]) == 0   # staff changes: by password
    capsys.readouterr()
    monkeypatch.setenv("KIOSK_STAFF_PASSWORD", S01_PASSWORD)
    assert main(["accounts", "topup", "R0001", "10", "--staff", "S01", "--json"]) == 0
    assert main(["accounts", "balance", "R0001", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["balance_fen"] == 1000


def test_every_cli_command_proves_people_through_the_one_gate():
    """A command that called the PIN check itself would take a PIN on the server."""
    cli = Path(__file__).resolve().parents[1] / "kiosk" / "cli"
    for f in cli.glob("*.py"):
        if f.name in ("staffpin.py", "commands_staff_password.py"):
            continue
        text = f.read_text(encoding="utf-8")
        assert "auth.verify(" not in text and "read_pin(" not in text and "authenticate(" not in text, f.name


def test_a_console_password_has_ten_characters_and_is_set_by_the_rules(district, env, monkeypatch, capsys):
    app = district["app"]
    with pytest.raises(ValidationError, match="至少 10"):
        passwords.set_password(app, "S01", "123456789", actor=district["adm"])
    monkeypatch.setenv("KIOSK_STAFF_PASSWORD", STAFF_PASSWORDS["ADM"])
    monkeypatch.setenv("KIOSK_NEW_PASSWORD", "abc-12345")                 # 9 characters
    assert main(["staff", "password", "S01", "--staff", "ADM", "--json"]) == 2
    assert "至少 10" in json.loads(capsys.readouterr().out)["error"]
    assert not passwords.has_password(app, "S01")
    # a PIN proves a first password only for an admin, and only while no admin has one
    monkeypatch.setenv("KIOSK_NEW_PASSWORD", "supervisor-own-choice")
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["SUP"])
    monkeypatch.delenv("KIOSK_STAFF_PASSWORD")
    with app.db.session() as s:
        s.query(StaffPassword).filter(StaffPassword.staff_id == "SUP").delete()
    assert main(["staff", "password", "SUP", "--json"]) == 2
    assert "PIN 只能设置第一位管理员" in json.loads(capsys.readouterr().out)["error"]
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])
    assert main(["staff", "password", "ADM", "--json"]) == 2              # ADM has a password: no PIN
    capsys.readouterr()
    monkeypatch.setenv("KIOSK_STAFF_PASSWORD", STAFF_PASSWORDS["ADM"])    # ... but the current password
    monkeypatch.setenv("KIOSK_NEW_PASSWORD", "a-new-admin-passphrase")
    assert main(["staff", "password", "ADM", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["by"] == "ADM"
    assert passwords.verify(app, "ADM", "a-new-admin-passphrase").staff_id == "ADM"
    with pytest.raises(PermissionDeniedError):
        passwords.verify(app, "ADM", STAFF_PASSWORDS["ADM"])


def test_the_first_admin_password_by_pin_on_a_store_being_set_up(env, monkeypatch, capsys):
    from kiosk.services.context import App

    app = App()
    add_test_staff(app)
    app.close()
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])
    monkeypatch.setenv("KIOSK_NEW_PASSWORD", STAFF_PINS["ADM"] * 2)       # "246810246810"
    assert main(["staff", "password", "ADM", "--json"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["SUP"])
    monkeypatch.setenv("KIOSK_NEW_PASSWORD", "supervisor-own-choice")
    assert main(["staff", "password", "SUP", "--json"]) == 2              # not an admin
    capsys.readouterr()


def test_a_password_equal_to_the_pin_is_refused(district):
    from kiosk.services.security import hash_pin

    app = district["app"]
    with app.db.session() as s:
        s.get(Staff, "S02").pin_hash = hash_pin("1357924680")
    with pytest.raises(ValidationError, match="PIN"):
        passwords.set_password(app, "S02", "1357924680", actor=district["adm"])


def test_wrong_console_passwords_never_lock_the_pin_at_the_counter_or_the_cli(district):
    from fastapi.testclient import TestClient

    app = district["app"]
    with TestClient(_api(app), follow_redirects=False) as c:
        codes = [_console_login(c, "SUP", f"wrong-password-{i}").status_code for i in range(6)]
    assert codes[:3] == [401, 401, 401]          # the free tries; then the account backs off
    assert 429 in codes[3:]
    with app.db.session(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(PinLockout)) == 0
    assert app.auth.verify("SUP", STAFF_PINS["SUP"]).staff_id == "SUP"      # the CLI's PIN check (on a terminal)
    assert app.auth.login(STAFF_PINS["SUP"], terminal="C1").staff_id == "SUP"   # the counter's staff screen


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_back_off_per_account_doubles_and_survives_a_restart(district):
    from kiosk.services.context import App

    app, clock = district["app"], Clock()
    for i in range(3):                     # the free tries, each from another address
        with pytest.raises(PermissionDeniedError) as e:
            passwords.verify(app, "SUP", "not-the-password", client=f"10.0.0.{i}", clock=clock)
        assert not isinstance(e.value, TooManyAttemptsError)
    with pytest.raises(PermissionDeniedError):          # the 4th failure starts the back-off: 2 s
        passwords.verify(app, "SUP", "not-the-password", client="10.0.0.9", clock=clock)
    with pytest.raises(TooManyAttemptsError) as e:      # even the right password waits, from anywhere
        passwords.verify(app, "SUP", STAFF_PASSWORDS["SUP"], client="10.9.9.9", clock=clock)
    assert e.value.retry_after == 2
    clock.wait(2)
    with pytest.raises(PermissionDeniedError):          # the 5th: 4 s
        passwords.verify(app, "SUP", "not-the-password", clock=clock)
    restarted = App(app.settings)                       # a new process over the same store
    try:
        with pytest.raises(TooManyAttemptsError) as e:
            passwords.verify(restarted, "SUP", STAFF_PASSWORDS["SUP"], clock=clock)
        assert e.value.retry_after == 4
        clock.wait(4)
        assert passwords.verify(restarted, "SUP", STAFF_PASSWORDS["SUP"], clock=clock).staff_id == "SUP"
    finally:
        restarted.close()
    assert passwords.Throttle(app).state("account:SUP") is None          # a right password: starts again
    for i in range(3):                                   # other accounts were never slowed
        with pytest.raises(PermissionDeniedError) as e:
            passwords.verify(app, "ADM", "not-the-password", clock=clock)
        assert not isinstance(e.value, TooManyAttemptsError)


def test_back_off_per_client_address(district, monkeypatch):
    from argon2 import PasswordHasher

    # the unknown ids guessed below are checked against the dummy hash: a cheap one here
    # (what is tested is the counting; the dummy's cost is tested below)
    monkeypatch.setattr(passwords, "DUMMY_HASH", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash("x"))
    app, clock = district["app"], Clock()
    for i in range(10):                  # ten ids tried from one address: each account is below its limit
        with pytest.raises(PermissionDeniedError):
            passwords.verify(app, f"GUESS{i}", "password-guess", client="203.0.113.7", clock=clock)
    with pytest.raises(PermissionDeniedError):                   # the 11th starts the address's back-off
        passwords.verify(app, "GUESS10", "password-guess", client="203.0.113.7", clock=clock)
    with pytest.raises(TooManyAttemptsError):                    # a real account from that address waits too
        passwords.verify(app, "SUP", STAFF_PASSWORDS["SUP"], client="203.0.113.7", clock=clock)
    assert passwords.verify(app, "SUP", STAFF_PASSWORDS["SUP"], client="198.51.100.2",
                            clock=clock).staff_id == "SUP"        # another address does not
    # an IPv6 client is counted by its /64: a new address in it does not start afresh
    for i in range(11):
        with pytest.raises(PermissionDeniedError):
            passwords.verify(app, f"V6GUESS{i}", "password-guess", client=f"2001:db8:1:2::{i + 1:x}", clock=clock)
    with pytest.raises(TooManyAttemptsError):
        passwords.verify(app, "SUP", STAFF_PASSWORDS["SUP"], client="2001:db8:1:2:ffff::1", clock=clock)
    with app.db.session(read_only=True) as s:
        keys = set(s.scalars(select(LoginThrottle.key)))
    assert {"address:203.0.113.7", "address:2001:db8:1:2::/64"} <= keys


def test_an_unknown_id_and_a_wrong_password_get_the_same_answer(district):
    from fastapi.testclient import TestClient

    app = district["app"]
    with app.db.session() as s:          # no password set, and inactive: the same answer too
        s.get(Staff, "S02").active = False
    passwords.set_password(app, "S01", S01_PASSWORD, actor=district["adm"])
    with TestClient(_api(app), follow_redirects=False) as c:
        answers = {sid: _console_login(c, sid, "a-wrong-password") for sid in ("SUP", "NOBODY", "S02", "ADMX")}
    assert {r.status_code for r in answers.values()} == {401}
    assert {_flash(r) for r in answers.values()} == {passwords.WRONG}

    clock = Clock()

    def timed(sid: str) -> float:
        clock.wait(7200)                 # past the back-off's memory: only the check is timed
        t0 = time.perf_counter()
        with pytest.raises(PermissionDeniedError) as e:
            passwords.verify(app, sid, "a-wrong-password", client="192.0.2.1", clock=clock)
        assert e.value.user_message == passwords.WRONG
        return time.perf_counter() - t0

    assert passwords.DUMMY_HASH.startswith("$argon2id$") and not passwords.HASHER.check_needs_rehash(passwords.DUMMY_HASH)
    known = statistics.median(timed("SUP") for _ in range(5))
    unknown = statistics.median(timed("NOBODY") for _ in range(5))
    assert 1 / 3 < unknown / known < 3, (known, unknown)     # a real Argon2id check in both (~0.1 s)


def test_upgrading_a_district_keeps_the_counters_staff_and_resends_every_staff_record(tmp_path):
    """Migration 0007 on a district store made before it: members of role staff go on every
    canteen's list (the counters keep working), supervisors and admins on none, and every
    staff record is marked changed, so terminals drop at their next sync what they may no
    longer hold."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from kiosk.db.session import MIGRATIONS, make_engine

    eng = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def upgrade(to: str) -> None:
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, to)

    upgrade("0006")
    now = datetime(2026, 11, 1, tzinfo=timezone.utc).isoformat()
    with eng.begin() as conn:
        for c in ("C1", "C2"):
            conn.execute(text("INSERT INTO canteens (id, name, created_at) VALUES (:i, :i, :t)"), {"i": c, "t": now})
        for sid, role, active in (("ADM", "admin", 1), ("S01", "staff", 1), ("S02", "staff", 0), ("SUP", "supervisor", 1)):
            conn.execute(text("INSERT INTO staff (id, name, role, pin_hash, active, created_at) "
                              "VALUES (:i, :i, :r, 'h', :a, :t)"), {"i": sid, "r": role, "a": active, "t": now})
        v0 = conn.execute(text("SELECT version FROM sync_counter WHERE id = 1")).scalar_one()
    upgrade("head")
    with eng.begin() as conn:
        lists = set(conn.execute(text("SELECT canteen_id, staff_id FROM canteen_staff")).all())
        changed = conn.execute(text("SELECT version, key FROM change_log WHERE entity = 'staff'")).all()
        v1 = conn.execute(text("SELECT version FROM sync_counter WHERE id = 1")).scalar_one()
    eng.dispose()
    assert lists == {("C1", "S01"), ("C2", "S01")}
    assert v1 == v0 + 1 and sorted(changed) == [(v1, k) for k in ("ADM", "S01", "S02", "SUP")]
