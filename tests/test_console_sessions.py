"""Console logins are rows of the store, not of one server process's memory: a login made
through one server (app instance, worker process) is honoured by every other over the
same database, with the same CSRF token and its flash messages; a logout, a password
change or a deactivation through one ends it in all; the store keeps only the token's
hash. And a real `kiosk server --workers 2`: 20 console requests after one login, each on
a new connection, all succeed whichever worker answers."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from kiosk.config import get_settings
from tests.conftest import STAFF_PASSWORDS
from tests.district_helpers import KIOSK, District, PostgresCluster, free_port

ADMIN_PIN = "86420135"
SUPERVISOR_PIN = "97531"
ADMIN_PASSWORD = "区管理员 console-2026"
SUPERVISOR_PASSWORD = "supervisor-97531-west"


@pytest.fixture(scope="module")
def pg_cluster():
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_servers(request, tmp_path, monkeypatch):
    """Two district server apps, each with its own App (engine, connections) over one
    store (SQLite; PostgreSQL), as two server processes would be; an admin A1 and a
    supervisor S1."""
    from kiosk.district.app import create_app
    from kiosk.district.domain import passwords
    from kiosk.services.context import App
    from kiosk.services.security import generate_key

    monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    for k in ("KIOSK_DATABASE_URL", "KIOSK_SERVER_URL", "KIOSK_SERVER_TOKEN", "KIOSK_CANTEEN_ID"):
        monkeypatch.delenv(k, raising=False)
    if request.param == "postgres":
        monkeypatch.setenv("KIOSK_DATABASE_URL", request.getfixturevalue("pg_cluster").new_db())
    monkeypatch.setenv("KIOSK_AUDIO", "off")
    get_settings.cache_clear()
    a = App()
    a.residents.add_staff("A1", "区管理员", "admin", ADMIN_PIN)
    admin = a.residents.authenticate(ADMIN_PIN, min_role="admin", staff_id="A1")["actor"]
    a.residents.add_staff("S1", "巡访主管", "supervisor", SUPERVISOR_PIN, actor=admin)
    passwords.set_password(a, "A1", ADMIN_PASSWORD, actor=admin)
    passwords.set_password(a, "S1", SUPERVISOR_PASSWORD, actor=admin)
    b = App(a.settings)
    assert b.db is not a.db and b.db.engine is not a.db.engine
    assert a.db.engine.dialect.name == b.db.engine.dialect.name == {"postgres": "postgresql"}.get(request.param, "sqlite")
    try:
        yield {"a": a, "b": b, "admin": admin,
               "ca": TestClient(create_app(a.settings, kiosk_app=a), follow_redirects=False),
               "cb": TestClient(create_app(b.settings, kiosk_app=b), follow_redirects=False)}
    finally:
        b.close()
        a.close()
        get_settings.cache_clear()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _log_in(c: TestClient, staff: str, password: str) -> str:
    """Log in through ``c``; the cookie's token."""
    from kiosk.district.console.shared.auth import COOKIE

    page = c.get("/console/login")
    r = c.post("/console/login", data={"csrf_token": _csrf(page.text), "staff_id": staff, "password": password})
    assert r.status_code == 303 and r.headers["location"].endswith("/console/"), r.text
    return r.cookies[COOKIE]


def _get(c: TestClient, path: str, token: str):
    from kiosk.district.console.shared.auth import COOKIE

    return c.get(path, headers={"cookie": f"{COOKIE}={token}"})


def _post(c: TestClient, path: str, token: str, data: dict):
    from kiosk.district.console.shared.auth import COOKIE

    return c.post(path, data=data, headers={"cookie": f"{COOKIE}={token}"})


def _signed_out(r) -> bool:
    return r.status_code == 303 and "/console/login" in r.headers["location"]


