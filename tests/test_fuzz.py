"""Fuzz (hypothesis) over the importers and the checkout (issue 10, item 8): whatever
the input, the only exceptions are KioskError subclasses (the CLI's exit 1/2 with a
message, never a traceback), and a refused import or checkout changes no row.

Example counts are modest (the suite must stay fast); each test reuses one store."""
from __future__ import annotations

import csv
import io
import itertools
import json
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import func, select

from kiosk.db.models import LedgerEntry, MenuItem, Order, OrderLine, Resident, SubsidyPolicy
from kiosk.errors import ImportFileError, KioskError
from kiosk.money import TOPUP_MAX_FEN, AmountError, yuan_to_fen

from tests.conftest import FORMATS

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ROSTER_HEAD = ["编号", "姓名", "身份证号", "性别", "出生日期", "户籍", "联系电话", "人员类别", "饮食禁忌", "卡号",
               "照片", "紧急联系人", "人脸授权"]
MENU_HEAD = ["日期", "餐次", "菜品编号", "菜名", "价格", "类别", "标签", "过敏原", "份数"]
HOSTILE = ["NaN", "nan", "Infinity", "-Infinity", "inf", "1e20", "1e400", "-1", "0.001", "1000000000", "500.01",
           "=1+1", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3", "\x00", "a\x00b", "\x1b[31m", "清除", "", " ", "9" * 40,
           "x" * 1001, "张" * 101, "510107194203150024", "510107195011020035", "51010719420315002X", "武侯区",
           "是", "否", "男", "女", "2026-11-23", "1942-03-15", "9999-99-99", "午餐", "早餐", "宵夜", "D001", "12.50",
           "低保;失能", "残疾:二级", "过敏:", "过敏:花生", "../x.jpg", "/etc/passwd", "\ufeff", "\u202e", "；；；"]
cell = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30), st.integers(-10 ** 30, 10 ** 30).map(str),
                 st.floats(allow_nan=True, allow_infinity=True).map(repr))


@contextmanager
def store(tmp_path_factory, name: str):
    """A store of its own for one fuzz test (the function-scoped fixtures would be
    shared by all examples anyway)."""
    from kiosk.config import get_settings, load_settings
    from kiosk.services.context import App
    from kiosk.services.security import generate_key

    from tests.conftest import shared_engine

    mp = pytest.MonkeyPatch()
    mp.setenv("KIOSK_HOME", str(tmp_path_factory.mktemp(name) / "home"))
    mp.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    mp.delenv("KIOSK_DATABASE_URL", raising=False)
    mp.delenv("KIOSK_BACKEND", raising=False)
    get_settings.cache_clear()
    app = App(load_settings(), engine=shared_engine("sface"))
    try:
        yield app
    finally:
        app.close()
        mp.undo()
        get_settings.cache_clear()


def counts(app) -> dict:
    with app.db.session() as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m))
                for m in (Resident, MenuItem, SubsidyPolicy, Order, OrderLine, LedgerEntry)}


_n = itertools.count()


def new_file(folder: Path, suffix: str) -> Path:
    return folder / f"f{next(_n)}{suffix}"


def write_table(path: Path, rows: list[list[str]], encoding: str) -> Path:
    if path.suffix == ".xlsx":
        from openpyxl.utils.exceptions import IllegalCharacterError

        wb = Workbook()
        for r in rows:
            try:
                wb.active.append(r)
            except IllegalCharacterError:   # openpyxl will not write control characters
                wb.active.append(["".join(ch for ch in c if ch >= " " or ch in "\t\n\r") for c in r])
        wb.save(path)
        return path
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding, errors="replace"))
    return path


def check_import(app, before: dict, call, skip_invalid: bool = False) -> None:
    """Only KioskError; refused or dry run: nothing changed; imported: as reported (bad
    rows only with skip_invalid, and then none of them stored)."""
    try:
        rep = call()
    except KioskError as exc:
        event(f"refused: {type(exc).__name__}")
        assert counts(app) == before
        return
    event("imported" if rep.imported else "bad rows" if rep.problems else "not imported")
    after = counts(app)
    if not rep.imported:
        assert after == before and (rep.problems or rep.dry_run or rep.unchanged or not rep.rows)
    else:
        assert skip_invalid or not rep.problems
        assert set(rep.skipped_rows) >= {p.row for p in rep.problems if p.row}
        grown = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        if rep.kind == "roster":
            assert grown.get("Resident", 0) == len(rep.created)
        elif rep.kind == "menu":
            assert grown.get("MenuItem", 0) == len(rep.created)
        else:
            assert grown.get("SubsidyPolicy", 0) == 1


