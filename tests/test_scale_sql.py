"""The month's reports at scale (issue 21, point 6) take one pass over the month's orders
on PostgreSQL; these tests hold that the one-pass SQL gives exactly what the plain
queries (kept for SQLite, the terminal's store) give, on a seeded month on PostgreSQL."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

from kiosk.bench.pgcluster import PostgresCluster
from kiosk.config import load_settings
from kiosk.db.models import Canteen, DistrictFlag, Order, OrderVoid, Resident
from kiosk.services.context import App
from kiosk.timeutil import CST

pytestmark = pytest.mark.postgres

TIERS = ("八十岁及以上", "六十至七十九岁", None)


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory):
    from kiosk.services.security import generate_key

    with PostgresCluster(fsync=False, prefix="kiosk-pg-scale-") as cluster:
        app = App(load_settings(home=tmp_path_factory.mktemp("scale") / "home", template_key=generate_key(),
                                database_url=cluster.url))
        seed_month(app)
        yield app
        app.close()


def seed_month(app, seed: int = 21) -> None:
    """November 2026 and the days around it: 40 residents at 4 canteens, three tiers (one
    without a tier), unsubsidised meals (a tier with none subsidised), voids, subsidy
    charge-backs (one order charged back twice), an accepted flag and a balance flag."""
    rnd = random.Random(seed)
    with app.db.session() as s:
        for c in ("C1", "C2", "C3", "C4"):
            s.add(Canteen(id=c, name=f"食堂{c}", district="武侯区"))
        for i in range(40):
            s.add(Resident(id=f"R{i:03d}", name=f"居民{i}", id_number=f"510107194{i:03d}150024"[:18],
                           hukou="武侯区" if i % 5 else "青羊区", categories=[]))
        s.flush()
        orders = []
        for n in range(900):
            day = date(2026, 10, 29) + timedelta(days=rnd.randrange(36))      # some outside the month
            i = rnd.randrange(40)
            tier = TIERS[i % 3]
            sub = 0 if (tier is None and n % 2) or n % 11 == 0 else (500 if i % 3 == 0 else 300)
            if i == 7:                                   # R007: only unsubsidised meals, in a tier of its own
                tier, sub = "暂停补贴", 0
            total = 1000 + 100 * rnd.randrange(8)
            at = datetime(day.year, day.month, day.day, 11, 0, tzinfo=CST) + timedelta(minutes=n % 90)
            o = Order(id=f"O{n:04d}", idempotency_key=f"k{n}", resident_id=f"R{i:03d}",
                      canteen_id=f"C{1 + (i + (n % 7 == 0)) % 4}", terminal_id=None, meal_date=day, meal="午餐",
                      total_fen=total, subsidy_fen=sub, to_pay_fen=total - sub, pay_method="cash", tier=tier,
                      reason="", identified_by="face", created_at=at)
            orders.append(o)
            s.add(o)
        s.flush()
        for o in orders[::37]:
            s.add(OrderVoid(order_id=o.id, staff_id="A1", reason="点错"))
        for k, o in enumerate(o for o in orders[5::23] if o.subsidy_fen > 0):
            kind = ("daily_meals", "monthly_amount", "balance")[k % 3]
            decision = ("charge_back", "accept", "charge_back", None)[k % 4]
            s.add(DistrictFlag(order_id=o.id, resident_id=o.resident_id, meal_date=o.meal_date, kind=kind,
                               over_fen=150 + k * 40, order_ids=[o.id], decision=decision))
            if k % 5 == 0:                               # a second charge-back on the same order
                s.add(DistrictFlag(order_id=o.id, resident_id=o.resident_id, meal_date=o.meal_date,
                                   kind="monthly_amount", over_fen=400, order_ids=[o.id], decision="charge_back"))


def test_the_one_pass_monthly_report_equals_the_plain_queries(pg_app):
    from kiosk.services import reports as r
    from kiosk.timeutil import month_bounds, parse_month

    first, last = month_bounds(parse_month("2026-11"))
    with pg_app.db.session() as s:
        plain = r._plain_rows(s, first, last)
        per_res, tiers, canteens, where = r._grouped_rows(s, first, last, True)
        plain_where = r._canteens_of(s, first, last)
        backs = r.charge_backs(s, first, last)
    norm = lambda rows: [tuple(int(v) if isinstance(v, (int,)) or type(v).__name__ == "Decimal" else v for v in row)
                         for row in rows]
    assert norm(per_res) == norm(plain[0])
    assert norm(tiers) == norm(plain[1])
    assert norm(canteens) == norm(plain[2])
    assert where == plain_where
    # the seeded month has what the comparison must cover
    assert len(per_res) == 40 and {t[0] for t in tiers} >= {"八十岁及以上", "六十至七十九岁", None}
    assert "暂停补贴" not in {t[0] for t in tiers}            # a tier without a subsidised meal is not listed
    assert any(len(v) > 1 for v in where.values()) and backs
    a = r._report(first, *plain, backs).to_json()
    b = r.monthly_subsidy(pg_app, "2026-11").to_json()
    assert a == b and b["charged_back_fen"] > 0 and b["meals"] < 900


def test_the_console_table_lists_each_residents_canteens_from_the_same_pass(pg_app):
    from kiosk.district.domain.reports import monthly_table

    rep = monthly_table(pg_app, "2026-11")
    rows = {row[0]: row for row in rep.sheets[0].rows}
    with pg_app.db.session() as s:
        from sqlalchemy import select

        from kiosk.district.domain.reports import _not_voided
        pairs = s.execute(select(Order.resident_id, Canteen.name).join(Canteen, Canteen.id == Order.canteen_id)
                          .where(Order.meal_date >= date(2026, 11, 1), Order.meal_date <= date(2026, 11, 30),
                                 _not_voided()).distinct()).all()
    expect: dict[str, set] = {}
    for rid, name in pairs:
        expect.setdefault(rid, set()).add(name)
    assert {rid: set(row[5].split("、")) for rid, row in rows.items()} == expect


# ---------------------------------------------------------------------- the anomaly scan, one pass
@pytest.fixture(scope="module")
def anomaly_cluster():
    with PostgresCluster(db=None, fsync=False, prefix="kiosk-pg-scale-an-") as cluster:
        yield cluster


@pytest.fixture
def app(env, anomaly_cluster):
    """The shop of tests/conftest.py on PostgreSQL (a database of its own per test)."""
    from tests.conftest import shared_engine

    a = App(load_settings(database_url=anomaly_cluster.new_db()), engine=shared_engine("sface"))
    yield a
    a.close()


from tests.test_anomalies import DEAD, NO_LIVE, TRAVELLER, Month, district_store  # noqa: E402,F401


def test_the_one_pass_scan_finds_what_the_per_kind_queries_find(district_store):  # noqa: F811
    """The seeded month of tests/test_anomalies.py (every kind), with a second burst on
    another terminal, on PostgreSQL: ``scan`` (one grouped pass, the bursts' rows in one
    semi-join over arrays) gives exactly the leads of the per-kind queries it replaced."""
    from kiosk.district.domain import anomalies as an

    app = district_store
    assert app.db.engine.dialect.name == "postgresql"
    nov = Month(app, 2026, 11)
    nov.normal(card_days_c2=20)
    nov.meal(DEAD, 16, 11, 30, "C1")
    nov.meal(TRAVELLER, 5, 12, 0, "C1")
    nov.meal(TRAVELLER, 5, 12, 10, "C3")
    for i in range(10, 20):
        nov.meal(i, 20, 14, i % 5, "C3", by="card", subsidy=0)
        nov.meal(i, 21, 14, i % 4, "C1", by="staff", subsidy=0)
    for o in nov.rows:
        if o.resident_id == NO_LIVE:
            o.liveness_passed = False
    nov.save()
    new, old = an.scan(app, "2026-11"), an.scan(app, "2026-11", one_pass=False)
    assert new["anomalies"] == old["anomalies"] and new["counts"] == old["counts"]
    assert all(new["counts"][k] >= 1 for k in an.KINDS) and new["counts"]["burst"] == 2
