"""The command line's imports go through the console's plan and apply
(kiosk.services.import_plan): blank cells keep, 清除 clears, an overlapping policy tier
is refused naming both tiers unless --replace, a dry run prints the plan and writes
nothing, the acting admin proves who they are, a district terminal imports nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kiosk.cli.main import main
from kiosk.db.models import AuditEntry, FaceConsent, FaceTemplate, MenuItem, Resident, SubsidyPolicy

from tests.conftest import STAFF_PINS

ADMIN = ["--staff", "ADM"]


@pytest.fixture
def admin_pin(monkeypatch):
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])


def counts(app) -> dict:
    with app.db.session() as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m))
                for m in (Resident, MenuItem, SubsidyPolicy, AuditEntry, FaceConsent, FaceTemplate)}


def resident(app, rid: str) -> Resident:
    with app.db.session() as s:
        return s.get(Resident, rid)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------------ roster: keep, clear
def test_blank_cells_keep_and_qingchu_clears(shop, tmp_path, capsys, admin_pin):
    before = resident(shop, "R0001")
    assert (before.phone, before.card_no, before.diet_tags) == ("13800000001", "ZL0001", ["低糖", "软食"])
    # a partial roster: no name, no 户籍, phone blank, card cleared, a new category; diet column absent
    f = write(tmp_path / "update.csv", "编号,姓名,身份证号,户籍,联系电话,卡号,人员类别,紧急联系人\n"
                                       "R0001,,510107194203150024,,,清除,独居;残疾:二级,\n")
    rc, out, err = run(capsys, "residents", "import", f, *ADMIN)
    assert rc == 0, err
    assert "修改 1" in out and "卡号 ZL0001 → （空）" in out
    r = resident(shop, "R0001")
    assert r.card_no is None and r.categories == ["独居", "残疾:二级"]
    assert (r.name, r.hukou, r.phone, r.diet_tags, r.emergency_contact) == \
        ("张桂兰", "武侯区", "13800000001", ["低糖", "软食"], "李明 13900000001")      # blank and absent keep
    with shop.db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.roster")
                          .order_by(AuditEntry.seq.desc())).first()
    assert entry.actor == "ADM" and entry.detail["via"] == "cli" and entry.detail["updated"] == {"R0001": ["人员类别", "卡号"]}
    # the same file again: nothing to change
    rc, out, _ = run(capsys, "residents", "import", f, *ADMIN, "--json")
    d = json.loads(out)
    assert rc == 0 and d["unchanged"] == ["R0001"] and d["counts"]["unchanged"] == 1 and d["counts"]["change"] == 0


def test_qingchu_on_a_required_column_is_a_bad_row_and_nothing_is_written(shop, tmp_path, capsys, admin_pin):
    f = write(tmp_path / "bad.csv", "编号,姓名,身份证号,户籍,联系电话\n"
                                    "R0002,,510107195011020035,,13911112222\n"
                                    "R0001,,510107194203150024,清除,\n")
    before = counts(shop)
    rc, _, err = run(capsys, "residents", "import", f, *ADMIN)
    assert rc == 1 and "bad.csv 第3行「户籍」" in err and "不能清除" in err and "未导入" in err
    assert counts(shop) == before and resident(shop, "R0002").phone == "13800000002"   # not even the good row


# ------------------------------------------------------------------ dry run
def test_dry_run_prints_the_plan_and_writes_nothing(shop, tmp_path, capsys, formats):
    roster = write(tmp_path / "r.csv", "编号,姓名,身份证号,户籍,联系电话\n"
                                       "R0001,,510107194203150024,,13700000000\n"      # change
                                       "R0002,,510107195011020035,,\n"                 # unchanged (blank keeps)
                                       "R0101,赵一,510107194001010015,武侯区,\n"       # add
                                       "R0102,钱二,510107194001010024,武侯区,\n")      # bad ID number
    menu = write(tmp_path / "m.csv", "日期,餐次,菜品编号,菜名,价格\n2026-11-23,午餐,D001,清蒸鲈鱼,13.00\n"
                                     "2026-11-23,午餐,D099,新菜,3.00\n")
    policy = write(tmp_path / "p.yaml", (formats / "policy.example.yaml").read_text(encoding="utf-8")
                   .replace("id: wuhou-2026", "id: wuhou-2027").replace("2026-01-01", "2027-01-01")
                   .replace("2026-12-31", "2027-12-31"))
    before = counts(shop)
    rc, out, err = run(capsys, "residents", "import", roster, "--dry-run")       # needs nobody
    assert rc == 1 and "新增 1，修改 1，不变 1，有错误的行 1（预览，未写入）" in out
    assert "修改 第2行 R0001 张桂兰：联系电话 13800000001 → 13700000000" in out and "新增 第4行 R0101 赵一" in out
    assert "r.csv 第5行「身份证号」" in err
    rc, out, _ = run(capsys, "menu", "import", menu, "--dry-run", "--json")
    d = json.loads(out)
    assert rc == 0 and d["dry_run"] and not d["imported"]
    assert d["counts"] == {"add": 1, "change": 1, "unchanged": 0, "bad_rows": 0, "problems": 0, "conflicts": 0}
    assert d["plan"]["change"][0]["changes"] == {"价格": ["12.00", "13.00"]}
    rc, out, _ = run(capsys, "policy", "import", policy, "--dry-run", "--json")
    assert rc == 0 and json.loads(out)["created"] == ["wuhou-2027 v1"]
    assert counts(shop) == before                                                  # not a row, not an audit entry
    with shop.db.session() as s:
        assert s.scalars(select(MenuItem.price_fen).where(MenuItem.dish_id == "D001")).one() == 1200
    assert resident(shop, "R0001").phone == "13800000001"


def test_json_plan_keys(shop, tmp_path, capsys, admin_pin):
    f = write(tmp_path / "r.csv", "编号,姓名,身份证号,户籍,联系电话\n"
                                  "R0001,,510107194203150024,,13700000000\n"
                                  "R0101,赵一,510107194001010015,武侯区,\n"
                                  "R0102,钱二,510107194001010024,武侯区,\n")
    rc, out, _ = run(capsys, "residents", "import", f, "--dry-run", "--json")
    d = json.loads(out)
    assert rc == 1
    assert {"file", "kind", "rows", "dry_run", "imported", "created", "updated", "unchanged", "skipped_rows",
            "problems", "warnings", "photos", "plan", "counts", "conflicts", "replace"} <= set(d)
    plan = d["plan"]
    assert {"kind", "file", "rows", "add", "change", "unchanged", "problems", "warnings", "conflicts", "blocked",
            "counts"} <= set(plan)
    assert plan["kind"] == "roster" and plan["rows"] == 3 and plan["blocked"] is True
    assert [(p["row"], p["key"], p["action"]) for p in plan["add"]] == [(3, "R0101", "add")]
    assert plan["change"] == [{"row": 2, "key": "R0001", "action": "change", "label": "张桂兰",
                               "changes": {"联系电话": ["13800000001", "13700000000"]}}]
    assert d["updated"] == [{"resident_id": "R0001", "changed": {"phone": ["13800000001", "13700000000"]}}]
    (prob,) = plan["problems"]
    assert (prob["row"], prob["column"]) == (4, "身份证号") and prob["message_zh"] and prob["message_en"]
    assert d["skipped_rows"] == [4] and d["counts"]["bad_rows"] == 1
    rc, out, _ = run(capsys, "residents", "import", f, "--json", *ADMIN)      # bad rows: exit 1, nothing written
    d = json.loads(out)
    assert rc == 1 and d["dry_run"] is False and not d["imported"] and d["problems"]
    assert resident(shop, "R0101") is None
    # --skip-invalid: the good rows are written, the bad one named and left out
    rc, out, _ = run(capsys, "residents", "import", f, "--skip-invalid", "--json", *ADMIN)
    d = json.loads(out)
    assert rc == 0 and d["imported"] and d["created"] == ["R0101"] and d["skipped_rows"] == [4]
    assert resident(shop, "R0102") is None and resident(shop, "R0001").phone == "13700000000"


# ------------------------------------------------------------------ policy overlap
POLICY = """id: {pid}
name: {name}
district: 武侯区
effective_from: {start}
effective_to: 2099-12-31
eligibility: {{min_age: 60, hukou: [武侯区]}}
subsidized_meals: [午餐]
tiers:
{tiers}"""


def test_overlapping_policy_refused_naming_both_tiers_unless_replace(app, tmp_path, capsys):
    base = write(tmp_path / "base.yaml", POLICY.format(pid="wuhou-long", name="长期政策", start="2026-01-01", tiers=(
        "  - {name: 低保及失能, match: {categories: [低保, 失能]}, per_meal: 6.00}\n"
        "  - {name: 八十岁及以上, match: {min_age: 80}, per_meal: 5.00}\n")))
    cut = write(tmp_path / "cut.yaml", POLICY.format(pid="wuhou-cut", name="新政策", start="2027-01-01", tiers=(
        "  - {name: 低保, match: {categories: [低保]}, per_meal: 1.00}\n")))
    assert run(capsys, "policy", "import", base)[0] == 0          # a store without staff: being set up
    before = counts(app)
    rc, out, err = run(capsys, "policy", "import", cut)
    assert rc == 2 and "「低保 每餐1.00元」" in err and "「低保及失能 每餐6.00元」" in err and "长期政策" in err
    assert "--replace" in err and counts(app) == before
    rc, out, _ = run(capsys, "policy", "import", cut, "--json")
    d = json.loads(out)
    assert rc == 2 and d["error"] and d["plan"]["blocked"] and not d["imported"]
    (c,) = d["conflicts"]
    assert (c["new_tier"], c["old_tier"], c["category"]) == ("低保 每餐1.00元", "低保及失能 每餐6.00元", "低保")
    assert "wuhou-long v1" in c["old_policy"]
    rc, out, _ = run(capsys, "policy", "import", cut, "--dry-run")   # the dry run says it would be refused
    assert rc == 2 and counts(app) == before
    rc, out, err = run(capsys, "policy", "import", cut, "--replace")
    assert rc == 0 and "新增 1" in out and counts(app)["SubsidyPolicy"] == 2
    with app.db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.policy",
                                                   AuditEntry.subject == "wuhou-cut")).one()
    assert "低保及失能 每餐6.00元" in entry.detail["replaces"][0] and entry.detail["via"] == "cli"
    # a new version of the base policy that only changes the 80+ tier names that tier alone
    v2 = write(tmp_path / "v2.yaml", base.read_text(encoding="utf-8").replace("per_meal: 5.00", "per_meal: 5.50"))
    rc, _, err = run(capsys, "policy", "import", v2)
    assert rc == 2 and "八十岁及以上 每餐5.50元" in err and "八十岁及以上 每餐5.00元" in err and "低保及失能 每餐6.00元」重叠" not in err


# ------------------------------------------------------------------ who imports
def test_imports_need_an_admin_with_pin_once_staff_exist(shop, tmp_path, capsys, monkeypatch, formats):
    menu = write(tmp_path / "m.csv", "日期,餐次,菜品编号,菜名,价格\n2026-11-24,午餐,D001,清蒸鲈鱼,12.00\n")
    before = counts(shop)
    rc, _, err = run(capsys, "menu", "import", menu)
    assert rc == 2 and "--staff" in err
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["S01"])
    assert run(capsys, "menu", "import", menu, "--staff", "S01")[0] == 2          # staff: not an admin's right
    monkeypatch.setenv("KIOSK_STAFF_PIN", "999999")
    assert run(capsys, "menu", "import", menu, *ADMIN)[0] == 2                     # wrong PIN
    assert counts(shop)["MenuItem"] == before["MenuItem"]
    assert run(capsys, "menu", "import", menu, "--dry-run")[0] == 0               # a dry run needs nobody
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])
    rc, out, _ = run(capsys, "menu", "import", menu, *ADMIN)
    assert rc == 0 and counts(shop)["MenuItem"] == before["MenuItem"] + 1


def test_roster_photos_record_consent_by_the_named_admin(app, formats, tmp_path, capsys, monkeypatch, obama, biden):
    """The roster's 人脸授权 column records consent and its photos enrol faces: a named
    staff member does that even while the store has no staff yet is being set up."""
    from tests.conftest import add_test_staff

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(obama[0], photos / "zhang_1.jpg")
    shutil.copy(biden, photos / "wang_1.jpg")
    before = counts(app)
    rc, _, err = run(capsys, "residents", "import", formats / "roster.example.csv", "--photos", photos)
    assert rc == 2 and "--staff" in err and counts(app) == before
    add_test_staff(app)
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])
    rc, out, err = run(capsys, "residents", "import", formats / "roster.example.csv", "--photos", photos,
                       *ADMIN, "--json")
    d = json.loads(out)
    assert rc == 0, err
    assert {p["resident_id"]: p["status"] for p in d["photos"]} == {"R0001": "enrolled", "R0002": "enrolled",
                                                                    "R0003": "no_consent"}
    assert any("zhang_2.jpg" in w for w in d["warnings"])                    # a missing photo is a warning
    with app.db.session() as s:
        consents = s.scalars(select(FaceConsent)).all()
        assert {(c.resident_id, c.staff_id, c.source) for c in consents} == {("R0001", "ADM", "roster"),
                                                                             ("R0002", "ADM", "roster")}
    templates = counts(app)["FaceTemplate"]
    assert templates == 2
    # the same roster again enrols nothing again; 否 on an enrolled resident is a warning, not a withdrawal
    again = write(tmp_path / "again.csv", (formats / "roster.example.csv").read_text(encoding="utf-8")
                  .replace("李明 13900000001,是", "李明 13900000001,否"))
    rc, out, err = run(capsys, "residents", "import", again, "--photos", photos, *ADMIN, "--json")
    d = json.loads(out)
    assert rc == 0 and d["unchanged"] == ["R0001", "R0002", "R0003"]
    assert {p["resident_id"]: p["status"] for p in d["photos"]} == {"R0001": "no_consent", "R0002": "already_enrolled",
                                                                    "R0003": "no_consent"}
    assert any("residents erase R0001" in w for w in d["warnings"])
    assert counts(app)["FaceTemplate"] == templates and counts(app)["FaceConsent"] == 2


# ------------------------------------------------------------------ a district terminal
def test_a_terminal_refuses_imports(app, formats, capsys, monkeypatch):
    from kiosk.config import get_settings

    monkeypatch.setenv("KIOSK_SERVER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("KIOSK_SERVER_TOKEN", "t" * 32)
    get_settings.cache_clear()
    before = counts(app)
    for args in (["residents", "import", formats / "roster.example.csv"],
                 ["menu", "import", formats / "menu.example.csv", "--dry-run"],
                 ["policy", "import", formats / "policy.example.yaml", "--json"]):
        rc, out, err = run(capsys, *args)
        assert rc == 2, (args, out, err)
        assert "区服务器" in (err or json.loads(out)["error"])
    assert counts(app) == before
