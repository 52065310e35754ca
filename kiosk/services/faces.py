"""Face templates in the store, the gallery built from them, identify and erase.

The database is the source of truth. The FAISS index is kept encrypted in
KIOSK_HOME and rebuilt whenever its fingerprint (model contract + template
ids) differs from the database's.

Several processes may share one store (the kiosk, the command line, other
terminals). Every change of templates bumps the store's ``gallery`` counter in
the same transaction; each process compares it at most every GALLERY_CHECK_S
before a search and brings its in-memory gallery up to the store (an erased
resident stops matching everywhere within about a second). The index file is
written under a file lock, always from the store as committed at that moment,
so no process writes erased templates back."""
from __future__ import annotations

import logging
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import FaceConsent, FaceTemplate, Resident, StoreCounter
from kiosk.services.events import FACES_PULLED, Change
from kiosk.errors import ConsentRequiredError, ImageError, KioskError, ModelMismatchError, NotFoundError
from kiosk.vision.engine import BACKEND_DEFAULTS, FaceEngine, FaceObservation
from kiosk.vision.gallery import FaissGallery, fingerprint
from kiosk.vision.image_io import read_image
from kiosk.vision.matching import decide
from kiosk.vision.types import MatchResult

log = logging.getLogger(__name__)

GALLERY_CHECK_S = 0.5      # how often a process asks the store whether templates changed


STATUS_ZH = {"matched": "已认出", "unknown": "没有认出这位", "ambiguous": "认不准是哪一位，请工作人员确认",
             "no_face": "照片里没有看到人脸", "low_quality": "照片质量不够", "error": "图片无法读取"}


@dataclass(frozen=True)
class IdentifyResult:
    image: str
    status: str  # matched | unknown | ambiguous | no_face | low_quality | error
    resident_id: str | None
    score: float | None
    faces: int
    message: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        """The verdict's stable code: the first quality reason of a low-quality photo
        (kiosk.vision.quality codes), else the status itself."""
        return self.reasons[0] if self.status == "low_quality" and self.reasons else self.status

    def to_json(self) -> dict:
        d = {"image": self.image, "status": self.status, "code": self.code, "resident_id": self.resident_id,
             "score": None if self.score is None else round(self.score, 4), "faces": self.faces,
             "message": self.message or STATUS_ZH.get(self.status, "")}
        if self.reasons:
            d["reasons"] = list(self.reasons)
        return d


