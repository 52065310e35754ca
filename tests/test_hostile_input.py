"""Hostile and absurd input (issue 10, items 5-7): every file bounded before it is
parsed, every value checked at the edge, a clear refusal naming file, row and column,
nothing stored. The hostile files are made here, small (tests/hostile_files.py)."""
from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from kiosk.cli.main import main
from kiosk.db.models import FaceConsent, FaceTemplate, LedgerEntry, MenuItem, Order, Resident, SubsidyPolicy
from kiosk.errors import ImageError, ImportFileError
from kiosk.money import (DISH_PRICE_MAX_FEN, SUBSIDY_PER_MEAL_MAX_FEN, TOPUP_MAX_FEN, AmountError,
                         yuan_to_fen)
from kiosk.services.importing import import_menu, import_policy, import_roster, load_policy_file
from kiosk.vision.image_io import check_image_file, read_image

from tests.hostile_files import billion_laughs_yaml, png_bytes, sparse_dimension_xlsx, zip_bomb_xlsx

ROSTER_HEAD = ["编号", "姓名", "身份证号", "性别", "出生日期", "户籍", "联系电话", "人员类别", "饮食禁忌", "卡号",
               "照片", "紧急联系人", "人脸授权"]
MENU_HEAD = "日期,餐次,菜品编号,菜名,价格,类别,标签,过敏原,份数"
GOOD_ROW = ["R0", "李四", "510107195011020035", "男", "", "武侯区", "", "", "", "", "", "", ""]


def count(app, model) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def counts(app) -> tuple:
    return tuple(count(app, m) for m in (Resident, FaceConsent, FaceTemplate, MenuItem, SubsidyPolicy, Order,
                                         LedgerEntry))


def write_csv(path: Path, rows: list[list], encoding: str = "utf-8") -> Path:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


