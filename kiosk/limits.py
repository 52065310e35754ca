"""Bounds on every input the kiosk reads from a file or a person. Checked at the
edge, before anything is parsed or stored (README: "Limits"). Amounts are in
``kiosk.money``; the lengths of stored text come from the database columns
(``kiosk.db.models``) so the two never disagree."""
from __future__ import annotations

MB = 1024 * 1024

# tables (roster, menu): CSV or .xlsx
TABLE_MAX_BYTES = 20 * MB            # the file on disk
TABLE_MAX_ROWS = 100_000             # data rows (a larger roster: split it)
TABLE_MAX_COLUMNS = 64               # columns that hold anything
EXCEL_MAX_ROWS = 1_048_576           # a row number beyond Excel's own limit: a forged sheet
CELL_MAX_CHARS = 1_000               # any one cell, before the column's own length
XLSX_MAX_UNCOMPRESSED = 200 * MB     # all members of the .xlsx zip together
XLSX_MAX_RATIO = 100                 # uncompressed / compressed, for members over 1 MB
XLSX_RATIO_FLOOR = 1 * MB

# policy documents: YAML or JSON
POLICY_MAX_BYTES = 1 * MB
POLICY_MAX_DEPTH = 20                # nesting of mappings and lists
POLICY_MAX_NODES = 20_000            # scalars, mappings and lists together
POLICY_MAX_TIERS = 100
POLICY_MAX_STRING = 200              # any text value of the policy

# images (enrolment, identify, roster photos, camera folders)
IMAGE_MAX_BYTES = 20 * MB
IMAGE_MAX_PIXELS = 40_000_000        # width x height, read from the header before decoding

# checkout requests
CHECKOUT_MAX_DISHES = 50             # dishes (with repeats) on one order
ID_MAX_CHARS = 64                    # resident, dish, staff and canteen ids


def forbidden_char(text: str) -> str | None:
    """The first control character that has no place in a stored text (NUL and the
    other C0/C1 controls except tab and line breaks), or None."""
    for ch in text:
        o = ord(ch)
        if (o < 32 and ch not in "\t\n\r") or o == 127 or 0x80 <= o < 0xA0:
            return ch
    return None


def describe_char(ch: str) -> str:
    return "NUL" if ch == "\x00" else f"U+{ord(ch):04X}"
