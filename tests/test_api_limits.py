"""A push costs the district server what it is worth (issue 17, point 4).

* the token is checked before the body is read: a bad token gets 401 and not a byte of the
  body is taken in (in-process, at the ASGI boundary; and against a real `kiosk server`,
  whose memory a 60 MB body with a bad token leaves where it was, and three of them at
  once do not hold up other requests);
* a body over KIOSK_PUSH_MAX_BYTES gets 413: by its Content-Length unread, a chunked one
  cut off at the limit;
* JSON nested deeper than MAX_JSON_DEPTH gets 400, for the whole push;
* an op of the wrong shape is rejected alone (kept with its reason), the batch around it
  applied."""
from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from datetime import date
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import select

from kiosk.config import load_settings
from kiosk.services.context import App
from kiosk.services.security import generate_key

from tests.conftest import FORMATS, add_test_staff

MB = 1024 * 1024


def server_store(root: Path, **settings_kw) -> App:
    """A district store (no face model: the server never loads one) with the example
    roster, menu and policy and the test staff."""
    from kiosk.services.importing import import_menu, import_policy, import_roster

    app = App(load_settings(home=root / "server", template_key=generate_key(), canteen_id="C1", **settings_kw))
    import_roster(app, FORMATS / "roster.example.csv")
    import_menu(app, FORMATS / "menu.example.csv")
    import_policy(app, FORMATS / "policy.example.yaml")
    add_test_staff(app)
    return app


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from kiosk.district.app import create_app
    from kiosk.district.domain.terminals import add_terminal

    app = server_store(tmp_path_factory.mktemp("limits"), push_max_bytes=256 * 1024)
    _, token = add_terminal(app, "C1")
    ident, revoked = add_terminal(app, "C1")
    from kiosk.district.domain.terminals import revoke_terminal
    revoke_terminal(app, ident.terminal_id)
    yield app, create_app(app.settings, kiosk_app=app), token, revoked
    app.close()


def sales(app: App, n: int, rid: str = "R0001") -> list[dict]:
    """``n`` outbox ops of plain sales, as a terminal's settle writes them."""
    from kiosk.bench.district import _order_op
    from kiosk.db.models import MenuItem, SubsidyPolicy

    with app.db.session() as s:
        menu = [{"id": m.id, "dish_id": m.dish_id, "name": m.name, "price_fen": m.price_fen}
                for m in s.scalars(select(MenuItem))]
        policy = s.scalar(select(SubsidyPolicy.id))
    rnd = random.Random()
    return [_order_op(rid, "C1", menu, policy, date(2026, 11, 23), rnd) for _ in range(n)]


def asgi_push(api, headers: dict, chunks, content_length: int | None) -> tuple[int, dict, int]:
    """POST /api/v1/push straight at the ASGI app, the body handed over chunk by chunk as
    the app asks for it. Returns (status, answer, body bytes the app took in)."""
    taken = 0
    it = iter(chunks)
    out: dict = {"body": b""}

    async def receive():
        nonlocal taken
        chunk = next(it, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        taken += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(msg):
        if msg["type"] == "http.response.start":
            out["status"] = msg["status"]
        elif msg["type"] == "http.response.body":
            out["body"] += msg.get("body", b"")

    hs = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if content_length is not None:
        hs.append((b"content-length", str(content_length).encode()))
    else:
        hs.append((b"transfer-encoding", b"chunked"))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/v1/push", "raw_path": b"/api/v1/push", "root_path": "", "query_string": b"",
             "headers": hs, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8700)}
    asyncio.run(api(scope, receive, send))
    return out["status"], json.loads(out["body"] or b"{}"), taken


