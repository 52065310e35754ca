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


# ---------------------------------------------------------------- issue 10: files and errors
def _mode(p) -> int:
    import os
    import stat

    return stat.S_IMODE(os.stat(p).st_mode)


def test_data_folder_is_0700_and_its_files_0600_as_created(env, obama, monkeypatch):
    """No umask from the caller is trusted: with 022 (the usual) the store is still private."""
    import os

    from kiosk.enrollment.batch import enroll_files

    from tests.conftest import add_test_staff, make_app, staff_actor
    from tests.test_erasure import index_members

    os.umask(0o022)
    app = make_app()
    add_test_staff(app)
    from kiosk.terminal.demo import FORMATS
    from kiosk.services.importing import import_roster
    import_roster(app, FORMATS / "roster.example.csv")
    enroll_files(app, "R0001", [obama[0]], consent="self", actor=staff_actor(app))
    assert index_members(app) == {"R0001"}
    home = app.settings.home
    assert _mode(home) == 0o700
    files = [home / n for n in ("kiosk.db", "kiosk.db-wal", "kiosk.db-shm", "gallery.faiss.enc")]
    assert all(f.exists() for f in files)
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    out = home.parent / "export.csv"                           # anything else the process writes
    out.write_text("x")
    assert _mode(out) == 0o600


def test_a_store_left_open_by_an_older_version_is_closed_at_start(env):
    import os

    from kiosk.services.context import App

    env.mkdir(parents=True)
    os.chmod(env, 0o755)
    (env / "kiosk.db").touch()
    os.chmod(env / "kiosk.db", 0o644)
    App()
    assert _mode(env) == 0o700 and _mode(env / "kiosk.db") == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640])
def test_key_file_readable_by_others_is_refused_with_the_fix(env, tmp_path, monkeypatch, capsys, mode):
    import os

    from kiosk.cli.main import main
    from kiosk.config import get_settings
    from kiosk.errors import TemplateKeyError
    from kiosk.services.context import App
    from kiosk.services.security import generate_key

    key = tmp_path / "cfg" / "template.key"
    key.parent.mkdir()
    key.write_text(generate_key())
    os.chmod(key, mode)
    monkeypatch.delenv("KIOSK_TEMPLATE_KEY")
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY_FILE", str(key))
    get_settings.cache_clear()
    with pytest.raises(TemplateKeyError) as ei:
        App().cipher
    assert f"chmod 600 {key}" in ei.value.user_message and f"{mode:04o}" in ei.value.user_message
    assert main(["index", "rebuild"]) == 2              # the index is written encrypted: the key is needed
    assert f"chmod 600 {key}" in capsys.readouterr().err
    os.chmod(key, 0o600)
    assert App().cipher.decrypt(App().cipher.encrypt(b"ok")) == b"ok"


def test_database_errors_say_what_happened(tmp_path):
    """Real SQLite errors, mapped: locked -> busy (try again), full disk, NUL, too long."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from kiosk.db.session import map_db_error
    from kiosk.errors import DiskFullError, StoreBusyError, ValidationError

    path = tmp_path / "locked.db"
    a, b = sqlite3.connect(path, timeout=0), sqlite3.connect(path, timeout=0)
    a.execute("CREATE TABLE t (x)")
    a.commit()
    a.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as locked:
        b.execute("BEGIN IMMEDIATE")
    err = map_db_error(OperationalError("BEGIN IMMEDIATE", {}, locked.value))
    assert isinstance(err, StoreBusyError) and err.retryable
    assert "系统繁忙，请稍后再试" in err.user_message and "存储空间不足" not in err.user_message
    a.rollback()
    # a real full disk: a database whose page count is capped
    a.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as full:
        a.execute("INSERT INTO t VALUES (?)", (b"x" * 20000,))
    err = map_db_error(OperationalError("INSERT", {}, full.value))
    assert isinstance(err, DiskFullError) and "存储空间不足" in err.user_message
    other = map_db_error(OperationalError("SELECT", {}, sqlite3.OperationalError("unable to open database file")))
    assert not isinstance(other, (StoreBusyError, DiskFullError)) and "数据库不可用" in other.user_message
    nul = map_db_error(OperationalError("INSERT", {}, Exception(
        "PostgreSQL text fields cannot contain NUL (0x00) bytes")))
    assert isinstance(nul, ValidationError) and "空字符" in nul.user_message


def test_a_locked_store_at_checkout_says_busy_and_keeps_nothing(shop, monkeypatch, capsys):
    import json
    import sqlite3

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from kiosk.cli.main import main
    from kiosk.db.models import Order

    monkeypatch.setattr(Session, "commit", lambda self: (_ for _ in ()).throw(
        OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))))
    from sqlalchemy.exc import OperationalError  # noqa: F811  (used by the lambda at call time)
    assert main(["checkout", "--resident", "R0001", "--dish", "D001", "--at", "2026-11-23T12:05", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"].startswith("系统繁忙") and out["type"] == "StoreBusyError" and out["retryable"] is True
    monkeypatch.undo()
    with shop.db.session() as s:
        assert s.scalars(select(Order)).all() == []


def test_values_are_checked_against_their_column_before_the_database(shop):
    from kiosk.db.models import Resident
    from kiosk.errors import ValidationError

    with pytest.raises(ValidationError, match=r"居民的姓名（residents.name）太长：最多 100 个字符"):
        with shop.db.session() as s:
            s.add(Resident(id="R9", name="张" * 101, hukou="武侯区"))
    with pytest.raises(ValidationError, match=r"居民的户籍（residents.hukou）含有不允许的空字符"):
        with shop.db.session() as s:
            s.get(Resident, "R0001").hukou = "武侯\x00区"
    with pytest.raises(ValidationError, match="请求编号"):
        from datetime import datetime

        from kiosk.timeutil import CST
        shop.billing.settle("R0001", ["D001"], at=datetime(2026, 11, 23, 12, 5, tzinfo=CST),
                            idempotency_key="k" * 129)
    with shop.db.session() as s:
        assert s.get(Resident, "R9") is None and "\x00" not in s.get(Resident, "R0001").hukou
