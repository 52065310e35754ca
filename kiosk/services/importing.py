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

from ..billing.policy import CATEGORIES, Policy, category_problem, normalize_meal
from ..db.models import MenuItem, Resident, SubsidyPolicy
from ..errors import ImageError, ImportFileError
from ..idcard import parse_id_number
from ..limits import (POLICY_MAX_BYTES, POLICY_MAX_DEPTH, POLICY_MAX_NODES, POLICY_MAX_STRING,
                      describe_char, forbidden_char)
from ..money import DISH_PRICE_MAX_FEN, PORTIONS_MAX, AmountError, fen_to_yuan, yuan_to_fen
from . import audit
from .tabular import (Column, Problem, cell_problem, check_file, decode_text, parse_date, read_bytes, read_table,
                      split_list)

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


# lengths come from the database columns, so a value is refused here, never by the database
TAG_MAX_CHARS = 20      # one diet tag, allergen, category or dish tag
TAGS_MAX = 20           # tags in one cell
PHOTOS_MAX = 10         # photo names in one roster row


def max_chars(column) -> int:
    """The length of a String column of kiosk.db.models (e.g. Resident.name -> 100)."""
    return column.property.columns[0].type.length


def length_problem(value: str | None, limit: int) -> tuple[str, str] | None:
    if value is not None and len(value) > limit:
        return f"太长（{len(value)} 个字符，最多 {limit} 个）", f"too long ({len(value)} characters, at most {limit})"
    return None


def tags_problem(tags: list[str]) -> tuple[str, str] | None:
    if len(tags) > TAGS_MAX:
        return f"项目太多（{len(tags)} 项，最多 {TAGS_MAX} 项）", f"{len(tags)} items, at most {TAGS_MAX}"
    for t in tags:
        if len(t) > TAG_MAX_CHARS:
            return (f"「{t[:TAG_MAX_CHARS]}…」太长（最多 {TAG_MAX_CHARS} 个字符）",
                    f"item of {len(t)} characters, at most {TAG_MAX_CHARS}")
    return None


def cell_problems(n: int, r: dict, headers: dict[str, str]) -> list[Problem]:
    """Cells no column can take (NaN/Infinity, control characters such as NUL, overlong)."""
    out = []
    for alias, v in r.items():
        why = cell_problem(v)
        if why:
            out.append(Problem(n, headers.get(alias, alias), *why))
    return out


# ---------------------------------------------------------------------- roster
@dataclass
class RosterRow:
    row: int
    resident_id: str | None
    fields: dict
    photos: list[str]
    face_consent: bool


def validate_roster_row(n: int, r: dict) -> tuple[RosterRow | None, list[Problem]]:
    probs = cell_problems(n, r, ROSTER_HEADERS)
    if probs:
        return None, probs

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
    cats = [c.replace("：", ":") for c in split_list(r.get("categories"))]
    for c in cats:
        why = category_problem(c)       # a known category, with a known grade if it has one (残疾:二级)
        if why:
            bad("categories", why, f"unknown category or grade {c!r}")
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
        bad("face_consent", f"人脸授权只能填 是 或 否，不是「{consent_raw[:20]}」", "face_consent must be 是/否 (yes/no)")
    for alias, column in (("resident_id", Resident.id), ("name", Resident.name), ("hukou", Resident.hukou),
                          ("phone", Resident.phone), ("card_no", Resident.card_no),
                          ("emergency_contact", Resident.emergency_contact)):
        why = length_problem(str(r.get(alias, "")).strip(), max_chars(column))
        if why:
            bad(alias, *why)
    for alias, tags in (("categories", cats), ("diet", diet + allergies)):
        why = tags_problem(tags)
        if why:
            bad(alias, *why)
    photos = split_list(r.get("photos"))
    if len(photos) > PHOTOS_MAX:
        bad("photos", f"照片太多（{len(photos)} 张，最多 {PHOTOS_MAX} 张）", f"{len(photos)} photos, at most {PHOTOS_MAX}")
    for ph in photos:
        if Path(ph).is_absolute() or ".." in Path(ph).parts:
            bad("photos", f"照片「{ph[:60]}」应是照片文件夹里的文件名，不能含路径", f"photo {ph[:60]!r} leaves the photo folder")
    if probs:
        return None, probs
    rid = str(r.get("resident_id", "")).strip() or None
    fields = {"name": name, "id_number": info.number, "birth_date": info.birth_date, "sex": info.sex,
              "hukou": hukou, "phone": phone or None, "categories": cats, "diet_tags": diet,
              "allergies": allergies, "card_no": str(r.get("card_no", "")).strip() or None,
              "emergency_contact": str(r.get("emergency_contact", "")).strip() or None}
    return RosterRow(n, rid, fields, photos, consent_raw in YES), []


