"""The same store code on PostgreSQL (KIOSK_DATABASE_URL). A throwaway cluster is started
in a temporary folder (kiosk.bench.pgcluster.PostgresCluster, shared with the district tests
and the benchmark); install.sh --test installs the server."""
from datetime import datetime

import pytest
from sqlalchemy import select

from kiosk.bench.pgcluster import PostgresCluster
from kiosk.config import load_settings
from kiosk.services.context import App
from kiosk.services.importing import import_menu, import_policy, import_roster
from kiosk.timeutil import CST

from tests.billing_helpers import settle_at_once
from tests.conftest import add_test_staff, shared_engine, staff_actor

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url():
    """A throwaway cluster with a database ``kiosk`` (kiosk.bench.pgcluster.PostgresCluster):
    its URL. Other modules import this fixture and make more databases beside ``kiosk``."""
    with PostgresCluster(fsync=False) as cluster:
        yield cluster.url


def test_store_and_checkout_on_postgresql(env, pg_url, formats, obama, biden):
    from kiosk.enrollment.batch import enroll_files

    app = App(load_settings(database_url=pg_url), engine=shared_engine("sface"))
    assert app.db.engine.dialect.name == "postgresql"
    import_policy(app, formats / "policy.example.yaml")
    import_menu(app, formats / "menu.example.csv")
    assert import_roster(app, formats / "roster.example.csv").created == ["R0001", "R0002", "R0003"]
    assert import_roster(app, formats / "roster.example.csv").unchanged == ["R0001", "R0002", "R0003"]
    add_test_staff(app)
    at = datetime(2026, 11, 23, 12, 5, tzinfo=CST)
    r = app.billing.settle("R0001", ["D001", "D005"], at=at, idempotency_key="pg-1")
    assert (r.total_fen, r.subsidy_fen, r.to_pay_fen) == (1300, 500, 800)
    assert app.billing.settle("R0001", ["D001", "D005"], at=at, idempotency_key="pg-1").order_id == r.order_id
    assert app.billing.quote("R0001", ["D001"], at=at).quote.reason == "今日已享受补贴"
    app.billing.void(r.order_id, "测试", staff_actor(app))
    assert app.billing.quote("R0001", ["D001"], at=at).quote.subsidy_fen == 500
    enroll_files(app, "R0001", [obama[0]], consent="self", actor=staff_actor(app))
    assert app.faces.identify_file(obama[1]).resident_id == "R0001"
    assert app.faces.identify_file(biden).status == "unknown"
    from kiosk.db.models import Order
    with app.db.session() as s:
        created = s.scalars(select(Order)).one().created_at
    assert created.tzinfo is not None            # timestamps keep their time zone
    from kiosk.services.reports import monthly_subsidy
    app.billing.settle("R0002", ["D003"], at=at)
    rep = monthly_subsidy(app, "2026-11")
    assert (rep.meals, rep.subsidized_meals, rep.subsidy_fen) == (1, 1, 600)   # the voided order left out
    app.close()


def test_two_terminals_at_once_on_postgresql(env, pg_url, formats, monkeypatch):
    """Two terminals on one PostgreSQL store settle a lunch for one elder at the same
    moment: the row lock on the resident makes the second wait and see the first's subsidy."""
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text("CREATE DATABASE race"))
    admin.dispose()
    url = pg_url.replace("/kiosk?", "/race?")
    apps = [App(load_settings(database_url=url), engine=shared_engine("sface")) for _ in range(2)]
    try:
        import_policy(apps[0], formats / "policy.example.yaml")
        import_menu(apps[0], formats / "menu.example.csv")
        import_roster(apps[0], formats / "roster.example.csv")
        receipts = settle_at_once(apps, "R0001", ["D001"], datetime(2026, 11, 23, 12, 5, tzinfo=CST), monkeypatch)
    finally:
        for a in apps:
            a.close()
    assert sorted(r.subsidy_fen for r in receipts) == [0, 500]
