"""The lists a district office needs, from the data the kiosk already has: daily
sales per canteen and dish, welfare alerts (关爱巡访), 高龄津贴 proof of life, the
face data register, terminals and the audit log. Pure reads, except marking a
welfare visit and the district's alert setting (both audited)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from kiosk.db import audit
from kiosk.db.models import (AuditEntry, Canteen, FaceConsent, FaceTemplate, Order, OrderLine, OrderVoid,
                         Resident, Staff, Terminal)
from kiosk.errors import NotFoundError, ValidationError
from kiosk.timeutil import CST, age_on, month_bounds, now_cst, parse_month, to_cst
from kiosk.services.report_files import Money, Sheet, TableReport
from kiosk.services.reports import mask_id, monthly_with_canteens
from kiosk.district.domain.reconcile import AMOUNT_ZH, BALANCE, GROUP_ZH, SUBSIDY, decide, reconcile

FILING_LINE = 100_000          # faces stored before the register must be filed (备案)
FILING_WARN_SHARE = 0.8
WELFARE_DEFAULT_DAYS = 3
WELFARE_CATEGORIES = ("独居", "空巢", "失能", "孤寡")
REGULAR_MEALS = 3              # meals in the 30 days up to the last one that make a "regular"
PROOF_MIN_AGE = 80


def _not_voided():
    return ~select(OrderVoid.id).where(OrderVoid.order_id == Order.id).exists()


def canteen_names(session) -> dict[str, str]:
    return dict(session.execute(select(Canteen.id, Canteen.name)).all())


def _has_category(cats: list | None, wanted: tuple[str, ...]) -> list[str]:
    out = []
    for c in cats or []:
        base = str(c).replace("：", ":").split(":", 1)[0]
        if base in wanted:
            out.append(str(c))
    return out


# ---------------------------------------------------------------------- monthly
def monthly_table(app, month: str) -> TableReport:
    """The monthly subsidy reimbursement report (月度助餐补贴结算表) as a table report."""
    rep, canteens_of = monthly_with_canteens(app, month)      # one pass over the month's orders
    with app.db.session(read_only=True) as s:
        names = canteen_names(s)
    where: dict[str, list[str]] = {rid: [names.get(c, c) for c in cids] for rid, cids in (canteens_of or {}).items()}
    residents = Sheet("明细（每位居民）", ["居民编号", "姓名", "身份证号", "户籍", "档次", "就餐食堂", "就餐次数",
                                     "补贴次数", "补贴金额(元)", "追回(元)", "应报销补贴(元)", "自付金额(元)"],
                      [[r["resident_id"], r["name"], r["id_number"], r["hukou"], r["tier"] or "",
                        "、".join(sorted(where.get(r["resident_id"], []))), r["meals"], r["subsidized_meals"],
                        Money(r["subsidy_fen"]), Money(r["charged_back_fen"]), Money(r["net_subsidy_fen"]),
                        Money(r["paid_fen"])] for r in rep.residents])
    tiers = Sheet("按补贴档次", ["档次", "补贴次数", "补贴金额(元)", "追回(元)", "应报销补贴(元)"],
                  [[t["tier"] or "", t["meals"], Money(t["subsidy_fen"]), Money(t["charged_back_fen"]),
                    Money(t["net_subsidy_fen"])] for t in rep.by_tier])
    canteens = Sheet("按食堂", ["食堂编号", "食堂", "就餐次数", "补贴金额(元)", "追回(元)", "应报销补贴(元)"],
                     [[c["canteen_id"], names.get(c["canteen_id"], ""), c["meals"], Money(c["subsidy_fen"]),
                       Money(c["charged_back_fen"]), Money(c["net_subsidy_fen"])] for c in rep.by_canteen])
    return TableReport(f"{rep.month} 助餐补贴结算表",
                       "作废订单不计入；追回：区办公室对账时决定不予报销的超出补贴；身份证号已部分隐藏",
                       [("就餐次数", rep.meals), ("补贴次数", rep.subsidized_meals),
                        ("补贴合计(元)", Money(rep.subsidy_fen)), ("追回(元)", Money(rep.charged_back_fen)),
                        ("应报销补贴(元)", Money(rep.net_subsidy_fen)), ("自付合计(元)", Money(rep.paid_fen))],
                       [residents, tiers, canteens])


# ---------------------------------------------------------------------- daily sales
def daily_sales(app, day: date) -> TableReport:
    """Orders and money per canteen, portions per dish (for the kitchens' planning)."""
    with app.db.session(read_only=True) as s:
        names = canteen_names(s)
        per_canteen = s.execute(
            select(Order.canteen_id, Order.meal, func.count(), func.sum(Order.total_fen), func.sum(Order.subsidy_fen),
                   func.sum(Order.to_pay_fen))
            .where(Order.meal_date == day, _not_voided())
            .group_by(Order.canteen_id, Order.meal).order_by(Order.canteen_id, Order.meal)).all()
        per_dish = s.execute(
            select(Order.canteen_id, Order.meal, OrderLine.dish_id, OrderLine.name, func.sum(OrderLine.quantity),
                   func.sum(OrderLine.quantity * OrderLine.price_fen))
            .join(Order, Order.id == OrderLine.order_id)
            .where(Order.meal_date == day, _not_voided())
            .group_by(Order.canteen_id, Order.meal, OrderLine.dish_id, OrderLine.name)
            .order_by(Order.canteen_id, Order.meal, func.sum(OrderLine.quantity).desc(), OrderLine.dish_id)).all()
    canteens = Sheet("按食堂", ["食堂", "餐次", "订单数", "营业额(元)", "补贴(元)", "自付(元)"],
                     [[names.get(c, c), m, int(n), Money(int(t or 0)), Money(int(sb or 0)), Money(int(p or 0))]
                      for c, m, n, t, sb, p in per_canteen])
    dishes = Sheet("按菜品（份数）", ["食堂", "餐次", "菜品编号", "菜名", "份数", "金额(元)"],
                   [[names.get(c, c), m, d, nm, int(q or 0), Money(int(a or 0))] for c, m, d, nm, q, a in per_dish])
    total = sum(r[3].fen for r in canteens.rows)
    return TableReport(f"{day} 每日销售", "作废订单不计入", [("订单数", sum(r[2] for r in canteens.rows)),
                                                     ("营业额(元)", Money(total))], [canteens, dishes])


# ---------------------------------------------------------------------- welfare
def welfare_days(app, district: str | None) -> int:
    from kiosk.db.models import DistrictSetting

    if not district:
        return WELFARE_DEFAULT_DAYS
    with app.db.session(read_only=True) as s:
        row = s.get(DistrictSetting, district)
        return row.welfare_days if row is not None and row.welfare_days else WELFARE_DEFAULT_DAYS


def set_welfare_days(app, district: str, days: int, staff_id: str) -> None:
    from kiosk.db.models import DistrictSetting

    if not district or not district.strip():
        raise ValidationError("请填写区名", detail="empty district")
    if not 1 <= int(days) <= 60:
        raise ValidationError("未就餐天数应在 1 到 60 之间", detail=f"days {days}")
    with app.db.session() as s:
        row = s.get(DistrictSetting, district.strip())
        old = row.welfare_days if row else None
        if row is None:
            s.add(DistrictSetting(district=district.strip(), welfare_days=int(days), updated_by=staff_id))
        else:
            row.welfare_days, row.updated_by, row.updated_at = int(days), staff_id, now_cst()
        audit.record(s, staff_id, "welfare.set_days", district.strip(), old=old, new=int(days))


def district_days(app) -> dict[str, int]:
    from kiosk.db.models import DistrictSetting

    with app.db.session(read_only=True) as s:
        return {r.district: r.welfare_days for r in s.scalars(select(DistrictSetting))}


@dataclass
class WelfareAlert:
    resident_id: str
    name: str
    categories: list[str]
    district: str | None
    last_meal: date
    last_canteen: str
    days_without_meal: int
    threshold_days: int
    phone: str | None
    emergency_contact: str | None
    last_visit: dict | None

    def to_json(self) -> dict:
        d = self.__dict__.copy()
        d["last_meal"] = self.last_meal.isoformat()
        return d


def welfare_alerts(app, today: date | None = None, days: int | None = None) -> list[WelfareAlert]:
    """Regulars who live alone or are 空巢/失能/孤寡 and have not eaten at any canteen
    for N days (N per district, set by the admin; ``days`` overrides it). A few grouped
    queries per 500 residents, not a few per resident (10^5 residents: docs/benchmarks.md)."""
    import json

    from sqlalchemy import String, cast, or_

    from kiosk.db.models import WelfareVisit

    today = today or now_cst().date()
    per_district = {} if days is not None else district_days(app)
    out: list[WelfareAlert] = []
    with app.db.session(read_only=True) as s:
        names = canteen_names(s)
        # a first sieve in SQL over the JSON text (the words as written or \\u-escaped); _has_category decides
        cats = cast(Resident.categories, String)
        words = [w for c in WELFARE_CATEGORIES for w in (c, json.dumps(c)[1:-1])]
        residents = [r for r in s.execute(
            select(Resident.id, Resident.name, Resident.categories, Resident.hukou, Resident.phone,
                   Resident.emergency_contact)
            .where(Resident.status != "suspended", or_(*[cats.contains(w, autoescape=True) for w in words]))
            .order_by(Resident.id)).all()
            if _has_category(r.categories, WELFARE_CATEGORIES)]
        if not residents:
            return []
        ids = [r.id for r in residents]
        last = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for rid, d in s.execute(select(Order.resident_id, func.max(Order.meal_date))
                                    .where(Order.resident_id.in_(chunk), Order.meal_date <= today, _not_voided())
                                    .group_by(Order.resident_id)).all():
                last[rid] = d
        due = []
        for r in residents:
            d = last.get(r.id)
            if d is None:
                continue       # never ate at a canteen: not a regular
            n = days if days is not None else per_district.get(r.hukou or "", WELFARE_DEFAULT_DAYS)
            if (today - d).days >= n:
                due.append((r, d, n))
        staff = dict(s.execute(select(Staff.id, Staff.name)).all()) if due else {}
        # per last-meal day and 500 residents: one count of the meals in the 30 days up to it, one
        # read of that day's meals (the last canteen), one of the visits; a row or two per resident
        by_day: dict[date, list] = defaultdict(list)
        for r, d, n in due:
            by_day[d].append((r, d, n))
        for d, group in sorted(by_day.items()):
            for i in range(0, len(group), 500):
                chunk = group[i:i + 500]
                rids = [r.id for r, _, _ in chunk]
                regular = dict(s.execute(select(Order.resident_id, func.count())
                                         .where(Order.resident_id.in_(rids), Order.meal_date > d - timedelta(days=30),
                                                Order.meal_date <= d, _not_voided())
                                         .group_by(Order.resident_id)).all())
                last_canteen: dict[str, tuple] = {}
                for rid, cid, at in s.execute(select(Order.resident_id, Order.canteen_id, Order.created_at)
                                              .where(Order.resident_id.in_(rids), Order.meal_date == d,
                                                     _not_voided())).all():
                    if rid not in last_canteen or at > last_canteen[rid][0]:
                        last_canteen[rid] = (at, cid)
                visits: dict[str, object] = {}
                for v in s.scalars(select(WelfareVisit).where(WelfareVisit.resident_id.in_(rids))
                                   .order_by(WelfareVisit.resident_id, WelfareVisit.visited_at.desc())):
                    visits.setdefault(v.resident_id, v)
                for r, _, n in chunk:
                    if regular.get(r.id, 0) < REGULAR_MEALS:
                        continue
                    lc = last_canteen.get(r.id)
                    v = visits.get(r.id)
                    visit = None
                    if v is not None:
                        visit = {"at": to_cst(v.visited_at).strftime("%Y-%m-%d %H:%M"), "staff_id": v.staff_id,
                                 "staff_name": staff.get(v.staff_id, ""), "note": v.note,
                                 "after_last_meal": to_cst(v.visited_at).date() >= d}
                    out.append(WelfareAlert(r.id, r.name, _has_category(r.categories, WELFARE_CATEGORIES), r.hukou,
                                            d, names.get(lc[1], lc[1]) if lc else "", (today - d).days, n, r.phone,
                                            r.emergency_contact, visit))
    out.sort(key=lambda a: (bool(a.last_visit and a.last_visit["after_last_meal"]), -a.days_without_meal,
                            a.resident_id))
    return out


def mark_visited(app, resident_id: str, staff_id: str, note: str) -> dict:
    from kiosk.db.models import WelfareVisit

    note = (note or "").strip()
    if not note:
        raise ValidationError("请写明巡访情况", detail="empty visit note")
    if len(note) > 500:
        raise ValidationError("巡访记录不能超过500字", detail="note too long")
    with app.db.session() as s:
        if s.get(Resident, resident_id) is None:
            raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r}")
        v = WelfareVisit(resident_id=resident_id, staff_id=staff_id, note=note)
        s.add(v)
        audit.record(s, staff_id, "welfare.visited", resident_id, note=note)
    return {"resident_id": resident_id, "staff_id": staff_id, "note": note}


