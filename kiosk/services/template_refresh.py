"""Templates that age with the elder: a strong, live face checkout may add a fresh template.

Users are 70 to 95; genuine scores fall with the years since enrolment, so deployments
keep several templates per person and refresh them only from very confident matches.
The rule (``decide_refresh``, pure; every refusal has a stable reason code):

* the checkout frame's own match is ``matched`` to this elder with a score of at least the
  backend's strong score (``BackendDefaults.strong_score``, sface 0.65, insightface 0.60;
  the tracker's "strong" vote) and a lead of at least ``STRONG_LEAD`` (0.20) over the best
  other resident, on a frame of quality at least ``MIN_QUALITY``;
* the liveness check passed at this checkout;
* the elder's face consent in force covers refreshed templates (its text version is
  ``REFRESH_CONSENT_VERSIONS`` or later: the text says so, enrollment/consent.py);
* at most one a month: nothing is added within ``MIN_INTERVAL`` (30 days) of the elder's
  newest template (an enrolment or an earlier refresh);
* the fresh template is not far from the enrolment: its best similarity to the enrolment
  templates (every template not made by a refresh) is at least the match threshold. A
  template that drifted away (a look-alike who kept matching, a slow take-over) is never
  added, so refreshed templates stay anchored to the face that staff enrolled;
* at most ``MAX_TEMPLATES`` (5) per elder; the enrolment templates are always kept. Over
  the cap, the most redundant refreshed template goes: the one with the highest mean
  similarity to the others (its removal loses least). When that is the fresh one itself,
  nothing is added (``redundant``).

``TemplateRefresh.consider`` runs it for a checkout that has been settled and stores the
template in a unit of work of its own, right after the sale (a refusal by the district
server then never takes the sale with it): the template goes in through
``FaceService.add_template`` (consent checked again under the resident's row lock,
``faces.enroll`` published, so a terminal's outbox carries it and the district syncs it as
any template), a dropped one through ``remove_templates`` (``faces.remove``). Erasure
removes refreshed templates with the rest (``erase_resident_faces`` deletes them all).

Audit: ``face.template_refresh`` with actor ``kiosk``, the system acting on the elder's own
strong match. Nobody on duty proves anything at that moment (the checkout is the elder's,
not staff's), so naming the staff member on duty would claim an act they did not do; the
elder's consent is what allows it, and the entry carries the scores that justified it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import FaceConsent, FaceTemplate
from kiosk.vision.engine import BACKEND_DEFAULTS
from kiosk.vision.matching import decide
from kiosk.vision.types import MatchResult

log = logging.getLogger(__name__)

MAX_TEMPLATES = 5
MIN_INTERVAL = timedelta(days=30)
STRONG_LEAD = 0.20
MIN_QUALITY = 0.6
REFRESH_SOURCE = "refresh"
ACTOR = "kiosk"
# consent texts that tell the elder a strong checkout may add a fresh template
REFRESH_CONSENT_VERSIONS = "face-consent-2026.2"

REASONS_ZH = {
    "added": "已增加一张新的人脸模板",
    "not_matched": "这一帧没有明确认出这位居民",
    "not_live": "本次没有通过活体检查",
    "no_strong_score": "当前识别模型没有设定“明确匹配”的分数",
    "weak": "匹配分数不够高",
    "close_runner_up": "与其他居民的分数差距不够大",
    "poor_frame": "画面质量不够",
    "no_consent": "人脸授权不包括更新模板",
    "too_soon": "距离上一次增加模板不到一个月",
    "no_enrolment": "没有登记时的人脸模板",
    "far_from_enrolment": "与登记时的人脸相差太远",
    "no_room": "登记模板已满",
    "redundant": "新模板与已有模板太相似",
}


@dataclass(frozen=True)
class StoredTemplate:
    """One of the elder's templates as the rule sees it (embedding L2-normalised)."""
    id: str
    source: str
    created_at: datetime
    embedding: np.ndarray

    @property
    def enrolment(self) -> bool:
        return self.source != REFRESH_SOURCE


