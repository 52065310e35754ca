"""Every route of the district server answers a bad request with 4xx, never 5xx.

Schemathesis generates requests from the server's own OpenAPI schema (parameters and
the push body, values that fit the schema and values that do not) and sends them to the
app in-process, with a valid terminal token and without one. A second fuzz mutates real
outbox ops (a sale; a consent, template, void, top-up and audit entry) field by field and
pushes them next to a good sale: the server never answers 5xx, a good op is applied
whatever sits next to it. Bounded to a few hundred requests each (CI: < 60 s with
tests/test_api_limits.py)."""
from __future__ import annotations

import copy
import random
import uuid
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from tests.test_api_limits import server_store

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402

def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                    print_blob=True)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    """The district server app over a store with the example roster, menu and policy, and
    a terminal's token."""
    from kiosk.district.app import create_app
    from kiosk.district.domain.terminals import add_terminal

    from tests.conftest import add_test_passwords

    app = server_store(tmp_path_factory.mktemp("fuzz"))
    add_test_passwords(app)
    _, token = add_terminal(app, "C1")
    api = create_app(app.settings, kiosk_app=app)
    yield app, api, token
    app.close()


def _operations(api, prefix: str):
    doc = copy.deepcopy(api.openapi())
    # generating arrays of up to 500 ops costs ~0.4 s an example; more than 500 is tested apart
    body = doc["paths"].get("/api/v1/push", {}).get("post", {}).get("requestBody")
    if body:
        body["content"]["application/json"]["schema"]["properties"]["ops"]["maxItems"] = 5
    schema = schemathesis.openapi.from_dict(doc)
    schema.app = api
    ops = [r.ok() for r in schema.get_all_operations()]
    return [o for o in ops if o.path.startswith(prefix)]


def _fuzz(ops, headers: dict, n: int, modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
          ) -> list[tuple[str, int]]:
    """``n`` requests drawn from ``ops`` (values that fit the schema and values that do
    not); fails on any 5xx. Returns (path, status) of each."""
    seen: list[tuple[str, int]] = []
    strategy = st.sampled_from(ops).flatmap(
        lambda o: st.sampled_from(modes).flatmap(lambda mode: o.as_strategy(generation_mode=mode)))

    @fuzz(n)
    @given(case=strategy)
    def run(case):
        r = case.call(headers=headers)
        seen.append((case.operation.path, r.status_code))
        assert r.status_code < 500, (f"{case.method} {case.formatted_path} query={case.query} "
                                     f"body={str(case.body)[:300]!r} -> {r.status_code} {r.text[:300]}")

    run()
    return seen


def test_the_terminal_api_never_answers_5xx_with_a_token_or_without(district):
    _, api, token = district
    ops = _operations(api, "/api/")
    assert {o.path for o in ops} >= {"/api/v1/ping", "/api/v1/whoami", "/api/v1/changes", "/api/v1/push"}
    with_token = set(_fuzz(ops, {"Authorization": f"Bearer {token}"}, 100))
    without = set(_fuzz(ops, {}, 40, modes=(GenerationMode.POSITIVE,)))    # refused before parameters matter
    # the token opened the routes, pushes were applied and refused; without it they were closed
    assert {("/api/v1/push", 200), ("/api/v1/push", 400), ("/api/v1/changes", 200)} <= with_token, with_token
    assert not any(st_ == 401 for _, st_ in with_token)
    assert {st_ for p, st_ in without if p != "/api/v1/ping"} == {401} and ("/api/v1/ping", 200) in without


def console_login(api, staff: str = "ADM") -> dict:
    """The console's session cookie of a logged-in admin (the login form as a browser posts it)."""
    from fastapi.testclient import TestClient

    from kiosk.district.console.shared.auth import COOKIE, PRE_COOKIE

    from tests.conftest import STAFF_PASSWORDS

    c = TestClient(api)
    pre = c.get("/console/login").cookies.get(PRE_COOKIE)
    r = c.post("/console/login", data={"csrf_token": pre, "staff_id": staff, "password": STAFF_PASSWORDS[staff]},
               follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return {COOKIE: r.cookies.get(COOKIE)}


def test_the_console_routes_never_answer_5xx_logged_in_or_not(district):
    _, api, _ = district
    ops = _operations(api, "/console")
    assert ops
    _fuzz(ops, {}, 30, modes=(GenerationMode.POSITIVE,))
    cookies = console_login(api)
    seen: list[int] = []
    strategy = st.sampled_from(ops).flatmap(
        lambda o: st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]).flatmap(
            lambda mode: o.as_strategy(generation_mode=mode)))

    @fuzz(100)
    @given(case=strategy)
    def run(case):
        r = case.call(cookies=cookies)
        seen.append(r.status_code)
        assert r.status_code < 500, f"{case.method} {case.formatted_path} {case.query} -> {r.status_code}"

    run()
    assert 200 in seen                  # the pages opened: the session held


