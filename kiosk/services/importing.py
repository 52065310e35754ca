"""Reading and checking the district's roster, menu and subsidy policy files, and the
``import_*`` helpers.

This module holds what every import shares: the columns, the checks of one row
(bounded, every value validated before the database sees it), the photo checks and
the bounded policy loader. What a file would change and writing it is
kiosk.services.import_plan's (the one import path of the console, the command line
and the kiosk): ``import_roster``/``import_menu``/``import_policy`` here plan the file
and apply the plan. Every row is validated first; a file with any bad row imports
nothing unless ``skip_invalid`` is set; ``dry_run`` only plans. Importing the same
file again changes nothing; a changed row updates the record and says so; a blank
roster cell keeps what is stored and ``清除`` clears it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml
from pydantic import ValidationError as PydanticError
from sqlalchemy import select

from kiosk.billing.policy import Policy, category_problem, normalize_meal
from kiosk.db.models import MenuItem, Resident, SubsidyPolicy
from kiosk.errors import ImageError, ImportFileError
from kiosk.idcard import parse_id_number
from kiosk.limits import (POLICY_MAX_BYTES, POLICY_MAX_DEPTH, POLICY_MAX_NODES, POLICY_MAX_STRING,
                      describe_char, forbidden_char)
from kiosk.billing.status import REGISTERED, STATUS_OF_CELL, STATUS_ZH
from kiosk.money import DISH_PRICE_MAX_FEN, PORTIONS_MAX, AmountError, fen_to_yuan, yuan_to_fen
from kiosk.services.tabular import (Column, Problem, cell_problem, check_file, decode_text, parse_date, read_bytes,
                      split_list)

ROSTER_COLUMNS = [
    Column("编号", "resident_id"), Column("姓名", "name", True), Column("身份证号", "id_number", True),
    Column("性别", "sex"), Column("出生日期", "birth_date"), Column("户籍", "hukou", True),
    Column("联系电话", "phone"), Column("人员类别", "categories"), Column("饮食禁忌", "diet"),
    Column("卡号", "card_no"), Column("照片", "photos"), Column("紧急联系人", "emergency_contact"),
    Column("人脸授权", "face_consent"), Column("状态", "status"), Column("状态日期", "status_date")]
MENU_COLUMNS = [
    Column("日期", "date", True), Column("餐次", "meal", True), Column("菜品编号", "dish_id", True),
    Column("菜名", "name", True), Column("价格", "price", True), Column("类别", "category"),
    Column("标签", "tags"), Column("过敏原", "allergens"), Column("份数", "portions"),
    Column("食堂", "canteen_id")]
ROSTER_HEADERS = {c.alias: c.header for c in ROSTER_COLUMNS}
MENU_HEADERS = {c.alias: c.header for c in MENU_COLUMNS}
DISH_CATEGORIES = ("荤菜", "素菜", "主食", "汤", "套餐")
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
    plan: object = field(default=None, repr=False)   # the import_plan.ImportPlan it reports

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
    status_fields = _roster_status(r, name, birth, info, bad)
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
              "emergency_contact": str(r.get("emergency_contact", "")).strip() or None, **status_fields}
    return RosterRow(n, rid, fields, photos, consent_raw in YES), []


def _roster_status(r: dict, name: str, birth, info, bad) -> dict:
    """The 状态 / 状态日期 cells as ``roster_status`` / ``status_date`` (kiosk.billing.status);
    {} when 状态 is blank (an update keeps the stored status). A bad cell is named with the
    resident's name."""
    who = f"{name}：" if name else ""
    raw = "" if r.get("status") is None else str(r.get("status")).strip()
    raw_date = r.get("status_date")
    has_date = raw_date not in ("", None) and str(raw_date).strip() != ""
    day = None
    if has_date:
        try:
            day = parse_date(raw_date)
        except ValueError:
            bad("status_date", f"{who}状态日期「{str(raw_date)[:20]}」格式不对，应为 YYYY-MM-DD",
                f"status_date {str(raw_date)[:20]!r} is not YYYY-MM-DD")
            return {}
    if not raw:
        if has_date:
            bad("status_date", f"{who}填了状态日期 {day}，但没有填状态（在册/暂停/迁出/死亡）",
                "status_date given without status")
        return {}
    code = STATUS_OF_CELL.get(raw) or STATUS_OF_CELL.get(raw.lower())
    if code is None:
        bad("status", f"{who}状态只能是 在册、暂停、迁出 或 死亡，不是「{raw[:20]}」",
            f"status must be 在册/暂停/迁出/死亡, got {raw[:20]!r}")
        return {}
    if code == REGISTERED:      # 在册: registered again (a date, if any, changes nothing)
        return {"roster_status": REGISTERED, "status_date": None}
    if day is None:
        bad("status_date", f"{who}状态为「{STATUS_ZH[code]}」时必须填状态日期（YYYY-MM-DD，从这天起停止补贴）",
            f"status_date is required when status is {STATUS_ZH[code]}")
        return {}
    born = birth or (info.birth_date if info else None)
    if born is not None and day < born:
        bad("status_date", f"{who}状态日期 {day} 早于出生日期 {born}", "status_date before birth_date")
        return {}
    return {"roster_status": code, "status_date": day}


