"""Reading the administrators' tables: CSV (UTF-8 with or without BOM, or GBK/GB18030)
or .xlsx, with Chinese headers or their English aliases.

Every file is bounded before it is parsed (``kiosk.limits``): its size on disk, an
.xlsx's uncompressed size and compression ratio, the rows and columns it holds
(read as they come, never from the sheet's declared dimension), and each cell's
length and characters. A cell that breaks a rule is a problem of its row, named
by row and column; a file that breaks a rule is refused as a whole."""
from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Iterator

from kiosk.errors import ImportFileError
from kiosk.limits import (CELL_MAX_CHARS, EXCEL_MAX_ROWS, MB, TABLE_MAX_BYTES, TABLE_MAX_COLUMNS, TABLE_MAX_ROWS,
                      XLSX_MAX_OTHER_PART, XLSX_MAX_RATIO, XLSX_MAX_SHARED_STRINGS, XLSX_MAX_UNCOMPRESSED,
                      XLSX_RATIO_FLOOR, describe_char, forbidden_char)


@dataclass(frozen=True)
class Column:
    header: str
    alias: str
    required: bool = False


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
class Table:
    path: Path
    rows: list[tuple[int, dict[str, object]]]  # (row number as the user sees it, alias -> value)
    warnings: list[str] = field(default_factory=list)
    encoding: str | None = None


def mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def check_file(path: Path, max_bytes: int, what: str = "文件") -> int:
    """The file exists, is a regular file and is not larger than ``max_bytes``."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"找不到文件：{path}", detail=f"no such file: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportFileError(f"{path.name}：{what}太大（{size / 1024 / 1024:.1f} MB，上限 {mb(max_bytes)}）",
                              detail=f"{path}: {size} bytes > limit {max_bytes}")
    return size


def read_bytes(path: Path) -> bytes:
    """The file's bytes (after check_file), an unreadable file refused with its name."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImportFileError(f"无法读取文件：{Path(path).name}（{exc.strerror or exc}）",
                              detail=f"{path}: {exc}") from None


