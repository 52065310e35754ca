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
XLSX_MAX_UNCOMPRESSED = 100 * MB     # all members of the .xlsx zip together
XLSX_MAX_SHARED_STRINGS = 32 * MB    # the shared-string table, which the reader holds in memory (~300 MB at most)
XLSX_MAX_OTHER_PART = 4 * MB         # styles, workbook, relationships ...: parsed whole (sheets are streamed)
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
IDEMPOTENCY_KEY_MAX_CHARS = 128      # orders.idempotency_key


def check_checkout_request(resident_id: object, dish_ids: object, idempotency_key: object = None) -> None:
    """The ids of a checkout request, checked before the database sees them: text,
    not empty, at most ID_MAX_CHARS, no control characters (PostgreSQL refuses NUL);
    at most CHECKOUT_MAX_DISHES dishes. Raises ValidationError saying which."""
    from kiosk.errors import ValidationError

    def bad_id(value: object, limit: int = ID_MAX_CHARS) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return "为空" if isinstance(value, str) or value is None else "不是文字"
        if len(value) > limit:
            return f"太长（{len(value)} 个字符，最多 {limit} 个）"
        ch = forbidden_char(value)
        return f"含有不允许的控制字符 {describe_char(ch)}" if ch is not None else None

    why = bad_id(resident_id)
    if why:
        raise ValidationError(f"居民编号{why}", detail=f"resident id {str(resident_id)[:80]!r}: {why}")
    if not isinstance(dish_ids, (list, tuple)):
        raise ValidationError("菜品应是一组菜品编号", detail=f"dish ids of type {type(dish_ids).__name__}")
    if len(dish_ids) > CHECKOUT_MAX_DISHES:
        raise ValidationError(f"一次最多点 {CHECKOUT_MAX_DISHES} 份菜（这次 {len(dish_ids)} 份）",
                              detail=f"{len(dish_ids)} dishes > {CHECKOUT_MAX_DISHES}")
    for d in dish_ids:
        why = bad_id(d)
        if why:
            raise ValidationError(f"菜品编号{why}", detail=f"dish id {str(d)[:80]!r}: {why}")
    if idempotency_key is not None:
        why = bad_id(idempotency_key, IDEMPOTENCY_KEY_MAX_CHARS)
        if why:
            raise ValidationError(f"请求编号（idempotency key）{why}", detail=f"idempotency key: {why}")


NOTE_MAX_CHARS = 500                 # free-text notes and reasons (void reason, consent notes)


def check_text(value: str | None, limit: int, what_zh: str, what_en: str) -> None:
    """A free text typed by staff (payer, reason, name): at most ``limit`` characters and
    no control characters, checked before the database sees it. Raises ValidationError."""
    from kiosk.errors import ValidationError

    if value is None:
        return
    if len(value) > limit:
        raise ValidationError(f"{what_zh}太长（{len(value)} 个字符，最多 {limit} 个）",
                              detail=f"{what_en}: {len(value)} characters > {limit}")
    ch = forbidden_char(value)
    if ch is not None:
        raise ValidationError(f"{what_zh}含有不允许的控制字符 {describe_char(ch)}",
                              detail=f"{what_en}: control character {describe_char(ch)}")
