"""Importers for the district's roster, menu and subsidy policy files.

Every row is validated first. A file with any bad row imports nothing unless
``skip_invalid`` is set; ``dry_run`` only validates. Importing the same file
again changes nothing; a changed row updates the record and says so."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml
from pydantic import ValidationError as PydanticError
from sqlalchemy import select

from ..billing.policy import CATEGORIES, Policy, normalize_meal
from ..db.models import MenuItem, Resident, SubsidyPolicy
from ..errors import ImportFileError
from ..idcard import parse_id_number
from ..money import yuan_to_fen
from . import audit
from .tabular import Column, parse_date, read_table, split_list

ROSTER_COLUMNS = [
    Column("编号", "resident_id"), Column("姓名", "name", True), Column("身份证号", "id_number", True),
    Column("性别", "sex"), Column("出生日期", "birth_date"), Column("户籍", "hukou", True),
    Column("联系电话", "phone"), Column("人员类别", "categories"), Column("饮食禁忌", "diet"),
    Column("卡号", "card_no"), Column("照片", "photos"), Column("紧急联系人", "emergency_contact"),
    Column("人脸授权", "face_consent")]
MENU_COLUMNS = [
    Column("日期", "date", True), Column("餐次", "meal", True), Column("菜品编号", "dish_id", True),
    Column("菜名", "name", True), Column("价格", "price", True), Column("类别", "category"),
    Column("标签", "tags"), Column("过敏原", "allergens"), Column("份数", "portions")]
ROSTER_HEADERS = {c.alias: c.header for c in ROSTER_COLUMNS}
MENU_HEADERS = {c.alias: c.header for c in MENU_COLUMNS}
DISH_CATEGORIES = ("荤菜", "素菜", "主食", "汤", "套餐")
MENU_GENERATION = 0   # bumped by every menu import, so cached menus are dropped
POLICY_GENERATION = 0  # bumped by every policy import, so the cached policy in force is dropped
YES = {"是", "yes", "y", "true", "1", "同意"}
NO = {"否", "no", "n", "false", "0", "不同意", ""}


@dataclass
class Problem:
    row: int | None
    column: str | None
    message_zh: str
    message_en: str

    def to_json(self) -> dict:
        return {"row": self.row, "column": self.column, "message_zh": self.message_zh,
                "message_en": self.message_en}

    def text(self, file: str) -> str:
        where = f"{file}" + (f" 第{self.row}行" if self.row else "") + (f"「{self.column}」" if self.column else "")
        return f"{where}：{self.message_zh} / {self.message_en}"


@dataclass
class ImportReport:
    file: str
    kind: str
    rows: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[dict] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped_rows: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    photos: list[dict] = field(default_factory=list)
    dry_run: bool = False
    imported: bool = False

    def to_json(self) -> dict:
        return {"file": self.file, "kind": self.kind, "rows": self.rows, "dry_run": self.dry_run,
                "imported": self.imported, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "skipped_rows": self.skipped_rows,
                "problems": [p.to_json() for p in self.problems], "warnings": self.warnings,
                "photos": self.photos}


def _col(alias: str, headers: dict[str, str] = ROSTER_HEADERS) -> str:
    """The column as the file's users know it (its Chinese header)."""
    return headers.get(alias, alias)


# ---------------------------------------------------------------------- roster
@dataclass
class RosterRow:
    row: int
    resident_id: str | None
    fields: dict
    photos: list[str]
    face_consent: bool


