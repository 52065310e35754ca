"""What terminals report of themselves, as the console's 终端 page shows it, and the
warning for a terminal silent for an hour during meal time (the rule, then the page)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from kiosk.district.domain.terminals import stale_in_meal_time
from kiosk.timeutil import CST

DAY = datetime(2026, 11, 23, tzinfo=CST)


@pytest.mark.parametrize("now, last, warned", [
    (DAY.replace(hour=12), DAY.replace(hour=10, minute=30), "已 1.5 小时未同步（午餐时间）"),
    (DAY.replace(hour=12), DAY.replace(hour=11, minute=1), None),            # 59 minutes: no warning
    (DAY.replace(hour=15), DAY.replace(hour=8), None),                       # between meals: silence is fine
    (DAY.replace(hour=7), DAY.replace(hour=5, minute=30), "已 1.5 小时未同步（早餐时间）"),
    (DAY.replace(hour=18), None, "从未同步（晚餐时间）"),                      # registered long ago, never synced
])
def test_a_terminal_silent_for_an_hour_in_meal_time_is_warned_about(now, last, warned):
    got = stale_in_meal_time(last, DAY - timedelta(days=2), now)
    assert (got is None) if warned is None else (got is not None and got.startswith(warned)), got


def test_the_canteens_own_meal_windows_decide_and_a_new_terminal_gets_an_hour():
    windows = {"午餐": ["11:00", "12:00"]}
    at_1230 = DAY.replace(hour=12, minute=30)
    assert stale_in_meal_time(DAY.replace(hour=9), DAY, at_1230) is not None        # default windows: lunch
    assert stale_in_meal_time(DAY.replace(hour=9), DAY, at_1230, windows) is None   # this canteen's lunch is over
    assert stale_in_meal_time(None, at_1230 - timedelta(minutes=30), at_1230) is None


def test_the_terminals_page_shows_health_and_warns_about_a_silent_terminal(tmp_path, monkeypatch):
    import re

    import httpx

    from kiosk.config import get_settings
    from kiosk.db.models import Canteen, Terminal, utcnow
    from kiosk.district.app import create_app
    from kiosk.district.domain.terminals import add_terminal
    from kiosk.services.context import App
    from kiosk.services.security import generate_key

    monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    for k in ("KIOSK_DATABASE_URL", "KIOSK_SERVER_URL", "KIOSK_SERVER_TOKEN", "KIOSK_CANTEEN_ID"):
        monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    app = App()
    try:
        app.residents.add_staff("A1", "区管理员", "admin", "86420135")
        admin = app.residents.authenticate("86420135", min_role="admin", staff_id="A1")["actor"]
        from kiosk.district.domain import passwords

        passwords.set_password(app, "A1", "区管理员 console-2026", actor=admin)
        now = utcnow()
        with app.db.session() as s:       # both canteens serve all day, so the test holds at any hour
            for cid in ("C1", "C2"):
                s.add(Canteen(id=cid, name=f"{cid}食堂", meal_windows={"午餐": ["00:00", "23:59"]}))
        add_terminal(app, "C1", name="东街1号机")
        add_terminal(app, "C2", name="西街1号机")
        with app.db.session() as s:
            quiet, fine = s.get(Terminal, "C1-T1"), s.get(Terminal, "C2-T1")
            quiet.last_push_at = quiet.last_pull_at = now - timedelta(hours=2)
            quiet.camera_state, quiet.camera_since = "lost", now - timedelta(hours=2, minutes=5)
            quiet.disk_free_bytes = 512 * 1024 ** 2
            quiet.last_sale_at = now - timedelta(hours=1, minutes=50)
            quiet.software_version, quiet.model = "0.1.0", "sface/face_recognition_sface_2021dec@0123456789ab"
            fine.last_pull_at = now - timedelta(minutes=3)
            fine.camera_state, fine.disk_free_bytes = "live", 40 * 1024 ** 3
        api = create_app(app.settings, kiosk_app=app)

        async def page() -> str:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as c:
                pre = re.search(r'name="csrf_token" value="([^"]+)"', (await c.get("/console/login")).text).group(1)
                r = await c.post("/console/login", data={"csrf_token": pre, "staff_id": "A1",
                                                         "password": "区管理员 console-2026"})
                assert r.status_code == 303
                r = await c.get("/console/terminals")
                assert r.status_code == 200
                return r.text

        html = asyncio.run(page())
    finally:
        app.close()
        get_settings.cache_clear()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr[^>]*>.*?(C[12]-T1).*?</tr>", html, re.S)}
    assert "已 2.0 小时未同步（午餐时间）" in rows["C1-T1"] and 'class="stale"' in rows["C1-T1"]
    assert "断开" in rows["C1-T1"] and "0.5 GB" in rows["C1-T1"] and "sface/face_recognition_sface" in rows["C1-T1"]
    assert "未同步" not in rows["C2-T1"] and "正常" in rows["C2-T1"] and "40.0 GB" in rows["C2-T1"]
    warn = re.search(r'<p class="bad" id="terminal-warnings">(.*?)</p>', html, re.S).group(1)
    assert "1 台终端" in warn and "东街1号机" in warn and "西街1号机" not in warn


def test_the_kiosk_on_a_terminal_records_its_cameras_state_and_the_sync_reports_it(tmp_path, qtbot, obama):
    """The kiosk window's camera worker says live / lost; the terminal's store keeps it and
    the next sync's health headers carry it (with disk free and the face model)."""
    import shutil

    from kiosk.config import load_settings
    from kiosk.services.context import App
    from kiosk.services.security import generate_key
    from kiosk.terminal.sync.health import collect
    from kiosk.terminal.sync.status import stop_background_sync
    from kiosk.ui.app import build_window
    from kiosk.ui.voice import Voice
    from kiosk.vision.camera import FolderCapture

    from tests.conftest import shared_engine

    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(obama[0], frames / "a.jpg")
    ctx = App(load_settings(home=tmp_path / "term", template_key=generate_key(),
                            server_url="http://127.0.0.1:9", server_token="kt_test"), engine=shared_engine("sface"))
    try:
        assert collect(ctx).camera == "unknown"
        win, worker = build_window(ctx, capture=FolderCapture(frames), voice=Voice(enabled=False))
        qtbot.addWidget(win)
        worker.source_state.emit("live")
        h = collect(ctx)
        assert h.camera == "live" and h.camera_since is not None and h.disk_free_bytes > 0
        assert h.model.startswith("sface/") and h.headers()["X-Kiosk-Camera"] == "live"
        worker.source_state.emit("lost")
        assert collect(ctx).headers()["X-Kiosk-Camera"] == "lost"
        win.close()
    finally:
        stop_background_sync(ctx)
        ctx.close()
