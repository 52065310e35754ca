"""The one import path: what a roster, menu or policy file would change, computed
without writing anything (the plan, shown as the dry run), and applying exactly that
plan. The district console (kiosk.district.console), the command line (`kiosk residents
import`, `kiosk menu import`, `kiosk policy import`), the kiosk's staff pages and the
``import_*`` helpers of kiosk.services.importing all go through ``plan_*`` and
``apply_*`` here.

Reading and checking the files (bounded against hostile input) and the row checks
are kiosk.services.importing's and kiosk.services.tabular's; on top of them:

* roster updates keep what is stored where a cell is blank (or the column is
  absent) and clear an optional value where the cell says ``清除``;
* categories may carry a grade (残疾:二级);
* a menu row may name its canteen (食堂 column; empty = every canteen);
* a policy whose tier overlaps a tier in force (same category or age bracket,
  overlapping dates) is refused with both tiers named, unless it replaces it;
* a roster's photos (``photos_dir``) of rows that carry face consent: headers are
  checked in the plan, each photo is decoded and embedded (``prepare_photos``) before
  the first row is written, and enrolled after the rows are stored;
* on a terminal of a district server nothing is planned or imported (imports run on
  the server; the terminal receives them).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from kiosk.billing.policy import Policy, Tier, split_category
from kiosk.billing.status import ENDS_CHECKOUT, REGISTERED, STATUS_ZH
from kiosk.db import audit
from kiosk.db.models import Canteen, FaceTemplate, MenuItem, Resident, SubsidyPolicy
from kiosk.errors import ImportFileError, ValidationError
from kiosk.money import fen_to_yuan
from kiosk.services.events import CATALOGUE_CHANGED
from kiosk.services.importing import (MENU_COLUMNS, MENU_HEADERS, ROSTER_COLUMNS, ROSTER_HEADERS, ImportReport,
                                     Problem, check_row_photos, generated_resident_id, load_policy_file,
                                     validate_menu_row, validate_roster_row)
from kiosk.services.tabular import Column, read_table

CLEAR = "清除"
# roster columns whose value may be cleared with 清除 (the others are required or derived)
CLEARABLE = ("phone", "categories", "diet", "card_no", "emergency_contact")
REQUIRED = ("name", "id_number", "hukou")
CANTEEN_COLUMN = Column("食堂", "canteen_id")
MENU_FIELD_ALIAS = {"menu_date": "date", "price_fen": "price"}
# a stored field under the header of the column it is read from (the plan's "changes")
ROSTER_FIELD_HEAD = {**ROSTER_HEADERS, "diet_tags": ROSTER_HEADERS["diet"], "allergies": "过敏",
                     "roster_status": ROSTER_HEADERS["status"]}
MENU_FIELD_HEAD = {**MENU_HEADERS, **{field: MENU_HEADERS[alias] for field, alias in MENU_FIELD_ALIAS.items()}}
MENU_COLUMNS_WITH_CANTEEN = MENU_COLUMNS + ([CANTEEN_COLUMN] if not any(
    c.alias == "canteen_id" for c in MENU_COLUMNS) else [])


def refuse_on_terminal(app) -> None:
    """Imports run on the district server (or a single machine); a terminal of a
    district server receives what was imported there at its next sync."""
    if app.settings.is_terminal:
        from kiosk.errors import ServerOnlyError

        raise ServerOnlyError("这是区服务器的终端：花名册、菜单和补贴政策只能在区服务器上导入"
                              "（网页管理台或服务器上的 kiosk 命令），终端会在下次同步时收到",
                              detail="imports are refused on a terminal (KIOSK_SERVER_URL is set): "
                                     "run them on the district server")


@dataclass
class PlannedRow:
    row: int | None
    key: str                    # resident id, "canteen date meal dish", or "policy vN"
    action: str                 # add | change | unchanged
    label: str = ""             # a name to show beside the key
    changes: dict = field(default_factory=dict)   # column (Chinese) -> [old, new] as text
    record: dict = field(default_factory=dict)    # what apply writes
    fields: dict = field(default_factory=dict)    # field name -> [old, new] as text (the same changes)
    photos: list[str] = field(default_factory=list)   # roster: photos to enrol (rows with face consent)
    face_consent: bool | None = None              # roster: 人脸授权 said 是 (True) / 否 (False) / blank

    def to_json(self) -> dict:
        d = {"row": self.row, "key": self.key, "action": self.action, "label": self.label,
             "changes": self.changes}
        if self.photos:
            d["photos"] = self.photos
        return d


@dataclass
class Conflict:
    """A tier of the new policy that overlaps a tier in force."""

    new_tier: str
    old_policy: str
    old_tier: str
    category: str
    period: str

    def text(self) -> str:
        return (f"新档次「{self.new_tier}」与现行政策「{self.old_policy}」的档次「{self.old_tier}」重叠"
                f"（{self.category}，{self.period}）")

    def to_json(self) -> dict:
        return {"new_tier": self.new_tier, "old_policy": self.old_policy, "old_tier": self.old_tier,
                "category": self.category, "period": self.period, "message": self.text()}


@dataclass
class ImportPlan:
    kind: str                   # roster | menu | policy
    file: str
    rows: int = 0
    planned: list[PlannedRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    replace: bool = False
    extra: dict = field(default_factory=dict)
    photos_dir: Path | None = None   # roster: the photo folder given on import
    path: Path | None = None         # the file as read (its name is ``file``)

    def by_action(self, action: str) -> list[PlannedRow]:
        return [p for p in self.planned if p.action == action]

    @property
    def add(self) -> list[PlannedRow]:
        return self.by_action("add")

    @property
    def change(self) -> list[PlannedRow]:
        return self.by_action("change")

    @property
    def unchanged(self) -> list[PlannedRow]:
        return self.by_action("unchanged")

    @property
    def blocked(self) -> bool:
        """True when confirming would be refused: bad rows, or overlaps not replaced."""
        return bool(self.problems) or (bool(self.conflicts) and not self.replace)

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems if p.row is not None})

    def problems_json(self) -> list[dict]:
        """The problems, each with ``name``: who its row is about (a roster row's 姓名), if known."""
        names = self.extra.get("row_names") or {}
        return [{**p.to_json(), "name": names.get(p.row)} for p in self.problems]

    def counts(self) -> dict:
        return {"add": len(self.add), "change": len(self.change), "unchanged": len(self.unchanged),
                "bad_rows": len(self.bad_rows), "problems": len(self.problems), "conflicts": len(self.conflicts)}

    def to_json(self) -> dict:
        return {"kind": self.kind, "file": self.file, "rows": self.rows,
                "add": [p.to_json() for p in self.add], "change": [p.to_json() for p in self.change],
                "unchanged": [p.to_json() for p in self.unchanged],
                "problems": [p.to_json() for p in self.problems], "warnings": self.warnings,
                "conflicts": [c.to_json() for c in self.conflicts], "replace": self.replace,
                "blocked": self.blocked, "counts": self.counts()}


def _text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return "、".join(str(x) for x in v)
    return str(v)


def _cell(key: str, v: object) -> str:
    """A stored or new value as the roster writes it (a status code in Chinese)."""
    if key == "roster_status" and isinstance(v, str):
        return STATUS_ZH.get(v, v)
    return _text(v)


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


# ---------------------------------------------------------------------- roster
def _stored_cells(r: Resident) -> dict[str, str]:
    """A stored resident as the roster's cells (for columns left blank)."""
    return {"resident_id": r.id, "name": r.name or "", "id_number": r.id_number or "",
            "hukou": r.hukou or "", "phone": r.phone or "",
            "diet": ";".join(list(r.diet_tags or []) + [f"过敏:{a}" for a in (r.allergies or [])]),
            "card_no": r.card_no or "", "emergency_contact": r.emergency_contact or ""}


def plan_roster(app, path: Path, *, photos_dir: Path | None = None) -> ImportPlan:
    """What a roster file would add and change; nothing is written. A row whose 编号 or
    身份证号 matches a stored resident updates that resident: a blank cell (or an absent
    column) keeps the stored value, ``清除`` clears an optional one. ``photos_dir``: the
    photos of rows with face consent (人脸授权 是) are checked (header only: size,
    format, pixels); without it the 照片 and 人脸授权 columns are not used."""
    refuse_on_terminal(app)
    if photos_dir is not None and not Path(photos_dir).is_dir():
        raise ImportFileError(f"照片文件夹不存在：{photos_dir}", detail=f"--photos {photos_dir}: not a folder")
    table = read_table(path, ROSTER_COLUMNS)
    plan = ImportPlan("roster", Path(path).name, rows=len(table.rows), warnings=list(table.warnings),
                      photos_dir=Path(photos_dir) if photos_dir is not None else None, path=Path(path))
    present = set()
    for _, r in table.rows[:1]:
        present = set(r)
    if photos_dir is None and ("photos" in present or "face_consent" in present):
        plan.warnings.append("没有照片文件夹：「照片」和「人脸授权」列不处理（网页导入不处理它们）。"
                             "人脸授权和照片请在终端登记，或用命令行 `kiosk residents import --photos 照片目录 --staff 工号`")
    seen: dict[str, dict[str, int]] = {"resident_id": {}, "id_number": {}, "card_no": {}}
    row_names: dict[int, str] = {}
    with app.db.session(read_only=True) as s:
        for n, raw in table.rows:
            probs: list[Problem] = []
            cells = dict(raw)
            clears = set()
            for alias, value in raw.items():
                if isinstance(value, str) and value.strip() == CLEAR:
                    if alias in CLEARABLE:
                        clears.add(alias)
                        cells[alias] = ""
                    else:
                        probs.append(Problem(n, ROSTER_HEADERS.get(alias, alias),
                                             f"「{ROSTER_HEADERS.get(alias, alias)}」不能清除",
                                             f"{alias} cannot be cleared"))
            # the stored resident this row updates (by 编号, else by 身份证号)
            rid_cell = str(cells.get("resident_id") or "").strip()
            idn_cell = str(cells.get("id_number") or "").strip().upper()
            stored = s.get(Resident, rid_cell) if rid_cell else None
            if stored is None and idn_cell:
                stored = s.scalars(select(Resident).where(Resident.id_number == idn_cell)).first()
            if stored is not None:
                for alias, value in _stored_cells(stored).items():
                    if alias not in clears and _blank(cells.get(alias)):
                        cells[alias] = value
            # who the row is about, named beside its problems (the file's 姓名, else the stored one's)
            who = str(cells.get("name") or "").strip()[:100] or (stored.name if stored is not None else "")
            if who:
                row_names[n] = who
            # categories (with grades, 残疾:二级) are checked by the row check when given;
            # kept (blank) or cleared (清除) they are not read from the cell
            keep_cats = "categories" not in clears and _blank(cells.get("categories"))
            if keep_cats or "categories" in clears:
                cells["categories"] = ""
            row, row_probs = validate_roster_row(n, cells)
            probs += row_probs
            if row is not None and not probs and plan.photos_dir is not None and row.face_consent:
                probs += check_row_photos(row.row, row.photos, plan.photos_dir, Path(path).name, plan.warnings)
            if row is None or probs:
                plan.problems += probs
                continue
            fields = dict(row.fields)
            if keep_cats and stored is not None:
                fields["categories"] = list(stored.categories or [])
            for alias in clears:
                if alias == "diet":
                    fields["diet_tags"], fields["allergies"] = [], []
                elif alias != "categories":
                    fields[alias] = None
            rid = stored.id if stored is not None else (row.resident_id or generated_resident_id(fields["id_number"]))
            # the same person, ID number or card twice in the file
            dup = False
            for alias, value in (("resident_id", rid), ("id_number", fields["id_number"]),
                                 ("card_no", fields["card_no"])):
                if value and value in seen[alias]:
                    dup = True
                    plan.problems.append(Problem(n, ROSTER_HEADERS[alias], f"{ROSTER_HEADERS[alias]}「{value}」与第{seen[alias][value]}行重复",
                                                 f"duplicate {alias} {value!r} (also row {seen[alias][value]})"))
                elif value:
                    seen[alias][value] = n
            # held by another stored resident
            for col, alias in ((Resident.id_number, "id_number"), (Resident.card_no, "card_no")):
                value = fields[alias]
                holder = value and s.scalars(select(Resident).where(col == value, Resident.id != rid)).first()
                if holder:
                    dup = True
                    plan.problems.append(Problem(n, ROSTER_HEADERS[alias], f"{ROSTER_HEADERS[alias]}已属于居民 {holder.id}（{holder.name}）",
                                                 f"{alias} already belongs to resident {holder.id}"))
            if dup:
                continue
            consent = None if _blank(raw.get("face_consent")) else row.face_consent
            photos = list(row.photos) if (plan.photos_dir is not None and row.face_consent) else []
            if plan.photos_dir is not None and row.photos and not row.face_consent:
                plan.extra.setdefault("no_consent", []).append((n, rid))
            if plan.photos_dir is not None and stored is not None and (photos or consent is False):
                enrolled = s.scalar(select(func.count()).select_from(FaceTemplate)
                                    .where(FaceTemplate.resident_id == rid))
                if consent is False and enrolled:
                    plan.warnings.append(f"{plan.file} 第{n}行：人脸授权为「否」，但居民 {rid} 已登记人脸；"
                                         f"花名册不撤回授权，撤回并删除人脸数据请用 kiosk residents erase {rid}")
                if photos and enrolled:   # the same roster again does not enrol the same photos again
                    plan.extra.setdefault("kept_faces", []).append((n, rid))
                    photos = []
            if stored is None:
                plan.planned.append(PlannedRow(n, rid, "add", fields["name"], record=fields,
                                               photos=photos, face_consent=consent))
                continue
            if fields.get("roster_status") == REGISTERED and stored.roster_status in ENDS_CHECKOUT:
                plan.warnings.append(f"{plan.file} 第{n}行（{fields['name']}）：原登记为"
                                     f"{STATUS_ZH[stored.roster_status]}（{stored.status_date}），本次改为在册，"
                                     f"将恢复就餐和补贴，请核实")
            same = {k: v for k, v in fields.items()
                    if getattr(stored, k) != v and not (getattr(stored, k) in (None, []) and v in (None, []))}
            changes = {ROSTER_FIELD_HEAD[k]: [_cell(k, getattr(stored, k)), _cell(k, v)] for k, v in same.items()}
            by_field = {k: [_cell(k, getattr(stored, k)), _cell(k, v)] for k, v in same.items()}
            plan.planned.append(PlannedRow(n, rid, "change" if changes else "unchanged", fields["name"],
                                           changes, record=fields, fields=by_field, photos=photos,
                                           face_consent=consent))
    plan.extra["row_names"] = {r: row_names[r] for r in plan.bad_rows if r in row_names}
    return plan


def prepare_photos(app, plan: ImportPlan) -> None:
    """Decode, detect and embed the photos each planned roster row will enrol (nothing is
    written). A photo that cannot be decoded is a problem of its row (the row is then
    left out of the plan); no face or a poor photo is reported with the enrolment, as at
    the desk. Kept in ``plan.extra['prepared']`` for ``apply_roster``."""
    if plan.kind != "roster" or plan.photos_dir is None:
        return
    from kiosk.enrollment.batch import EnrollReport, prepare_images

    prepared = plan.extra.setdefault("prepared", {})
    for p in list(plan.planned):
        if not p.photos or p.row in prepared:
            continue
        er = EnrollReport(p.key)
        paths = []
        for ph in p.photos:
            f = plan.photos_dir / ph
            if f.is_file():
                paths.append(f)
            else:
                er.refused.append({"image": str(f), "reason": "error", "message": f"找不到图片文件：{f}"})
        ready = prepare_images(app, paths, er)
        unreadable = [r for r in er.refused if r["reason"] == "error" and Path(r["image"]).is_file()]
        for r in unreadable:
            plan.problems.append(Problem(p.row, ROSTER_HEADERS["photos"], f"照片「{Path(r['image']).name}」：{r['message']}",
                                         f"photo {Path(r['image']).name!r} cannot be decoded"))
        if unreadable:
            plan.planned.remove(p)
            continue
        prepared[p.row] = (ready, er)


def apply_roster(app, plan: ImportPlan, staff_id: str, *, skip_invalid: bool = False, via: str = "console") -> dict:
    """Write a roster plan in one transaction (all rows or none); then, with a photo
    folder, record each consenting row's consent and enrol its prepared photos (one
    resident at a time: a refused face does not undo the roster). ``skip_invalid``: the
    rows without problems are written, the bad ones left out."""
    refuse_on_terminal(app)
    _refuse_blocked(plan, skip_invalid)
    if plan.photos_dir is not None:
        prepare_photos(app, plan)       # before the first write (a no-op when done already)
        _refuse_blocked(plan, skip_invalid)
    created, updated = [], {}
    with app.db.session(write_lock=True) as s:
        for p in plan.planned:
            if p.action == "add":
                if s.get(Resident, p.key) is not None:
                    raise ValidationError(f"居民 {p.key} 在预览之后已被添加，请重新上传预览",
                                          detail=f"resident {p.key} appeared after the dry run")
                s.add(Resident(id=p.key, **p.record))
                created.append(p.key)
            elif p.action == "change":
                r = s.get(Resident, p.key)
                if r is None:
                    raise ValidationError(f"居民 {p.key} 在预览之后已被删除，请重新上传预览",
                                          detail=f"resident {p.key} vanished after the dry run")
                for k, v in p.record.items():
                    setattr(r, k, v)
                updated[p.key] = sorted(p.changes)
        audit.record(s, staff_id, "import.roster", plan.file, via=via, created=created,
                     updated=updated, unchanged=len(plan.unchanged), skipped_rows=plan.bad_rows or None)
    photos = _enrol_photos(app, plan, staff_id) if plan.photos_dir is not None else []
    return {"created": len(created), "updated": len(updated), "unchanged": len(plan.unchanged), "photos": photos}


def _enrol_photos(app, plan: ImportPlan, staff_id: str) -> list[dict]:
    """Record the roster's face consent (the paper form) and enrol the prepared photos.
    A resident who withdrew consent before (face data erased) is not enrolled again
    from the roster: only a consent given anew, at the desk, brings face data back."""
    from kiosk.enrollment.batch import enroll_prepared
    from kiosk.enrollment.consent import active_consent, record_consent

    from kiosk.errors import KioskError

    out = [{"row": n, "resident_id": rid, "status": "no_consent",
            "message": "未签署人脸授权，照片未登记（可用助老卡就餐）"} for n, rid in plan.extra.get("no_consent", [])]
    out += [{"row": n, "resident_id": rid, "status": "already_enrolled",
             "message": "已有人脸模板，照片未重复登记（更新人脸请用 kiosk enroll）"}
            for n, rid in plan.extra.get("kept_faces", [])]
    prepared = plan.extra.get("prepared", {})
    for p in plan.planned:
        if not p.photos:
            continue
        ready, er = prepared.get(p.row, ([], None))
        if er is None:
            continue
        try:
            with app.db.session() as s:
                if active_consent(s, p.key) is None:
                    record_consent(s, p.key, "self", staff_id, source="roster")
                    s.flush()
                if ready:
                    enroll_prepared(app, s, p.key, ready, er, staff_id=staff_id, source="import")
        except KioskError as exc:
            app.faces.rebuild_later()
            out.append({"row": p.row, "resident_id": p.key, "status": "refused", "message": exc.user_message})
            continue
        app.faces.save_index()
        out.append({"row": p.row, "resident_id": p.key, "status": "enrolled" if er.enrolled else "refused",
                    "enrolled": len(er.enrolled), "refused": er.refused})
    return sorted(out, key=lambda d: d["row"])


# ---------------------------------------------------------------------- menu
def known_canteens(session) -> list[str]:
    return list(session.scalars(select(Canteen.id).order_by(Canteen.id)))


def plan_menu(app, path: Path, canteen_id: str | None = None) -> ImportPlan:
    """A menu file: each row for its 食堂 (column), else ``canteen_id`` (a per-canteen
    file), else every canteen of the district (on a single machine: this canteen).
    A column the file does not have keeps what is stored."""
    refuse_on_terminal(app)
    table = read_table(path, MENU_COLUMNS_WITH_CANTEEN)
    plan = ImportPlan("menu", Path(path).name, rows=len(table.rows), warnings=list(table.warnings),
                      path=Path(path))
    seen: dict[tuple, int] = {}
    with app.db.session(read_only=True) as s:
        canteens = known_canteens(s) or [app.settings.canteen_id]
        if canteen_id and canteen_id not in canteens:
            raise ValidationError(f"没有编号为 {canteen_id} 的食堂", detail=f"unknown canteen {canteen_id!r}")
        for n, r in table.rows:
            item, probs = validate_menu_row(n, r)
            cell = str(r.get("canteen_id") or "").strip()
            if cell and cell not in canteens:
                probs.append(Problem(n, "食堂", f"没有编号为「{cell}」的食堂（已有：{'、'.join(canteens)}）",
                                     f"unknown canteen {cell!r}"))
            if item is None or probs:
                plan.problems += probs
                continue
            targets = [cell] if cell else ([canteen_id] if canteen_id else canteens)
            for cid in targets:
                key = (cid, item["menu_date"], item["meal"], item["dish_id"])
                label = f"{cid} {item['menu_date']} {item['meal']} {item['dish_id']}"
                if key in seen:
                    plan.problems.append(Problem(n, "菜品编号", f"{label} 与第{seen[key]}行重复",
                                                 f"duplicate dish for that canteen, date and meal (also row {seen[key]})"))
                    continue
                seen[key] = n
                existing = s.scalars(select(MenuItem).where(
                    MenuItem.canteen_id == cid, MenuItem.menu_date == item["menu_date"],
                    MenuItem.meal == item["meal"], MenuItem.dish_id == item["dish_id"])).first()
                record = dict(item, canteen_id=cid)
                if existing is not None:   # a column the file does not have keeps what is stored
                    for k in item:
                        if MENU_FIELD_ALIAS.get(k, k) not in r:
                            record[k] = item[k] = getattr(existing, k)
                if existing is None:
                    plan.planned.append(PlannedRow(n, label, "add", item["name"], record=record))
                    continue
                changes = {MENU_FIELD_HEAD.get(k, k): [_show(k, getattr(existing, k)), _show(k, v)]
                           for k, v in item.items() if getattr(existing, k) != v}
                plan.planned.append(PlannedRow(n, label, "change" if changes else "unchanged", item["name"],
                                               changes, record=record))
    return plan


def _show(key: str, v: object) -> str:
    return fen_to_yuan(v) if key == "price_fen" and isinstance(v, int) else _text(v)


def apply_menu(app, plan: ImportPlan, staff_id: str, *, skip_invalid: bool = False, via: str = "console") -> dict:
    refuse_on_terminal(app)
    _refuse_blocked(plan, skip_invalid)
    with app.db.session(write_lock=True) as s:
        for p in plan.planned:
            rec = p.record
            existing = s.scalars(select(MenuItem).where(
                MenuItem.canteen_id == rec["canteen_id"], MenuItem.menu_date == rec["menu_date"],
                MenuItem.meal == rec["meal"], MenuItem.dish_id == rec["dish_id"])).first()
            if existing is None:
                s.add(MenuItem(**rec))
            elif p.action == "change":
                for k, v in rec.items():
                    setattr(existing, k, v)
        audit.record(s, staff_id, "import.menu", plan.file, via=via, created=len(plan.add),
                     updated=len(plan.change), canteens=sorted({p.record["canteen_id"] for p in plan.planned}),
                     skipped_rows=plan.bad_rows or None)
        app.events.publish(s, CATALOGUE_CHANGED, part="menu")
    return {"created": len(plan.add), "updated": len(plan.change), "unchanged": len(plan.unchanged)}


# ---------------------------------------------------------------------- policy
def _ages(t: Tier) -> tuple[int, int]:
    return (t.match.min_age or 0, t.match.max_age if t.match.max_age is not None else 200)


def tiers_overlap(a: Tier, b: Tier) -> str | None:
    """What two tiers both cover (a category, or an age bracket), or None."""
    ca, cb = a.match.categories, b.match.categories
    (alo, ahi), (blo, bhi) = _ages(a), _ages(b)
    if max(alo, blo) > min(ahi, bhi):
        return None
    if ca is None and cb is None:
        lo, hi = max(alo, blo), min(ahi, bhi)
        return f"{lo}岁及以上" if hi >= 150 else f"{lo}至{hi}岁"
    if ca is None or cb is None:
        return None
    for x in ca:
        xb, xg = split_category(x)
        for y in cb:
            yb, yg = split_category(y)
            if xb == yb and (xg is None or yg is None or xg == yg):
                return x if xg else y
    return None


def policy_conflicts(new: Policy, stored: list[tuple[str, int, Policy]]) -> list[Conflict]:
    """Tiers of ``new`` that overlap tiers of stored policies in force on overlapping dates
    (same district). A new version of the same policy conflicts only where one of the
    stored version's tiers does not carry over unchanged (same name, match and amount):
    then each new tier covering what it covered is named with it (e.g. 低保 6.00 -> 1.00)."""
    out = []
    for pid, version, old in stored:
        if old.district != new.district:
            continue
        lo, hi = max(old.effective_from, new.effective_from), min(old.effective_to, new.effective_to)
        if lo > hi:
            continue
        kept = set()
        if pid == new.id:
            mine = {(t.name, t.match.model_dump_json(), t.per_meal_fen) for t in new.tiers}
            kept = {i for i, t in enumerate(old.tiers) if (t.name, t.match.model_dump_json(), t.per_meal_fen) in mine}
        for nt in new.tiers:
            for i, ot in enumerate(old.tiers):
                if i in kept:
                    continue
                what = tiers_overlap(nt, ot)
                if what is None:
                    continue
                if pid == new.id and nt.name == ot.name and nt.per_meal_fen == ot.per_meal_fen:
                    continue
                out.append(Conflict(f"{nt.name} 每餐{fen_to_yuan(nt.per_meal_fen)}元",
                                    f"{old.name}（{pid} v{version}）",
                                    f"{ot.name} 每餐{fen_to_yuan(ot.per_meal_fen)}元", what, f"{lo}至{hi}"))
    return out


def _newest_policies(session) -> list[tuple[str, int, Policy, str]]:
    rows = session.scalars(select(SubsidyPolicy).order_by(SubsidyPolicy.version)).all()
    newest = {}
    for r in rows:
        newest[r.policy_id] = r
    return [(r.policy_id, r.version, Policy.model_validate(r.body), r.body_sha256) for r in newest.values()]


def plan_policy(app, path: Path, *, replace: bool = False, today: date | None = None) -> ImportPlan:
    """A policy document: a new policy or a new version of a stored one. Its tiers that
    overlap tiers of a policy in force (same district and category or age bracket,
    overlapping dates; ``today``: policies that ended before it are not in force) are
    ``conflicts``: applying is refused unless ``replace``."""
    refuse_on_terminal(app)
    policy, data = load_policy_file(path)
    plan = ImportPlan("policy", Path(path).name, rows=1, replace=replace, path=Path(path))
    digest = hashlib.sha256(policy.model_dump_json().encode()).hexdigest()
    body = json.loads(json.dumps(data, default=str, ensure_ascii=False))
    with app.db.session(read_only=True) as s:
        stored = _newest_policies(s)
    same = [x for x in stored if x[0] == policy.id]
    if same and same[0][3] == digest:
        plan.planned.append(PlannedRow(None, f"{policy.id} v{same[0][1]}", "unchanged", policy.name))
        return plan
    version = same[0][1] + 1 if same else 1
    if today is not None:
        stored = [x for x in stored if x[2].effective_to >= today]
    plan.conflicts = policy_conflicts(policy, [(pid, v, p) for pid, v, p, _ in stored])
    for pid, v, old, _ in stored:     # the policy in force is one per day: the newest import decides
        lo, hi = max(old.effective_from, policy.effective_from), min(old.effective_to, policy.effective_to)
        if pid != policy.id and old.district == policy.district and lo <= hi:
            plan.warnings.append(f"导入后，{lo}至{hi} 期间按新政策「{policy.name}」计算补贴，"
                                 f"现行政策「{old.name}」（{pid} v{v}）的全部档次在这段时间不再适用")
    tiers = {t.name: f"每餐{fen_to_yuan(t.per_meal_fen)}元" for t in policy.tiers}
    if same:
        old = same[0][2]
        old_t = {t.name: f"每餐{fen_to_yuan(t.per_meal_fen)}元" for t in old.tiers}
        changes = {f"档次 {k}": [old_t.get(k, ""), tiers.get(k, "")] for k in sorted(set(tiers) | set(old_t))
                   if old_t.get(k) != tiers.get(k)}
        changes["版本"] = [str(version - 1), str(version)]
        plan.planned.append(PlannedRow(None, f"{policy.id} v{version}", "change", policy.name, changes))
    else:
        plan.planned.append(PlannedRow(None, f"{policy.id} v{version}", "add", policy.name,
                                       {f"档次 {k}": ["", v] for k, v in tiers.items()}))
    plan.planned[-1].record = {"policy_id": policy.id, "version": version, "district": policy.district,
                               "effective_from": policy.effective_from, "effective_to": policy.effective_to,
                               "body": body, "body_sha256": digest}
    return plan


def apply_policy(app, plan: ImportPlan, staff_id: str, *, skip_invalid: bool = False, via: str = "console") -> dict:
    refuse_on_terminal(app)
    _refuse_blocked(plan)
    p = plan.planned[0]
    if p.action == "unchanged":
        return {"created": 0, "updated": 0, "unchanged": 1}
    with app.db.session(write_lock=True) as s:
        clash = s.scalars(select(SubsidyPolicy).where(SubsidyPolicy.policy_id == p.record["policy_id"],
                                                      SubsidyPolicy.version == p.record["version"])).first()
        if clash is not None:
            raise ValidationError("预览之后政策已被他人导入，请重新上传预览",
                                  detail=f"{p.key} was imported after the dry run")
        s.add(SubsidyPolicy(**p.record))
        audit.record(s, staff_id, "import.policy", p.record["policy_id"], via=via,
                     version=p.record["version"], replaces=[c.text() for c in plan.conflicts] or None)
        app.events.publish(s, CATALOGUE_CHANGED, part="policy")
    return {"created": int(p.action == "add"), "updated": int(p.action == "change"), "unchanged": 0}


def conflict_error(plan: ImportPlan) -> ValidationError:
    """The refusal of a policy whose tiers overlap tiers in force, naming both."""
    return ValidationError("新政策的档次与现行政策重叠：" + "；".join(c.text() for c in plan.conflicts)
                           + "。如确需取代现行档次，请勾选“取代重叠的现行档次”（命令行：--replace）",
                           detail="overlapping tiers; replace not confirmed: "
                                  + "; ".join(f"{c.new_tier} / {c.old_policy} {c.old_tier}" for c in plan.conflicts))


def _refuse_blocked(plan: ImportPlan, skip_invalid: bool = False) -> None:
    if plan.problems and not skip_invalid:
        raise ImportFileError(f"{plan.file} 有 {len(plan.problems)} 处错误，未导入",
                              detail="the plan has problems", problems=[p.to_json() for p in plan.problems])
    if plan.conflicts and not plan.replace:
        raise conflict_error(plan)


PLANNERS = {"roster": plan_roster, "menu": plan_menu, "policy": plan_policy}
APPLIERS = {"roster": apply_roster, "menu": apply_menu, "policy": apply_policy}


def report_of(plan: ImportPlan, *, dry_run: bool, result: dict | None = None) -> ImportReport:
    """The plan (and, once applied, its result) as an ImportReport: the lists scripts and
    the kiosk's staff pages read (``created``, ``updated``, ``unchanged``, ``problems`` ...)."""
    key = {"roster": "resident_id", "menu": "dish", "policy": "policy"}[plan.kind]
    rep = ImportReport(str(plan.path or plan.file), plan.kind, rows=plan.rows, dry_run=dry_run,
                       warnings=list(plan.warnings), problems=list(plan.problems))
    rep.created = [p.key for p in plan.add]
    rep.updated = [{key: p.key, "changed": p.fields or p.changes} for p in plan.change]
    rep.unchanged = [p.key for p in plan.unchanged]
    rep.skipped_rows = plan.bad_rows
    rep.plan = plan
    if result is not None:     # a policy file that is stored already imports nothing
        rep.imported = plan.kind != "policy" or bool(plan.add or plan.change)
        rep.photos = list(result.get("photos") or [])
    return rep


def run_import(app, plan: ImportPlan, *, dry_run: bool = False, skip_invalid: bool = False,
               staff_id: str | None = None, via: str = "local") -> ImportReport:
    """Apply ``plan`` (unless ``dry_run``) and report. Bad rows: nothing is written and
    the report lists them (``skip_invalid``: the good rows are written); tiers that
    overlap a policy in force without ``replace``: refused (ValidationError)."""
    if plan.conflicts and not plan.replace:
        if dry_run:
            return report_of(plan, dry_run=True)
        raise conflict_error(plan)
    if dry_run or (plan.problems and not skip_invalid):
        return report_of(plan, dry_run=dry_run)
    prepare_photos(app, plan)            # every photo decoded and embedded before the first write
    if plan.problems and not skip_invalid:
        return report_of(plan, dry_run=False)
    result = APPLIERS[plan.kind](app, plan, staff_id or "system", skip_invalid=skip_invalid, via=via)
    return report_of(plan, dry_run=False, result=result)