# ------------------------------------------------------------------ spreadsheets
def test_sparse_dimension_xlsx_reads_only_the_rows_it_has(app, tmp_path, formats):
    """5 KB declaring A1:XFD1048576 with a cell at XFD1048576: was 2.9 GB and MemoryError."""
    with open(formats / "roster.example.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    p = sparse_dimension_xlsx(tmp_path / "roster.xlsx", rows)
    assert p.stat().st_size < 10_000
    rep = import_roster(app, p)
    assert rep.imported and rep.created == ["R0001", "R0002", "R0003"] and not rep.problems


def test_xlsx_zip_bomb_refused_before_opening(app, tmp_path):
    p = zip_bomb_xlsx(tmp_path / "bomb.xlsx", size=20 * 1024 * 1024)
    with pytest.raises(ImportFileError, match="压缩比异常") as ei:
        import_roster(app, p)
    assert "bomb.xlsx" in ei.value.user_message and count(app, Resident) == 0


def test_table_limits_rows_columns_size(app, tmp_path, monkeypatch):
    import kiosk.services.tabular as tabular

    monkeypatch.setattr(tabular, "TABLE_MAX_ROWS", 3)
    rows = [ROSTER_HEAD] + [[f"R{i}", "李四", "", "", "", "武侯区"] for i in range(5)]
    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(tmp_path / "many.xlsx")
    for p in (write_csv(tmp_path / "many.csv", rows), tmp_path / "many.xlsx"):
        with pytest.raises(ImportFileError, match="行数太多") as ei:
            import_roster(app, p)
        assert p.name in ei.value.user_message and "第 5 行" in ei.value.user_message
    wide = write_csv(tmp_path / "wide.csv", [ROSTER_HEAD + [f"x{i}" for i in range(70)], GOOD_ROW])
    with pytest.raises(ImportFileError, match="列数太多"):
        import_roster(app, wide)
    monkeypatch.setattr(tabular, "TABLE_MAX_BYTES", 100)
    with pytest.raises(ImportFileError, match="文件太大"):
        import_roster(app, write_csv(tmp_path / "big.csv", [ROSTER_HEAD, GOOD_ROW, GOOD_ROW]))
    assert count(app, Resident) == 0


def test_xlsx_non_finite_and_huge_numbers(app, tmp_path):
    """1e20, #NUM!, "NaN" and an infinite number cell (1E400, which Excel never writes)
    are bad rows naming the column; a number cell reading NaN refuses the file naming
    the row. Never a traceback."""
    wb = Workbook()
    ws = wb.active
    ws.append(MENU_HEAD.split(","))
    ws.append(["2026-11-23", "午餐", "D1", "鱼", 1e20, "荤菜", "", "", ""])
    ws.append(["2026-11-23", "午餐", "D2", "饭", "#NUM!", "主食", "", "", ""])
    ws.append(["2026-11-23", "午餐", "D3", "汤", 3, "汤", "", "", 1e20])
    ws.append(["2026-11-23", "午餐", "D4", "菜", "NaN", "素菜", "", "", ""])
    wb.save(tmp_path / "menu.xlsx")
    rep = import_menu(app, tmp_path / "menu.xlsx")
    assert not rep.imported and count(app, MenuItem) == 0
    assert [(p.row, p.column) for p in rep.problems] == [(2, "价格"), (3, "价格"), (4, "份数"), (5, "价格")]
    assert "超过上限" in rep.problems[0].message_zh
    ws.append(["2026-11-23", "午餐", "D5", "菜", 123456789, "素菜", "", "", ""])
    wb.save(tmp_path / "inf.xlsx")
    rep = import_menu(app, _patch_sheet(tmp_path / "inf.xlsx", b"<v>123456789</v>", b"<v>1E400</v>"))
    assert [(p.row, p.column) for p in rep.problems][-1] == (6, "价格")
    assert "NaN 或无穷大" in rep.problems[-1].message_zh and count(app, MenuItem) == 0
    with pytest.raises(ImportFileError, match="第6行附近无法读取"):
        import_menu(app, _patch_sheet(tmp_path / "inf.xlsx", b"<v>1E400</v>", b"<v>NaN</v>"))


def _patch_sheet(path: Path, old: bytes, new: bytes) -> Path:
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    sheet = members["xl/worksheets/sheet1.xml"]
    assert old in sheet
    members["xl/worksheets/sheet1.xml"] = sheet.replace(old, new)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


# ------------------------------------------------------------------ values in CSV cells
@pytest.mark.parametrize("price,needle", [("NaN", "NaN"), ("Infinity", "NaN"), ("-Infinity", "NaN"),
                                          ("1e20", "超过上限"), ("1000000000", "超过上限"),
                                          ("500.01", "超过上限"), ("1e-5", "两位小数")])
def test_absurd_dish_prices_refused(app, tmp_path, price, needle):
    p = tmp_path / "menu.csv"
    p.write_text(f"{MENU_HEAD}\n2026-11-23,午餐,D1,鱼,{price},荤菜,,,\n", encoding="utf-8")
    rep = import_menu(app, p)
    (prob,) = rep.problems
    assert (prob.row, prob.column) == (2, "价格") and needle in prob.message_zh and "500.00" in prob.message_zh
    assert not rep.imported and count(app, MenuItem) == 0


def test_dish_at_the_bound_is_accepted_and_a_billion_yuan_dish_never_settles(app, tmp_path):
    p = tmp_path / "menu.csv"
    p.write_text(f"{MENU_HEAD}\n2026-11-23,午餐,D1,满汉全席,500.00,套餐,,,\n", encoding="utf-8")
    assert import_menu(app, p).imported
    p.write_text(f"{MENU_HEAD}\n2026-11-23,午餐,D1,满汉全席,1000000000.00,套餐,,,\n", encoding="utf-8")
    assert main(["menu", "import", str(p)]) == 1
    with app.db.session() as s:
        assert s.scalars(select(MenuItem.price_fen)).one() == DISH_PRICE_MAX_FEN


@pytest.mark.parametrize("portions", ["NaN", "Infinity", "1e20", "-1", "2.5", "10001"])
def test_absurd_portions_refused(app, tmp_path, portions):
    p = tmp_path / "menu.csv"
    p.write_text(f"{MENU_HEAD}\n2026-11-23,午餐,D1,鱼,12,荤菜,,,{portions}\n", encoding="utf-8")
    rep = import_menu(app, p)
    assert [(pr.row, pr.column) for pr in rep.problems] == [(2, "份数")] and count(app, MenuItem) == 0


@pytest.mark.parametrize("column,value,needle", [
    ("姓名", "张\x00三", "NUL"), ("户籍", "武侯\x07区", "U+0007"), ("姓名", "张" * 101, "最多 100"),
    ("卡号", "K" * 65, "最多 64"), ("编号", "R" * 65, "最多 64"), ("联系电话", "1" * 41, "最多 40"),
    ("紧急联系人", "李" * 201, "最多 200"), ("饮食禁忌", ";".join(f"忌{i}" for i in range(21)), "最多 20 项"),
    ("姓名", "张" * 1001, "上限 1000"),
])
def test_control_characters_and_lengths_refused_before_the_database(app, tmp_path, column, value, needle):
    row = list(GOOD_ROW)
    row[ROSTER_HEAD.index(column)] = value
    other = ["R9", "王五", "510107194203150024", "女", "", "武侯区"] + [""] * 7
    p = write_csv(tmp_path / "roster.csv", [ROSTER_HEAD, other, row])
    rep = import_roster(app, p)
    (prob,) = rep.problems
    assert (prob.row, prob.column) == (3, column) and needle in prob.message_zh, prob
    assert "roster.csv 第3行" in prob.text("roster.csv")
    assert not rep.imported and count(app, Resident) == 0
    assert main(["residents", "import", str(p)]) == 1


def test_gbk_roster_imported_with_a_warning(app, tmp_path, formats):
    text = (formats / "roster.example.csv").read_text(encoding="utf-8")
    for enc in ("gbk", "gb18030"):
        p = tmp_path / f"roster-{enc}.csv"
        p.write_bytes(text.encode(enc))
        rep = import_roster(app, p)
        assert rep.imported and not rep.problems and any("GBK" in w for w in rep.warnings)
    with app.db.session() as s:
        assert s.get(Resident, "R0001").name == "张桂兰"


@pytest.mark.parametrize("data,needle", [
    ("编号,姓名\n".encode("utf-16"), "UTF-16"),
    (b"\xef\xbb\xbf" + "编号,姓名,身份证号,户籍\n".encode() + b"R1,Jos\xe9\n", "既不是 UTF-8 也不是 GBK"),
])
def test_other_encodings_refused_and_named(app, tmp_path, data, needle):
    p = tmp_path / "roster.csv"
    p.write_bytes(data)
    with pytest.raises(ImportFileError, match=needle) as ei:
        import_roster(app, p)
    assert "roster.csv" in ei.value.user_message
    assert main(["residents", "import", str(p), "--json"]) == 2


def test_utf8_bom_and_crlf_accepted(app, tmp_path, formats):
    text = (formats / "menu.example.csv").read_text(encoding="utf-8").replace("\n", "\r\n")
    p = tmp_path / "menu.csv"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert len(import_menu(app, p).created) == 7


# ------------------------------------------------------------------ policy documents
def test_billion_laughs_policy_refused_without_expanding(app, tmp_path):
    p = tmp_path / "bomb.yaml"
    p.write_text(billion_laughs_yaml(), encoding="utf-8")
    with pytest.raises(ImportFileError, match="锚点") as ei:
        import_policy(app, p)
    assert "bomb.yaml" in ei.value.user_message
    assert main(["policy", "import", str(p)]) == 2 and count(app, SubsidyPolicy) == 0


@pytest.mark.parametrize("text,needle", [
    ("a: &x 1\nb: *x\n", "锚点"),
    ("[" * 5000 + "]" * 5000, "嵌套"),
    ("id: x\ntiers: " + "[" * 30 + "]" * 30 + "\n", "嵌套"),
    ("id: !!python/object:os.system x\n", "格式有误"),
    ("id: \"a\\0b\"\n", "控制字符"),
    ("id: !!binary aGVsbG8=\n", "类型不允许"),
])
def test_hostile_yaml_refused(app, tmp_path, text, needle):
    p = tmp_path / "p.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ImportFileError, match=needle):
        load_policy_file(p)


def test_policy_size_and_json_bounds(app, tmp_path, formats):
    import yaml

    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1024 * 1024) + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="补贴政策文件太大"):
        load_policy_file(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(ImportFileError, match="格式有误"):
        load_policy_file(deep)
    data = yaml.safe_load((formats / "policy.example.yaml").read_text(encoding="utf-8"))
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(data, default=str).replace('"per_meal": 8.0', '"per_meal": NaN'), encoding="utf-8")
    with pytest.raises(ImportFileError, match="NaN"):
        load_policy_file(nan)
    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes((formats / "policy.example.yaml").read_text(encoding="utf-8").encode("gbk"))
    assert load_policy_file(gbk)[0].district == "武侯区"