def test_a_login_through_one_server_is_honoured_by_another_until_logout(two_servers):
    from kiosk.db.models import ConsoleSession

    ca, cb = two_servers["ca"], two_servers["cb"]
    token = _log_in(ca, "A1", ADMIN_PASSWORD)
    home_b = _get(cb, "/console/", token)                 # the other server knows the login
    assert home_b.status_code == 200 and "区管理员" in home_b.text
    home_a = _get(ca, "/console/", token)
    assert _csrf(home_a.text) == _csrf(home_b.text)       # one CSRF token, bound to the login
    csrf = _csrf(home_b.text)

    # a form posted to B with the login's CSRF token; its message shown by A's next page
    r = _post(cb, "/console/canteens", token, {"csrf_token": csrf, "canteen_id": "C9", "name": "北街长寿食堂"})
    assert r.status_code == 303, r.text
    page = _get(ca, "/console/canteens", token)
    assert page.status_code == 200 and "已新增食堂 C9" in page.text
    assert "已新增食堂 C9" not in _get(cb, "/console/canteens", token).text      # shown once
    # without the token, or with another login's, refused on either server
    other = _log_in(cb, "A1", ADMIN_PASSWORD)
    other_csrf = _csrf(_get(ca, "/console/", other).text)
    assert other_csrf != csrf
    for c in (ca, cb):
        assert _post(c, "/console/canteens", token, {"csrf_token": other_csrf, "canteen_id": "C8",
                                                     "name": "南街"}).status_code == 403

    # the store holds the token's hash, never the token
    with two_servers["a"].db.session(read_only=True) as s:
        rows = s.scalars(select(ConsoleSession)).all()
        assert {r.token_hash for r in rows} == {hashlib.sha256(t.encode()).hexdigest() for t in (token, other)}
        for row in rows:
            assert not any(t in str(getattr(row, col.key)) for t in (token, other)
                           for col in ConsoleSession.__table__.columns)

    # logout through A ends the login in B; the other login stays
    r = _post(ca, "/console/logout", token, {"csrf_token": csrf})
    assert r.status_code == 303 and "/console/login" in r.headers["location"]
    assert _signed_out(_get(cb, "/console/", token)) and _signed_out(_get(ca, "/console/", token))
    assert _get(cb, "/console/", other).status_code == 200


def test_a_password_change_or_deactivation_ends_the_logins_on_every_server(two_servers):
    from kiosk.district.domain import passwords

    ca, cb, a, b, admin = (two_servers[k] for k in ("ca", "cb", "a", "b", "admin"))
    sup_a = _log_in(ca, "S1", SUPERVISOR_PASSWORD)
    sup_b = _log_in(cb, "S1", SUPERVISOR_PASSWORD)
    adm = _log_in(ca, "A1", ADMIN_PASSWORD)
    for c in (ca, cb):
        assert _get(c, "/console/", sup_a).status_code == _get(c, "/console/", sup_b).status_code == 200

    new_password = "a-new-password-for-S1"
    res = passwords.set_password(b, "S1", new_password, actor=admin)     # through server B's store
    assert res["password_set"]
    for c in (ca, cb):
        assert _signed_out(_get(c, "/console/", sup_a)) and _signed_out(_get(c, "/console/", sup_b))
        assert _get(c, "/console/", adm).status_code == 200           # somebody else's login stays

    again = _log_in(ca, "S1", new_password)
    assert _get(cb, "/console/", again).status_code == 200
    a.residents.add_staff("S1", "巡访主管", "staff", SUPERVISOR_PIN, actor=admin)    # demoted: counts at once
    refused = _get(cb, "/console/", again)
    assert refused.status_code == 403 and "您的角色是工作人员" in refused.text
    a.auth.deactivate("S1", actor=admin)
    assert _signed_out(_get(cb, "/console/", again)) and _signed_out(_get(ca, "/console/", again))
    assert _get(cb, "/console/", adm).status_code == 200
    with a.db.session(read_only=True) as s:
        from kiosk.db.models import AuditEntry, ConsoleSession

        assert s.scalars(select(ConsoleSession.staff_id)).all() == ["A1"]
        ends = {e.action: e.detail["console_sessions_ended"] for e in s.scalars(
            select(AuditEntry).where(AuditEntry.subject == "S1",
                                     AuditEntry.action.in_(("staff.password_set", "staff.deactivate"))))
            if e.detail.get("console_sessions_ended")}
    assert ends == {"staff.password_set": 2, "staff.deactivate": 1}