# values of a month, a day or a count that have answered 500 somewhere
EDGES = ["9999-12", "0001-01", "0000-00", "2026-13", "9999-12-31", "0001-01-01", "0000-00-00", "2026-02-30",
         "-1", "0", "99999999999999999999", "1e309", "abc", "", " ", "\x00", "2026-11", "2026-11-23", "x" * 5000]


def test_every_query_parameter_takes_edge_values_without_5xx(district):
    """Each GET route's query parameters, one at a time, set to values at the edges of
    dates and numbers (the fuzz rarely draws "9999-12" by chance), logged in as an admin
    and with a terminal token."""
    from fastapi.testclient import TestClient

    _, api, token = district
    c = TestClient(api, raise_server_exceptions=False, cookies=console_login(api))
    h = {"Authorization": f"Bearer {token}"}
    tried = 0
    for path, methods in api.openapi()["paths"].items():
        get = methods.get("get")
        if not get or "{" in path:
            continue
        for p in get.get("parameters", []):
            if p["in"] != "query":
                continue
            for v in EDGES:
                r = c.get(path, params={p["name"]: v}, headers=h)
                tried += 1
                assert r.status_code < 500, f"GET {path}?{p['name']}={v[:20]!r} -> {r.status_code}"
    assert tried > 50


class _Forms:
    """The forms of an HTML page: (method, action, {field: value}) with hidden fields,
    text inputs, checkboxes (checked) and the first option of each select."""

    def __init__(self, html: str) -> None:
        from html.parser import HTMLParser

        self.forms: list[tuple[str, str, dict, bool]] = []
        forms = self.forms

        class P(HTMLParser):
            cur: list | None = None
            select: str | None = None

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "form":
                    self.cur = [a.get("method", "get").lower(), a.get("action", ""), {},
                                "multipart" in (a.get("enctype") or "")]
                elif self.cur is not None and tag in ("input", "textarea") and a.get("name"):
                    if a.get("type") != "file":
                        self.cur[2].setdefault(a["name"], a.get("value") or "")
                elif self.cur is not None and tag == "select":
                    self.select = a.get("name")
                elif self.cur is not None and tag == "option" and self.select:
                    self.cur[2].setdefault(self.select, a.get("value") or "")

            def handle_endtag(self, tag):
                if tag == "form" and self.cur is not None:
                    forms.append(tuple(self.cur))
                    self.cur = None
                elif tag == "select":
                    self.select = None

        P().feed(html)


# a checkbox a page shows only when there is something to tick (a face unused for months)
EXTRA_FIELDS = {"/console/faces/erase": {"resident_id": "R0001"}}
FORM_EDGES = ["9999-12", "0001-01-01", "2026-13", "-1", "0", "99999999999999999999", "abc", "", "\x00", "x" * 600]


def test_every_console_form_takes_edge_values_without_5xx(district):
    """The forms the console's pages render (as an admin), each field in turn set to an edge
    value, the rest as the page filled them, with the page's CSRF token."""
    from fastapi.testclient import TestClient

    _, api, _ = district
    c = TestClient(api, raise_server_exceptions=False, cookies=console_login(api))
    forms: dict[tuple[str, str], tuple[dict, bool]] = {}
    for path, methods in api.openapi()["paths"].items():
        if "get" in methods and path.startswith("/console") and "{" not in path and "." not in path:
            page = c.get(path)
            assert page.status_code < 500, path
            for method, action, fields, multipart in _Forms(page.text).forms:
                forms.setdefault((method, action.split("?")[0]), (fields, multipart))
    tried = 0
    for (method, action), (fields, multipart) in forms.items():
        if action.endswith(("/login", "/logout")):
            continue
        fields = {**fields, **EXTRA_FIELDS.get(action, {})}
        for name in [n for n in fields if n != "csrf_token"]:
            for v in FORM_EDGES:
                data = {**fields, name: v}
                if method == "post":
                    r = c.post(action, data=data, files={"file": ("x.csv", b"a,b\n")} if multipart else None,
                               follow_redirects=False)
                else:
                    r = c.get(action, params=data)
                tried += 1
                assert r.status_code < 500, f"{method.upper()} {action} {name}={v[:20]!r} -> {r.status_code}"
    assert tried > 100 and any(m == "post" for m, _ in forms)