@pytest.mark.parametrize("path,value,needle", [
    (("tiers", 0, "per_meal"), float("nan"), "NaN"), (("tiers", 0, "per_meal"), float("inf"), "NaN"),
    (("tiers", 0, "per_meal"), "1e20", "超过上限"), (("tiers", 0, "per_meal"), 100.01, "超过上限 100.00 元"),
    (("limits", "amount_per_month"), 1e20, "超过上限"), (("limits", "amount_per_month"), 3000.01, "3000.00"),
    (("limits", "subsidized_meals_per_day"), 10 ** 20, "less than or equal to 3"),
    (("tiers", 0, "name"), "档" * 101, "at most 100"), (("id",), "p" * 65, "at most 64"),
])
def test_absurd_policy_values_refused(app, formats, tmp_path, path, value, needle):
    import yaml

    data = yaml.safe_load((formats / "policy.example.yaml").read_text(encoding="utf-8"))
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ImportFileError) as ei:
        import_policy(app, p)
    assert needle in ei.value.user_message and ei.value.problems[0]["column"] == ".".join(map(str, path))
    assert count(app, SubsidyPolicy) == 0


# ------------------------------------------------------------------ amounts at the edge
@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "-inf", "1e20", "1e999999", "5000.01", "-1", "1.001",
                                  "9" * 50, float("nan"), float("inf"), 10 ** 30])