def validate_roster_row(n: int, r: dict) -> tuple[RosterRow | None, list[Problem]]:
    probs: list[Problem] = []

    def bad(alias: str, zh: str, en: str) -> None:
        probs.append(Problem(n, _col(alias), zh, en))

    name = str(r.get("name", "")).strip()
    if not name:
        bad("name", "姓名不能为空", "name is empty")
    info = None
    idn = str(r.get("id_number", "")).strip()
    if not idn:
        bad("id_number", "身份证号不能为空", "id_number is empty")
    else:
        try:
            info = parse_id_number(idn)
        except ValueError as exc:
            bad("id_number", str(exc), f"invalid ID number {idn!r}")
    sex = str(r.get("sex", "")).strip()
    if sex and sex not in ("男", "女"):
        bad("sex", f"性别只能是男或女，不是「{sex}」", f"sex must be 男 or 女, got {sex!r}")
    elif sex and info and sex != info.sex:
        bad("sex", f"性别「{sex}」与身份证号不符（身份证为{info.sex}）", f"sex {sex} disagrees with the ID number")
    birth = None
    if r.get("birth_date") not in ("", None):
        try:
            birth = parse_date(r["birth_date"])
        except ValueError:
            bad("birth_date", f"出生日期「{r['birth_date']}」格式不对，应为 YYYY-MM-DD",
                f"birth_date {r['birth_date']!r} is not YYYY-MM-DD")
        if birth and info and birth != info.birth_date:
            bad("birth_date", f"出生日期 {birth} 与身份证号不符（身份证为 {info.birth_date}）",
                "birth_date disagrees with the ID number")
    hukou = str(r.get("hukou", "")).strip()
    if not hukou:
        bad("hukou", "户籍不能为空", "hukou is empty")
    cats = split_list(r.get("categories"))
    for c in cats:
        if c not in CATEGORIES:
            bad("categories", f"未知的人员类别「{c}」", f"unknown category {c!r}")
    diet, allergies = [], []
    for t in split_list(r.get("diet")):
        t2 = t.replace("：", ":")
        if t2.startswith("过敏:") or t2.lower().startswith("allergy:"):
            a = t2.split(":", 1)[1].strip()
            if a:
                allergies.append(a)
            else:
                bad("diet", "过敏后面要写明过敏原，例如 过敏:花生", "allergy without an allergen")
        else:
            diet.append(t)
    phone = str(r.get("phone", "")).strip()
    if phone and not all(ch.isdigit() or ch in "+- " for ch in phone):
        bad("phone", f"联系电话「{phone}」含有非法字符", f"phone {phone!r} has invalid characters")
    consent_raw = str(r.get("face_consent", "")).strip().lower()
    if consent_raw not in YES | NO:
        bad("face_consent", f"人脸授权只能填 是 或 否，不是「{consent_raw}」", "face_consent must be 是/否 (yes/no)")
    if probs:
        return None, probs
    rid = str(r.get("resident_id", "")).strip() or None
    fields = {"name": name, "id_number": info.number, "birth_date": info.birth_date, "sex": info.sex,
              "hukou": hukou, "phone": phone or None, "categories": cats, "diet_tags": diet,
              "allergies": allergies, "card_no": str(r.get("card_no", "")).strip() or None,
              "emergency_contact": str(r.get("emergency_contact", "")).strip() or None}
    return RosterRow(n, rid, fields, split_list(r.get("photos")), consent_raw in YES), []


def generated_resident_id(id_number: str) -> str:
    return "R" + hashlib.sha256(id_number.encode()).hexdigest()[:10].upper()