@dataclass(frozen=True)
class RefreshDecision:
    add: bool
    reason: str                             # a REASONS_ZH code
    drop: tuple[str, ...] = ()              # template ids to remove when adding
    enrolment_similarity: float | None = None
    score: float | None = None
    lead: float | None = None
    template_id: str | None = None          # set by the service once stored

    @property
    def message(self) -> str:
        return REASONS_ZH[self.reason]

    def to_json(self) -> dict:
        return {"add": self.add, "reason": self.reason, "message": self.message, "drop": list(self.drop),
                "enrolment_similarity": _r(self.enrolment_similarity), "score": _r(self.score),
                "lead": _r(self.lead), "template_id": self.template_id}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def consent_covers_refresh(text_version: str | None) -> bool:
    """The consent's text says that strong checkouts may add fresh templates."""
    if not text_version or not text_version.startswith("face-consent-"):
        return False
    return _version_key(text_version) >= _version_key(REFRESH_CONSENT_VERSIONS)


def _version_key(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.removeprefix("face-consent-").split("."))
    except ValueError:
        return (0,)


def refresh_consented(session: Session, resident_id: str) -> bool:
    """A consent in force whose text covers refreshed templates (the terminal before adding,
    the district server before accepting one that a terminal pushes)."""
    versions = session.scalars(select(FaceConsent.text_version).where(
        FaceConsent.resident_id == resident_id, FaceConsent.withdrawn_at.is_(None))).all()
    return any(consent_covers_refresh(v) for v in versions)


def most_redundant(templates: list[StoredTemplate], fresh: StoredTemplate) -> str:
    """The refreshed template (``fresh`` included) whose removal loses least: the highest
    mean similarity to all the others. On a tie (within 1e-6) the fresh one loses (adding
    it would change nothing), else the older."""
    every = [*templates, fresh]
    e = np.vstack([np.asarray(t.embedding, np.float32) for t in every]).astype(np.float64)
    sims = e @ e.T
    n = len(every)
    mean = (sims.sum(axis=1) - np.diag(sims)) / max(1, n - 1)
    refreshed = [i for i, t in enumerate(every) if not t.enrolment]
    top = max(float(mean[i]) for i in refreshed)
    tied = [every[i] for i in refreshed if float(mean[i]) >= top - 1e-6]
    if any(t is fresh for t in tied):
        return fresh.id
    return min(tied, key=lambda t: (t.created_at, t.id)).id


def decide_refresh(resident_id: str, match: MatchResult, embedding: np.ndarray, *, live: bool,
                   quality: float, templates: list[StoredTemplate], at: datetime, threshold: float,
                   strong_score: float | None, consent_covers: bool, lead: float = STRONG_LEAD,
                   max_templates: int = MAX_TEMPLATES, min_interval: timedelta = MIN_INTERVAL,
                   min_quality: float = MIN_QUALITY) -> RefreshDecision:
    """Whether this checkout frame's embedding becomes a fresh template of ``resident_id``
    (module docstring). ``match``: the frame's own 1:N result; ``templates``: the elder's
    stored templates of the current model; ``at``: aware datetime of the checkout."""
    score = match.score
    runner = match.runner_up.score if match.runner_up is not None else None
    gap = None if score is None else score - (runner if runner is not None else -1.0)

    def no(reason: str, **kw) -> RefreshDecision:
        return RefreshDecision(False, reason, score=score, lead=gap, **kw)

    if match.status != "matched" or match.resident_id != resident_id or score is None:
        return no("not_matched")
    if not live:
        return no("not_live")
    if strong_score is None:
        return no("no_strong_score")
    if score < strong_score:
        return no("weak")
    if gap is None or gap < lead:
        return no("close_runner_up")
    if quality < min_quality:
        return no("poor_frame")
    if not consent_covers:
        return no("no_consent")
    if templates:
        newest = max(t.created_at for t in templates)
        if at - newest < min_interval:
            return no("too_soon")
    enrol = [t for t in templates if t.enrolment]
    if not enrol:
        return no("no_enrolment")
    emb = np.asarray(embedding, np.float32).ravel()
    near = max(float(np.dot(emb, np.asarray(t.embedding, np.float32).ravel())) for t in enrol)
    if near < threshold:
        return no("far_from_enrolment", enrolment_similarity=near)
    if len(enrol) >= max_templates:
        return no("no_room", enrolment_similarity=near)
    fresh = StoredTemplate("(fresh)", REFRESH_SOURCE, at, emb)
    kept = list(templates)
    drop: list[str] = []
    while len(kept) + 1 > max_templates:
        victim = most_redundant(kept, fresh)
        if victim == fresh.id:
            return no("redundant", enrolment_similarity=near)
        drop.append(victim)
        kept = [t for t in kept if t.id != victim]
    return RefreshDecision(True, "added", tuple(drop), near, score, gap)