def test_topup_amounts_bounded(text):
    with pytest.raises(AmountError) as ei:
        yuan_to_fen(text, max_fen=TOPUP_MAX_FEN)
    assert ei.value.zh and isinstance(ei.value, ValueError)
    assert yuan_to_fen("5000", max_fen=TOPUP_MAX_FEN) == TOPUP_MAX_FEN
    assert yuan_to_fen("100", max_fen=SUBSIDY_PER_MEAL_MAX_FEN) == SUBSIDY_PER_MEAL_MAX_FEN


@pytest.fixture
def canteen(app, formats):
    """The example roster, menu and policy (no staff: the tests here need none)."""
    import_roster(app, formats / "roster.example.csv")
    import_menu(app, formats / "menu.example.csv")
    import_policy(app, formats / "policy.example.yaml")
    return app


def test_cli_topup_refuses_non_finite_amounts(canteen, capsys):
    shop = canteen
    before = count(shop, LedgerEntry)
    for amount in ("NaN", "Infinity", "1e20"):
        assert main(["accounts", "topup", "R0001", amount, "--json"]) == 2
        assert "error" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert count(shop, LedgerEntry) == before


def test_checkout_ids_and_topup_bounds_checked_before_the_database(canteen):
    from kiosk.errors import ValidationError
    from kiosk.timeutil import parse_cst

    at = parse_cst("2026-11-23T12:05")
    before = counts(canteen)
    for resident, dishes, key, needle in (("R\x00", ["D001"], None, "NUL"), ("R" * 65, ["D001"], None, "最多 64"),
                                          ("R0001", ["D001"] * 51, None, "最多点 50 份"),
                                          ("R0001", ["D\x00"], None, "菜品编号"), ("R0001", ["D001"], "k" * 129, "请求编号")):
        with pytest.raises(ValidationError, match=needle):
            canteen.billing.settle(resident, dishes, at=at, idempotency_key=key)
        if key is None:
            with pytest.raises(ValidationError, match=needle):
                canteen.billing.quote(resident, dishes, at=at)
    for fen in (TOPUP_MAX_FEN + 1, 10 ** 12):
        with pytest.raises(ValidationError, match="5000.00"):
            canteen.billing.topup("R0001", fen)
    with pytest.raises(ValidationError, match="付款人太长"):
        canteen.billing.topup("R0001", 100, payer="子" * 101)
    with pytest.raises(ValidationError, match="付款人含有不允许的控制字符 NUL"):
        canteen.billing.topup("R0001", 100, payer="子女\x00")
    with pytest.raises(ValidationError, match="作废原因太长"):
        canteen.billing.void("no-such-order", "错" * 501, None)
    assert counts(canteen) == before


