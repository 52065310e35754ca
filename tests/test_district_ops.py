"""The district server in operation: /healthz and /metrics (with several uvicorn workers),
what terminals report about themselves, and a terminal given several servers over one
PostgreSQL going on through another when one dies in the middle of a push."""
from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import httpx
import pytest
from sqlalchemy import select, text

from kiosk.config import load_settings
from kiosk.db.models import Order, OutboxEntry, Terminal
from kiosk.errors import ConfigError
from kiosk.services.context import App
from kiosk.terminal.sync.client import SyncClient

from tests.conftest import shared_engine
from tests.district_helpers import KIOSK, District, PostgresCluster, free_port


def _start_server(d: District, port: int, *extra: str) -> subprocess.Popen:
    p = subprocess.Popen(KIOSK + ["server", "--port", str(port), *extra], env=d.server_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert "listening on" in line, (line, p.stderr.read() if p.poll() is not None else "")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/ping", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill()
    raise AssertionError("server did not answer")


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _metric(body: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text, or None when absent."""
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def _terminal(d: District, canteen: str, urls: str) -> App:
    s = d.terminal_settings(canteen)
    app = App(load_settings(home=s.home, template_key=s.template_key, server_url=urls,
                            server_token=d.tokens[canteen][1]), engine=shared_engine("sface"))
    d.terminals.append(app)
    return app


def test_server_url_takes_a_comma_list_and_names_a_bad_entry(env):
    s = load_settings(server_url=" https://a.example:8700/ , https://b.example:8700", server_token="kt_x")
    assert s.server_urls == ["https://a.example:8700", "https://b.example:8700"] and s.is_terminal
    assert load_settings(server_url="https://a.example", server_token="t").server_urls == ["https://a.example"]
    with pytest.raises(ConfigError) as e:
        load_settings(server_url="https://a.example,ftp://b.example", server_token="t")
    assert "KIOSK_SERVER_URL" in e.value.user_message and "ftp://b.example" in e.value.user_message
    with pytest.raises(ConfigError):
        load_settings(server_url="https://a.example,https://a.example/", server_token="t")


def test_healthz_and_metrics_count_across_workers_and_show_what_terminals_report(env, tmp_path, formats):
    """`kiosk server --workers 2`: pushes answered by either worker are counted once in
    /metrics whichever worker answers the scrape; terminal health lands in the database
    and on /metrics; /healthz names the migration."""
    from kiosk.terminal.sync.health import record_camera

    d = District(tmp_path, formats)
    port = free_port()
    proc = _start_server(d, port, "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        h = httpx.get(url + "/healthz", timeout=10)
        from kiosk.district.api.ops import migration_head

        head = migration_head()
        assert head >= "0009"                                       # the terminals' health columns are there
        assert h.status_code == 200 and h.json()["ok"] is True and h.json()["migration"] == h.json()["head"] == head
        # every server process computes the console's first pages ahead (kiosk.district.console.warm)
        deadline = time.time() + 60
        while h.json()["console_warm"]["passes"] < 1 and time.time() < deadline:
            time.sleep(0.2)
            h = httpx.get(url + "/healthz", timeout=10)
        assert h.json()["console_warm"]["passes"] >= 1 and h.json()["console_warm"]["last_computed"] >= 12

        t1 = _terminal(d, "C1", url)
        c = SyncClient(t1)
        pushes: list[bytes] = []
        c.http.event_hooks["request"] = [lambda r: pushes.append(r.read()) if r.url.path.endswith("/push") else None]
        try:
            c.sync()
            for dish in ("D002", "D004", "D005"):
                t1.billing.settle("R0001", [dish], meal="午餐")
            record_camera(t1, "live")
            rep = c.sync()
        finally:
            c.close()
        assert rep.pushed == 3 and len(pushes) == 1
        with t1.db.session() as s:
            last_sale = max(o.created_at for o in s.scalars(select(Order)))
        # the same push again, each on a new connection (the kernel hands them to either worker)
        for _ in range(6):
            r = httpx.post(url + "/api/v1/push", content=pushes[0], timeout=20,
                           headers={"Authorization": f"Bearer {d.tokens['C1'][1]}",
                                    "content-type": "application/json"})
            assert [x["status"] for x in r.json()["results"]] == ["duplicate"] * 3
        for _ in range(4):                        # every scrape, whichever worker answers, sums both
            body = httpx.get(url + "/metrics", timeout=10).text
            assert _metric(body, "kiosk_push_ops_total", status="applied") == 3, body
            assert _metric(body, "kiosk_push_ops_total", status="duplicate") == 18, body
            assert _metric(body, "kiosk_push_requests_total", outcome="ok") == 7, body
        assert _metric(body, "kiosk_applied_ops", status="applied") == 3
        tid = d.tokens["C1"][0]
        lag = _metric(body, "kiosk_terminal_sync_lag_seconds", terminal=tid, canteen="C1")
        assert lag is not None and 0 <= lag < 60
        assert _metric(body, "kiosk_terminal_sync_lag_seconds", terminal=d.tokens["C2"][0]) is None  # never synced
        assert _metric(body, "kiosk_terminal_camera_live", terminal=tid, state="live") == 1
        assert _metric(body, "kiosk_terminal_disk_free_bytes", terminal=tid) > 0
        assert _metric(body, "kiosk_terminal_last_sale_timestamp_seconds", terminal=tid) == pytest.approx(
            last_sale.timestamp(), abs=1e-3)
        assert _metric(body, "kiosk_terminal_pending_ops", terminal=tid) == 0

        app = d.server_app()
        try:
            with app.db.session() as s:
                t = s.get(Terminal, tid)
                assert (t.camera_state, t.last_sale_at, t.software_version) == ("live", last_sale, __import__("kiosk").__version__)
                assert t.model.startswith("sface/") and t.disk_free_bytes > 0 and t.camera_since is not None
        finally:
            app.close()
    finally:
        _stop(proc)
        d.close()


def test_healthz_is_503_when_the_schema_is_not_at_head_or_the_database_is_gone(env, tmp_path):
    from fastapi.testclient import TestClient

    from kiosk.district.app import create_app

    app = App(load_settings())
    try:
        api = create_app(app.settings, kiosk_app=app)
        with TestClient(api) as tc:
            assert tc.get("/healthz").status_code == 200
            with app.db.engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
            r = tc.get("/healthz")
            from kiosk.district.api.ops import migration_head

            head = migration_head()
            assert r.status_code == 503 and r.json()["migration"] == "0008" and r.json()["head"] == head != "0008"
            assert head in r.json()["detail"]
            # the database gone (a store that cannot be opened): 503, unreachable, with the error
            from sqlalchemy import create_engine

            live, app.db.engine = app.db.engine, create_engine(f"sqlite:///{tmp_path}/no/such/dir/kiosk.db")
            try:
                r = tc.get("/healthz")
            finally:
                app.db.engine.dispose()
                app.db.engine = live
            assert r.status_code == 503 and r.json()["database"] == "unreachable" and r.json()["ok"] is False
            assert "OperationalError" in r.json()["detail"]
    finally:
        app.close()


@pytest.mark.postgres
def test_a_terminal_goes_on_through_another_server_when_one_dies_mid_push(env, tmp_path, formats, monkeypatch):
    """Two `kiosk server` processes over one PostgreSQL; the terminal lists both. Server A
    is killed (SIGKILL) after it committed a push and before its reply left: the terminal
    sends that batch to B (answered `duplicate`) and the rest of its outbox; orders on
    the server = orders sold, distinct. Later rounds go to B directly."""
    import http.server

    import kiosk.terminal.sync.client as client_mod

    cluster = PostgresCluster()
    procs: list[subprocess.Popen] = []
    try:
        d = District(tmp_path, formats, cluster.new_db())
        port_a, port_b = free_port(), free_port()
        procs += [_start_server(d, port_a), _start_server(d, port_b)]
        a, b = procs
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        pushes = {"seen": 0}
        killed = threading.Event()

        class DiesMidPush(http.server.BaseHTTPRequestHandler):
            """In front of A: the third push is applied by A, then A is killed before it answers."""

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if killed.is_set():
                    self.close_connection = True
                    return                       # A is dead: the connection drops unanswered
                resp = httpx.request(self.command, url_a + self.path, content=body, timeout=30,
                                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                if self.path.endswith("/push"):
                    pushes["seen"] += 1
                    if pushes["seen"] == 3:
                        a.send_signal(signal.SIGKILL)
                        a.wait()
                        killed.set()
                        self.close_connection = True
                        return
                self.send_response(resp.status_code)
                self.send_header("content-type", resp.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = _forward

            def log_message(self, *a):
                pass

        proxy_port = free_port()
        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", proxy_port), DiesMidPush)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()

        t1 = _terminal(d, "C1", f"http://127.0.0.1:{proxy_port},{url_b}")
        c = SyncClient(t1)
        try:
            c.sync()
            sold = []
            for i in range(25):
                r = t1.billing.settle(("R0001", "R0002", "R0003")[i % 3], [("D002", "D004", "D005")[i % 3]],
                                      meal="午餐")
                sold.append(r.order_id)
            monkeypatch.setattr(client_mod, "PUSH_BATCH", 5)      # 5 pushes of 5 ops
            rep = c.sync()
            assert killed.is_set() and a.poll() == -signal.SIGKILL
            assert c.url == url_b
            assert (rep.pushed, rep.duplicates, rep.pending) == (25 - 5, 5, 0), rep
            more = [t1.billing.settle("R0002", ["D002"], meal="午餐").order_id for _ in range(3)]
            rep2 = c.sync()
            assert (rep2.pushed, rep2.duplicates, rep2.pending) == (3, 0, 0)
        finally:
            c.close()
            proxy.shutdown()
        app = d.server_app()
        try:
            with app.db.session() as s:
                ids = list(s.scalars(select(Order.id)))
        finally:
            app.close()
        assert len(ids) == len(set(ids)) == 28 and set(ids) == set(sold + more)
        with t1.db.session() as s:
            assert s.scalars(select(OutboxEntry)).first() is None
    finally:
        for p in procs:
            _stop(p)
        cluster.stop()