# ---------------------------------------------------------------------- a real server, two workers
def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            for c in task.read_text().split():
                out.append(int(c))
                todo.append(int(c))
    return out


def _worker_of(server_pid: int, server_port: int, client_port: int) -> int | None:
    """The process holding the server's end of the loopback connection from ``client_port``."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == server_port and int(f[2].rsplit(":", 1)[1], 16) == client_port:
                inode = f[9]
    if inode is None:
        return None
    for pid in _descendants(server_pid):
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


def _one_request(url: str, port: int, server_pid: int, method: str, path: str, cookies: dict | None = None,
                 **kw) -> tuple[httpx.Response, int]:
    """One request on a connection of its own (the kernel hands it to either worker), and
    the worker that took it."""
    with httpx.Client(timeout=20, follow_redirects=False, cookies=cookies) as c:
        r = c.request(method, url + path, **kw)
        client_port = r.extensions["network_stream"].get_extra_info("client_addr")[1]
        worker = _worker_of(server_pid, port, client_port)
    assert worker is not None, "no worker holds the connection"
    return r, worker


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="finds the answering worker through /proc")
def test_twenty_console_requests_after_one_login_all_succeed_on_two_workers(env, tmp_path, formats):
    from kiosk.district.console.shared.auth import COOKIE, PRE_COOKIE

    d = District(tmp_path, formats)
    port = free_port()
    proc = subprocess.Popen(KIOSK + ["server", "--port", str(port), "--workers", "2"], env=d.server_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert "listening on" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/api/v1/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        page, _ = _one_request(url, port, proc.pid, "GET", "/console/login")
        r, login_worker = _one_request(
            url, port, proc.pid, "POST", "/console/login", cookies={PRE_COOKIE: page.cookies[PRE_COOKIE]},
            data={"csrf_token": _csrf(page.text), "staff_id": "SUP", "password": STAFF_PASSWORDS["SUP"]})
        assert r.status_code == 303 and r.headers["location"].endswith("/console/"), r.text
        cookie = {COOKIE: r.cookies[COOKIE]}
        paths = ["/console/", "/console/reports", "/console/reconcile", "/console/welfare", "/console/terminals"]
        workers = []
        for i in range(20):
            r, w = _one_request(url, port, proc.pid, "GET", paths[i % len(paths)], cookies=cookie)
            assert r.status_code == 200 and "主管" in r.text, (i, w, login_worker, r.status_code, r.headers)
            workers.append(w)
        # the proof needs the other worker among them: more requests (each must succeed) until it answers
        extra = 0
        while all(w == login_worker for w in workers):
            assert extra < 200, f"200 more connections all went to worker {workers[-1]}"
            r, w = _one_request(url, port, proc.pid, "GET", "/console/", cookies=cookie)
            assert r.status_code == 200, (w, login_worker, r.status_code)
            workers.append(w)
            extra += 1
        others = sum(w != login_worker for w in workers)
        print(f"login by worker {login_worker}; of {len(workers)} requests, {others} answered by the other")
        assert others >= 1
        # the logout through whichever worker ends the login for both
        home, _ = _one_request(url, port, proc.pid, "GET", "/console/", cookies=cookie)
        r, _ = _one_request(url, port, proc.pid, "POST", "/console/logout", cookies=cookie,
                            data={"csrf_token": _csrf(home.text)})
        assert r.status_code == 303
        for _ in range(6):
            r, _ = _one_request(url, port, proc.pid, "GET", "/console/", cookies=cookie)
            assert r.status_code == 303 and "/console/login" in r.headers["location"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
