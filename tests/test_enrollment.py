"""Consent before templates, duplicate faces, supervisor override, erasure."""
import json
from datetime import datetime

import pytest
from sqlalchemy import select

from kiosk.enrollment.batch import enroll_files
from kiosk.cli.main import main
from kiosk.db.models import AuditEntry, FaceConsent, FaceTemplate, LedgerEntry, Order
from kiosk.errors import ConsentRequiredError, DuplicateFaceError, PermissionDeniedError
from kiosk.services.importing import import_roster
from kiosk.timeutil import CST

from tests.conftest import staff_actor


def templates(app, rid=None):
    with app.db.session() as s:
        q = select(FaceTemplate)
        if rid:
            q = q.where(FaceTemplate.resident_id == rid)
        return s.scalars(q).all()


def test_no_consent_no_template(shop, obama):
    s01 = staff_actor(shop, "S01")
    with pytest.raises(ConsentRequiredError, match="人脸授权"):
        enroll_files(shop, "R0001", [obama[0]], actor=s01)
    with pytest.raises(PermissionDeniedError, match="工号和 PIN"):     # a staff id alone is not enough
        enroll_files(shop, "R0001", [obama[0]], consent="self", actor="S01")
    assert templates(shop) == []
    rep = enroll_files(shop, "R0001", [obama[0]], consent="guardian", actor=s01, guardian_name="李明")
    assert rep.enrolled
    with shop.db.session() as s:
        c = s.scalars(select(FaceConsent)).one()
        assert (c.resident_id, c.given_by, c.guardian_name, c.staff_id) == ("R0001", "guardian", "李明", "S01")
        assert c.text_version and c.created_at
    # with consent on record, later enrolments need no --consent
    assert enroll_files(shop, "R0001", [obama[1]], actor=s01).enrolled


def test_crop_kept_only_when_consent_allows(shop, obama, biden):
    enroll_files(shop, "R0001", [obama[0]], consent="self", actor=staff_actor(shop))
    enroll_files(shop, "R0002", [biden], consent="self", actor=staff_actor(shop), allows_crop=True)
    assert templates(shop, "R0001")[0].crop_enc is None
    crop = templates(shop, "R0002")[0].crop_enc
    assert crop is not None and not crop.startswith(b"\x89PNG")     # stored encrypted


def test_duplicate_face_refused_then_supervisor_override_audited(shop, obama):
    enroll_files(shop, "R0001", [obama[0]], consent="self", actor=staff_actor(shop))
    with pytest.raises(DuplicateFaceError) as ei:
        enroll_files(shop, "R0002", [obama[1]], consent="self", actor=staff_actor(shop))
    assert ei.value.other_resident_id == "R0001" and "张桂兰" in ei.value.user_message
    assert templates(shop, "R0002") == []                           # nothing stored
    s01 = staff_actor(shop, "S01")
    with pytest.raises(PermissionDeniedError, match="主管"):
        enroll_files(shop, "R0002", [obama[1]], actor=s01, override_reason="双胞胎", override_by=s01)
    rep = enroll_files(shop, "R0002", [obama[1]], actor=s01, override_reason="双胞胎，已核对身份证",
                       override_by=staff_actor(shop, "SUP"))
    assert rep.enrolled
    with shop.db.session() as s:
        a = s.scalars(select(AuditEntry).where(AuditEntry.action == "enroll.duplicate_override")).one()
        assert a.actor == "SUP" and a.detail["other_resident_id"] == "R0001" and "双胞胎" in a.detail["reason"]


def test_cli_duplicate_exit_code_and_json(shop, obama, capsys, monkeypatch):
    monkeypatch.setenv("KIOSK_STAFF_PIN", "1234")
    assert main(["enroll", "R0001", str(obama[0]), "--consent", "self", "--staff", "S01", "--json"]) == 0
    capsys.readouterr()
    assert main(["enroll", "R0002", str(obama[2]), "--consent", "self", "--staff", "S01", "--json"]) != 0
    out = json.loads(capsys.readouterr().out)
    assert out["other_resident_id"] == "R0001" and "R0001" in out["error"]