def import_roster(app, path: Path, *, dry_run: bool = False, skip_invalid: bool = False,
                  photos_dir: Path | None = None, staff_id: str | None = None) -> ImportReport:
    table = read_table(path, ROSTER_COLUMNS)
    rep = ImportReport(str(path), "roster", rows=len(table.rows), dry_run=dry_run, warnings=table.warnings)
    good: list[RosterRow] = []
    seen_ids: dict[str, int] = {}
    seen_idn: dict[str, int] = {}
    seen_card: dict[str, int] = {}
    for n, r in table.rows:
        row, probs = validate_roster_row(n, r)
        if row is not None:
            for key, seen, alias, zh in ((row.resident_id, seen_ids, "resident_id", "编号"),
                                         (row.fields["id_number"], seen_idn, "id_number", "身份证号"),
                                         (row.fields["card_no"], seen_card, "card_no", "卡号")):
                if key and key in seen:
                    probs.append(Problem(n, _col(alias), f"{zh}「{key}」与第{seen[key]}行重复",
                                         f"duplicate {alias} {key!r} (also row {seen[key]})"))
                elif key:
                    seen[key] = n
            if photos_dir is not None and row.face_consent:
                for ph in row.photos:
                    if not (Path(photos_dir) / ph).is_file():
                        rep.warnings.append(f"{Path(path).name} 第{n}行：照片 {ph} 不在 {photos_dir} 中 / photo not found")
        if probs:
            rep.problems += probs
            rep.skipped_rows.append(n)
        else:
            good.append(row)
    with app.db.session() as s:
        # conflicts with residents already stored (card number or ID number held by someone else)
        for row in list(good):
            rid = row.resident_id or _existing_id(s, row.fields["id_number"]) or generated_resident_id(row.fields["id_number"])
            row.resident_id = rid
            clash = False
            for col, zh in ((Resident.id_number, "身份证号"), (Resident.card_no, "卡号")):
                value = row.fields[col.key]
                holder = value and s.scalars(select(Resident).where(col == value, Resident.id != rid)).first()
                if holder:
                    clash = True
                    rep.problems.append(Problem(row.row, _col(col.key), f"{zh}已属于居民 {holder.id}（{holder.name}）",
                                                f"{col.key} already belongs to resident {holder.id}"))
            if clash:
                rep.skipped_rows.append(row.row)
                good.remove(row)
        if rep.problems and not skip_invalid:
            rep.skipped_rows = sorted(set(rep.skipped_rows))
            return rep
        for row in good:
            existing = s.get(Resident, row.resident_id)
            if existing is None:
                rep.created.append(row.resident_id)
                if not dry_run:
                    s.add(Resident(id=row.resident_id, **row.fields))
            else:
                changed = {k: [str(getattr(existing, k)), str(v)] for k, v in row.fields.items()
                           if getattr(existing, k) != v}
                if existing.status == "erased":
                    changed["status"] = ["erased", "active"]
                if changed:
                    rep.updated.append({"resident_id": row.resident_id, "changed": changed})
                    if not dry_run:
                        for k, v in row.fields.items():
                            setattr(existing, k, v)
                        existing.status = "active"
                else:
                    rep.unchanged.append(row.resident_id)
        if not dry_run:
            audit.record(s, staff_id or "system", "import.roster", str(path), created=len(rep.created),
                         updated=len(rep.updated), skipped=len(set(rep.skipped_rows)))
            if not rep.problems or skip_invalid:
                rep.imported = True
    rep.skipped_rows = sorted(set(rep.skipped_rows))
    if not dry_run and rep.imported:
        _enrol_roster_photos(app, good, photos_dir, staff_id, rep)
    return rep


def _existing_id(s, id_number: str) -> str | None:
    return s.scalar(select(Resident.id).where(Resident.id_number == id_number))


def _enrol_roster_photos(app, rows: list[RosterRow], photos_dir: Path | None, staff_id: str | None,
                         rep: ImportReport) -> None:
    """Enrol the listed photos of rows whose paper form carries face consent."""
    if photos_dir is None:
        return
    from enrollment.batch import EnrollReport, enroll_prepared, prepare_images
    from enrollment.consent import active_consent, record_consent
    from ..errors import KioskError

    for row in rows:
        if not row.photos:
            continue
        if not row.face_consent:
            rep.photos.append({"row": row.row, "resident_id": row.resident_id, "status": "no_consent",
                               "message": "未签署人脸授权，照片未登记（可用助老卡就餐）"})
            continue
        paths = [Path(photos_dir) / p for p in row.photos]
        er = EnrollReport(row.resident_id)
        try:
            with app.db.session() as s:
                if active_consent(s, row.resident_id) is None:
                    record_consent(s, row.resident_id, "self", staff_id or "system", source="roster")
                    s.flush()
                prepared = prepare_images(app, paths, er)
                if prepared:
                    enroll_prepared(app, s, row.resident_id, prepared, er, staff_id=staff_id or "system",
                                    source="import")
        except KioskError as exc:
            app.faces.rebuild_later()
            rep.photos.append({"row": row.row, "resident_id": row.resident_id, "status": "refused",
                               "message": exc.user_message})
            continue
        app.faces.save_index()
        rep.photos.append({"row": row.row, "resident_id": row.resident_id,
                           "status": "enrolled" if er.enrolled else "refused",
                           "enrolled": len(er.enrolled), "refused": er.refused})


