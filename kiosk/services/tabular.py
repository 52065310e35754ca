"""Reading the administrators' tables: CSV (UTF-8 with or without BOM) or .xlsx,
with Chinese headers or their English aliases."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from ..errors import ImportFileError


@dataclass(frozen=True)
class Column:
    header: str
    alias: str
    required: bool = False


@dataclass
class Table:
    path: Path
    rows: list[tuple[int, dict[str, object]]]  # (row number as the user sees it, alias -> value)
    warnings: list[str] = field(default_factory=list)


def _cell_text(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.date() if v.time() == datetime.min.time() else v
    if isinstance(v, (date, int, float)):
        return v
    return str(v).strip()


def read_table(path: Path, columns: list[Column]) -> Table:
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"找不到文件：{path}", detail=f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        raw_rows = _read_xlsx(path)
    elif suffix in (".csv", ".txt"):
        raw_rows = _read_csv(path)
    else:
        raise ImportFileError(f"不支持的文件类型 {suffix}，请用 CSV 或 Excel（.xlsx）：{path}",
                              detail=f"unsupported file type {suffix!r} for {path}")
    if not raw_rows:
        raise ImportFileError(f"文件是空的：{path}", detail=f"{path}: no header row")
    header, *body = raw_rows
    by_name = {}
    for c in columns:
        by_name[c.header] = c.alias
        by_name[c.alias.lower()] = c.alias
    mapping: dict[int, str] = {}
    warnings = []
    for i, h in enumerate(header):
        key = str(h or "").strip().lstrip("\ufeff")
        alias = by_name.get(key) or by_name.get(key.lower())
        if alias is None:
            if key:
                warnings.append(f"{path.name}: 忽略未知列「{key}」 / ignored unknown column {key!r}")
            continue
        if alias in mapping.values():
            raise ImportFileError(f"{path.name}: 列「{key}」重复", detail=f"{path}: duplicate column {key!r}")
        mapping[i] = alias
    missing = [c for c in columns if c.required and c.alias not in mapping.values()]
    if missing:
        names = "、".join(f"{c.header}（{c.alias}）" for c in missing)
        raise ImportFileError(f"{path.name}: 缺少必填列：{names}",
                              detail=f"{path}: missing required column(s): {', '.join(c.alias for c in missing)}")
    rows = []
    for n, r in enumerate(body, start=2):
        if all(_cell_text(v) in ("", None) for v in r):
            continue
        rec = {alias: _cell_text(r[i]) if i < len(r) else "" for i, alias in mapping.items()}
        rows.append((n, rec))
    return Table(path, rows, warnings)


def _read_csv(path: Path) -> list[list[object]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path.name} 不是 UTF-8 编码（Excel 另存为时请选“CSV UTF-8”）",
                              detail=f"{path}: not UTF-8 at byte {exc.start}") from None
    try:
        return [row for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise ImportFileError(f"{path.name} 的 CSV 格式有误：{exc}", detail=f"{path}: {exc}") from None


def _read_xlsx(path: Path) -> list[list[object]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise ImportFileError(f"{path.name} 不是有效的 Excel 文件", detail=f"{path}: {exc}") from None
    try:
        ws = wb.worksheets[0]
        return [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()


def split_list(value: object) -> list[str]:
    text = str(value or "")
    for sep in ("；", "、", ",", "，", "|"):
        text = text.replace(sep, ";")
    return [p.strip() for p in text.split(";") if p.strip()]


def parse_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("/", "-")
    return date.fromisoformat(text)