# ------------------------------------------------------------------ importers
@pytest.fixture(scope="module")
def import_store(tmp_path_factory):
    with store(tmp_path_factory, "fuzz-import") as app:
        yield app, tmp_path_factory.mktemp("fuzz-files")


@FUZZ
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".xlsx", ".yaml", ".json"]),
       kind=st.sampled_from(["roster", "menu", "policy"]))
def test_random_bytes_are_refused_cleanly(import_store, data, suffix, kind):
    from kiosk.services.importing import import_menu, import_policy, import_roster

    app, folder = import_store
    p = new_file(folder, suffix)
    p.write_bytes(data)
    call = {"roster": lambda: import_roster(app, p), "menu": lambda: import_menu(app, p),
            "policy": lambda: import_policy(app, p)}[kind]
    check_import(app, counts(app), call)


@FUZZ
@given(rows=st.lists(st.lists(cell, max_size=15), min_size=1, max_size=6),
       kind=st.sampled_from(["roster", "menu"]), suffix=st.sampled_from([".csv", ".xlsx"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "gbk"]), dry_run=st.booleans(),
       skip_invalid=st.booleans())
def test_hostile_cells_in_a_table(import_store, rows, kind, suffix, encoding, dry_run, skip_invalid):
    from kiosk.services.importing import import_menu, import_roster

    app, folder = import_store
    head = ROSTER_HEAD if kind == "roster" else MENU_HEAD
    p = write_table(new_file(folder, suffix), [head] + rows, encoding)
    fn = import_roster if kind == "roster" else import_menu
    before = counts(app)
    check_import(app, before, lambda: fn(app, p, dry_run=dry_run, skip_invalid=skip_invalid), skip_invalid)
    if dry_run:
        assert counts(app) == before


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(st.lists(cell, max_size=10), min_size=1, max_size=4),
       kind=st.sampled_from(["residents", "menu"]), suffix=st.sampled_from([".csv", ".xlsx"]))
def test_cli_import_exit_codes(import_store, capsys, rows, kind, suffix):
    """The command line: exit 0, 1 (bad rows) or 2 (refused), one JSON document, never a traceback."""
    from kiosk.cli.main import main

    app, folder = import_store
    head = ROSTER_HEAD if kind == "residents" else MENU_HEAD
    p = write_table(new_file(folder, suffix), [head] + rows, "utf-8")
    before = counts(app)
    capsys.readouterr()
    rc = main([kind, "import", str(p), "--json"])
    out = json.loads(capsys.readouterr().out)
    event(f"exit {rc}")
    assert rc in (0, 1, 2)
    if rc == 2:
        assert out["error"] and counts(app) == before
    elif rc == 1:
        assert out["problems"] and counts(app) == before
    else:
        assert out["imported"] and not out["problems"]


@st.composite
def broken_sheet(draw):
    """A real .xlsx of the example roster whose sheet XML got random text inserted."""
    wb = Workbook()
    with open(FORMATS / "roster.example.csv", encoding="utf-8-sig", newline="") as fh:
        for r in csv.reader(fh):
            wb.active.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = {n: z.read(n) for n in z.namelist()}
    sheet = members["xl/worksheets/sheet1.xml"].decode()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(sheet)))
        junk = draw(st.one_of(st.sampled_from(['<c r="XFD1048576"><v>NaN</v></c>', '<row r="99999999999">',
                                               '<v>1E400</v>', '<v>inf</v>', 't="e"', '<dimension ref="A1:XFD1048576"/>',
                                               '<c r="A2" t="s"><v>999999</v></c>', '&amp;', '<!ENTITY a "b">', '"']),
                              st.text(max_size=20)))
        sheet = sheet[:at] + junk + sheet[at:]
    members["xl/worksheets/sheet1.xml"] = sheet.encode("utf-8", errors="replace")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z2:
        for n, d in members.items():
            z2.writestr(n, d)
    return out.getvalue()


