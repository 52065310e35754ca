"""Templates that age with the elder (kiosk.services.template_refresh): the rule, the
service after a strong face checkout, erasure, and a terminal pushing one to the district.
Real models, real photos (face_recognition's Obama ×3 and Biden, insightface's samples)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest
from sqlalchemy import select, update

from kiosk.db.models import AuditEntry, FaceConsent, FaceTemplate, OutboxEntry
from kiosk.enrollment.batch import enroll_files
from kiosk.services.template_refresh import (MAX_TEMPLATES, StoredTemplate, TemplateRefresh,
                                             consent_covers_refresh, decide_refresh)
from kiosk.timeutil import CST
from kiosk.vision.engine import BACKEND_DEFAULTS
from kiosk.vision.image_io import read_image
from kiosk.vision.types import Candidate, MatchResult

from tests.conftest import shared_engine, staff_actor
from tests.test_district import district, pg_cluster, sync  # noqa: F401  (fixtures)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
SFACE = BACKEND_DEFAULTS["sface"]
LUNCH = datetime(2026, 11, 23, 12, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def faces(obama, biden, insightface_images):
    """Real sface embeddings: Obama's three photos and their mirror images (six views of
    one man), Biden, Tom Hanks."""
    e = shared_engine("sface")

    def emb(img):
        o = e.observe_still(img)
        assert o.embedding is not None
        return o.embedding

    out = {}
    for i, p in enumerate(obama):
        img = read_image(p)
        out[f"o{i}"], out[f"o{i}f"] = emb(img), emb(cv2.flip(img, 1))
    out["biden"] = emb(read_image(biden))
    out["hanks"] = emb(read_image(insightface_images / "Tom_Hanks_54745.png"))
    return out


def tpl(i: str, emb: np.ndarray, source: str = "enroll", days: float = 0) -> StoredTemplate:
    return StoredTemplate(i, source, T0 + timedelta(days=days), emb)


def strong(rid: str = "R1", score: float = 0.80, runner: float | None = 0.30) -> MatchResult:
    return MatchResult("matched", rid, score, Candidate("R2", runner) if runner is not None else None)


def rule(match, emb, templates, *, at=T0 + timedelta(days=40), live=True, quality=0.9, consent=True):
    return decide_refresh("R1", match, emb, live=live, quality=quality, templates=templates, at=at,
                          threshold=SFACE.match_threshold, strong_score=SFACE.strong_score,
                          consent_covers=consent)


def test_only_a_strong_live_match_with_a_clear_lead_refreshes(faces):
    enrolled = [tpl("E", faces["o0"])]
    fresh = faces["o1"]
    assert rule(strong(), fresh, enrolled).reason == "added"
    assert rule(strong(), fresh, enrolled, live=False).reason == "not_live"
    s = SFACE.strong_score
    assert rule(strong(score=s - 0.01, runner=0.1), fresh, enrolled).reason == "weak"       # matched, not strong
    assert rule(strong(score=s, runner=0.1), fresh, enrolled).add                           # the strong score itself
    assert rule(strong(score=0.80, runner=0.61), fresh, enrolled).reason == "close_runner_up"   # lead 0.19
    assert rule(strong(score=0.80, runner=0.60), fresh, enrolled).add                       # lead 0.20
    assert rule(strong(runner=None), fresh, enrolled).add                                   # nobody else
    assert rule(MatchResult("ambiguous", None, 0.8, Candidate("R2", 0.77)), fresh, enrolled).reason == "not_matched"
    assert rule(strong(rid="R2"), fresh, enrolled).reason == "not_matched"                  # somebody else's
    assert rule(strong(), fresh, enrolled, quality=0.4).reason == "poor_frame"
    assert rule(strong(), fresh, enrolled, consent=False).reason == "no_consent"
    d = decide_refresh("R1", strong(), fresh, live=True, quality=0.9, templates=enrolled, at=T0 + timedelta(days=40),
                       threshold=0.5, strong_score=None, consent_covers=True)
    assert d.reason == "no_strong_score"                    # a backend without a strong score never refreshes


def test_at_most_one_a_month(faces):
    enrolled = [tpl("E", faces["o0"])]
    assert rule(strong(), faces["o1"], enrolled, at=T0 + timedelta(days=29)).reason == "too_soon"
    assert rule(strong(), faces["o1"], enrolled, at=T0 + timedelta(days=30)).add
    after_one = enrolled + [tpl("R", faces["o1"], "refresh", days=35)]
    assert rule(strong(), faces["o2"], after_one, at=T0 + timedelta(days=60)).reason == "too_soon"
    assert rule(strong(), faces["o2"], after_one, at=T0 + timedelta(days=66)).add


def test_a_template_far_from_the_enrolment_is_never_added(faces):
    """A frame that matched strongly against refreshed templates which drifted away from
    the enrolled face (here Biden against Obama's enrolment) is refused, however strong."""
    stored = [tpl("E", faces["o0"]), tpl("R", faces["biden"], "refresh", days=1)]
    d = rule(strong(score=0.95, runner=0.1), faces["hanks"], stored)
    assert d.reason == "far_from_enrolment" and not d.add
    assert d.enrolment_similarity < SFACE.match_threshold
    assert rule(strong(), faces["o2"], stored).add        # Obama's own later photo: near the enrolment


def test_the_cap_keeps_the_enrolment_and_drops_the_most_redundant(faces):
    # the enrolment, then four refreshes: two are nearly the same picture (obama2 and its mirror)
    stored = [tpl("E", faces["o0"]), tpl("Ef", faces["o0f"], "enroll", days=0),
              tpl("R1", faces["o1"], "refresh", days=40), tpl("R2", faces["o2"], "refresh", days=80),
              tpl("R2f", faces["o2f"], "refresh", days=120)]
    assert len(stored) == MAX_TEMPLATES
    d = rule(strong(), faces["o1f"], stored, at=T0 + timedelta(days=200))
    assert d.add and len(d.drop) == 1
    assert d.drop[0] not in ("E", "Ef")                     # enrolment templates are never dropped
    # the one dropped is the refreshed template whose removal loses least: the highest mean
    # similarity to the others, with the fresh one among them
    every = {t.id: t.embedding for t in stored} | {"fresh": faces["o1f"]}
    mean = {i: np.mean([float(v @ w) for j, w in every.items() if j != i]) for i, v in every.items()}
    refreshed = ["R1", "R2", "R2f", "fresh"]
    assert d.drop[0] == max(refreshed, key=mean.get)
    kept = [t for t in stored if t.id not in d.drop]
    assert len(kept) + 1 == MAX_TEMPLATES

    # the fresh frame itself the most redundant (the very picture of a kept template): not added
    d2 = rule(strong(), faces["o2"], stored, at=T0 + timedelta(days=200))
    assert d2.reason == "redundant" and not d2.add and d2.drop == ()
    # the enrolment alone fills the cap: nothing is added
    full = [tpl(f"E{i}", faces[k]) for i, k in enumerate(("o0", "o0f", "o1", "o1f", "o2"))]
    assert rule(strong(), faces["o2f"], full, at=T0 + timedelta(days=40)).reason == "no_room"


def test_consent_text_versions():
    from kiosk.enrollment.consent import CONSENT_TEXT, CONSENT_TEXT_VERSION

    assert consent_covers_refresh(CONSENT_TEXT_VERSION)
    assert "随年龄更新" in CONSENT_TEXT[CONSENT_TEXT_VERSION] and "包括随年龄更新的模板" in CONSENT_TEXT[CONSENT_TEXT_VERSION]
    assert not consent_covers_refresh("face-consent-2026.1")   # the older text did not say so
    assert consent_covers_refresh("face-consent-2027.1")
    assert not consent_covers_refresh(None)


def _enrolled_months_ago(app, rid: str, photo, when: datetime) -> None:
    enroll_files(app, rid, [photo], consent="self", actor=staff_actor(app))
    with app.db.session() as s:       # the elder was enrolled months before this checkout
        s.execute(update(FaceTemplate).where(FaceTemplate.resident_id == rid).values(created_at=when))


def test_a_strong_face_checkout_adds_a_template_and_erasure_removes_them_all(shop, obama):
    from kiosk.terminal.counter import KioskService

    _enrolled_months_ago(shop, "R0001", obama[0], LUNCH - timedelta(days=120))
    svc = KioskService(shop, clock=lambda: LUNCH)
    receipt = svc.checkout.settle("R0001", ["D001"], pay="cash", key="k-age-1", identified_by="face", at=LUNCH)
    assert receipt.resident_id == "R0001"
    obs = shop.engine.observe_still(read_image(obama[1]))
    m = shop.faces.match(obs.embedding)
    assert m.resident_id == "R0001" and m.score >= SFACE.strong_score
    # not live: nothing
    assert not svc.checkout.maybe_refresh_template("R0001", m.score, 0.9, "matched", False, obs.embedding, obs.aligned)
    assert svc.checkout.maybe_refresh_template("R0001", m.score, 0.9, "matched", True, obs.embedding, obs.aligned)
    with shop.db.session() as s:
        rows = s.scalars(select(FaceTemplate).where(FaceTemplate.resident_id == "R0001")).all()
        assert sorted(r.source for r in rows) == ["enroll", "refresh"]
        fresh = next(r for r in rows if r.source == "refresh")
        assert fresh.created_at == LUNCH
        a = s.scalars(select(AuditEntry).where(AuditEntry.action == "face.template_refresh")).one()
        assert a.actor == "kiosk" and a.subject == "R0001" and a.detail["template_id"] == fresh.id
        assert a.detail["score"] >= SFACE.strong_score and a.detail["dropped"] == []
    # the next day: once a month
    svc.clock = lambda: LUNCH + timedelta(days=1)
    obs3 = shop.engine.observe_still(read_image(obama[2]))
    assert not svc.checkout.maybe_refresh_template("R0001", 0.8, 0.9, "matched", True, obs3.embedding, obs3.aligned)
    d = TemplateRefresh(shop).consider("R0001", obs3.embedding, live=True, quality=0.9, at=LUNCH + timedelta(days=1))
    assert d.reason == "too_soon"
    # the fresh template is in the gallery: the later photo matches through it as well
    assert shop.faces.identify_file(obama[1]).score > 0.99

    res = shop.residents.erase_faces("R0001", staff_actor(shop, "SUP"))
    assert res["templates_removed"] == 2
    with shop.db.session() as s:
        assert s.scalars(select(FaceTemplate).where(FaceTemplate.resident_id == "R0001")).all() == []
    assert shop.faces.identify_file(obama[1]).resident_id is None
    # and no refresh without a consent in force
    svc.clock = lambda: LUNCH + timedelta(days=90)
    assert not svc.checkout.maybe_refresh_template("R0001", 0.8, 0.9, "matched", True, obs3.embedding, obs3.aligned)


def test_no_refresh_on_a_consent_signed_on_the_older_text(shop, obama):
    _enrolled_months_ago(shop, "R0001", obama[0], LUNCH - timedelta(days=120))
    with shop.db.session() as s:
        s.execute(update(FaceConsent).where(FaceConsent.resident_id == "R0001")
                  .values(text_version="face-consent-2026.1"))
    obs = shop.engine.observe_still(read_image(obama[1]))
    d = TemplateRefresh(shop).consider("R0001", obs.embedding, live=True, quality=0.9, at=LUNCH)
    assert d.reason == "no_consent" and not d.add


def test_a_terminal_pushes_a_refreshed_template_and_the_district_syncs_it(district, obama):
    d = district
    t1, t2 = d.terminal("C1"), d.terminal("C2")
    sync(t1)
    sync(t2)
    _enrolled_months_ago(t1, "R0001", obama[0], datetime.now(timezone.utc) - timedelta(days=60))
    sync(t1)
    obs = t1.engine.observe_still(read_image(obama[1]))
    dec = TemplateRefresh(t1).consider("R0001", obs.embedding, live=True, quality=0.9, crop=obs.aligned)
    assert dec.add, dec.reason
    with t1.db.session() as s:
        kinds = [e.kind for e in s.scalars(select(OutboxEntry).where(OutboxEntry.status == "pending"))]
    assert kinds == ["faces.enroll"]                 # its own unit of work, carried by the outbox
    assert sync(t1).pushed == 1
    app = d.server_app()
    with app.db.session() as s:
        srv = {t.id: t.source for t in s.scalars(select(FaceTemplate).where(FaceTemplate.resident_id == "R0001"))}
    app.close()
    assert srv.get(dec.template_id) == "refresh" and len(srv) == 2
    sync(t2)                                          # the other canteen gets it as any template
    with t2.db.session() as s:
        assert s.get(FaceTemplate, dec.template_id).source == "refresh"
    assert t2.faces.identify_file(obama[1]).score > 0.99
