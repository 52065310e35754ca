"""Canteens are made by admins (issue 17, point 7): `kiosk canteen add ID --name N` and
the console's 食堂 page; a menu for the new canteen imports before any terminal exists."""
from __future__ import annotations

import json
import re

import pytest

from tests.test_console_pages import (ADMIN_PASSWORD, ADMIN_PIN, SUPERVISOR_PASSWORD, SUPERVISOR_PIN,  # noqa: F401
                                     client, log_in, run, server)
from tests.test_console_reports import _write_menu


def _audit(app, action: str) -> list:
    from sqlalchemy import select

    from kiosk.db.models import AuditEntry

    with app.db.session(read_only=True) as s:
        return [(e.actor, e.subject, e.detail) for e in s.scalars(select(AuditEntry).where(AuditEntry.action == action))]


def test_an_admin_adds_a_canteen_and_its_menu_imports_before_any_terminal(server, tmp_path, monkeypatch, capsys):
    from kiosk.cli.main import main
    from kiosk.services import import_plan

    app = server["app"]
    menu = _write_menu(tmp_path / "menu.csv")
    with pytest.raises(Exception, match="没有编号为 C7 的食堂"):       # today: refused until the canteen exists
        import_plan.plan_menu(app, menu, "C7")

    monkeypatch.setenv("KIOSK_STAFF_PIN", SUPERVISOR_PIN)
    assert main(["canteen", "add", "C7", "--name", "南街长寿食堂", "--staff", "S1"]) == 2    # a supervisor may not
    monkeypatch.setenv("KIOSK_STAFF_PIN", "00000000")
    assert main(["canteen", "add", "C7", "--name", "南街长寿食堂", "--staff", "A1"]) == 2    # a wrong PIN
    assert "需要写明经办人" in (main(["canteen", "add", "C7", "--name", "南街"]) == 2 and capsys.readouterr().err)
    monkeypatch.setenv("KIOSK_STAFF_PIN", ADMIN_PIN)
    assert main(["canteen", "add", "C7", "--name", "南街长寿食堂", "--district", "武侯区", "--staff", "A1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "C7", "name": "南街长寿食堂", "district": "武侯区"}
    assert _audit(app, "canteen.add") == [("A1", "C7", {"name": "南街长寿食堂", "district": "武侯区"})]

    plan = import_plan.plan_menu(app, menu, "C7")
    assert not plan.problems and len(plan.add) == 2 * len(range(2, 21))
    import_plan.APPLIERS["menu"](app, plan, "A1")
    assert main(["canteen", "list", "--json"]) == 0
    rows = {c["id"]: c for c in json.loads(capsys.readouterr().out)}
    assert rows["C7"] == {"id": "C7", "name": "南街长寿食堂", "district": "武侯区", "terminals": 0, "menu_days": 19}

    assert main(["canteen", "add", "C7", "--name", "又一个", "--staff", "A1"]) == 2          # exists already
    assert "食堂 C7 已存在" in capsys.readouterr().err
    for bad in ("", "C 8", "C8;drop", "食堂8", ".C8", "C" * 65):
        assert main(["canteen", "add", bad, "--name", "x", "--staff", "A1"]) == 2, bad
        assert "食堂编号" in capsys.readouterr().err
    assert main(["canteen", "add", "C8", "--name", "  ", "--staff", "A1"]) == 2
    assert "请填写食堂名称" in capsys.readouterr().err
    assert len(_audit(app, "canteen.add")) == 1


def test_a_terminal_cannot_add_a_canteen(server):
    from kiosk.errors import ServerOnlyError
    from kiosk.services.canteen import add_canteen
    from kiosk.services.context import App

    app = server["app"]
    term = App(app.settings.model_copy(update={"server_url": "https://district.example", "server_token": "kt_x"}),
               db=app.db)
    assert term.settings.is_terminal
    with pytest.raises(ServerOnlyError):
        add_canteen(term, "C9", name="终端上的食堂", actor="A1")


def test_the_console_canteens_page_lists_and_adds(server):
    async def scenario():
        async with client(server["api"]) as c:
            await log_in(c, "S1", SUPERVISOR_PASSWORD)
            as_supervisor = await c.get("/console/canteens")
        async with client(server["api"]) as c:
            await log_in(c, "A1", ADMIN_PASSWORD)
            page = await c.get("/console/canteens")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            no_csrf = await c.post("/console/canteens", data={"canteen_id": "C5", "name": "北街"})
            added = await c.post("/console/canteens", data={"canteen_id": "C5", "name": "北街长寿食堂",
                                                            "district": "青羊区", "csrf_token": csrf})
            after = await c.get("/console/canteens")
            again = await c.post("/console/canteens", data={"canteen_id": "C5", "name": "重复",
                                                            "csrf_token": csrf})
            bad = await c.post("/console/canteens", data={"canteen_id": "C 6", "name": "x", "csrf_token": csrf})
            return as_supervisor, page, no_csrf, added, after, again, bad

    as_supervisor, page, no_csrf, added, after, again, bad = run(scenario())
    assert as_supervisor.status_code == 403
    assert page.status_code == 200 and "新增食堂" in page.text and 'href="/console/canteens"' in page.text
    assert no_csrf.status_code == 403
    assert added.status_code == 303 and added.headers["location"].endswith("/console/canteens")
    assert 'id="canteen-C5"' in after.text and "北街长寿食堂" in after.text and "青羊区" in after.text
    assert "已新增食堂 C5" in after.text
    assert again.status_code == 400 and "食堂 C5 已存在" in again.text
    assert bad.status_code == 400 and "食堂编号「C 6」不合格" in bad.text
    entries = [e for e in _audit(server["app"], "canteen.add") if e[1] == "C5"]
    assert entries == [("A1", "C5", {"name": "北街长寿食堂", "district": "青羊区"})]