def generated_resident_id(id_number: str) -> str:
    return "R" + hashlib.sha256(id_number.encode()).hexdigest()[:10].upper()


def check_row_photos(row: int, photos: list[str], photos_dir: Path, file: str,
                     warnings: list[str]) -> list[Problem]:
    """Each photo of a consenting row: a missing one is a warning (the resident can
    enrol later); one that is too large, not an image or of an unknown format is a
    problem of the row. Only the header is read."""
    from kiosk.vision.image_io import check_image_file

    probs = []
    for ph in photos:
        f = Path(photos_dir) / ph
        if not f.is_file():
            warnings.append(f"{file} 第{row}行：照片 {ph} 不在 {photos_dir} 中 / photo not found")
            continue
        try:
            check_image_file(f)
        except ImageError as exc:
            probs.append(Problem(row, _col("photos"), f"照片「{ph}」：{exc.user_message}",
                                 f"photo {ph!r}: {exc.detail}"))
    return probs


def import_roster(app, path: Path, *, dry_run: bool = False, skip_invalid: bool = False,
                  photos_dir: Path | None = None, staff_id: str | None = None) -> ImportReport:
    """Plan the roster and apply the plan (kiosk.services.import_plan). Every row and
    every photo is checked before anything is written: the cells, the rows against each
    other and the store, each photo's header (size, format, pixels) and, for a real
    import, each photo decoded and embedded."""
    from kiosk.services import import_plan

    plan = import_plan.plan_roster(app, path, photos_dir=photos_dir)
    return import_plan.run_import(app, plan, dry_run=dry_run, skip_invalid=skip_invalid, staff_id=staff_id)


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
                staff_id: str | None = None, canteen_id: str | None = None) -> ImportReport:
    """Plan the menu (each row for its 食堂, else ``canteen_id``, else every canteen) and
    apply the plan."""
    from kiosk.services import import_plan

    plan = import_plan.plan_menu(app, path, canteen_id)
    return import_plan.run_import(app, plan, dry_run=dry_run, skip_invalid=skip_invalid, staff_id=staff_id)


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


def import_policy(app, path: Path, *, dry_run: bool = False, staff_id: str | None = None,
                  replace: bool = False, today: date | None = None) -> ImportReport:
    """Plan the policy and apply the plan. A tier overlapping a tier of a policy in force
    (same category or age bracket, overlapping dates) is refused (ValidationError naming
    both) unless ``replace``. ``today`` (default: today, China Standard Time): policies
    that ended before it are not in force."""
    from kiosk.timeutil import now_cst
    from kiosk.services import import_plan

    plan = import_plan.plan_policy(app, path, replace=replace, today=today or now_cst().date())
    return import_plan.run_import(app, plan, dry_run=dry_run, staff_id=staff_id)


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
