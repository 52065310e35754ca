"""Template galleries: a plain-numpy reference and the FAISS one used in
production. Both return the best template per resident, best first."""
from __future__ import annotations

import hashlib
import io
import json
import math
from typing import Iterable, Protocol

import faiss
import numpy as np

from kiosk.errors import ModelMismatchError
from kiosk.vision.types import Candidate

EXACT_LIMIT = 20_000          # below this many templates: exact inner-product search
TEMPLATES_PER_QUERY = 64      # templates fetched per query before grouping by resident


def template_key(template_id: str) -> int:
    """Stable positive int64 for a template id (FAISS ids are int64)."""
    return int.from_bytes(hashlib.sha256(str(template_id).encode()).digest()[:8], "little") & (2**63 - 1)


def fingerprint(contract_id: str, template_ids: Iterable[str]) -> str:
    h = hashlib.sha256(contract_id.encode())
    for t in sorted(template_ids):
        h.update(b"\0" + t.encode())
    return h.hexdigest()


class Gallery(Protocol):
    dim: int
    contract_id: str

    def add(self, template_ids: list[str], resident_ids: list[str], vectors: np.ndarray) -> None: ...
    def remove(self, template_ids: list[str]) -> int: ...
    def remove_resident(self, resident_id: str) -> int: ...
    def search(self, vector: np.ndarray, k_residents: int = 5) -> list[Candidate]: ...
    def __len__(self) -> int: ...


def _check(vectors: np.ndarray, dim: int) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if v.ndim == 1:
        v = v[None, :]
    if v.shape[1] != dim:
        raise ModelMismatchError("人脸特征维度与当前模型不一致",
                                 detail=f"vector dim {v.shape[1]} != gallery dim {dim}")
    return v


def _group(keys: np.ndarray, scores: np.ndarray, owner: dict[int, tuple[str, str]],
           k_residents: int) -> list[Candidate]:
    best: dict[str, Candidate] = {}
    for key, s in zip(keys, scores):
        if key < 0 or int(key) not in owner:
            continue
        tid, rid = owner[int(key)]
        if rid not in best or s > best[rid].score:
            best[rid] = Candidate(resident_id=rid, score=float(s), template_id=tid)
    return sorted(best.values(), key=lambda c: -c.score)[:k_residents]


class NumpyGallery:
    """Exact reference implementation (tests compare the FAISS gallery against it)."""

    def __init__(self, dim: int, contract_id: str) -> None:
        self.dim, self.contract_id = dim, contract_id
        self._vecs = np.zeros((0, dim), np.float32)
        self._keys = np.zeros((0,), np.int64)
        self._owner: dict[int, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self._owner)

    def add(self, template_ids: list[str], resident_ids: list[str], vectors: np.ndarray) -> None:
        v = _check(vectors, self.dim)
        keys = np.array([template_key(t) for t in template_ids], np.int64)
        self.remove(template_ids)
        self._vecs = np.vstack([self._vecs, v])
        self._keys = np.concatenate([self._keys, keys])
        for k, t, r in zip(keys, template_ids, resident_ids):
            self._owner[int(k)] = (t, r)

    def remove(self, template_ids: list[str]) -> int:
        keys = {template_key(t) for t in template_ids}
        mask = np.array([int(k) not in keys for k in self._keys], bool)
        n = int((~mask).sum())
        self._vecs, self._keys = self._vecs[mask], self._keys[mask]
        for k in keys:
            self._owner.pop(k, None)
        return n

    def remove_resident(self, resident_id: str) -> int:
        return self.remove([t for t, r in self._owner.values() if r == resident_id])

    def search(self, vector: np.ndarray, k_residents: int = 5) -> list[Candidate]:
        if not len(self):
            return []
        q = _check(vector, self.dim)[0]
        scores = self._vecs @ q
        return _group(self._keys, scores, self._owner, k_residents)


