"""异常线索: each kind found in a seeded month and not in a normal one, the thresholds an
admin sets (audited), the command line and the console page."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from kiosk.db.models import AuditEntry, Canteen, FaceTemplate, Order, Resident
from kiosk.district.domain import anomalies as an
from kiosk.timeutil import CST

from tests.conftest import STAFF_PINS, staff_actor

N = 36                      # residents R100..R135; R100+i eats at canteen C{i % 3 + 1}
OLD = {0, 1, 2}             # born 1938: over 80
DEAD, SUSPENDED, TRAVELLER, NO_LIVE = "R105", "R106", "R107", "R100"


def rid(i: int) -> str:
    return f"R{100 + i}"


def home(i: int) -> str:
    return f"C{i % 3 + 1}"


@pytest.fixture
def district_store(shop, obama):
    """Three canteens, N residents all face-enrolled (one real photo enrolled with the real
    model; its template row copied to the others: the scan reads only who is enrolled)."""
    from kiosk.enrollment.batch import enroll_files

    app = shop
    assert enroll_files(app, "R0001", [obama[0]], consent="self", actor=staff_actor(app, "ADM")).enrolled
    with app.db.session() as s:
        t = s.scalars(select(FaceTemplate)).first()
        for c in ("C1", "C2", "C3"):
            if s.get(Canteen, c) is None:
                s.add(Canteen(id=c, name=f"食堂{c}", district="武侯区"))
        for i in range(N):
            s.add(Resident(id=rid(i), name=f"居民{i}", birth_date=date(1938 if i in OLD else 1955, 3, 1),
                           hukou="武侯区", categories=[]))
        s.flush()
        for i in range(N):
            s.add(FaceTemplate(resident_id=rid(i), contract_id=t.contract_id, backend=t.backend,
                               embedding_enc=t.embedding_enc, quality=t.quality))
        r = s.get(Resident, DEAD)
        r.roster_status, r.status_date = "deceased", date(2026, 11, 15)
        r = s.get(Resident, SUSPENDED)
        r.roster_status, r.status_date = "suspended", date(2026, 10, 10)
    return app


class Month:
    def __init__(self, app, year: int, month: int) -> None:
        self.app, self.year, self.month, self.rows, self.n = app, year, month, [], 0

    def meal(self, i_or_rid, day: int, hh: int, mm: int, canteen: str | None = None, *, by: str = "face",
             live: bool | None = None, subsidy: int = 500) -> str:
        r = i_or_rid if isinstance(i_or_rid, str) else rid(i_or_rid)
        c = canteen or home(int(r[1:]) - 100)
        self.n += 1
        oid = f"O{self.year}{self.month:02d}-{self.n:05d}"
        at = datetime(self.year, self.month, day, hh, 0, tzinfo=CST) + timedelta(minutes=mm)
        self.rows.append(Order(id=oid, idempotency_key=oid, resident_id=r, canteen_id=c, terminal_id=f"{c}-T1",
                               meal_date=at.date(), meal="午餐" if hh < 15 else "晚餐", total_fen=1500,
                               subsidy_fen=subsidy, to_pay_fen=1500 - subsidy, pay_method="cash", reason="",
                               identified_by=by, created_at=at, face_verified=by == "face",
                               liveness_passed=(by == "face") if live is None else live))
        return oid

    def normal(self, days: int = 28, card_days_c2: int = 0) -> None:
        """Every elder's lunch at home; a few pay by card now and then, spread out."""
        for d in range(1, days + 1):
            for i in range(N):
                if rid(i) == SUSPENDED and date(self.year, self.month, d) >= date(2026, 10, 10):
                    self.meal(i, d, 11, 2 * i, subsidy=0)        # suspended: eats, without subsidy
                    continue
                if rid(i) == DEAD and date(self.year, self.month, d) >= date(2026, 11, 15):
                    continue
                card = (i % 10 == 3 and d % 7 == 0) or (home(i) == "C2" and d <= card_days_c2)
                self.meal(i, d, 11, 2 * i, by="card" if card else "face")
            self.meal(1, d, 18, 0, "C2")                          # R101: dinner at C2, hours after lunch

    def save(self) -> None:
        with self.app.db.session() as s:
            s.add_all(self.rows)