# ------------------------------------------------------------------ images
def test_png_headers_checked_before_decoding(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_bytes(40000, 40000))
    assert huge.stat().st_size < 500
    with pytest.raises(ImageError, match="图片太大"):
        read_image(huge)
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(20000, 20000, decodable=True))   # ~50 KB; 1.2 GB once decoded
    assert big.stat().st_size < 100_000
    with pytest.raises(ImageError, match="图片太大"):
        read_image(big)
    ok = tmp_path / "ok.png"
    ok.write_bytes(png_bytes(6000, 6000))                        # 36 MP: under the 40 MP limit
    assert check_image_file(ok).width == 6000
    from PIL import Image

    gif = tmp_path / "x.gif"
    Image.new("L", (8, 8)).save(gif)
    with pytest.raises(ImageError, match="不支持的图片格式"):
        read_image(gif)
    for junk in (b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"not an image"):
        (tmp_path / "j.jpg").write_bytes(junk)
        with pytest.raises(ImageError):
            read_image(tmp_path / "j.jpg")


def test_image_file_size_limit(tmp_path, monkeypatch, obama):
    import kiosk.vision.image_io as image_io

    assert read_image(obama[0]).ndim == 3
    with pytest.raises(ImageError, match="图片文件太大"):
        image_io.check_image_file(obama[0], max_bytes=1000)


def _photos(tmp_path, obama, biden) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(obama[0], d / "zhang_1.jpg")
    shutil.copy(obama[1], d / "zhang_2.jpg")
    shutil.copy(biden, d / "wang_1.jpg")
    return d


def test_roster_with_a_huge_photo_stores_nothing(app, formats, tmp_path, obama, biden):
    """A 40000² PNG on row 3: was a traceback after row 2's resident was committed."""
    photos = _photos(tmp_path, obama, biden)
    (photos / "wang_1.jpg").write_bytes(png_bytes(40000, 40000))
    before = counts(app)
    rep = import_roster(app, formats / "roster.example.csv", photos_dir=photos)
    (prob,) = rep.problems
    assert (prob.row, prob.column) == (3, "照片") and "图片太大" in prob.message_zh and "wang_1.jpg" in prob.message_zh
    assert not rep.imported and counts(app) == before
    assert main(["residents", "import", str(formats / "roster.example.csv"), "--photos", str(photos)]) == 1
    assert counts(app) == before