# -- real outbox ops, mutated --------------------------------------------------------------

NOW = "2026-11-23T04:00:00+00:00"
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)      # what JSON can carry
SCALAR = (st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1)
          | st.floats(allow_nan=False, allow_infinity=False) | TEXT
          | st.sampled_from(["R0001", "R0002", NOW, "2026-11-23", "2026-11-23T12:00:00", "S01", "", "x" * 300]))
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                     max_leaves=6)


def _paths(o, p=()):
    yield p
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _paths(v, p + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _paths(v, p + (i,))


def _other_op() -> dict:
    """A consent, a template, a void, a top-up and an audit entry in one op (as a terminal's
    enrolment, void and top-up write them)."""
    return {"op_id": "", "kind": "faces.enroll", "created_at": NOW, "payload": {
        "ops": [{"kind": "faces.erase", "resident_id": "R0003"}, {"kind": "faces.remove", "template_ids": ["t0"]}],
        "rows": {"face_consents": [{"id": "fc1", "resident_id": "R0002", "given_by": "self", "staff_id": "S01",
                                    "text_version": "v1", "allows_crop": False, "source": "desk",
                                    "withdrawn_at": None, "created_at": NOW}],
                 "face_templates": [{"id": "t1", "resident_id": "R0002", "embedding": "AAAAAA==", "crop": None,
                                     "created_at": NOW}],
                 "order_voids": [{"id": "v1", "order_id": "o1", "staff_id": "S01", "reason": "x", "created_at": NOW}],
                 "ledger_entries": [{"id": "le1", "resident_id": "R0002", "order_id": None, "kind": "topup",
                                     "method": "cash", "amount_fen": 100, "affects_balance": True, "payer": None,
                                     "staff_id": "S01", "note": None, "created_at": NOW}],
                 "audit_log": [{"actor": "S01", "action": "x", "subject": "R0002", "detail": {"a": [1]}, "at": NOW}]},
        "deleted": {"face_templates": ["t9"]}}}


def test_mutated_outbox_ops_never_answer_5xx_and_a_good_sale_next_to_them_is_applied(district):
    from fastapi.testclient import TestClient

    from kiosk.bench.district import _order_op
    from kiosk.db.models import MenuItem, Order, SubsidyPolicy

    app, api, token = district
    with app.db.session() as s:
        menu = [{"id": m.id, "dish_id": m.dish_id, "name": m.name, "price_fen": m.price_fen}
                for m in s.scalars(select(MenuItem))]
        policy = s.scalar(select(SubsidyPolicy.id))
    rnd = random.Random(5)

    def sale() -> dict:
        return _order_op("R0001", "C1", menu, policy, date(2026, 11, 23), rnd)

    @st.composite
    def mutated(draw):
        op = copy.deepcopy(draw(st.sampled_from([sale(), _other_op()])))
        op["op_id"] = str(uuid.uuid4())
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(list(_paths(op))[1:]))
            at = op
            for k in path[:-1]:
                at = at[k]
            if isinstance(at, dict) and draw(st.booleans()):
                del at[path[-1]]
            else:
                at[path[-1]] = draw(VALUE)
        return op

    h = {"Authorization": f"Bearer {token}"}
    client = TestClient(api, raise_server_exceptions=False)
    statuses: dict[str, int] = {}

    @fuzz(150)
    @given(bad=st.lists(mutated(), min_size=1, max_size=3))
    def run(bad):
        good = sale()
        ops = bad[:1] + [good] + bad[1:]
        r = client.post("/api/v1/push", json={"ops": ops}, headers=h)
        assert r.status_code < 500, (ops, r.status_code, r.text[:500])
        if r.status_code != 200:        # the body as a whole refused (e.g. an integer past 64 bits)
            assert r.status_code == 400, r.text
            return
        res = r.json()["results"]
        assert len(res) == len(ops) and res[1] == {"op_id": good["op_id"], "status": "applied", "flags": res[1]["flags"]}
        for x in res:
            statuses[x["status"]] = statuses.get(x["status"], 0) + 1
        with app.db.session() as s:
            assert s.get(Order, good["payload"]["rows"]["orders"][0]["id"]) is not None

    run()
    assert statuses.get("rejected", 0) > 20 and statuses.get("applied", 0) > 150
