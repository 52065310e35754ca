"""Small hostile files, made in the test (nothing shipped): an .xlsx with a huge
sparse dimension, a billion-laughs YAML, PNGs whose header declares 20000² or
40000² pixels, a zip bomb posing as .xlsx."""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

from openpyxl import Workbook


def png_bytes(width: int, height: int, *, decodable: bool = False) -> bytes:
    """A PNG whose IHDR says ``width`` x ``height``. With ``decodable`` the image data
    is complete (1-bit grey, all black: 20000² is ~50 KB on disk and 1.2 GB decoded to
    BGR); without it the data stops after a few bytes (a few hundred bytes in all)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    if decodable:
        ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)     # 1-bit greyscale
        row = b"\x00" * (1 + (width + 7) // 8)
        comp = zlib.compressobj(9)
        parts = [comp.compress(row * min(height, 1000)) for _ in range(height // 1000)]
        parts.append(comp.compress(row * (height % 1000)))
        parts.append(comp.flush())
        idat = b"".join(parts)
    else:
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)     # 8-bit RGB
        idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sparse_dimension_xlsx(path: Path, rows: list[list[str]]) -> Path:
    """A valid workbook holding ``rows``, whose sheet declares the dimension A1:XFD1048576
    and ends with an empty cell at XFD1048576: a reader that trusts the dimension (or
    pads every row to it) builds 10⁶ rows of 16384 cells. A few KB on disk."""
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                start = text.index("<dimension ref=\"")
                end = text.index("/>", start)
                text = text[:start] + "<dimension ref=\"A1:XFD1048576\"" + text[end:]
                text = text.replace("</sheetData>", "<row r=\"1048576\"><c r=\"XFD1048576\"/></row></sheetData>")
                data = text.encode()
            out.writestr(info.filename, data)
    return path


def zip_bomb_xlsx(path: Path, size: int = 300 * 1024 * 1024) -> Path:
    """An .xlsx-named zip whose sheet inflates ``size`` bytes of spaces (~300 KB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        with out.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            block = b" " * (1024 * 1024)
            for _ in range(size // len(block)):
                fh.write(block)
    return path


def billion_laughs_yaml(levels: int = 9) -> str:
    """The YAML alias bomb: 10 aliases per level, 10^levels strings once expanded."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        refs = ",".join(f"*a{i - 1}" for _ in range(10))
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append(f"id: bomb\ntiers: *a{levels}")
    return "\n".join(lines) + "\n"