def welfare_table(alerts: list[WelfareAlert], today: date) -> TableReport:
    rows = [[a.resident_id, a.name, "、".join(a.categories), a.district or "", str(a.last_meal), a.last_canteen,
             a.days_without_meal, a.phone or "", a.emergency_contact or "",
             (f"{a.last_visit['at']} {a.last_visit['staff_name'] or a.last_visit['staff_id']}：{a.last_visit['note']}"
              if a.last_visit else "")] for a in alerts]
    return TableReport(f"{today} 关爱巡访名单", "独居、空巢、失能、孤寡的常客，连续多日未在任何食堂就餐",
                       [("人数", len(alerts))],
                       [Sheet("巡访名单", ["居民编号", "姓名", "类别", "户籍", "最后就餐", "最后食堂", "未就餐天数",
                                         "电话", "紧急联系人", "最近巡访"], rows, total_label=None)])


# ---------------------------------------------------------------------- proof of life
def proof_of_life(app, month: str) -> list[dict]:
    """Residents aged 80+ (on the month's last day): the days with a checkout where the
    face was matched and liveness passed, and at which terminals; none = no proof this month."""
    first, last = month_bounds(parse_month(month))
    with app.db.session(read_only=True) as s:
        names = canteen_names(s)
        cutoff = date(last.year - PROOF_MIN_AGE, last.month, last.day) if not (last.month == 2 and last.day == 29) \
            else date(last.year - PROOF_MIN_AGE, 2, 28)
        residents = s.scalars(select(Resident).where(Resident.birth_date.is_not(None), Resident.birth_date <= cutoff)
                              .order_by(Resident.id)).all()
        rows = s.execute(select(Order.resident_id, Order.meal_date, Order.terminal_id, Order.canteen_id)
                         .where(Order.meal_date >= first, Order.meal_date <= last,
                                Order.face_verified.is_(True), Order.liveness_passed.is_(True))).all()
    days: dict[str, set] = defaultdict(set)
    where: dict[str, set] = defaultdict(set)
    for rid, d, term, cid in rows:
        days[rid].add(d)
        where[rid].add(f"{names.get(cid, cid)}/{term or '?'}")
    out = []
    for r in residents:
        age = age_on(r.birth_date, last)
        if age < PROOF_MIN_AGE:
            continue
        vd = sorted(days.get(r.id, ()))
        out.append({"resident_id": r.id, "name": r.name, "id_number": mask_id(r.id_number), "age": age,
                    "hukou": r.hukou, "verified_days": [d.isoformat() for d in vd], "days": len(vd),
                    "terminals": sorted(where.get(r.id, ())), "none_this_month": not vd})
    return out