def generated_resident_id(id_number: str) -> str:
    return "R" + hashlib.sha256(id_number.encode()).hexdigest()[:10].upper()


def import_roster(app, path: Path, *, dry_run: bool = False, skip_invalid: bool = False,
                  photos_dir: Path | None = None, staff_id: str | None = None) -> ImportReport:
    """Every row and every photo is checked before anything is written: the cells,
    the rows against each other and the store, each photo's header (size, format,
    pixels) and, for a real import, each photo decoded and embedded."""
    if photos_dir is not None and not Path(photos_dir).is_dir():
        raise ImportFileError(f"照片文件夹不存在：{photos_dir}", detail=f"--photos {photos_dir}: not a folder")
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
                probs += _check_row_photos(row, Path(photos_dir), Path(path), rep)
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
    rep.skipped_rows = sorted(set(rep.skipped_rows))
    if rep.problems and not skip_invalid:
        return rep
    # every photo decoded, its face found and embedded before the first write
    prepared = {} if dry_run else _prepare_roster_photos(app, good, photos_dir, rep)
    rep.skipped_rows = sorted(set(rep.skipped_rows))
    if rep.problems and not skip_invalid:
        return rep
    good = [row for row in good if row.row not in rep.skipped_rows]
    with app.db.session() as s:
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
    if not dry_run and rep.imported:
        _enrol_roster_photos(app, good, photos_dir, staff_id, rep, prepared)
    return rep


def _existing_id(s, id_number: str) -> str | None:
    return s.scalar(select(Resident.id).where(Resident.id_number == id_number))


def _check_row_photos(row: RosterRow, photos_dir: Path, path: Path, rep: ImportReport) -> list[Problem]:
    """Each photo of a consenting row: a missing one is a warning (the resident can
    enrol later); one that is too large, not an image or of an unknown format is a
    problem of the row. Only the header is read."""
    from ..vision.image_io import check_image_file

    probs = []
    for ph in row.photos:
        f = photos_dir / ph
        if not f.is_file():
            rep.warnings.append(f"{path.name} 第{row.row}行：照片 {ph} 不在 {photos_dir} 中 / photo not found")
            continue
        try:
            check_image_file(f)
        except ImageError as exc:
            probs.append(Problem(row.row, _col("photos"), f"照片「{ph}」：{exc.user_message}",
                                 f"photo {ph!r}: {exc.detail}"))
    return probs


def _prepare_roster_photos(app, rows: list[RosterRow], photos_dir: Path | None,
                           rep: ImportReport) -> dict[int, tuple[list, object]]:
    """Decode, detect and embed the photos of consenting rows (nothing written). A photo
    that cannot be decoded is a problem of its row; no face or a poor photo is reported
    with the enrolment, as at the desk."""
    if photos_dir is None:
        return {}
    from enrollment.batch import EnrollReport, prepare_images

    out: dict[int, tuple[list, object]] = {}
    for row in rows:
        if not (row.photos and row.face_consent):
            continue
        er = EnrollReport(row.resident_id)
        paths = []
        for ph in row.photos:
            f = Path(photos_dir) / ph
            if f.is_file():
                paths.append(f)
            else:
                er.refused.append({"image": str(f), "reason": "error", "message": f"找不到图片文件：{f}"})
        prepared = prepare_images(app, paths, er)
        unreadable = [r for r in er.refused if r["reason"] == "error" and Path(r["image"]).is_file()]
        for r in unreadable:
            rep.problems.append(Problem(row.row, _col("photos"), f"照片「{Path(r['image']).name}」：{r['message']}",
                                        f"photo {r['image']!r} cannot be decoded"))
        if unreadable:
            rep.skipped_rows.append(row.row)
            continue
        out[row.row] = (prepared, er)
    return out