def kinds(rep: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {k: [] for k in an.KINDS}
    for a in rep["anomalies"]:
        out[a["kind"]].append(a)
    return out


def test_a_normal_month_has_no_leads_and_a_seeded_month_has_each_kind(district_store):
    app = district_store
    oct_ = Month(app, 2026, 10)
    oct_.normal()
    oct_.save()
    nov = Month(app, 2026, 11)
    nov.normal(card_days_c2=20)                                   # C2's enrolled elders mostly by card
    late = [nov.meal(DEAD, 16, 11, 30, "C1"), nov.meal(DEAD, 17, 11, 30, "C1")]
    hop = (nov.meal(TRAVELLER, 5, 12, 0, "C1"), nov.meal(TRAVELLER, 5, 12, 10, "C3"))
    burst = [nov.meal(i, 20, 14, i % 5, "C3", by="card", subsidy=0) for i in range(10, 20)]
    nolive = [o.id for o in nov.rows if o.resident_id == NO_LIVE]
    for o in nov.rows:
        if o.resident_id == NO_LIVE:
            o.liveness_passed = False                             # a photo held up, every day
    nov.save()

    normal = an.scan(app, "2026-10")
    assert normal["anomalies"] == [] and set(normal["counts"].values()) == {0}

    rep = an.scan(app, "2026-11")
    k = kinds(rep)
    for a in rep["anomalies"]:
        assert set(a) >= {"kind", "canteen_id", "resident_ids", "order_ids", "detail"}
        assert "\n" not in a["detail"] and a["detail"]
    [a] = k["after_status"]
    assert (a["canteen_id"], a["resident_ids"], a["order_ids"]) == ("C1", [DEAD], late)
    assert "死亡" in a["detail"] and "2026-11-15" in a["detail"]
    [a] = k["too_close"]
    assert (a["canteen_id"], a["resident_ids"], a["order_ids"]) == ("C3", [TRAVELLER], list(hop))
    assert "10分钟后" in a["detail"]
    [a] = k["burst"]
    assert a["canteen_id"] == "C3" and sorted(a["order_ids"]) == sorted(burst)
    assert sorted(a["resident_ids"]) == sorted(rid(i) for i in range(10, 20))
    [a] = k["nonface_share"]
    assert a["canteen_id"] == "C2" and a["order_ids"] and "未刷脸" in a["detail"]
    assert all(r in {rid(i) for i in range(N) if home(i) == "C2"} | {rid(1)} for r in a["resident_ids"])
    [a] = k["no_liveness"]
    assert (a["canteen_id"], a["resident_ids"]) == ("C1", [NO_LIVE]) and sorted(a["order_ids"]) == sorted(nolive)
    assert "88岁" in a["detail"]


def test_thresholds_change_what_is_found(district_store):
    app = district_store
    nov = Month(app, 2026, 11)
    nov.normal(days=3)
    nov.meal(TRAVELLER, 2, 12, 0, "C1")
    nov.meal(TRAVELLER, 2, 12, 25, "C3")
    [nov.meal(i, 3, 15, i, "C3", by="phone", subsidy=0) for i in range(5)]
    nov.save()
    rep = kinds(an.scan(app, "2026-11"))
    assert len(rep["too_close"]) == 1 and rep["burst"] == []
    th = an.set_thresholds(app, {"travel_minutes": "20", "burst_elders": 5}, staff_actor(app, "ADM"))
    assert (th.travel_minutes, th.burst_elders) == (20, 5)
    rep = kinds(an.scan(app, "2026-11"))
    assert rep["too_close"] == [] and len(rep["burst"]) == 1
    with app.db.session() as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "anomalies.set_thresholds")).one()
        assert (e.actor, e.subject, e.detail["new"]) == ("ADM", "武侯区", {"travel_minutes": 20, "burst_elders": 5})
        assert e.detail["old"] == {"travel_minutes": 30, "burst_elders": 8}
    from kiosk.errors import PermissionDeniedError, ValidationError
    with pytest.raises(PermissionDeniedError):
        an.set_thresholds(app, {"travel_minutes": 5}, staff_actor(app, "SUP"))
    with pytest.raises(ValidationError, match="1 到 600"):
        an.set_thresholds(app, {"travel_minutes": 0}, staff_actor(app, "ADM"))
    with pytest.raises(ValidationError, match="没有名为"):
        an.set_thresholds(app, {"nonsense": 3}, staff_actor(app, "ADM"))


def test_cli_reports_and_sets_thresholds_with_admin_proof(district_store, capsys, monkeypatch):
    from kiosk.cli.main import main

    app = district_store
    nov = Month(app, 2026, 11)
    nov.normal(days=2)
    nov.meal(DEAD, 16, 11, 30, "C1")
    nov.save()
    assert main(["report", "anomalies", "--month", "2026-11", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [a["kind"] for a in rep["anomalies"]] == ["after_status"] and rep["thresholds"]["travel_minutes"] == 30
    assert main(["report", "anomalies", "--set", "status_grace_days=3", "--json"]) == 2     # no --staff
    assert "--staff" in json.loads(capsys.readouterr().out)["error"]
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["S01"])
    assert main(["report", "anomalies", "--set", "status_grace_days=3", "--staff", "S01", "--json"]) == 2
    capsys.readouterr()
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])
    assert main(["report", "anomalies", "--set", "status_grace_days=3", "--staff", "ADM", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["thresholds"]["status_grace_days"] == 3
    assert main(["report", "anomalies", "--month", "2026-11", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["anomalies"] == []          # 11-16 is within the grace days


def test_rules_are_pure_on_rows():
    th = an.Thresholds()
    t = datetime(2026, 11, 5, 12, 0, tzinfo=CST)
    cs = [an.Checkout(f"O{i}", f"R{i % 7}", "T1", "C1", t + timedelta(seconds=30 * i), "card") for i in range(20)]
    # only 7 different elders: no burst at 8
    assert an.find_bursts(cs, th) == []
    assert len(an.find_bursts(cs, an.Thresholds(burst_elders=7))) == 1
    face = [an.Checkout(f"F{i}", f"R{i}", "T1", "C1", t + timedelta(seconds=10 * i), "face") for i in range(20)]
    assert an.find_bursts(face, th) == []
    shares = [an.CanteenShare("C1", 100, 5), an.CanteenShare("C2", 100, 6), an.CanteenShare("C3", 100, 40)]
    assert [a.canteen_id for a in an.find_nonface_share(shares, th)] == ["C3"]
    assert an.find_nonface_share(shares, an.Thresholds(nonface_min_share_pct=50)) == []