def proof_table(month: str, rows: list[dict]) -> TableReport:
    none = [r for r in rows if r["none_this_month"]]
    sheet = Sheet("高龄津贴活体核验", ["居民编号", "姓名", "身份证号", "年龄", "户籍", "核验天数", "核验日期", "终端"],
                  [[r["resident_id"], r["name"], r["id_number"], r["age"], r["hukou"] or "", r["days"],
                    "、".join(d[5:] for d in r["verified_days"]), "、".join(r["terminals"])] for r in rows],
                  total_label=None)
    missing = Sheet("本月无核验记录", ["居民编号", "姓名", "身份证号", "年龄", "户籍"],
                    [[r["resident_id"], r["name"], r["id_number"], r["age"], r["hukou"] or ""] for r in none],
                    total_label=None)
    return TableReport(f"{month} 高龄津贴活体核验（80岁及以上）",
                       "核验：结算时人脸比对通过且活体检测通过；供民政部门核对",
                       [("80岁及以上人数", len(rows)), ("本月有核验", len(rows) - len(none)), ("本月无核验", len(none))],
                       [sheet, missing])


# ---------------------------------------------------------------------- face register
def face_register(app, months: int = 12, today: date | None = None) -> dict:
    """How many people's faces are stored against the filing line, and whose templates
    were not used for ``months`` months (for the retention review)."""
    today = today or now_cst().date()
    if not 1 <= months <= 120:
        raise ValidationError("月数应在 1 到 120 之间", detail=f"months {months}")
    cutoff = today - timedelta(days=round(months * 30.44))
    cutoff_at = datetime.combine(cutoff, datetime.min.time(), CST)
    with app.db.session(read_only=True) as s:
        people = s.scalar(select(func.count(func.distinct(FaceTemplate.resident_id)))) or 0
        templates = s.scalar(select(func.count()).select_from(FaceTemplate)) or 0
        # stale: every template made before the cutoff day and no face checkout on or after it
        # (an index probe per resident, ix_orders_resident_day; not a scan of every order)
        made = (select(FaceTemplate.resident_id.label("rid"), func.max(FaceTemplate.created_at).label("made"))
                .group_by(FaceTemplate.resident_id).having(func.max(FaceTemplate.created_at) < cutoff_at).subquery())
        used_since = (select(Order.id).where(Order.resident_id == made.c.rid, Order.meal_date >= cutoff,
                                             Order.identified_by == "face").exists())
        stale_made = dict(s.execute(select(made.c.rid, made.c.made).where(~used_since)).all())
        ids = sorted(stale_made)
        used: dict[str, date] = {}
        names: dict[str, str] = {}
        where: dict[str, str] = {}
        terms = terminal_labels(s)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            used.update(s.execute(select(Order.resident_id, func.max(Order.meal_date))
                                  .where(Order.resident_id.in_(chunk), Order.identified_by == "face")
                                  .group_by(Order.resident_id)).all())
            names.update(s.execute(select(Resident.id, Resident.name).where(Resident.id.in_(chunk))).all())
            for rid, tid, src in s.execute(select(FaceTemplate.resident_id, FaceTemplate.terminal_id, FaceTemplate.source)
                                           .where(FaceTemplate.resident_id.in_(chunk))
                                           .order_by(FaceTemplate.created_at)):
                where[rid] = where_recorded(tid, src, terms)       # the newest template's
        stale = [(rid, stale_made[rid], used.get(rid)) for rid in ids]
    unused = [{"resident_id": rid, "name": names.get(rid, ""), "last_used": last_use.isoformat() if last_use else None,
               "enrolled": to_cst(created).date().isoformat() if created else None, "where": where.get(rid, "")}
              for rid, created, last_use in stale]
    unused.sort(key=lambda u: (u["last_used"] or "", u["resident_id"]))
    share = people / FILING_LINE
    return {"people": people, "templates": templates, "filing_line": FILING_LINE, "share": share,
            "warning": share >= FILING_WARN_SHARE, "months": months, "cutoff": cutoff.isoformat(), "unused": unused}