def test_erase_removes_face_and_keeps_ledger(shop, obama):
    enroll_files(shop, "R0001", [obama[0]], consent="self", actor=staff_actor(shop), allows_crop=True)
    order = shop.billing.settle("R0001", ["D001"], at=datetime(2026, 11, 23, 12, 0, tzinfo=CST))
    assert shop.faces.identify_file(obama[1]).resident_id == "R0001"
    with pytest.raises(PermissionDeniedError, match="没有「删除人脸数据」的权限"):
        shop.residents.erase_faces("R0001", staff_actor(shop, "S01"))      # staff may not; a supervisor may
    res = shop.residents.erase_faces("R0001", staff_actor(shop, "SUP"))
    assert res["templates_removed"] == 1
    assert shop.faces.identify_file(obama[1]).status == "unknown"
    assert templates(shop, "R0001") == []
    from tests.conftest import make_app
    fresh = make_app()            # after a restart too (index file rebuilt from the store)
    assert fresh.faces.identify_file(obama[1]).status == "unknown"
    with shop.db.session() as s:
        assert s.get(Order, order.order_id).resident_id == "R0001"
        assert len(s.scalars(select(LedgerEntry).where(LedgerEntry.order_id == order.order_id)).all()) == 3
        assert s.scalars(select(FaceConsent)).one().withdrawn_at is not None
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "resident.erase_faces")).one().actor == "SUP"


def test_roster_photos_enrolled_only_with_consent(app, formats, obama, biden, tmp_path):
    import shutil
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(obama[0], photos / "zhang_1.jpg")
    shutil.copy(obama[1], photos / "zhang_2.jpg")
    shutil.copy(biden, photos / "wang_1.jpg")
    shutil.copy(obama[2], photos / "liu_1.jpg")
    rep = import_roster(app, formats / "roster.example.csv", photos_dir=photos)
    by_row = {p["resident_id"]: p for p in rep.photos}
    assert by_row["R0001"]["status"] == "enrolled" and by_row["R0001"]["enrolled"] == 2
    assert by_row["R0002"]["status"] == "enrolled"
    assert by_row["R0003"]["status"] == "no_consent"              # 人脸授权 否
    assert templates(app, "R0003") == []
    with app.db.session() as s:
        srcs = {c.resident_id: c.source for c in s.scalars(select(FaceConsent))}
    assert srcs == {"R0001": "roster", "R0002": "roster"}


def test_guided_capture_takes_frontal_left_right_then_enrols(shop, obama):
    from kiosk.enrollment.capture import CaptureSession, enroll_captured

    from tests.conftest import shared_engine
    from tests.vision_helpers import face_frame

    eng = shared_engine("sface")
    obs = eng.observe(face_frame(obama[1]))
    emb, crop = obs.embedding, obs.aligned
    cap = CaptureSession()
    assert cap.offer(None, None, False, 0.0, 0.0, "请靠近一点") == "请靠近一点"      # refused frame: its hint
    assert cap.refused == ["请靠近一点"]
    assert cap.offer(emb, crop, True, 0.9, 0.3, None) == "请正对屏幕"              # not frontal yet
    assert cap.offer(emb, crop, True, 0.9, 0.0, None) == "请稍微向左转头"
    assert cap.offer(emb, crop, True, 0.9, -0.2, None) == "请稍微向左转头"          # wrong way
    assert cap.offer(emb, crop, True, 0.9, 0.25, None) == "请稍微向右转头"
    assert cap.offer(emb, crop, True, 0.9, -0.25, None) == "采集完成" and cap.done
    with pytest.raises(ConsentRequiredError):
        enroll_captured(shop, "R0001", cap, staff_actor(shop))
    rep = enroll_captured(shop, "R0001", cap, staff_actor(shop), consent="self")
    assert len(rep.enrolled) == 3 and rep.templates_total == 3
    assert shop.faces.identify_file(obama[2]).resident_id == "R0001"


def test_enrolment_depends_on_typed_ports(app):
    """Enrolment takes the application through its ports (kiosk.enrollment.ports), and the
    App with its face service is an implementation of them."""
    import inspect

    from kiosk.enrollment import batch, capture
    from kiosk.enrollment.ports import EnrolmentContext, FaceTemplates

    assert isinstance(app, EnrolmentContext) and isinstance(app.faces, FaceTemplates)
    for fn in (batch.prepare_images, batch.enroll_prepared, batch.rotate_templates, batch.enroll_files,
               capture.enroll_captured):
        assert inspect.signature(fn).parameters["app"].annotation == "EnrolmentContext", fn.__name__