# ---------------------------------------------------------------------- menu
def validate_menu_row(n: int, r: dict) -> tuple[dict | None, list[Problem]]:
    probs: list[Problem] = []

    def bad(alias: str, zh: str, en: str) -> None:
        probs.append(Problem(n, _col(alias, MENU_HEADERS), zh, en))

    out: dict = {}
    try:
        out["menu_date"] = parse_date(r.get("date"))
    except (ValueError, TypeError):
        bad("date", f"日期「{r.get('date')}」格式不对，应为 YYYY-MM-DD", f"date {r.get('date')!r} is not YYYY-MM-DD")
    try:
        out["meal"] = normalize_meal(str(r.get("meal", "")))
    except ValueError:
        bad("meal", f"餐次「{r.get('meal')}」应为 早餐/午餐/晚餐", f"meal {r.get('meal')!r} is not 早餐/午餐/晚餐")
    out["dish_id"] = str(r.get("dish_id", "")).strip()
    if not out["dish_id"]:
        bad("dish_id", "菜品编号不能为空", "dish_id is empty")
    out["name"] = str(r.get("name", "")).strip()
    if not out["name"]:
        bad("name", "菜名不能为空", "name is empty")
    price = r.get("price")
    try:
        if price in ("", None):
            raise ValueError("empty")
        out["price_fen"] = yuan_to_fen(price)
    except ValueError:
        bad("price", f"价格「{price}」无效：须为不小于0、最多两位小数的元金额", f"price {price!r}: not a non-negative amount with at most 2 decimals")
    cat = str(r.get("category", "")).strip() or None
    if cat and cat not in DISH_CATEGORIES:
        bad("category", f"未知的菜品类别「{cat}」（应为 {'/'.join(DISH_CATEGORIES)}）", f"unknown category {cat!r}")
    out["category"] = cat
    out["tags"] = split_list(r.get("tags"))
    out["allergens"] = split_list(r.get("allergens"))
    portions = r.get("portions")
    if portions in ("", None):
        out["portions"] = None
    else:
        try:
            p = float(portions) if not isinstance(portions, int) else portions
            if p != int(p) or p < 0:
                raise ValueError
            out["portions"] = int(p)
        except (ValueError, TypeError):
            bad("portions", f"份数「{portions}」应为不小于0的整数，或留空表示不限", f"portions {portions!r} is not a whole number >= 0")
    return (None if probs else out), probs


def import_menu(app, path: Path, *, dry_run: bool = False, skip_invalid: bool = False,
                staff_id: str | None = None) -> ImportReport:
    table = read_table(path, MENU_COLUMNS)
    rep = ImportReport(str(path), "menu", rows=len(table.rows), dry_run=dry_run, warnings=table.warnings)
    good = []
    seen: dict[tuple, int] = {}
    for n, r in table.rows:
        item, probs = validate_menu_row(n, r)
        if item is not None:
            key = (item["menu_date"], item["meal"], item["dish_id"])
            if key in seen:
                probs.append(Problem(n, _col("dish_id", MENU_HEADERS), f"菜品编号「{item['dish_id']}」在同一天同一餐与第{seen[key]}行重复",
                                     f"duplicate dish_id for that date and meal (also row {seen[key]})"))
            else:
                seen[key] = n
        if probs:
            rep.problems += probs
            rep.skipped_rows.append(n)
        else:
            good.append(item)
    if rep.problems and not skip_invalid:
        return rep
    canteen = app.settings.canteen_id
    with app.db.session() as s:
        for item in good:
            label = f"{item['menu_date']} {item['meal']} {item['dish_id']}"
            existing = s.scalars(select(MenuItem).where(
                MenuItem.canteen_id == canteen, MenuItem.menu_date == item["menu_date"],
                MenuItem.meal == item["meal"], MenuItem.dish_id == item["dish_id"])).first()
            if existing is None:
                rep.created.append(label)
                if not dry_run:
                    s.add(MenuItem(canteen_id=canteen, **item))
            else:
                changed = {k: [str(getattr(existing, k)), str(v)] for k, v in item.items() if getattr(existing, k) != v}
                if changed:
                    rep.updated.append({"dish": label, "changed": changed})
                    if not dry_run:
                        for k, v in item.items():
                            setattr(existing, k, v)
                else:
                    rep.unchanged.append(label)
        if not dry_run:
            audit.record(s, staff_id or "system", "import.menu", str(path), created=len(rep.created),
                         updated=len(rep.updated))
            rep.imported = True
    if rep.imported:
        global MENU_GENERATION
        MENU_GENERATION += 1
    return rep


