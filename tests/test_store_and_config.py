"""Schema upgrades keep data; SQLite runs in WAL mode; bad settings are named."""
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from kiosk.config import load_settings
from kiosk.db.session import MIGRATIONS, Database
from kiosk.errors import ConfigError


def test_upgrade_from_first_revision_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO residents (id, name, categories, diet_tags, allergies, status, created_at, updated_at) "
                          "VALUES ('R1', '张桂兰', '[]', '[]', '[]', 'active', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    assert "ix_order_lines_menu_item_id" not in {i["name"] for i in inspect(eng).get_indexes("order_lines")}
    eng.dispose()
    db = Database(url)                      # brings the schema to head
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM residents WHERE id='R1'")).scalar() == "张桂兰"
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert "ix_order_lines_menu_item_id" in {i["name"] for i in inspect(db.engine).get_indexes("order_lines")}


@pytest.mark.parametrize("var,value,needle", [("KIOSK_BACKEND", "dlib", "KIOSK_BACKEND"),
                                              ("KIOSK_MATCH_THRESHOLD", "2", "KIOSK_MATCH_THRESHOLD"),
                                              ("KIOSK_DATABASE_URL", "kiosk.db", "KIOSK_DATABASE_URL"),
                                              ("KIOSK_VOTES_NEEDED", "zero", "KIOSK_VOTES_NEEDED")])
def test_bad_settings_are_named(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as ei:
        load_settings()
    assert needle in ei.value.user_message


def test_cli_reports_bad_setting_cleanly(monkeypatch, capsys):
    from kiosk.cli.main import main
    from kiosk.config import get_settings

    monkeypatch.setenv("KIOSK_BACKEND", "dlib")
    get_settings.cache_clear()
    try:
        assert main(["models", "list"]) == 2
    finally:
        get_settings.cache_clear()
    assert "KIOSK_BACKEND" in capsys.readouterr().err


def test_unwritable_home_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="无法创建数据目录"):
        Database(f"sqlite:///{blocker / 'sub' / 'kiosk.db'}")


def test_canteen_meal_windows_from_cli(env, formats, capsys):
    from datetime import datetime

    from kiosk.cli.main import main
    from kiosk.services.context import App
    from kiosk.timeutil import CST

    assert main(["canteen", "set", "--name", "玉林食堂", "--district", "武侯区", "--lunch", "11:00-12:30", "--json"]) == 0
    assert capsys.readouterr().out and main(["canteen", "set", "--lunch", "13:00-12:00"]) == 2
    assert "供餐时间设置有误" in capsys.readouterr().err
    app = App()
    from kiosk.errors import BillingError
    with app.db.session() as s:
        with pytest.raises(BillingError, match="不在供餐时间"):
            app.billing.resolve_meal(s, datetime(2026, 11, 23, 12, 45, tzinfo=CST), None)
        assert app.billing.resolve_meal(s, datetime(2026, 11, 23, 11, 15, tzinfo=CST), None)[1] == "午餐"
        assert app.billing.resolve_meal(s, datetime(2026, 11, 23, 7, 0, tzinfo=CST), None)[1] == "早餐"


def test_full_disk_is_a_clear_error_and_nothing_is_half_written(shop, monkeypatch):
    """SQLite's 'database or disk is full' at commit: a clear message, the order not half-kept."""
    from datetime import datetime

    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from kiosk.db.models import LedgerEntry, Order
    from kiosk.errors import StorageError
    from kiosk.timeutil import CST

    real_commit = Session.commit

    def full(self):
        raise OperationalError("COMMIT", {}, Exception("database or disk is full"))

    monkeypatch.setattr(Session, "commit", full)
    with pytest.raises(StorageError) as ei:
        shop.billing.settle("R0001", ["D001"], at=datetime(2026, 11, 23, 12, 0, tzinfo=CST))
    assert "存储空间不足" in ei.value.user_message and "disk is full" in ei.value.detail
    monkeypatch.setattr(Session, "commit", real_commit)
    with shop.db.session() as s:
        assert s.scalars(select(Order)).all() == [] and s.scalars(select(LedgerEntry)).all() == []