@dataclass
class TemplateRefresh:
    """The service: a settled face checkout's frame, considered and stored."""
    app: object
    max_templates: int = MAX_TEMPLATES
    min_interval: timedelta = MIN_INTERVAL

    def strong_score(self) -> float | None:
        return BACKEND_DEFAULTS[self.app.settings.backend].strong_score

    def stored(self, session: Session, resident_id: str) -> list[StoredTemplate]:
        faces = self.app.faces
        rows = session.execute(select(FaceTemplate.id, FaceTemplate.source, FaceTemplate.created_at,
                                      FaceTemplate.embedding_enc)
                               .where(FaceTemplate.resident_id == resident_id,
                                      FaceTemplate.contract_id == faces.contract_id)).all()
        return [StoredTemplate(i, src or "enroll", ts, faces.decode_embedding(blob)) for i, src, ts, blob in rows]

    def consider(self, resident_id: str, embedding: np.ndarray, *, live: bool, quality: float,
                 crop: np.ndarray | None = None, at: datetime | None = None,
                 order_id: str | None = None) -> RefreshDecision:
        """After a face checkout of ``resident_id`` was settled: decide on the frame that
        identified the elder (``embedding``, ``crop`` its aligned face) and store the fresh
        template when the rule allows. Returns the decision (``template_id`` set when added)."""
        faces = self.app.faces
        emb = np.asarray(embedding, np.float32).ravel()
        at = (at or datetime.now(timezone.utc))
        if at.tzinfo is None:
            raise ValueError("aware datetime expected for the checkout time")
        match = decide(faces.search(emb), faces.threshold, faces.margin)
        try:
            with self.app.db.session() as s:
                stored = self.stored(s, resident_id)
                d = decide_refresh(resident_id, match, emb, live=live, quality=quality, templates=stored,
                                   at=at, threshold=faces.threshold, strong_score=self.strong_score(),
                                   consent_covers=refresh_consented(s, resident_id),
                                   max_templates=self.max_templates, min_interval=self.min_interval)
                if not d.add:
                    log.debug("no template refresh for %s: %s", resident_id, d.reason)
                    return d
                consent = s.scalars(select(FaceConsent).where(FaceConsent.resident_id == resident_id,
                                                              FaceConsent.withdrawn_at.is_(None))
                                    .order_by(FaceConsent.created_at.desc())).first()
                keep_crop = crop is not None and consent is not None and consent.allows_crop
                t = faces.add_template(s, resident_id, emb, crop=crop if keep_crop else None,
                                       quality=quality, source=REFRESH_SOURCE)
                t.created_at = at.astimezone(timezone.utc)
                if d.drop:
                    faces.remove_templates(s, list(d.drop))
                audit.record(s, ACTOR, "face.template_refresh", resident_id, template_id=t.id,
                             dropped=list(d.drop), score=_r(d.score), lead=_r(d.lead),
                             enrolment_similarity=_r(d.enrolment_similarity), order_id=order_id,
                             templates=len(stored) + 1 - len(d.drop))
                d = RefreshDecision(True, "added", d.drop, d.enrolment_similarity, d.score, d.lead, t.id)
        except BaseException:
            faces.rebuild_later()     # the in-memory gallery may hold a template that was rolled back
            raise
        faces.save_index()
        return d