SOURCE_ZH = {"desk": "登记台", "roster": "花名册导入", "kiosk": "自助终端", "enroll": "采集", "import": "花名册照片",
             "refresh": "自动更新", "reembed": "重新计算"}


def terminal_labels(session) -> dict[str, str]:
    """Each terminal as the console names it: its name and canteen (``东街1号机（东街长寿食堂）``)."""
    names = canteen_names(session)
    out = {}
    for tid, name, cid in session.execute(select(Terminal.id, Terminal.name, Terminal.canteen_id)):
        canteen = names.get(cid) or cid
        out[tid] = f"{name or tid}（{canteen}）"
    return out


def where_recorded(terminal_id: str | None, source: str | None, terminals: dict[str, str]) -> str:
    """Where a consent or a face template was recorded: the terminal that pushed it, by name,
    else (recorded at the district server itself, or before the server kept it) its source."""
    if terminal_id:
        return terminals.get(terminal_id, terminal_id)
    return f"区服务器（{SOURCE_ZH.get(source or '', source or '未知')}）"


def consents(app, resident_id: str | None = None, limit: int = 200) -> list[dict]:
    with app.db.session(read_only=True) as s:
        q = select(FaceConsent, Resident.name).join(Resident, Resident.id == FaceConsent.resident_id)
        if resident_id:
            q = q.where(FaceConsent.resident_id == resident_id)
        rows = s.execute(q.order_by(FaceConsent.created_at.desc()).limit(limit)).all()
        terms = terminal_labels(s)
    return [{"resident_id": c.resident_id, "name": n, "given_by": c.given_by, "guardian_name": c.guardian_name,
             "staff_id": c.staff_id, "text_version": c.text_version, "allows_crop": c.allows_crop,
             "source": c.source, "terminal_id": c.terminal_id, "where": where_recorded(c.terminal_id, c.source, terms),
             "created_at": to_cst(c.created_at).strftime("%Y-%m-%d %H:%M"),
             "withdrawn_at": to_cst(c.withdrawn_at).strftime("%Y-%m-%d %H:%M") if c.withdrawn_at else None}
            for c, n in rows]