class FaissGallery:
    """FAISS gallery. Exact (IndexFlatIP) below EXACT_LIMIT templates, IVF-Flat
    above, both wrapped in an IndexIDMap2 so templates are added and removed in
    place without a rebuild."""

    def __init__(self, dim: int, contract_id: str, *, nprobe: int | None = None) -> None:
        self.dim, self.contract_id = dim, contract_id
        self._owner: dict[int, tuple[str, str]] = {}
        self._nprobe = nprobe
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.kind = "flat"

    def __len__(self) -> int:
        return len(self._owner)

    @classmethod
    def build(cls, dim: int, contract_id: str, template_ids: list[str], resident_ids: list[str],
              vectors: np.ndarray, *, kind: str | None = None, nprobe: int | None = None) -> "FaissGallery":
        """Build in one go, choosing the index type by size unless ``kind`` is given."""
        g = cls(dim, contract_id, nprobe=nprobe)
        v = _check(vectors, dim) if len(template_ids) else np.zeros((0, dim), np.float32)
        n = len(template_ids)
        kind = kind or ("flat" if n < EXACT_LIMIT else "ivf")
        if kind == "ivf" and n >= 1000:
            nlist = int(2 ** round(math.log2(max(16.0, 4 * math.sqrt(n)))))
            quant = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = v[rng.choice(n, size=min(n, nlist * 64), replace=False)]
            ivf.train(sample)
            # measured (kiosk bench): recall@1 >= 0.99 needs nlist/8 probes at 10^5 and 256 at 10^6
            ivf.nprobe = nprobe or max(16, min(256, nlist // 8))
            g._index = faiss.IndexIDMap2(ivf)
            g.kind = "ivf"
        if n:
            g.add(template_ids, resident_ids, v)
        return g

    def set_nprobe(self, nprobe: int) -> None:
        if self.kind == "ivf":
            faiss.downcast_index(self._index.index).nprobe = nprobe

    def add(self, template_ids: list[str], resident_ids: list[str], vectors: np.ndarray) -> None:
        v = _check(vectors, self.dim)
        keys = np.array([template_key(t) for t in template_ids], np.int64)
        existing = [t for t, k in zip(template_ids, keys) if int(k) in self._owner]
        if existing:
            self.remove(existing)
        self._index.add_with_ids(v, keys)
        for k, t, r in zip(keys, template_ids, resident_ids):
            self._owner[int(k)] = (t, r)

    def remove(self, template_ids: list[str]) -> int:
        keys = np.array([template_key(t) for t in template_ids], np.int64)
        if not len(keys):
            return 0
        n = int(self._index.remove_ids(faiss.IDSelectorBatch(keys)))
        for k in keys:
            self._owner.pop(int(k), None)
        return n

    def remove_resident(self, resident_id: str) -> int:
        return self.remove([t for t, r in list(self._owner.values()) if r == resident_id])

    def template_ids(self) -> list[str]:
        return [t for t, _ in self._owner.values()]

    def members(self) -> dict[str, str]:
        """template id -> resident id of everything in the index."""
        return {t: r for t, r in self._owner.values()}

    def search(self, vector: np.ndarray, k_residents: int = 5) -> list[Candidate]:
        if not len(self):
            return []
        q = _check(vector, self.dim)
        k = min(len(self), TEMPLATES_PER_QUERY)
        scores, keys = self._index.search(q, k)
        return _group(keys[0], scores[0], self._owner, k_residents)

    def search_batch(self, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Raw top-k template keys (benchmarks)."""
        return self._index.search(_check(vectors, self.dim), k)

    # -- persistence (the caller encrypts) -------------------------------------------
    def to_bytes(self, db_fingerprint: str) -> bytes:
        blob = faiss.serialize_index(self._index).tobytes()
        meta = json.dumps({"contract_id": self.contract_id, "dim": self.dim, "kind": self.kind,
                           "fingerprint": db_fingerprint,
                           "owner": [[k, t, r] for k, (t, r) in self._owner.items()]}).encode()
        buf = io.BytesIO()
        buf.write(len(meta).to_bytes(8, "little"))
        buf.write(meta)
        buf.write(blob)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple["FaissGallery", str]:
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + n])
        g = cls(meta["dim"], meta["contract_id"])
        g._index = faiss.deserialize_index(np.frombuffer(data[8 + n:], dtype=np.uint8))
        g.kind = meta["kind"]
        g._owner = {int(k): (t, r) for k, t, r in meta["owner"]}
        return g, meta["fingerprint"]