def _enrol_roster_photos(app, rows: list[RosterRow], photos_dir: Path | None, staff_id: str | None,
                         rep: ImportReport, prepared: dict[int, tuple[list, object]]) -> None:
    """Enrol the prepared photos of rows whose paper form carries face consent."""
    if photos_dir is None:
        return
    from enrollment.batch import enroll_prepared
    from enrollment.consent import active_consent, record_consent
    from ..errors import KioskError

    for row in rows:
        if not row.photos:
            continue
        if not row.face_consent:
            rep.photos.append({"row": row.row, "resident_id": row.resident_id, "status": "no_consent",
                               "message": "未签署人脸授权，照片未登记（可用助老卡就餐）"})
            continue
        ready, er = prepared.get(row.row, ([], None))
        if er is None:
            continue
        try:
            with app.db.session() as s:
                if active_consent(s, row.resident_id) is None:
                    record_consent(s, row.resident_id, "self", staff_id or "system", source="roster")
                    s.flush()
                if ready:
                    enroll_prepared(app, s, row.resident_id, ready, er, staff_id=staff_id or "system",
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
    probs = cell_problems(n, r, MENU_HEADERS)
    if probs:
        return None, probs

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
            raise AmountError("empty", "不能为空")
        out["price_fen"] = yuan_to_fen(price, max_fen=DISH_PRICE_MAX_FEN)
    except AmountError as exc:
        shown = str(price)[:20]
        bad("price", f"价格「{shown}」无效：{exc.zh}（须为 0 到 {fen_to_yuan(DISH_PRICE_MAX_FEN)} 元、最多两位小数）",
            f"price {shown!r}: {exc} (0 to {fen_to_yuan(DISH_PRICE_MAX_FEN)} yuan, at most 2 decimals)")
    cat = str(r.get("category", "")).strip() or None
    if cat and cat not in DISH_CATEGORIES:
        bad("category", f"未知的菜品类别「{cat}」（应为 {'/'.join(DISH_CATEGORIES)}）", f"unknown category {cat!r}")
    out["category"] = cat
    out["tags"] = split_list(r.get("tags"))
    out["allergens"] = split_list(r.get("allergens"))
    for alias, column in (("dish_id", MenuItem.dish_id), ("name", MenuItem.name)):
        why = length_problem(out[alias], max_chars(column))
        if why:
            bad(alias, *why)
    for alias in ("tags", "allergens"):
        why = tags_problem(out[alias])
        if why:
            bad(alias, *why)
    portions = r.get("portions")
    if portions in ("", None):
        out["portions"] = None
    else:
        p = parse_portions(portions)
        if p is None:
            bad("portions", f"份数「{str(portions)[:20]}」应为 0 到 {PORTIONS_MAX} 的整数，或留空表示不限",
                f"portions {str(portions)[:20]!r} is not a whole number from 0 to {PORTIONS_MAX}")
        out["portions"] = p
    return (None if probs else out), probs


def parse_portions(value: object) -> int | None:
    """A whole number of portions within 0..PORTIONS_MAX, or None when it is not one
    (12, 12.0 and '12' are; 2.5, NaN, Infinity, 1e20 and -1 are not)."""
    from decimal import Decimal, InvalidOperation

    if isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value).strip()) if not isinstance(value, int) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite() or d != d.to_integral_value() or not 0 <= d <= PORTIONS_MAX:
        return None
    return int(d)


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
    rep.skipped_rows = sorted(set(rep.skipped_rows))
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
class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases: a policy never needs them,
    and an alias bomb (billion laughs) is refused before anything is expanded."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "别名（*alias）不允许出现在补贴政策里 / aliases are not allowed",
                                              ev.start_mark)
        ev = self.peek_event()
        if getattr(ev, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "锚点（&anchor）不允许出现在补贴政策里 / anchors are not allowed",
                                              ev.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        self._nodes = getattr(self, "_nodes", 0) + 1
        try:
            if self._depth > POLICY_MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"嵌套超过 {POLICY_MAX_DEPTH} 层 / nested deeper than "
                                                  f"{POLICY_MAX_DEPTH}", ev.start_mark)
            if self._nodes > POLICY_MAX_NODES:
                raise yaml.composer.ComposerError(None, None, f"超过 {POLICY_MAX_NODES} 个元素 / more than "
                                                  f"{POLICY_MAX_NODES} nodes", ev.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _refuse_json_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a policy can hold")


def _check_policy_values(data: object, name: str, where: str = "", depth: int = 0) -> None:
    """Every text of the document: no control characters, at most POLICY_MAX_STRING long;
    nesting and size bounded (JSON has no loader hook for these)."""
    if depth > POLICY_MAX_DEPTH:
        raise ImportFileError(f"{name}：嵌套超过 {POLICY_MAX_DEPTH} 层", detail=f"{name}: nested deeper than {POLICY_MAX_DEPTH}")
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else None
    if items is None:
        if isinstance(data, (bytes, bytearray, set)):
            raise ImportFileError(f"{name}「{where or '/'}」的值类型不允许（{type(data).__name__}）",
                                  detail=f"{name}: {where}: {type(data).__name__} value")
        if isinstance(data, str):
            ch = forbidden_char(data)
            if ch is not None:
                raise ImportFileError(f"{name}「{where or '/'}」含有不允许的控制字符 {describe_char(ch)}",
                                      detail=f"{name}: {where}: control character {describe_char(ch)}")
            if len(data) > POLICY_MAX_STRING:
                raise ImportFileError(f"{name}「{where or '/'}」太长（{len(data)} 个字符，最多 {POLICY_MAX_STRING} 个）",
                                      detail=f"{name}: {where}: {len(data)} characters > {POLICY_MAX_STRING}")
        return
    for k, v in items:
        key = str(k)
        if isinstance(k, str):
            _check_policy_values(k, name, f"{where}.{key[:20]}" if where else key[:20], depth + 1)
        _check_policy_values(v, name, f"{where}.{key[:20]}" if where else key[:20], depth + 1)


def load_policy_file(path: Path) -> tuple[Policy, dict]:
    """A policy document (YAML or JSON), bounded: at most POLICY_MAX_BYTES, UTF-8 or GBK,
    no YAML anchors or aliases, nesting and node counts capped, no NaN/Infinity."""
    path = Path(path)
    check_file(path, POLICY_MAX_BYTES, "补贴政策文件")
    text, _enc = decode_text(read_bytes(path), path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, parse_constant=_refuse_json_constant)
        else:
            data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except (json.JSONDecodeError, yaml.YAMLError, ValueError, RecursionError) as exc:
        msg = str(exc)[:300]
        raise ImportFileError(f"{path.name} 格式有误，无法解析：{msg}", detail=f"{path}: {type(exc).__name__}: {msg}") from None
    if not isinstance(data, dict):
        raise ImportFileError(f"{path.name} 不是补贴政策文件", detail=f"{path}: top level is not a mapping")
    _check_policy_values(data, path.name)
    try:
        return Policy.model_validate(data), data
    except PydanticError as exc:
        probs = [Problem(None, ".".join(str(p) for p in e["loc"])[:80],
                         f"{'.'.join(str(p) for p in e['loc'])[:80]}：{e['msg'].removeprefix('Value error, ')[:300]}",
                         e["msg"].removeprefix("Value error, ")[:300])
                 for e in exc.errors()[:20]]
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