def erase_faces_bulk(app, resident_ids: list[str], actor, staff_id: str) -> list[dict]:
    """Erase the face data of each listed resident. ``actor``: the admin proven by PIN
    (kiosk.services.auth); the resident service does the work and audits each erasure,
    and one more entry records the batch."""
    done = []
    for rid in resident_ids:
        done.append(app.residents.erase_faces(rid, actor))
    with app.db.session() as s:
        audit.record(s, staff_id, "faces.erase_bulk", None, residents=list(resident_ids), reason="retention review")
    return done


# ---------------------------------------------------------------------- terminals, audit
TERMINAL_FIELDS = ("last_push_at", "last_pull_at", "last_seen_at", "pending", "model", "software_version",
                   "revoked_at", "camera_state", "camera_since", "last_sale_at", "health_at")
CAMERA_ZH = {"live": "正常", "reconnecting": "重新连接中", "lost": "断开", "error": "出错", "stopped": "程序已停止",
             "unknown": "未知"}
LOW_DISK_BYTES = 2 * 1024 ** 3


def terminals(app, now: datetime | None = None) -> list[dict]:
    """Each canteen's terminals with what the server knows of them and what each reported
    of itself (software, face model, disk free, camera, last sale; absent: unknown), and a
    ``warning`` when one has not synced for an hour during its canteen's meal time."""
    from kiosk.db.models import utcnow
    from kiosk.district.domain.terminals import stale_in_meal_time

    now = now or utcnow()
    with app.db.session(read_only=True) as s:
        names = canteen_names(s)
        windows = dict(s.execute(select(Canteen.id, Canteen.meal_windows)).all())
        rows = s.scalars(select(Terminal).order_by(Terminal.canteen_id, Terminal.id)).all()
        # each terminal's last order from the end of ix_orders_terminal_at (not a scan of all orders)
        last_order = dict(s.execute(select(Terminal.id, select(func.max(Order.created_at))
                                           .where(Order.terminal_id == Terminal.id).scalar_subquery())).all())
    out = []
    for t in rows:
        d = {"id": t.id, "canteen_id": t.canteen_id, "canteen": names.get(t.canteen_id, t.canteen_id),
             "name": t.name or ""}
        for f in TERMINAL_FIELDS:
            v = getattr(t, f, None)
            if isinstance(v, datetime):
                v = to_cst(v).strftime("%Y-%m-%d %H:%M")
            d[f] = v
        syncs = [x for x in (getattr(t, "last_push_at", None), getattr(t, "last_pull_at", None)) if x]
        d["last_sync_at"] = to_cst(max(syncs)).strftime("%Y-%m-%d %H:%M") if syncs else None
        lo = last_order.get(t.id)
        if isinstance(lo, str):                        # SQLite's max() bypasses the column type
            lo = datetime.fromisoformat(lo)
        d["last_order_at"] = to_cst(lo).strftime("%Y-%m-%d %H:%M") if lo else None
        d["camera"] = CAMERA_ZH.get(t.camera_state or "", t.camera_state) if t.camera_state else None
        d["camera_ok"] = t.camera_state in (None, "live")
        d["disk_free"] = f"{t.disk_free_bytes / 1024 ** 3:.1f} GB" if t.disk_free_bytes is not None else None
        d["disk_low"] = t.disk_free_bytes is not None and t.disk_free_bytes < LOW_DISK_BYTES
        d["warning"] = None if t.revoked_at else stale_in_meal_time(max(syncs) if syncs else None, t.created_at,
                                                                     now, windows.get(t.canteen_id))
        out.append(d)
    return out