def _endless(size: int, chunk: int = 64 * 1024):
    block = b"x" * chunk
    for _ in range(size // chunk):
        yield block


def test_push_max_bytes_is_a_setting_of_4_mb_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("KIOSK_PUSH_MAX_BYTES", raising=False)
    assert load_settings(home=tmp_path).push_max_bytes == 4 * MB
    monkeypatch.setenv("KIOSK_PUSH_MAX_BYTES", str(8 * MB))
    assert load_settings(home=tmp_path).push_max_bytes == 8 * MB
    from kiosk.errors import ConfigError
    monkeypatch.setenv("KIOSK_PUSH_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match="KIOSK_PUSH_MAX_BYTES"):
        load_settings(home=tmp_path)


def test_a_bad_token_is_refused_before_a_byte_of_the_body_is_read(store):
    app, api, token, revoked = store
    for h in ({}, {"Authorization": "Bearer x"}, {"Authorization": f"Bearer {revoked}"}):
        for length in (60 * MB, None):            # with a Content-Length, and chunked
            status, answer, taken = asgi_push(api, h, _endless(60 * MB), length)
            assert (status, taken) == (401, 0), (h, length, answer)
    assert "吊销" in asgi_push(api, {"Authorization": f"Bearer {revoked}"}, [b"{}"], 2)[1]["error"]


def test_a_body_over_the_limit_is_refused_413_unread_or_cut_off_while_it_streams(store):
    app, api, token, _ = store
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limit = app.settings.push_max_bytes
    status, answer, taken = asgi_push(api, h, _endless(60 * MB), 60 * MB)
    assert (status, taken) == (413, 0) and answer["type"] == "PayloadTooLargeError"
    status, answer, taken = asgi_push(api, h, _endless(60 * MB), limit + 1)
    assert (status, taken) == (413, 0)
    chunk = 64 * 1024
    status, answer, taken = asgi_push(api, h, _endless(60 * MB, chunk), None)     # chunked: counted
    assert status == 413 and limit < taken <= limit + chunk
    # at the limit: read and applied
    ops = sales(app, 1)
    body = orjson.dumps({"ops": ops})
    body += b" " * (limit - len(body))
    status, answer, taken = asgi_push(api, h, [body[:1000], body[1000:]], len(body))
    assert status == 200 and taken == limit and answer["results"][0]["status"] == "applied"
    status, answer, taken = asgi_push(api, h, [body, b" "], None)
    assert status == 413 and taken == limit + 1


def test_json_nested_deeper_than_the_bound_is_refused_400_and_nothing_applied(store):
    from fastapi.testclient import TestClient

    from kiosk.db.models import AppliedOp
    from kiosk.district.api.limits import MAX_JSON_DEPTH

    app, api, token, _ = store
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    c = TestClient(api, raise_server_exceptions=False)
    good = sales(app, 1)[0]
    for depth in (1000, MAX_JSON_DEPTH):          # a payload nested 1,000 deep gave HTTP 500
        deep = "[" * depth + "]" * depth
        body = '{"ops":[%s,{"op_id":"deep-%d","kind":"x","payload":%s}]}' % (json.dumps(good), depth, deep)
        r = c.post("/api/v1/push", content=body, headers=h)
        assert r.status_code == 400 and "嵌套" in r.json()["error"], r.text
        deep = '{"a":' * depth + "1" + "}" * depth
        body = '{"ops":[%s,{"op_id":"deep-%d","kind":"x","payload":{"rows":{"audit_log":[{"detail":%s}]}}}]}' % (
            json.dumps(good), depth, deep)
        assert c.post("/api/v1/push", content=body, headers=h).status_code == 400
    with app.db.session() as s:
        assert s.get(AppliedOp, good["op_id"]) is None            # the whole push refused
    # brackets and quotes inside strings are text, not nesting
    good["payload"]["rows"]["orders"][0]["reason"] = '[[[[{{{{ \\" ' * 40
    r = c.post("/api/v1/push", content=orjson.dumps({"ops": [good]}), headers=h)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied"


_CHARS = st.sampled_from('[]{}"\\ax,:\n') | st.characters(exclude_categories=("Cs",))     # orjson: no surrogates
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1) | st.floats(allow_nan=False)
                    | st.text(_CHARS, max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(_CHARS, max_size=6), inner,
                                                                                max_size=4),
                    max_leaves=40)