def decode_text(data: bytes, path: Path) -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without BOM), else GBK/GB18030, decoded strictly.
    Anything else is refused, naming the encoding it looks like."""
    name = Path(path).name
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFileError(f"{name} 是 UTF-16 编码（Excel“Unicode 文本”），请另存为“CSV UTF-8”后再导入",
                              detail=f"{path}: UTF-16 (byte order mark)")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    guess = _guess_encoding(data)
    looks = f"（看起来是 {guess}）" if guess else ""
    raise ImportFileError(f"{name} 既不是 UTF-8 也不是 GBK 编码{looks}，请另存为“CSV UTF-8”后再导入",
                          detail=f"{path}: not UTF-8 (byte {utf8_error.start}) nor GB18030; "
                                 f"charset guess: {guess or 'none'}")


def _guess_encoding(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:65536]).best()
        return best.encoding if best is not None else None
    except Exception:  # only used to name the encoding in a refusal
        return None


def _cell_text(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.date() if v.time() == datetime.min.time() else v
    if isinstance(v, (date, int, float)):
        return v
    return str(v).strip()


def cell_problem(v: object) -> tuple[str, str] | None:
    """Why a cell cannot be taken whatever its column (NaN/Infinity, overlong, a control
    character such as NUL): (zh, en), or None. The row validators ask this first."""
    if isinstance(v, float) and not math.isfinite(v):
        return "不是有效数字（NaN 或无穷大）", f"not a finite number: {v!r}"
    if isinstance(v, str):
        if len(v) > CELL_MAX_CHARS:
            return (f"内容太长（{len(v)} 个字符，上限 {CELL_MAX_CHARS}）",
                    f"cell has {len(v)} characters, limit {CELL_MAX_CHARS}")
        ch = forbidden_char(v)
        if ch is not None:
            return (f"含有不允许的控制字符 {describe_char(ch)}", f"cell contains the control character {describe_char(ch)}")
    return None


def read_table(path: Path, columns: list[Column]) -> Table:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".xlsm", ".csv", ".txt"):
        if not path.is_file():
            raise ImportFileError(f"找不到文件：{path}", detail=f"no such file: {path}")
        raise ImportFileError(f"不支持的文件类型 {suffix}，请用 CSV 或 Excel（.xlsx）：{path}",
                              detail=f"unsupported file type {suffix!r} for {path}")
    check_file(path, TABLE_MAX_BYTES)
    encoding = None
    if suffix in (".xlsx", ".xlsm"):
        source = _read_xlsx(path)
    else:
        source, encoding = _read_csv(path)
    try:
        first = next(source, None)
        if first is None:
            raise ImportFileError(f"文件是空的：{path}", detail=f"{path}: no header row")
        hn, header = first
        header = list(header)
        while header and _cell_text(header[-1]) in ("", None):
            header.pop()
        if len(header) > TABLE_MAX_COLUMNS:
            raise ImportFileError(f"{path.name}：列数太多（{len(header)} 列，上限 {TABLE_MAX_COLUMNS}）",
                                  detail=f"{path}: {len(header)} columns > limit {TABLE_MAX_COLUMNS}")
        by_name = {}
        for c in columns:
            by_name[c.header] = c.alias
            by_name[c.alias.lower()] = c.alias
        mapping: dict[int, str] = {}
        warnings = []
        if encoding and encoding != "utf-8":
            warnings.append(f"{path.name}: 按 GBK/GB18030 编码读取 / read as {encoding}")
        for i, h in enumerate(header):
            key = str(h or "").strip().lstrip("\ufeff")[:CELL_MAX_CHARS]
            alias = by_name.get(key) or by_name.get(key.lower())
            if alias is None:
                if key:
                    shown = key if forbidden_char(key) is None else repr(key)
                    warnings.append(f"{path.name}: 忽略未知列「{shown[:40]}」 / ignored unknown column {key[:40]!r}")
                continue
            if alias in mapping.values():
                raise ImportFileError(f"{path.name}: 列「{key}」重复", detail=f"{path}: duplicate column {key!r}")
            mapping[i] = alias
        missing = [c for c in columns if c.required and c.alias not in mapping.values()]
        if missing:
            names = "、".join(f"{c.header}（{c.alias}）" for c in missing)
            hint = "（文件按 GBK 编码读取；如果是别的编码，请另存为“CSV UTF-8”）" if encoding not in (None, "utf-8") else ""
            raise ImportFileError(f"{path.name}: 缺少必填列：{names}{hint}",
                                  detail=f"{path}: missing required column(s): {', '.join(c.alias for c in missing)}")
        rows: list[tuple[int, dict[str, object]]] = []
        for n, r in source:
            if n > TABLE_MAX_ROWS + hn:
                raise ImportFileError(
                    f"{path.name}：行数太多（第 {n} 行超过上限 {TABLE_MAX_ROWS} 行数据；请删除多余的行或拆成几个文件）",
                    detail=f"{path}: row {n} beyond the limit of {TABLE_MAX_ROWS} data rows")
            cells = {alias: _cell_text(r[i]) if i < len(r) else "" for i, alias in mapping.items()}
            if all(v in ("", None) for v in cells.values()):
                continue
            rows.append((n, cells))
        return Table(path, rows, warnings, encoding)
    finally:
        source.close()


def _read_csv(path: Path) -> tuple[Iterator[tuple[int, list[object]]], str]:
    data = read_bytes(path)
    text, encoding = decode_text(data, path)
    if "\x00" in text[:4096] and text[:4096].count("\x00") > 16:
        raise ImportFileError(f"{path.name} 含有大量 NUL 字符，不是文本格式的 CSV（可能是 UTF-16 或二进制文件）",
                              detail=f"{path}: NUL bytes in the first 4 KB")

    def rows() -> Iterator[tuple[int, list[object]]]:
        reader = csv.reader(io.StringIO(text, newline=""))
        n = 0
        try:
            for row in reader:
                n += 1
                yield n, row
        except csv.Error as exc:
            raise ImportFileError(f"{path.name} 第{n + 1}行 CSV 格式有误：{exc}",
                                  detail=f"{path}: record {n + 1}: {exc}") from None

    return rows(), encoding


def check_xlsx_archive(path: Path) -> None:
    """Refuse a zip bomb before openpyxl opens it: total uncompressed size and the
    compression ratio of each large member, as the archive declares them (the zip
    reader never returns more than a member's declared size)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileError(f"{path.name} 不是有效的 Excel 文件", detail=f"{path}: {exc}") from None
    total = 0
    for info in infos:
        total += info.file_size
        name = info.filename.lower()
        # parts other than the sheets are parsed whole by openpyxl: bounded each
        part_limit = (None if name.startswith("xl/worksheets/") or not name.endswith((".xml", ".rels")) else
                      XLSX_MAX_SHARED_STRINGS if name.endswith("sharedstrings.xml") else XLSX_MAX_OTHER_PART)
        if part_limit is not None and info.file_size > part_limit:
            raise ImportFileError(f"{path.name} 中的 {info.filename} 太大（{info.file_size / MB:.1f} MB，上限 {mb(part_limit)}），"
                                  f"请删除多余的工作表、格式或拆成几个文件",
                                  detail=f"{path}: {info.filename} {info.file_size} bytes > {part_limit}")
        if info.file_size > XLSX_RATIO_FLOOR and info.file_size > XLSX_MAX_RATIO * max(info.compress_size, 1):
            raise ImportFileError(
                f"{path.name} 的压缩比异常（{info.filename} 解压后 {mb(info.file_size)}），不像正常的 Excel 文件，已拒绝",
                detail=f"{path}: member {info.filename} {info.file_size} bytes from {info.compress_size} "
                       f"(ratio > {XLSX_MAX_RATIO})")
    if total > XLSX_MAX_UNCOMPRESSED:
        raise ImportFileError(f"{path.name} 解压后太大（{mb(total)}，上限 {mb(XLSX_MAX_UNCOMPRESSED)}）",
                              detail=f"{path}: {total} bytes uncompressed > {XLSX_MAX_UNCOMPRESSED}")


def _read_xlsx(path: Path) -> Iterator[tuple[int, list[object]]]:
    check_xlsx_archive(path)
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise ImportFileError(f"{path.name} 不是有效的 Excel 文件", detail=f"{path}: {exc}") from None

    def rows() -> Iterator[tuple[int, list[object]]]:
        n = 0
        try:
            if not wb.worksheets:
                raise ImportFileError(f"{path.name} 没有工作表", detail=f"{path}: no worksheet")
            ws = wb.worksheets[0]
            ws.reset_dimensions()   # never trust the declared size: read the rows that are there
            # at most one column more than a header may have (to see that it has too many);
            # cells beyond are never materialised, and gaps between rows are skipped, not padded
            blank = (None,) * (TABLE_MAX_COLUMNS + 1)
            for row in ws.iter_rows(max_col=TABLE_MAX_COLUMNS + 1, values_only=True):
                n += 1
                if n > EXCEL_MAX_ROWS:
                    raise ImportFileError(f"{path.name} 的行号超出 Excel 的范围（第 {n} 行），文件已损坏",
                                          detail=f"{path}: row {n} > {EXCEL_MAX_ROWS}")
                if n > 1 and (row == blank or all(v is None or v == "" for v in row)):
                    continue
                yield n, list(row)
        except ImportFileError:
            raise
        except Exception as exc:
            raise ImportFileError(f"{path.name} 第{n + 1}行附近无法读取（文件损坏或不是有效的 Excel 文件）",
                                  detail=f"{path}: row {n + 1}: {type(exc).__name__}: {exc}") from None
        finally:
            wb.close()

    return rows()


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


# ---------------------------------------------------------------------- writing
# A spreadsheet cell whose text starts with one of these is run as a formula by
# Excel/WPS/LibreOffice (CSV injection); exports write such text as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower().lstrip("+-") not in ("nan", "inf", "infinity")


def csv_cell(value: object) -> object:
    """A CSV cell that cannot be a formula: text starting with = + - @ tab or CR gets a
    leading ' (which spreadsheets show as text); numbers (also "-3.50") stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _is_number_text(value):
        return "'" + value
    return value


def xlsx_append(ws, values: list) -> None:
    """Append a row where every text cell is stored as a string (never a formula, even
    when it starts with =), numbers as numbers (Decimal amounts shown with two decimals).
    Control characters that .xlsx cannot hold (a name stored before they were refused)
    are shown as U+FFFD instead of failing the whole export."""
    from decimal import Decimal

    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    ws.append([ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) if isinstance(v, str) else v for v in values])
    for cell in ws[ws.max_row]:
        v = cell.value
        if isinstance(v, str):
            cell.data_type = "s"
        elif isinstance(v, Decimal):
            cell.number_format = "0.00"