# ---------------------------------------------------------------------- policy
def load_policy_file(path: Path) -> tuple[Policy, dict]:
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"找不到文件：{path}", detail=f"no such file: {path}")
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ImportFileError(f"{path.name} 格式有误，无法解析：{exc}", detail=f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ImportFileError(f"{path.name} 不是补贴政策文件", detail=f"{path}: top level is not a mapping")
    try:
        return Policy.model_validate(data), data
    except PydanticError as exc:
        probs = [Problem(None, ".".join(str(p) for p in e["loc"]), f"{'.'.join(str(p) for p in e['loc'])}：{e['msg']}",
                         e["msg"]) for e in exc.errors()]
        raise ImportFileError(f"{path.name} 有 {len(probs)} 处错误：" + "；".join(p.message_zh for p in probs),
                              detail=str(exc), problems=[p.to_json() for p in probs]) from None


def import_policy(app, path: Path, *, dry_run: bool = False, staff_id: str | None = None) -> ImportReport:
    policy, data = load_policy_file(path)
    rep = ImportReport(str(path), "policy", rows=1, dry_run=dry_run)
    # store the document as received (amounts in yuan, as the format has them) ...
    body = json.loads(json.dumps(data, default=str, ensure_ascii=False))
    # ... and compare versions by what the policy means, not by its spelling
    digest = hashlib.sha256(policy.model_dump_json().encode()).hexdigest()
    with app.db.session() as s:
        latest = s.scalars(select(SubsidyPolicy).where(SubsidyPolicy.policy_id == policy.id)
                           .order_by(SubsidyPolicy.version.desc())).first()
        if latest is not None and latest.body_sha256 == digest:
            rep.unchanged.append(f"{policy.id} v{latest.version}")
            return rep
        version = (latest.version + 1) if latest else 1
        label = f"{policy.id} v{version}"
        (rep.updated.append({"policy": label, "changed": {"version": [str(version - 1), str(version)]}})
         if latest else rep.created.append(label))
        if not dry_run:
            s.add(SubsidyPolicy(policy_id=policy.id, version=version, district=policy.district,
                                effective_from=policy.effective_from, effective_to=policy.effective_to,
                                body=body, body_sha256=digest))
            audit.record(s, staff_id or "system", "import.policy", policy.id, version=version)
            rep.imported = True
    if rep.imported:
        global POLICY_GENERATION
        POLICY_GENERATION += 1
    return rep


_PARSED: dict[str, Policy] = {}   # policy rows never change: parse each once


def policy_in_force(session, day: date, district: str | None = None) -> tuple[Policy, str] | None:
    """The policy in force on ``day`` (the newest version of each policy id), preferring the district's."""
    rows = session.execute(select(SubsidyPolicy.id, SubsidyPolicy.policy_id, SubsidyPolicy.version,
                                  SubsidyPolicy.district, SubsidyPolicy.effective_from,
                                  SubsidyPolicy.effective_to, SubsidyPolicy.imported_at)
                           .order_by(SubsidyPolicy.version)).all()
    # the newest version of each policy decides; an older version's dates no longer count
    newest = {}
    for r in rows:
        newest[r.policy_id] = r
    cands = sorted((r for r in newest.values() if r.effective_from <= day <= r.effective_to),
                   key=lambda r: r.imported_at, reverse=True)
    if not cands:
        return None
    if district:
        cands = [c for c in cands if c.district == district] or cands
    pick = cands[0]
    if pick.id not in _PARSED:
        _PARSED[pick.id] = Policy.model_validate(session.get(SubsidyPolicy, pick.id).body)
    return _PARSED[pick.id], pick.id
