"""Importers: the district's example files as they are (CSV and .xlsx), and bad rows."""
import csv
import json
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook

from kiosk.cli.main import main
from kiosk.db.models import MenuItem, Resident, SubsidyPolicy
from kiosk.errors import ImportFileError, ValidationError
from kiosk.services.importing import import_menu, import_policy, import_roster
from sqlalchemy import func, select

HEADER = "编号,姓名,身份证号,性别,出生日期,户籍,联系电话,人员类别,饮食禁忌,卡号,照片,紧急联系人,人脸授权"


def to_xlsx(csv_path: Path, out: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.reader(fh):
            ws.append(row)
    wb.save(out)
    return out


def count(app, model):
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_examples_import_as_they_are(app, formats, tmp_path, kind):
    roster, menu = formats / "roster.example.csv", formats / "menu.example.csv"
    if kind == "xlsx":
        roster, menu = to_xlsx(roster, tmp_path / "roster.xlsx"), to_xlsx(menu, tmp_path / "menu.xlsx")
    rep = import_roster(app, roster)
    assert rep.imported and rep.created == ["R0001", "R0002", "R0003"] and not rep.problems
    rep = import_menu(app, menu)
    assert rep.imported and len(rep.created) == 7
    assert import_policy(app, formats / "policy.example.yaml").created == ["wuhou-2026 v1"]
    with app.db.session() as s:
        z = s.get(Resident, "R0001")
        assert (z.name, z.sex, str(z.birth_date), z.diet_tags, z.card_no) == ("张桂兰", "女", "1942-03-15", ["低糖", "软食"], "ZL0001")
        fish = s.scalars(select(MenuItem).where(MenuItem.dish_id == "D001")).one()
        assert (fish.price_fen, fish.portions, fish.allergens, fish.tags) == (1200, 40, ["鱼"], ["低脂", "高蛋白", "软烂"])
        assert s.scalars(select(MenuItem).where(MenuItem.dish_id == "D002")).one().portions is None


def test_reimport_is_idempotent_and_changes_are_reported(app, formats, tmp_path):
    import_roster(app, formats / "roster.example.csv")
    again = import_roster(app, formats / "roster.example.csv")
    assert again.created == [] and again.updated == [] and again.unchanged == ["R0001", "R0002", "R0003"]
    changed = tmp_path / "roster.csv"
    text = (formats / "roster.example.csv").read_text(encoding="utf-8").replace("13800000002", "13911112222")
    changed.write_text(text, encoding="utf-8")
    rep = import_roster(app, changed)
    assert rep.updated == [{"resident_id": "R0002", "changed": {"phone": ["13800000002", "13911112222"]}}]
    assert import_menu(app, formats / "menu.example.csv").created
    assert import_menu(app, formats / "menu.example.csv").unchanged
    assert import_policy(app, formats / "policy.example.yaml").created
    assert import_policy(app, formats / "policy.example.yaml").unchanged == ["wuhou-2026 v1"]
    assert count(app, SubsidyPolicy) == 1


def test_bom_and_english_headers(app, tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes("\ufeffresident_id,name,id_number,hukou,extra\nR9,赵大爷,510107195011020035,武侯区,x\n".encode("utf-8"))
    rep = import_roster(app, p)
    assert rep.created == ["R9"] and any("extra" in w for w in rep.warnings)


BAD_ROWS = [
    ("R1,张三,510107194203150025,女,1942-03-15,武侯区,,,,,,,", "身份证号", "校验位"),
    ("R1,张三,510107194203150024,男,1942-03-15,武侯区,,,,,,,", "性别", "不符"),
    ("R1,张三,510107194203150024,女,1942-03-16,武侯区,,,,,,,", "出生日期", "不符"),
    ("R1,张三,510107194203150024,女,1942/3/x,武侯区,,,,,,,", "出生日期", "格式"),
    ("R1,张三,510107194203150024,女,,武侯区,,富人,,,,,", "人员类别", "未知"),
    ("R1,,510107194203150024,女,,武侯区,,,,,,,", "姓名", "不能为空"),
    ("R1,张三,510107194203150024,女,,,,,,,,,", "户籍", "不能为空"),
    ("R1,张三,510107194203150024,女,,武侯区,,,,,,,也许", "人脸授权", "是 或 否"),
]


@pytest.mark.parametrize("row,column,needle", BAD_ROWS)
def test_bad_roster_rows_name_file_row_and_column(app, tmp_path, row, column, needle):
    p = tmp_path / "roster.csv"
    p.write_text(HEADER + "\nR0,李四,510107195011020035,男,,武侯区,,,,,,,\n" + row + "\n", encoding="utf-8")
    rep = import_roster(app, p)
    assert not rep.imported and count(app, Resident) == 0   # one bad row: nothing imported
    (prob,) = rep.problems
    assert (prob.row, prob.column) == (3, column) and needle in prob.message_zh and prob.message_en
    assert "roster.csv 第3行" in prob.text("roster.csv")
    rep = import_roster(app, p, skip_invalid=True)
    assert rep.imported and rep.created == ["R0"] and rep.skipped_rows == [3]


def test_duplicate_ids_and_cards_in_file(app, tmp_path):
    p = tmp_path / "roster.csv"
    p.write_text(HEADER + "\nR1,甲,510107195011020035,男,,武侯区,,,,K1,,,\n"
                 "R1,乙,510107194203150024,女,,武侯区,,,,K1,,,\n", encoding="utf-8")
    rep = import_roster(app, p)
    cols = sorted(pr.column for pr in rep.problems)
    assert cols == ["卡号", "编号"] and all(pr.row == 3 for pr in rep.problems)


def test_dry_run_writes_nothing(app, formats):
    rep = import_roster(app, formats / "roster.example.csv", dry_run=True)
    assert rep.created == ["R0001", "R0002", "R0003"] and not rep.imported
    assert count(app, Resident) == 0


@pytest.mark.parametrize("row,column", [
    ("2026-11-23,午餐,D1,鱼,12.345,荤菜,,,", "价格"),
    ("2026-11-23,午餐,D1,鱼,-1,荤菜,,,", "价格"),
    ("2026-11-23,午餐,D1,鱼,abc,荤菜,,,", "价格"),
    ("2026-13-23,午餐,D1,鱼,12,荤菜,,,", "日期"),
    ("2026-11-23,宵夜,D1,鱼,12,荤菜,,,", "餐次"),
    ("2026-11-23,午餐,D1,鱼,12,甜点,,,", "类别"),
    ("2026-11-23,午餐,D1,鱼,12,荤菜,,,2.5", "份数"),
])
def test_bad_menu_rows(app, tmp_path, row, column):
    p = tmp_path / "menu.csv"
    p.write_text("日期,餐次,菜品编号,菜名,价格,类别,标签,过敏原,份数\n" + row + "\n", encoding="utf-8")
    rep = import_menu(app, p)
    assert not rep.imported and [pr.column for pr in rep.problems] == [column]
    assert count(app, MenuItem) == 0


def test_missing_required_column_is_named(app, tmp_path):
    p = tmp_path / "menu.csv"
    p.write_text("日期,餐次,菜名,价格\n2026-11-23,午餐,鱼,12\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="菜品编号"):
        import_menu(app, p)


def test_broken_files(app, tmp_path):
    gbk = tmp_path / "gbk.csv"                       # GBK is read (with a warning) ...
    gbk.write_bytes((HEADER + "\nR1,张三,510107194203150024,女,,武侯区,,,,,,,\n").encode("gbk"))
    assert import_roster(app, gbk, dry_run=True).created == ["R1"]
    latin = tmp_path / "latin.csv"                   # ... other encodings are refused, named
    latin.write_bytes("name,hukou\nJosé,x\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="既不是 UTF-8 也不是 GBK"):
        import_roster(app, latin)
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"not a zip")
    with pytest.raises(ImportFileError, match="Excel"):
        import_roster(app, fake)
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("id: x\nname: y\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as ei:
        import_policy(app, bad_policy)
    assert ei.value.problems and any(p["column"] == "district" for p in ei.value.problems)


def test_policy_as_json_and_versioning(app, formats, tmp_path):
    import yaml

    data = yaml.safe_load((formats / "policy.example.yaml").read_text(encoding="utf-8"))
    data["tiers"][0]["per_meal"] = 9.0
    p = tmp_path / "policy.json"
    p.write_text(json.dumps(data, default=str, ensure_ascii=False), encoding="utf-8")
    assert import_policy(app, formats / "policy.example.yaml").created == ["wuhou-2026 v1"]
    with pytest.raises(ValidationError) as ei:           # 特困供养 8.00 -> 9.00: only with replace
        import_policy(app, p, today=date(2026, 11, 1))
    assert "特困供养 每餐9.00元" in ei.value.user_message and "特困供养 每餐8.00元" in ei.value.user_message
    assert "七十至七十九岁" not in ei.value.user_message      # tiers carried over unchanged are no conflict
    assert count(app, SubsidyPolicy) == 1
    rep = import_policy(app, p, replace=True, today=date(2026, 11, 1))
    assert rep.updated and rep.updated[0]["policy"] == "wuhou-2026 v2"


def test_cli_import_json_and_exit_codes(env, formats, tmp_path, capsys):
    assert main(["residents", "import", str(formats / "roster.example.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["created"] == ["R0001", "R0002", "R0003"]
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\nR5,张三,510107194203150025,女,,武侯区,,,,,,,\n", encoding="utf-8")
    assert main(["residents", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.csv 第2行「身份证号」" in err and "未导入" in err