def _depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max(map(_depth, v.values()), default=0)
    if isinstance(v, list):
        return 1 + max(map(_depth, v), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_the_byte_scan_measures_nesting_as_the_parsed_value_has_it(value):
    from kiosk.district.api.limits import json_depth

    assert json_depth(orjson.dumps(value)) == _depth(value)
    assert json_depth(json.dumps(value, indent=1).encode()) == _depth(value)


def test_an_op_of_the_wrong_shape_is_rejected_alone_and_kept_with_its_reason(store):
    """Each of these gave HTTP 500 for the whole push (or would have written nonsense)."""
    from fastapi.testclient import TestClient

    from kiosk.db.models import AppliedOp, Order

    app, api, token, _ = store
    h = {"Authorization": f"Bearer {token}"}
    c = TestClient(api, raise_server_exceptions=False)

    def sale(**change):
        op = sales(app, 1, "R0001")[0]     # (the bench's sale: 八十岁及以上, R0001's tier)
        rows = op["payload"]["rows"]
        for k, v in change.items():
            if k == "rows":
                rows.update(v)
            elif k in ("order", "ledger"):
                (rows["orders"][0] if k == "order" else rows["ledger_entries"][0]).update(v)
            else:
                op[k] = v
        return op

    nested = [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]           # within the nesting bound
    bad = {
        "payload nested arrays": sale(payload=nested),
        "an id that is a list": sale(order={"resident_id": ["R0001"]}),
        "an id that is an object": sale(ledger={"resident_id": {"id": "R0001"}}),
        "a table that is a number": sale(rows={"ledger_entries": 5}),
        "a row that is a list": sale(rows={"order_lines": [["x"]]}),
        "rows that are a list": sale(payload={"rows": [nested]}),
        "a time without its zone": sale(created_at="2026-11-23T12:00:00"),
        "deleted ids that are lists": sale(payload={"deleted": {"face_templates": [[1]]}, "rows": {}}),
        "template ids that are objects": sale(payload={"ops": [{"kind": "faces.remove", "template_ids": [{}]}]}),
        "a consent for a list of residents": sale(payload={"rows": {"face_consents": [{"id": "c1",
                                                                                      "resident_id": ["R0001"]}]}}),
    }
    ops = [sale()] + list(bad.values()) + [sale()]
    r = c.post("/api/v1/push", json={"ops": ops}, headers=h)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["applied"] + ["rejected"] * len(bad) + ["applied"]
    assert [x["op_id"] for x in res] == [op["op_id"] for op in ops]
    assert all(x["error"] for x in res[1:-1])
    with app.db.session() as s:
        for op in (ops[0], ops[-1]):
            assert s.get(Order, op["payload"]["rows"]["orders"][0]["id"]) is not None
        for what, op in bad.items():
            kept = s.get(AppliedOp, op["op_id"])
            assert kept.status == "rejected" and kept.error and kept.payload == op, what
            rows = op["payload"].get("rows") if isinstance(op["payload"], dict) else None
            for o in (rows.get("orders") or []) if isinstance(rows, dict) else []:
                assert s.get(Order, o["id"]) is None, what
    again = c.post("/api/v1/push", json={"ops": ops}, headers=h).json()["results"]      # pushed again
    assert [x["status"] for x in again] == ["duplicate"] * len(ops)
    assert [x["was"] for x in again] == ["applied"] + ["rejected"] * len(bad) + ["applied"]


# -- a real server process ---------------------------------------------------------------

def _rss(pid: int) -> int:
    """Resident memory of a process (bytes), from /proc (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmRSS:")), 0)


def _hostile_body(size: int):
    """About ``size`` bytes of valid JSON, a push of one op with very many rows, as 1 MB blocks."""
    head = b'{"ops":[{"op_id":"big","kind":"order.settle","payload":{"rows":{"orders":['
    row = b'{"id":"0123456789abcdef","resident_id":"R0001","total_fen":1300},'
    block = row * (MB // len(row))
    yield head
    for _ in range(size // len(block)):
        yield block
    yield b'{}]}}}]}'


def _hostile_push(port: int, size: int, chunked: bool, answered_before_body: list | None = None,
                  blast: bool = False) -> bytes:
    """A push of about ``size`` bytes of JSON with a bad token over a raw socket. Waits up
    to 10 s for an answer before sending the body (the server should answer on the headers
    alone), then sends the body until the server answers (``blast``: all of it, whatever
    the server said) or closes. Returns the answer's first bytes."""
    import select

    length = sum(map(len, _hostile_body(size)))
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST /api/v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer x\r\n"
            f"Content-Type: application/json\r\n" +
            ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n") + "\r\n").encode()
    try:
        s.sendall(head)
        early = select.select([s], [], [], 0 if blast else 10)[0]
        if answered_before_body is not None:
            answered_before_body.append(bool(early))
        for block in _hostile_body(size):
            if not blast and select.select([s], [], [], 0)[0]:
                break
            if chunked:
                block = f"{len(block):x}\r\n".encode() + block + b"\r\n"
            try:
                s.sendall(block)
            except OSError:
                break
        else:
            if chunked:
                s.sendall(b"0\r\n\r\n")
        return s.recv(200)
    except OSError as exc:
        return repr(exc).encode()
    finally:
        s.close()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """A `kiosk server` process on loopback (SQLite store) taking pushes of at most 64 KB."""
    from tests.district_helpers import District

    d = District(tmp_path_factory.mktemp("real"), FORMATS)
    env = d.server_env()
    d.server_env = lambda: {**env, "KIOSK_PUSH_MAX_BYTES": str(64 * 1024)}
    d.start()
    yield d
    d.close()


def test_a_60_mb_body_with_a_bad_token_costs_the_real_server_no_memory_and_no_time(real_server):
    """`kiosk server` on loopback: its RSS (from /proc) stays within 50 MB of where it was
    through a 60 MB push with a bad token (Content-Length and chunked), and through three
    at once, while a terminal's requests keep being answered promptly."""
    import httpx

    d = real_server
    if True:
        h = {"Authorization": f"Bearer {d.tokens['C1'][1]}"}
        with httpx.Client(base_url=d.url, headers=h, timeout=30) as c:
            for _ in range(3):                            # warm: a few real pushes and pulls
                assert c.get("/api/v1/whoami").status_code == 200
                assert c.post("/api/v1/push", json={"ops": []}).status_code == 200
            base = _rss(d.proc.pid)
            peak = [base]
            stop = threading.Event()

            def watch():
                while not stop.is_set():
                    peak[0] = max(peak[0], _rss(d.proc.pid))
                    time.sleep(0.01)

            w = threading.Thread(target=watch, daemon=True)
            w.start()
            early: list[bool] = []
            first = [_hostile_push(d.port, 60 * MB, chunked, early) for chunked in (False, True)]
            answers: list[bytes] = []
            lat: list[float] = []
            hostile = [threading.Thread(target=lambda ch=ch: answers.append(_hostile_push(d.port, 60 * MB, ch, blast=True)))
                       for ch in (False, True, False)]
            for t in hostile:
                t.start()
            while any(t.is_alive() for t in hostile) or len(lat) < 5:
                t0 = time.monotonic()
                assert c.get("/api/v1/whoami").status_code == 200
                lat.append(time.monotonic() - t0)
                time.sleep(0.02)
            for t in hostile:
                t.join()
            stop.set()
            w.join()
            after = _rss(d.proc.pid)
            print(f"server RSS {base / MB:.0f} MB before, peak {peak[0] / MB:.0f} MB, after {after / MB:.0f} MB; "
                  f"whoami during three hostile pushes: {len(lat)} requests, max {max(lat) * 1000:.0f} ms")
            assert peak[0] - base < 50 * MB and after - base < 50 * MB
            assert max(lat) < 1.5          # the old server: 6 s while it read and parsed them
            assert all(a.startswith(b"HTTP/1.1 401") for a in first + answers), first + answers
            assert early == [True, True]             # answered on the headers, before any body was sent
            assert c.get("/api/v1/whoami").status_code == 200


def test_a_terminal_pushes_a_backlog_larger_than_the_server_takes_in_pieces(real_server, monkeypatch):
    """60 sales (~90 KB of ops) against a server taking 64 KB a push: the terminal's first
    push is refused 413, it halves its batch and pushes the rest; nothing lost or doubled."""
    from kiosk.db.models import Order
    from kiosk.terminal.sync import client as sync_client

    d = real_server
    term = App(d.terminal_settings("C1"))
    try:
        c = sync_client.SyncClient(term)
        c.sync()                                           # the replica
        sold = {term.billing.settle("R000%d" % (i % 3 + 1), ["D00%d" % (i % 4 + 1)], meal="午餐").order_id
                for i in range(60)}
        calls: list[int] = []
        real = c.http.request

        def counting(method, url, **kw):
            r = real(method, url, **kw)
            if url == "/push":
                calls.append(r.status_code)
            return r

        c.http.request = counting
        rep = c.sync()
        c.close()
        assert rep.pushed == 60 and rep.rejected == 0 and rep.pending == 0, rep
        assert calls[0] == 413 and calls.count(200) >= 2, calls
        app = d.server_app()
        try:
            with app.db.session() as s:
                stored = set(s.scalars(select(Order.id).where(Order.id.in_(sold))))
        finally:
            app.close()
        assert stored == sold
    finally:
        term.close()
