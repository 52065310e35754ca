"""Values PostgreSQL would refuse with a raw error (a NUL character, text longer than
its column, an integer past 32 bits) are refused by the kiosk first, with a message
naming file, row and column; nothing is stored. Skipped with the reason when no
PostgreSQL server can be started (tests/conftest.py: postgres_missing)."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from kiosk.config import load_settings
from kiosk.db.models import MenuItem, Order, Resident
from kiosk.errors import ValidationError
from kiosk.services.context import App
from kiosk.services.importing import import_menu, import_policy, import_roster

from tests.conftest import shared_engine
from tests.test_postgres import pg_url  # noqa: F401  (the throwaway cluster fixture)

pytestmark = pytest.mark.postgres

HEAD = ["编号", "姓名", "身份证号", "性别", "出生日期", "户籍", "联系电话", "人员类别", "饮食禁忌", "卡号",
        "照片", "紧急联系人", "人脸授权"]


def test_postgres_never_sees_nul_or_overlong_values(env, pg_url, formats, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("KIOSK_DATABASE_URL", pg_url)
    app = App(load_settings(), engine=shared_engine("sface"))
    try:
        import_roster(app, formats / "roster.example.csv")
        import_menu(app, formats / "menu.example.csv")
        import_policy(app, formats / "policy.example.yaml")
        with app.db.session() as s:
            before = (s.scalar(select(func.count()).select_from(Resident)),
                      s.scalar(select(func.count()).select_from(MenuItem)))
        from kiosk.idcard import check_char

        ids = [f + check_char(f) for f in ("11010519491231002", "11010519491231003")]
        good = ["R9", "王五", ids[0], "", "", "武侯区"] + [""] * 7
        for col, value in (("姓名", "张\x00三"), ("姓名", "张" * 101), ("卡号", "K" * 65), ("户籍", "武侯区\x00")):
            row = ["R8", "李四", ids[1], "", "", "武侯区"] + [""] * 7
            row[HEAD.index(col)] = value
            buf = io.StringIO()
            csv.writer(buf).writerows([HEAD, good, row])
            p = tmp_path / "r.csv"
            p.write_text(buf.getvalue(), encoding="utf-8")
            rep = import_roster(app, p)
            assert [(pr.row, pr.column) for pr in rep.problems] == [(3, col)] and not rep.imported
        p = tmp_path / "m.csv"
        p.write_text("日期,餐次,菜品编号,菜名,价格,类别,标签,过敏原,份数\n"
                     "2026-11-24,午餐,D1,鱼,30000000,荤菜,,,\n2026-11-24,午餐,D2,饭,1,主食,,,99999999999\n",
                     encoding="utf-8")
        rep = import_menu(app, p)
        assert [(pr.row, pr.column) for pr in rep.problems] == [(2, "价格"), (3, "份数")]
        from kiosk.timeutil import parse_cst

        for resident, dishes in (("R\x00", ["D001"]), ("R0001", ["D\x00"]), ("R" * 200, ["D001"])):
            with pytest.raises(ValidationError):
                app.billing.settle(resident, dishes, at=parse_cst("2026-11-23T12:05"))
        with app.db.session() as s:
            assert (s.scalar(select(func.count()).select_from(Resident)),
                    s.scalar(select(func.count()).select_from(MenuItem))) == before
            assert s.scalar(select(func.count()).select_from(Order)) == 0
    finally:
        app.close()