def audit_entries(app, *, actor: str | None = None, action: str | None = None, since: date | None = None,
                  until: date | None = None, limit: int = 500) -> list[dict]:
    """The newest entries of the audit log matching the filters, each with its action's
    Chinese name (``action_zh``), who did it (``who``, with the staff member's name) and
    one sentence in Chinese (``sentence``: money in yuan, times in China time); ``at`` in
    China time, ``detail`` the raw detail."""
    from kiosk.services.audit_words import Names, action_zh, describe, who_zh
    from kiosk.timeutil import CST

    q = select(AuditEntry)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where(AuditEntry.action.like(f"{action}%"))
    if since:
        q = q.where(AuditEntry.at >= datetime.combine(since, datetime.min.time(), CST))
    if until:
        q = q.where(AuditEntry.at < datetime.combine(until + timedelta(days=1), datetime.min.time(), CST))
    with app.db.session(read_only=True) as s:
        rows = s.scalars(q.order_by(AuditEntry.at.desc(), AuditEntry.seq.desc()).limit(limit)).all()
        rids = {e.subject for e in rows if e.subject} | {str(e.detail.get("resident_id")) for e in rows
                                                          if isinstance(e.detail, dict) and e.detail.get("resident_id")}
        for e in rows:
            if isinstance(e.detail, dict) and isinstance(e.detail.get("residents"), list):
                rids |= {str(x) for x in e.detail["residents"][:10]}
        residents: dict[str, str] = {}
        ordered = sorted(rids)
        for i in range(0, len(ordered), 500):
            residents.update(s.execute(select(Resident.id, Resident.name)
                                       .where(Resident.id.in_(ordered[i:i + 500]))).all())
        names = Names(dict(s.execute(select(Staff.id, Staff.name)).all()), residents, canteen_names(s),
                      terminal_labels(s))
    return [{"at": to_cst(e.at).strftime("%Y-%m-%d %H:%M:%S"), "actor": e.actor, "action": e.action,
             "action_zh": action_zh(e.action), "who": who_zh(e.actor, names, e.detail),
             "sentence": describe(e.action, e.actor, e.subject, e.detail if isinstance(e.detail, dict) else None,
                                  names),
             "subject": e.subject or "", "detail": e.detail} for e in rows]