def test_roster_photo_that_cannot_be_decoded_stores_nothing(app, formats, tmp_path, obama, biden):
    """The header is fine, the pixels are not: found when decoding, still before any write."""
    photos = _photos(tmp_path, obama, biden)
    (photos / "wang_1.jpg").write_bytes(png_bytes(640, 480))      # IHDR fine, image data cut short
    check_image_file(photos / "wang_1.jpg")
    before = counts(app)
    rep = import_roster(app, formats / "roster.example.csv", photos_dir=photos)
    assert [(p.row, p.column) for p in rep.problems] == [(3, "照片")]
    assert not rep.imported and counts(app) == before
    rep = import_roster(app, formats / "roster.example.csv", photos_dir=photos, skip_invalid=True)
    assert rep.imported and rep.created == ["R0001", "R0003"] and rep.skipped_rows == [3]
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(FaceTemplate).where(FaceTemplate.resident_id == "R0001")) == 2


def test_roster_photo_names_stay_in_the_photo_folder(app, tmp_path, formats):
    photos = tmp_path / "photos"
    photos.mkdir()
    row = list(GOOD_ROW)
    row[ROSTER_HEAD.index("照片")] = "../secret.png"
    row[ROSTER_HEAD.index("人脸授权")] = "是"
    rep = import_roster(app, write_csv(tmp_path / "r.csv", [ROSTER_HEAD, row]), photos_dir=photos)
    assert [(p.row, p.column) for p in rep.problems] == [(2, "照片")] and count(app, Resident) == 0
    with pytest.raises(ImportFileError, match="照片文件夹不存在"):
        import_roster(app, tmp_path / "r.csv", photos_dir=tmp_path / "nowhere")


def test_identify_exits_2_for_an_unreadable_image(env, tmp_path, obama, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_bytes(40000, 40000))
    assert main(["identify", str(obama[0]), str(bad), str(huge), "--json"]) == 2
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [ln["status"] for ln in lines] == ["unknown", "error", "error"]
    assert "无法读取" in lines[1]["message"] and "图片太大" in lines[2]["message"]
    assert main(["identify", str(obama[0])]) == 0


# ------------------------------------------------------------------ exports
HOSTILE_NAMES = ["=HYPERLINK(\"http://evil.example\",\"点我\")", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3",
                 "\t=1+1", "\r=1"]


def test_monthly_report_never_writes_a_formula(canteen, tmp_path):
    shop = canteen
    from kiosk.services.reports import monthly_subsidy, write_report
    from kiosk.timeutil import parse_cst

    rows = [ROSTER_HEAD]
    for i, name in enumerate(HOSTILE_NAMES):
        rows.append([f"H{i}", name, "", "", "", "武侯区"])
    from kiosk.idcard import check_char
    for i, r in enumerate(rows[1:]):              # valid ID numbers (born 1940-01-01)
        first17 = f"51010719400101{i + 1:03d}"
        r[2] = first17 + check_char(first17)
    rep = import_roster(shop, write_csv(tmp_path / "h.csv", rows))
    assert rep.imported, rep.problems
    at = parse_cst("2026-11-23T12:05")
    for i in range(len(HOSTILE_NAMES)):
        shop.billing.settle(f"H{i}", ["D004"], at=at)
    report = monthly_subsidy(shop, "2026-11")
    xlsx = write_report(shop, report, tmp_path / "m.xlsx")
    with zipfile.ZipFile(xlsx) as z:
        for name in z.namelist():
            assert b"<f>" not in z.read(name) and b"<f " not in z.read(name), name
    ws = load_workbook(xlsx)["明细"]
    names = {ws.cell(r, 2).value: ws.cell(r, 2).data_type for r in range(2, ws.max_row + 1)}
    assert set(names) == {n.strip() for n in HOSTILE_NAMES}      # the importer trims the cells
    assert set(names.values()) == {"s"}
    assert ws.cell(2, 6).data_type == "n" and isinstance(ws.cell(2, 9).value, (int, float))   # numbers stay numbers
    total = load_workbook(xlsx)["汇总"].cell(3, 2)
    assert total.data_type == "n" and round(total.value * 100) == report.subsidy_fen
    out = write_report(shop, report, tmp_path / "m.csv")
    cells = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    written = [r[1] for r in cells[1:-1]]
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in written), written
    assert "'=HYPERLINK(\"http://evil.example\",\"点我\")" in written
    assert cells[1][7].replace(".", "").isdigit()          # amounts stay plain numbers


