"""Issue 10 on PostgreSQL: the audit chain under two appending processes (the row lock
on audit_head), values refused with the field named (never a raw driver error), an
erasure reaching another App within 2 s, PIN lockouts in the store."""
import itertools
import time

import pytest
from sqlalchemy import create_engine, select, text

from kiosk.enrollment.batch import enroll_files
from kiosk.config import load_settings
from kiosk.errors import PermissionDeniedError, ValidationError
from kiosk.services.context import App
from kiosk.services.importing import import_roster
from kiosk.vision.image_io import read_image

from tests.conftest import add_test_staff, shared_engine, staff_actor
from tests.test_audit_chain import check_two_process_chain
from tests.test_postgres import pg_url  # noqa: F401  (the throwaway cluster of this module)

pytestmark = pytest.mark.postgres
_N = itertools.count()


@pytest.fixture
def pg_app(env, pg_url, monkeypatch):  # noqa: F811
    """A fresh database of the cluster; KIOSK_DATABASE_URL set for child processes."""
    name = f"safety{next(_N)}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = pg_url.replace("/kiosk?", f"/{name}?")
    monkeypatch.setenv("KIOSK_DATABASE_URL", url)
    app = App(load_settings(database_url=url), engine=shared_engine("sface"))
    yield app
    app.close()


def test_two_processes_appending_keep_one_chain_on_postgresql(pg_app):
    check_two_process_chain(pg_app)


def test_too_long_and_nul_values_name_the_field_on_postgresql(pg_app, formats):
    from kiosk.db.models import Resident

    import_roster(pg_app, formats / "roster.example.csv")
    with pytest.raises(ValidationError, match=r"居民的姓名（residents.name）太长"):
        with pg_app.db.session() as s:
            s.get(Resident, "R0001").name = "张" * 101
    with pytest.raises(ValidationError, match="空字符"):
        with pg_app.db.session() as s:
            s.get(Resident, "R0001").emergency_contact = "李明\x00"
    # past the ORM (a raw statement): PostgreSQL's own refusals are mapped too, never raw
    with pytest.raises(ValidationError, match="太长"):
        with pg_app.db.session() as s:
            s.execute(text("UPDATE residents SET phone = :p WHERE id = 'R0001'"), {"p": "1" * 41})
    with pytest.raises(ValidationError, match="空字符"):
        with pg_app.db.session() as s:
            s.execute(text("UPDATE residents SET phone = :p WHERE id = 'R0001'"), {"p": "138\x00"})
    with pg_app.db.session() as s:
        r = s.get(Resident, "R0001")
        assert r.name == "张桂兰" and r.phone == "13800000001"


def test_erasure_reaches_another_app_within_two_seconds_on_postgresql(pg_app, formats, obama, biden):
    import_roster(pg_app, formats / "roster.example.csv")
    add_test_staff(pg_app)
    enroll_files(pg_app, "R0001", [obama[0]], consent="self", actor=staff_actor(pg_app))
    other = App(load_settings(database_url=pg_app.settings.db_url,
                              home=pg_app.settings.home.parent / "terminal2"), engine=shared_engine("sface"))
    emb = other.engine.observe_still(read_image(obama[1])).embedding
    assert other.faces.match(emb).resident_id == "R0001"
    res = pg_app.residents.erase_faces("R0001", staff_actor(pg_app, "SUP"))
    t0 = time.monotonic()
    assert res["templates_removed"] == 1 and res["wal_truncated"] is None      # PostgreSQL: see README
    while other.faces.match(emb).status == "matched":
        assert time.monotonic() - t0 < 2.0
        time.sleep(0.02)
    other.close()


def test_lockout_is_kept_in_the_store_on_postgresql(pg_app):
    add_test_staff(pg_app)
    for _ in range(5):
        with pytest.raises(PermissionDeniedError):
            pg_app.auth.verify("S01", "0000")
    restarted = App(load_settings(database_url=pg_app.settings.db_url), engine=shared_engine("sface"))
    with pytest.raises(PermissionDeniedError, match="错误次数过多"):
        restarted.auth.verify("S01", "1234")
    from kiosk.db.models import PinLockout
    with restarted.db.session() as s:
        assert s.scalars(select(PinLockout.key)).all() == ["staff:S01"]
    restarted.close()
