"""Gallery mechanics: FAISS against the plain-numpy reference, add/remove in
place, the persisted index rebuilt when it disagrees with the store, and
models never mixed. Index mechanics use random unit vectors (no recognition
claim rests on them); recognition is tested on real photos elsewhere."""
import uuid

import numpy as np
import pytest

from kiosk.errors import ModelMismatchError
from kiosk.vision.gallery import FaissGallery, NumpyGallery
from kiosk.vision.matching import decide
from kiosk.vision.types import Candidate

from tests.conftest import make_app


def unit(n, d, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def tids(n):
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


@pytest.mark.parametrize("kind,n", [("flat", 500), ("ivf", 4000)])
def test_faiss_agrees_with_numpy_reference(kind, n):
    v = unit(n, 64)
    rids = [f"R{i // 4}" for i in range(n)]   # 4 templates per resident
    ids = tids(n)
    ref = NumpyGallery(64, "c")
    ref.add(ids, rids, v)
    g = FaissGallery.build(64, "c", ids, rids, v, kind=kind, nprobe=64)
    assert g.kind == kind
    rng = np.random.default_rng(1)
    agree = 0
    for i in rng.choice(n, 50, replace=False):
        q = v[i] + rng.normal(scale=0.02, size=64).astype(np.float32)
        a, b = ref.search(q, 3), g.search(q, 3)
        assert len({c.resident_id for c in b}) == len(b)        # one entry per resident
        agree += a[0].resident_id == b[0].resident_id and abs(a[0].score - b[0].score) < 1e-4
    assert agree == 50 if kind == "flat" else agree >= 48


def test_add_and_remove_without_rebuild():
    v = unit(10, 32)
    g = FaissGallery(32, "c")
    g.add(tids(10), ["A"] * 5 + ["B"] * 5, v)
    index_before = g._index
    assert g.search(v[7], 2)[0].resident_id == "B"
    assert g.remove(tids(10)[5:]) == 5
    assert g._index is index_before and len(g) == 5
    assert all(c.resident_id == "A" for c in g.search(v[7], 2))
    g.remove_resident("A")
    assert g.search(v[0]) == []


def test_mixed_dimensions_refused():
    g = FaissGallery(128, "sface/x")
    with pytest.raises(ModelMismatchError):
        g.add(tids(1), ["A"], unit(1, 512))


def test_margin_makes_lookalikes_ambiguous():
    c = [Candidate("wife", 0.62), Candidate("husband", 0.60)]
    assert decide(c, 0.5, 0.06).status == "ambiguous"
    assert decide([Candidate("wife", 0.70), Candidate("husband", 0.55)], 0.5, 0.06).resident_id == "wife"
    assert decide([Candidate("x", 0.40)], 0.5, 0.06).status == "unknown"
    assert decide([], 0.5, 0.06).status == "unknown"


def _enrol(app, rid, photo):
    from datetime import date

    from kiosk.enrollment.batch import enroll_files
    from kiosk.db.models import Resident

    from tests.conftest import add_test_staff, staff_actor
    if not app.auth.has_staff():
        add_test_staff(app)
    with app.db.session() as s:
        s.add(Resident(id=rid, name=rid, birth_date=date(1940, 1, 1), sex="男", hukou="武侯区"))
    return enroll_files(app, rid, [photo], consent="self", actor=staff_actor(app))


def test_index_file_is_encrypted_and_rebuilt_when_it_disagrees(env, obama, biden):
    app = make_app()
    _enrol(app, "R1", obama[0])
    path = app.settings.index_path
    blob = path.read_bytes()
    assert b'"owner"' not in blob and b'"R1"' not in blob     # encrypted at rest (base64 has no quotes)
    # a stale file from before R2 was added: the new context rebuilds from the store
    stale = path.read_bytes()
    _enrol(app, "R2", biden)
    path.write_bytes(stale)
    app2 = make_app()
    assert len(app2.faces.gallery()) == 2
    assert app2.faces.identify_file(obama[1]).resident_id == "R1"
    # garbage in the index file: rebuilt, nothing lost
    path.write_bytes(b"garbage")
    app3 = make_app()
    assert len(app3.faces.gallery()) == 2


@pytest.mark.insightface
def test_other_model_templates_are_not_mixed(env, obama):
    app = make_app("sface")
    _enrol(app, "R1", obama[0])
    other = make_app("insightface")           # same store, another model
    assert len(other.faces.gallery()) == 0     # sface templates are never searched with ArcFace
    assert other.faces.identify_file(obama[1]).status == "unknown"
    stale = other.faces.stale_residents()
    assert stale and stale[0]["resident_id"] == "R1" and stale[0]["contract_id"].startswith("sface/")


def test_missing_key_is_a_clear_error(env, monkeypatch, tmp_path, obama):
    from kiosk.config import load_settings
    from kiosk.errors import TemplateKeyError
    from kiosk.services.context import App

    monkeypatch.delenv("KIOSK_TEMPLATE_KEY")
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY_FILE", str(tmp_path / "nope.key"))
    app = App(load_settings())
    with pytest.raises(TemplateKeyError) as ei:
        app.faces.identify_file(obama[0])
    assert "密钥" in ei.value.user_message and "kiosk keygen" in ei.value.detail
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY_FILE", str(env / "inside.key"))
    (env / "inside.key").write_text("x")
    with pytest.raises(TemplateKeyError, match="数据目录"):
        App(load_settings()).cipher


@pytest.mark.insightface
def test_model_change_reembeds_from_kept_crops(env, obama, biden):
    """Templates of the old model with a kept crop are re-made; the others are listed."""
    from datetime import date

    from kiosk.enrollment.batch import enroll_files
    from kiosk.db.models import Resident

    from tests.conftest import add_test_staff, staff_actor

    old = make_app("insightface")
    add_test_staff(old)
    with old.db.session() as s:
        s.add(Resident(id="R1", name="R1", birth_date=date(1940, 1, 1), sex="男", hukou="武侯区"))
        s.add(Resident(id="R2", name="R2", birth_date=date(1940, 1, 1), sex="男", hukou="武侯区"))
    enroll_files(old, "R1", [obama[0]], consent="self", actor=staff_actor(old), allows_crop=True)
    enroll_files(old, "R2", [biden], consent="self", actor=staff_actor(old))            # no crop kept
    new = make_app("sface")
    assert new.faces.identify_file(obama[1]).status == "unknown"
    res = new.faces.reembed_from_crops(staff_actor(new, "ADM"))
    assert res == {"reembedded": 1, "need_reenrolment": ["R2"]}
    assert new.faces.identify_file(obama[1]).resident_id == "R1"
    assert [r["resident_id"] for r in new.faces.stale_residents()] == ["R2"]


def test_a_pull_event_brings_the_gallery_up_to_the_store_at_once(env, obama, biden):
    """Templates written by another unit (as a pull from the district server does) reach
    this process's gallery when the core's faces.pulled event is told, not through a module
    global or a check of the App's attributes."""
    from kiosk.services.events import FACES_PULLED, Change

    app = make_app()
    _enrol(app, "R1", obama[0])
    g = app.faces.gallery()
    other = make_app()                        # another unit of the same store
    _enrol(other, "R2", biden)
    assert len(g) == 1                        # not yet: nothing told this process
    app.events.notify(Change(FACES_PULLED, {"templates": 1}))
    assert len(app.faces.gallery()) == 2
    assert app.faces.identify_file(obama[1]).resident_id == "R1"


def test_ivf_gallery_keeps_template_ids_right_after_removals():
    """A removal from the IVF gallery leaves every other template found under its own
    id with its exact score (an IndexIDMap2 over an IVF answered with other templates'
    ids after a removal: the IVF does not renumber its entries)."""
    n = 3000
    v = unit(n, 64, seed=3)
    ids, rids = tids(n), [f"R{i // 3}" for i in range(n)]
    g = FaissGallery.build(64, "c", ids, rids, v, kind="ivf")
    assert g.kind == "ivf"
    assert g.remove(ids[:300]) == 300 and len(g) == n - 300
    g.remove_resident("R500")
    g.add(ids[:10], rids[:10], v[:10])                      # two removed templates come back
    for i in list(range(10)) + list(range(300, 3000, 97)):
        c = g.search(v[i], 2)[0]
        if rids[i] == "R500":
            assert c.resident_id != "R500"
            continue
        assert (c.template_id, c.resident_id) == (ids[i], rids[i]) and abs(c.score - 1.0) < 1e-5
    assert all(c.resident_id != "R0" or c.template_id in ids[:10] for c in g.search(v[11], 5))


@pytest.mark.parametrize("kind,n", [("flat", 300), ("ivf", 3000)])
def test_persisted_gallery_answers_as_before_and_holds_no_removed_template(kind, n):
    v = unit(n, 64, seed=4)
    ids, rids = tids(n), [f"R{i // 3}" for i in range(n)]
    g = FaissGallery.build(64, "c", ids, rids, v, kind=kind)
    g.remove(ids[:3])
    data = g.to_bytes("fp", generation=7)
    assert v[0].tobytes() not in data and v[1].tobytes()[:64] not in data
    h, fp = FaissGallery.from_bytes(data)
    assert (fp, h.stored_generation, h.kind, len(h)) == ("fp", 7, kind, n - 3)
    for i in (3, 50, n - 1):
        assert h.search(v[i], 3) == g.search(v[i], 3)
    assert all(c.resident_id != "R0" for c in h.search(v[0], 5))