class FaceService:
    def __init__(self, app) -> None:
        self.app = app
        self.settings = app.settings
        self._gallery: FaissGallery | None = None
        self._lock = threading.RLock()
        self._known_gen: int | None = None   # the store's gallery counter the in-memory gallery reflects
        self._checked_at = 0.0
        d = BACKEND_DEFAULTS[self.settings.backend]
        self.threshold = self.settings.match_threshold if self.settings.match_threshold is not None else d.match_threshold
        self.margin = self.settings.match_margin if self.settings.match_margin is not None else d.match_margin
        self.duplicate_threshold = d.duplicate_threshold
        # one query at a time: FAISS's OpenMP threads only fight onnxruntime's for the 2 cores
        # (measured: insightface search stage 3.9 ms -> 0.65 ms, detection 18.5 -> 14.2 ms)
        import faiss
        faiss.omp_set_num_threads(1)
        app.events.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        """Templates changed by a pull: this process's gallery follows at once (other
        processes at their next generation check). Changes made through this service are
        already in its gallery."""
        if change.kind == FACES_PULLED:
            self.sync()

    @property
    def engine(self) -> FaceEngine:
        return self.app.engine

    @property
    def contract_id(self) -> str:
        return self.engine.contract.id

    # -- templates --------------------------------------------------------------------
    def encode_embedding(self, vec: np.ndarray) -> bytes:
        return self.app.cipher.encrypt(np.asarray(vec, np.float32).tobytes())

    def decode_embedding(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(self.app.cipher.decrypt(blob), dtype=np.float32)

    def add_template(self, session: Session, resident_id: str, embedding: np.ndarray,
                     *, crop: np.ndarray | None = None, quality: float | None = None,
                     source: str = "enroll") -> FaceTemplate:
        """Store one template and put it in the gallery (no rebuild)."""
        emb = np.asarray(embedding, np.float32).ravel()
        if emb.shape[0] != self.engine.contract.dim:
            raise ModelMismatchError(detail=f"embedding dim {emb.shape[0]} != {self.contract_id}")
        self._check_may_hold_faces(session, resident_id)
        crop_enc = None
        if crop is not None:
            ok, png = cv2.imencode(".png", crop)
            if ok:
                crop_enc = self.app.cipher.encrypt(png.tobytes())
        t = FaceTemplate(resident_id=resident_id, contract_id=self.contract_id,
                         backend=self.engine.name, embedding_enc=self.encode_embedding(emb),
                         crop_enc=crop_enc, quality=quality, source=source)
        session.add(t)
        session.flush()
        self.bump_generation(session)
        self.app.events.publish(session, "faces.enroll", resident_id=resident_id)
        g = self.gallery()
        with self._lock:
            g.add([t.id], [resident_id], emb[None, :])
        return t

    def template_count(self, session: Session, resident_id: str) -> int:
        return session.scalar(select(func.count()).select_from(FaceTemplate).where(
            FaceTemplate.resident_id == resident_id, FaceTemplate.contract_id == self.contract_id)) or 0

    def remove_templates(self, session: Session, template_ids: list[str]) -> None:
        self.app.events.publish(session, "faces.remove", template_ids=list(template_ids))
        session.execute(delete(FaceTemplate).where(FaceTemplate.id.in_(template_ids)))
        self.bump_generation(session)
        with self._lock:
            self.gallery().remove(template_ids)

    def erase_resident_faces(self, session: Session, resident_id: str) -> int:
        """Remove every template and crop of a resident (the rows; with SQLite's
        secure_delete their bytes are overwritten), and this process's index entries.
        Other processes drop theirs at their next generation check."""
        self.app.events.publish(session, "faces.erase", resident_id=resident_id)
        n = session.execute(delete(FaceTemplate).where(FaceTemplate.resident_id == resident_id)).rowcount
        self.bump_generation(session)
        with self._lock:
            if self._gallery is not None:
                self._gallery.remove_resident(resident_id)
        return int(n or 0)

    def _check_may_hold_faces(self, session: Session, resident_id: str) -> None:
        """No template without a resident and a consent in force, checked where every
        template is written; the resident row is locked (PostgreSQL) so an erasure
        running at the same moment either comes first (and this refuses) or after
        (and removes this template too)."""
        r = session.execute(select(Resident.status).where(Resident.id == resident_id).with_for_update()).first()
        if r is None or r[0] == "erased":
            raise NotFoundError(f"没有编号为 {resident_id} 的居民", detail=f"resident {resident_id!r} not found")
        consent = session.scalar(select(FaceConsent.id).where(FaceConsent.resident_id == resident_id,
                                                              FaceConsent.withdrawn_at.is_(None)).limit(1))
        if consent is None:
            raise ConsentRequiredError(f"居民 {resident_id} 没有有效的人脸授权，不能保存人脸模板",
                                       detail=f"no consent in force for {resident_id}")

    # -- the store's gallery counter ---------------------------------------------------
    @staticmethod
    def bump_generation(session: Session) -> None:
        """Called in the transaction that changes templates."""
        n = session.execute(update(StoreCounter).where(StoreCounter.name == "gallery")
                            .values(value=StoreCounter.value + 1)).rowcount
        if not n:
            session.add(StoreCounter(name="gallery", value=1))
            session.flush()

    def generation(self) -> int:
        with self.app.db.session(read_only=True) as s:
            return int(s.scalar(select(StoreCounter.value).where(StoreCounter.name == "gallery")) or 0)

    def _maybe_sync(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < GALLERY_CHECK_S:
            return
        self._checked_at = now
        gen = self.generation()
        if gen != self._known_gen:
            self.sync(gen)

    def sync(self, gen: int | None = None, *, write: bool = True) -> tuple[int, int]:
        """Bring the in-memory gallery to the store as committed now: drop templates
        that are gone (erased, rotated out, rolled back), add new ones. Returns
        (removed, added); when anything was removed the index file is rewritten."""
        with self._lock:
            if self._gallery is None:
                return 0, 0
            gen = self.generation() if gen is None else gen
            with self.app.db.session(read_only=True) as s:
                db = dict(s.execute(select(FaceTemplate.id, FaceTemplate.resident_id)
                                    .join(Resident, Resident.id == FaceTemplate.resident_id)
                                    .where(FaceTemplate.contract_id == self.contract_id,
                                           Resident.status != "erased")).all())
                mem = self._gallery.members()
                gone = [t for t, r in mem.items() if db.get(t) != r]
                new = [t for t in db if t not in mem]
                blobs: list = []
                for i in range(0, len(new), 500):
                    blobs += s.execute(select(FaceTemplate.id, FaceTemplate.resident_id, FaceTemplate.embedding_enc)
                                       .where(FaceTemplate.id.in_(new[i:i + 500]))).all()
            if gone:
                self._gallery.remove(gone)
            if blobs:
                self._gallery.add([b[0] for b in blobs], [b[1] for b in blobs],
                                  self.app.cipher.decrypt_embeddings([b[2] for b in blobs], self.engine.contract.dim))
            self._known_gen = gen
            if gone or blobs:
                log.info("gallery synced with the store: %d removed, %d added", len(gone), len(blobs))
            if gone and write:
                self._write_index(self._gallery, fingerprint(self.contract_id, self._gallery.template_ids()))
        return len(gone), len(blobs)

    def stale_residents(self) -> list[dict]:
        """Residents whose templates were made by another model (need re-enrolment)."""
        with self.app.db.session() as s:
            rows = s.execute(select(FaceTemplate.resident_id, FaceTemplate.contract_id,
                                    func.count(), func.count(FaceTemplate.crop_enc))
                             .where(FaceTemplate.contract_id != self.contract_id)
                             .group_by(FaceTemplate.resident_id, FaceTemplate.contract_id)).all()
        return [{"resident_id": r, "contract_id": c, "templates": n, "with_crop": k} for r, c, n, k in rows]

    def reembed_from_crops(self, actor) -> dict:
        """After a model change: make templates with the current model from the kept
        (encrypted) face crops. Residents without a crop must be re-enrolled.
        ``actor``: an admin proven by PIN (kiosk.services.auth)."""
        from kiosk.db.permissions import require

        done, need = 0, set()
        with self.app.db.session() as s:
            staff_id = require(s, actor, "face.reembed").id
            old = s.scalars(select(FaceTemplate).where(FaceTemplate.contract_id != self.contract_id)).all()
            for t in old:
                if t.crop_enc is None:
                    need.add(t.resident_id)
                    continue
                crop = cv2.imdecode(np.frombuffer(self.app.cipher.decrypt(t.crop_enc), np.uint8), cv2.IMREAD_COLOR)
                if crop is None or crop.shape[:2] != (112, 112):
                    need.add(t.resident_id)
                    continue
                self.add_template(s, t.resident_id, self.engine.embed_aligned(crop), crop=crop,
                                  quality=t.quality, source="reembed")
                s.delete(t)
                done += 1
            audit.record(s, staff_id, "templates.reembed", self.contract_id, templates=done,
                         need_reenrolment=sorted(need))
        self.save_index()
        return {"reembedded": done, "need_reenrolment": sorted(need)}

    # -- gallery ----------------------------------------------------------------------
    def gallery(self) -> FaissGallery:
        with self._lock:
            if self._gallery is None:
                self._gallery = self._load_or_rebuild()
            return self._gallery

    def _db_templates(self, blobs: bool = True) -> tuple[list[str], list[str], list[bytes]]:
        """The store's templates of this model, in one SELECT (``blobs`` False: the ids
        only, enough to check the index file). On a connection, not an ORM session: plain
        rows of 10^5 templates in 0.26 s against 0.37 s (docs/benchmarks.md)."""
        cols = [FaceTemplate.id, FaceTemplate.resident_id] + ([FaceTemplate.embedding_enc] if blobs else [])
        with self.app.db.reading() as s:
            rows = s.execute(select(*cols)
                             .join(Resident, Resident.id == FaceTemplate.resident_id)
                             .where(FaceTemplate.contract_id == self.contract_id,
                                    Resident.status != "erased")).all()
        cols_out = list(zip(*rows)) if rows else [(), (), ()]
        return list(cols_out[0]), list(cols_out[1]), list(cols_out[2]) if blobs else []

    def _load_or_rebuild(self) -> FaissGallery:
        self._known_gen = self.generation()       # read first: a change after it is caught next check
        self._checked_at = time.monotonic()
        tids, rids, _ = self._db_templates(blobs=False)
        fp = fingerprint(self.contract_id, tids)
        path = self.settings.index_path
        if path.is_file():
            try:
                g, stored_fp = FaissGallery.from_bytes(self.app.cipher.decrypt(path.read_bytes()))
                if stored_fp == fp and g.contract_id == self.contract_id:
                    return g
                log.info("index file out of date or from another model; rebuilding")
            except (KioskError, ValueError, RuntimeError, KeyError) as exc:
                log.warning("index file unreadable (%s); rebuilding from the database", exc)
        t0 = time.perf_counter()
        dim = self.engine.contract.dim
        tids, rids, blobs = self._db_templates()       # the blobs only when they are needed
        fp = fingerprint(self.contract_id, tids)
        vecs = self.app.cipher.decrypt_embeddings(blobs, dim)    # in bulk (security.decrypt_many)
        g = FaissGallery.build(dim, self.contract_id, tids, rids, vecs)
        log.info("gallery rebuilt: %d templates in %.1f ms", len(tids), (time.perf_counter() - t0) * 1000)
        self._gallery = g        # so that the write below first catches up with a change made meanwhile
        self._write_index(g, fp)
        return g

    def _write_index(self, g: FaissGallery, fp: str) -> None:
        """Write under the index file's lock. A gallery that no longer matches the store
        (an erasure committed since it was read) is brought up to date first, so a
        process never writes erased templates back."""
        path = self.settings.index_path
        tmp = path.with_suffix(".tmp")
        try:
            with self._lock, open(path.with_name(path.name + ".lock"), "a") as lockf:
                fcntl.flock(lockf, fcntl.LOCK_EX)
                if g is self._gallery and self.generation() != self._known_gen:
                    self.sync(write=False)
                    fp = fingerprint(self.contract_id, g.template_ids())
                tmp.write_bytes(self.app.cipher.encrypt(g.to_bytes(fp, generation=self._known_gen)))
                os.replace(tmp, path)
        except OSError as exc:  # a full disk must not stop checkout: the index is rebuilt at start
            log.warning("could not write the index file %s: %s", path, exc)
            tmp.unlink(missing_ok=True)

    def save_index(self) -> None:
        """Persist the in-memory gallery after changes (called at the end of a unit of
        work), as the store holds it now."""
        with self._lock:
            if self._gallery is None:
                return
            self.sync(write=False)
            self._write_index(self._gallery, fingerprint(self.contract_id, self._gallery.template_ids()))

    def purge_index(self) -> None:
        """After an erasure: this process's gallery and the index file hold only what
        the store holds (the gallery is loaded when this process had none)."""
        with self._lock:
            if self._gallery is None:
                self.gallery()          # rebuilt from the store when the file disagrees, and written
            self.save_index()

    def rebuild_later(self) -> None:
        """Drop the in-memory gallery (after a rolled-back change); it reloads from the store."""
        with self._lock:
            self._gallery = None
            self._known_gen = None

    def rebuild(self) -> int:
        with self._lock:
            self.settings.index_path.unlink(missing_ok=True)
            self._gallery = None
            return len(self.gallery())

    # -- identification -----------------------------------------------------------------
    def search(self, embedding: np.ndarray, k_residents: int = 6) -> list:
        """Best template per resident, best first. Locked: the vision worker searches
        while staff enrol and checkouts add fresh templates."""
        self.gallery()
        self._maybe_sync()
        with self._lock:
            return self._gallery.search(embedding, k_residents=k_residents)

    def match(self, embedding: np.ndarray, *, exclude: str | None = None) -> MatchResult:
        cands = self.search(embedding)
        if exclude is not None:
            cands = [c for c in cands if c.resident_id != exclude]
        return decide(cands, self.threshold, self.margin)

    def observe_file(self, path: str | Path) -> FaceObservation:
        return self.engine.observe_still(read_image(path))

    def identify_file(self, path: str | Path) -> IdentifyResult:
        p = str(path)
        try:   # a probe, not a template: only a face too small to identify is refused
            obs = self.engine.observe_probe(read_image(path))
        except ImageError as exc:
            return IdentifyResult(p, "error", None, None, 0, message=exc.user_message)
        n = len(obs.faces)
        if obs.primary is None:
            return IdentifyResult(p, "no_face", None, None, 0)
        if obs.embedding is None:
            q = obs.quality
            return IdentifyResult(p, "low_quality", None, None, n, message=q.hint if q else None,
                                  reasons=q.reasons if q else ())
        m = self.match(obs.embedding)
        return IdentifyResult(p, m.status, m.resident_id, m.score, n)