@FUZZ
@given(data=broken_sheet())
def test_broken_xlsx_sheet_xml(import_store, data):
    from kiosk.services.importing import import_roster

    app, folder = import_store
    p = new_file(folder, ".xlsx")
    p.write_bytes(data)
    check_import(app, counts(app), lambda: import_roster(app, p, dry_run=True))


scalar = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 25, 10 ** 25),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=25), st.dates(),
                   st.sampled_from(HOSTILE))
tree = st.recursive(scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=15)
POLICY_PATHS = [("id",), ("name",), ("district",), ("effective_from",), ("effective_to",), ("eligibility",),
                ("eligibility", "min_age"), ("eligibility", "hukou"), ("subsidized_meals",), ("tiers",),
                ("tiers", 0), ("tiers", 0, "name"), ("tiers", 0, "match"), ("tiers", 0, "match", "categories"),
                ("tiers", 0, "match", "min_age"), ("tiers", 0, "per_meal"), ("tiers", 1, "per_meal"),
                ("limits",), ("limits", "subsidized_meals_per_day"), ("limits", "amount_per_month"), ("extra",)]


@FUZZ
@given(path=st.sampled_from(POLICY_PATHS), value=tree, fmt=st.sampled_from(["yaml", "json", "text"]),
       junk=st.text(max_size=20), at=st.integers(0, 2000))
def test_random_policy_documents(import_store, path, value, fmt, junk, at):
    from kiosk.services.importing import import_policy

    app, folder = import_store
    text = (FORMATS / "policy.example.yaml").read_text(encoding="utf-8")
    if fmt == "text":     # raw text mutation: anchors, aliases, tags, broken indentation ...
        junk = junk or "&a *a !!python/name:os.system"
        body, suffix = text[:at] + junk + text[at:], ".yaml"
    else:
        data = yaml.safe_load(text)
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        body = (yaml.safe_dump(data, allow_unicode=True) if fmt == "yaml"
                else json.dumps(data, default=str, ensure_ascii=False))
        suffix = f".{fmt}"
    p = new_file(folder, suffix)
    p.write_bytes(body.encode("utf-8", errors="replace"))
    check_import(app, counts(app), lambda: import_policy(app, p))


# ------------------------------------------------------------------ checkout
@pytest.fixture(scope="module")
def shop_store(tmp_path_factory):
    from kiosk.services.importing import import_menu, import_policy, import_roster

    with store(tmp_path_factory, "fuzz-checkout") as app:
        import_roster(app, FORMATS / "roster.example.csv")
        import_menu(app, FORMATS / "menu.example.csv")
        import_policy(app, FORMATS / "policy.example.yaml")
        yield app


DISHES = [f"D00{i}" for i in range(1, 8)]
ident = st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE))


def mostly(good, bad):
    """``good`` about three times in four (so that settlements happen as well as refusals)."""
    return st.integers(0, 3).flatmap(lambda i: bad if i == 0 else good)


@FUZZ
@given(resident=mostly(st.sampled_from(["R0001", "R0002", "R0003"]), ident),
       dishes=mostly(st.lists(st.sampled_from(DISHES), min_size=1, max_size=6),
                     st.lists(st.one_of(st.sampled_from(DISHES), ident), max_size=60)),
       pay=mostly(st.sampled_from(["cash", "card", "balance"]), st.text(max_size=8)),
       when=mostly(st.sampled_from(["2026-11-23T12:05", "2026-11-23T12:30"]),
                   st.sampled_from(["2026-11-23T18:00", "2026-11-23T03:00", "2026-11-24T12:00", None])),
       meal=mostly(st.none(), st.sampled_from(["午餐", "晚餐", "lunch", "宵夜", "\x00"])),
       key=mostly(st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])), ident), dry_run=st.booleans())