def test_xlsx_rows_hold_text_as_text_and_survive_control_characters(tmp_path):
    from decimal import Decimal

    from kiosk.services.tabular import xlsx_append

    wb = Workbook()
    xlsx_append(wb.active, ["=1+1", "张\x00三", Decimal("12.50"), 3, "-5"])
    wb.save(tmp_path / "x.xlsx")
    row = [(c.value, c.data_type) for c in load_workbook(tmp_path / "x.xlsx").active[1]]
    assert row == [("=1+1", "s"), ("张\ufffd三", "s"), (12.5, "n"), (3, "n"), ("-5", "s")]


def test_csv_cell_escaping_rules():
    from kiosk.services.tabular import csv_cell

    assert csv_cell("=1+1") == "'=1+1" and csv_cell("@x") == "'@x" and csv_cell("\tx") == "'\tx"
    assert csv_cell("-3.50") == "-3.50" and csv_cell("+12") == "+12" and csv_cell(-3) == -3
    assert csv_cell("-x") == "'-x" and csv_cell("张三") == "张三" and csv_cell("-inf") == "'-inf"


def test_xlsx_parts_read_whole_are_bounded(app, tmp_path):
    """Shared strings and styles are parsed whole by openpyxl: a 40 MB table of shared
    strings (~370 MB and 36 s to read) is refused from the zip directory."""
    wb = Workbook()
    wb.active.append(ROSTER_HEAD)
    wb.save(tmp_path / "s.xlsx")
    with zipfile.ZipFile(tmp_path / "s.xlsx") as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "s.xlsx", "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in members.items():
            z.writestr(n, d)
        with z.open("xl/sharedStrings.xml", "w") as fh:   # not even linked: refused by size alone
            fh.write(b"<sst>" + b"<si><t>x</t></si>" * (2 * 1024 * 1024 + 1) + b"</sst>")
    with pytest.raises(ImportFileError, match="sharedStrings.xml 太大"):
        import_roster(app, tmp_path / "s.xlsx")


def test_video_frame_size_checked_from_the_header(tmp_path):
    import cv2
    import numpy as np

    from kiosk.vision.camera import LoopingVideo
    from kiosk.vision.image_io import check_video_capture

    path = str(tmp_path / "v.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(3):
        w.write(np.full((240, 320, 3), i * 40, np.uint8))
    w.release()
    video = LoopingVideo(path)                      # 76,800 pixels: under the limit
    assert video.read()[0]
    with pytest.raises(ImageError, match="视频画面太大（320×240"):
        check_video_capture(video.cap, path, max_pixels=320 * 240 - 1)
    video.release()


def test_liveness_recording_too_large_is_refused_from_its_header(env, tmp_path, capsys, monkeypatch):
    """`kiosk liveness VIDEO` reads the frame size from the container before decoding a frame."""
    import cv2
    import numpy as np

    from kiosk.vision import image_io

    path = tmp_path / "big.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    w.write(np.zeros((240, 320, 3), np.uint8))
    w.release()
    monkeypatch.setattr(image_io, "IMAGE_MAX_PIXELS", 320 * 240 - 1)
    monkeypatch.setattr(image_io.check_video_capture, "__kwdefaults__", {"max_pixels": 320 * 240 - 1})
    assert main(["liveness", str(path), "--challenge", "left", "--json"]) == 2
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["type"] == "ImageError" and "视频画面太大（320×240" in out["error"]