def audit_table(entries: list[dict], title: str) -> TableReport:
    from kiosk.services.audit_words import raw_detail

    return TableReport(title, "时间为北京时间；金额为元；原始记录见最后一列", [("条数", len(entries))],
                       [Sheet("审计日志", ["时间", "操作人", "操作", "说明", "操作代码", "对象", "原始记录"],
                              [[e["at"], e["who"], e["action_zh"], e["sentence"], e["action"], e["subject"],
                                raw_detail(e["detail"])] for e in entries],
                              total_label=None)])


# ---------------------------------------------------------------------- reconciliation
def reconciliation_rows(app, month: str) -> list[dict]:
    """The month's flagged orders (served offline, over a district-wide limit) as the
    console lists them: canteen names, meals, the terminal and when the flagged order
    reached the server; ``group`` says which list (subsidy excess or balance overdraft)."""
    with app.db.session(read_only=True) as s:
        names = canteen_names(s)
        terms = terminal_labels(s)
    out = []
    for f in reconcile(app, month)["flagged"]:
        meals = f["meals"]
        out.append({"flag_id": f["flag_id"], "resident_id": f["resident_id"], "name": f["name"] or "",
                    "meal_date": f["meal_date"], "kind": f["kind"], "group": f["group"], "reason": f["reason"],
                    "over_fen": int(f["over_fen"] or 0), "order_ids": f["order_ids"],
                    "canteens": [names.get(c, c) for c in f["canteens"]],
                    "meals": sorted({f"{m['meal_date']} {m['meal']}" for m in meals}),
                    "terminal": terms.get(f["order_terminal_id"], f["order_terminal_id"] or ""),
                    "received_at": (f["order_received_at"] or "")[:16].replace("T", " "),
                    "decision": f["decision"], "decision_zh": f["decision_zh"], "decided_by": f["decided_by"],
                    "note": f["note"]})
    return out