def test_checkout_never_half_writes(shop_store, resident, dishes, pay, when, meal, key, dry_run):
    from kiosk.timeutil import parse_cst

    app = shop_store
    at = parse_cst(when) if when else None
    before = counts(app)
    try:
        if dry_run:
            q = app.billing.quote(resident, dishes, at=at, meal=meal)
            assert 0 <= q.quote.subsidy_fen <= q.quote.total_fen
            assert counts(app) == before
            return
        rec = app.billing.settle(resident, dishes, pay=pay, at=at, meal=meal, idempotency_key=key)
    except KioskError as exc:
        event(f"refused: {type(exc).__name__}")
        assert counts(app) == before
        return
    event("replayed" if rec.replayed else "settled")
    after = counts(app)
    assert rec.to_pay_fen == rec.total_fen - rec.subsidy_fen and 0 <= rec.subsidy_fen <= rec.total_fen
    if rec.replayed:
        assert after == before
    else:
        assert after["Order"] == before["Order"] + 1
        assert after["OrderLine"] == before["OrderLine"] + len(set(dishes))
        assert after["LedgerEntry"] - before["LedgerEntry"] in (2, 3)


@FUZZ
@given(resident=ident, dishes=st.lists(ident, max_size=60), key=st.one_of(st.none(), ident))
def test_checkout_request_ids_checked_at_the_edge(resident, dishes, key):
    from kiosk.errors import ValidationError
    from kiosk.limits import CHECKOUT_MAX_DISHES, ID_MAX_CHARS, check_checkout_request, forbidden_char

    def ok(v, limit=ID_MAX_CHARS):
        return bool(v.strip()) and len(v) <= limit and forbidden_char(v) is None

    expect = ok(resident) and len(dishes) <= CHECKOUT_MAX_DISHES and all(ok(d) for d in dishes) and (
        key is None or ok(key, 128))
    try:
        check_checkout_request(resident, dishes, key)
    except ValidationError as exc:
        assert not expect and exc.user_message
    else:
        assert expect


@FUZZ
@given(amount=st.one_of(st.sampled_from(["12.50", "5000", "5000.00", "0.01", "1"]), st.sampled_from(HOSTILE),
                        st.text(max_size=12), st.integers(-10 ** 12, 10 ** 12).map(str),
                        st.floats(allow_nan=True, allow_infinity=True).map(repr)),
       payer=st.one_of(st.none(), st.sampled_from(["子女 李明", "李" * 101, "a\x00"]), st.text(max_size=20)))
def test_topup_amounts_from_text(shop_store, amount, payer):
    """A top-up typed as text (CLI, staff screen): yuan parsed, the bound (5000 元) and
    the payer checked; refused means no ledger row, accepted means exactly one."""
    from kiosk.errors import ValidationError

    from tests.conftest import add_test_staff, staff_actor

    app = shop_store
    if not hasattr(app, "_fuzz_actor"):
        add_test_staff(app)
        app._fuzz_actor = staff_actor(app, "S01")
    before = counts(app)
    try:
        fen = yuan_to_fen(amount)
    except AmountError:
        event("not an amount")
        return
    try:
        res = app.billing.topup("R0001", fen, payer=payer, actor=app._fuzz_actor)
    except ValidationError:
        event("refused")
        assert counts(app) == before
        assert fen <= 0 or fen > TOPUP_MAX_FEN or payer is not None
        return
    event("topped up")
    assert 0 < fen <= TOPUP_MAX_FEN and res["amount_fen"] == fen
    assert counts(app)["LedgerEntry"] == before["LedgerEntry"] + 1


# ------------------------------------------------------------------ amounts
@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE), st.integers(-10 ** 40, 10 ** 40),
                       st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=True),
                       st.booleans(), st.none()))
def test_amounts_are_fen_within_bounds_or_refused(value):
    try:
        fen = yuan_to_fen(value, max_fen=TOPUP_MAX_FEN)
    except AmountError as exc:
        assert exc.zh and str(exc)
    else:
        assert isinstance(fen, int) and 0 <= fen <= TOPUP_MAX_FEN


def test_fuzz_inputs_reach_the_checks():
    """The strategies above do reach both outcomes (a fuzz that only ever refuses tests little)."""
    from kiosk.services.importing import validate_menu_row, validate_roster_row

    row = dict(zip(["date", "meal", "dish_id", "name", "price"], ["2026-11-23", "午餐", "D1", "鱼", "12.50"]))
    assert validate_menu_row(2, row)[0] is not None
    assert validate_menu_row(2, {**row, "price": "NaN"})[0] is None
    r = {"name": "张三", "id_number": "510107194203150024", "hukou": "武侯区"}
    assert validate_roster_row(2, r)[0] is not None and validate_roster_row(2, {**r, "name": "a\x00"})[0] is None