def _flag_sheet(group: str, rows: list[dict]) -> Sheet:
    return Sheet(GROUP_ZH[group], ["居民编号", "姓名", "日期", "原因", AMOUNT_ZH[group], "食堂", "餐次", "终端",
                                   "订单到达服务器", "订单", "处理"],
                 [[r["resident_id"], r["name"], r["meal_date"], r["reason"], Money(r["over_fen"]),
                   "、".join(r["canteens"]), "、".join(r["meals"]), r["terminal"], r["received_at"] or "未记录",
                   "、".join(o[:8] for o in r["order_ids"]),
                   r["decision_zh"] + (f"（{r['decided_by']}）" if r["decided_by"] else "")]
                  for r in rows if r["group"] == group])


def reconciliation(app, month: str) -> TableReport:
    """The reconciliation list: subsidy excess and balance overdrafts on sheets of their own,
    each with its own total."""
    rows = reconciliation_rows(app, month)
    subsidy, balance = _flag_sheet(SUBSIDY, rows), _flag_sheet(BALANCE, rows)
    back = sum(r["over_fen"] for r in rows if r["group"] == SUBSIDY and r["decision"] == "charge_back")
    return TableReport(f"{month} 对账清单", "断网期间售出、超出全区限额的订单：超出的补贴由区办公室认可或追回；"
                                         "余额透支另列，由居民补交",
                       [("超出补贴笔数", len(subsidy.rows)),
                        ("超出补贴合计(元)", Money(sum(r[4].fen for r in subsidy.rows))),
                        ("其中追回(元)", Money(back)),
                        ("余额透支笔数", len(balance.rows)),
                        ("余额透支合计(元)", Money(sum(r[4].fen for r in balance.rows)))],
                       [subsidy, balance])


def decide_flag(app, flag_id: str, decision: str, actor, note: str | None = None) -> dict:
    """The office's decision on a flagged order (kiosk.district.domain.reconcile.decide)."""
    return decide(app, flag_id, decision, actor, note)
