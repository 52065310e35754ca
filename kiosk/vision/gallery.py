"""Template galleries: a plain-numpy reference and the FAISS one used in
production. Both return the best template per resident, best first, with the
exact cosine score of that template (the decision's rules compare exact scores).

The FAISS gallery (docs/benchmarks.md, "The gallery"):

* up to ``EXACT_LIMIT`` templates: exact search (``IndexFlatIP``);
* above: an inverted file with 4-bit fast-scan product-quantisation codes
  (``IndexIVFPQFastScan``) picks ``CANDIDATES_PER_QUERY`` candidate templates, and
  their scores are computed again exactly from the templates themselves (kept in
  memory beside the index); the ``TEMPLATES_PER_QUERY`` best of them are returned.
  The codes only have to tell a resident's templates from everyone else's, which
  they do by far; which of a resident's templates is best, and its score, come
  from the exact re-ranking. The coarse quantiser is trained on a sample of at most
  ``TRAIN_SAMPLE`` templates (the rest are only added), with ``KMEANS_ITER``
  iterations.

Rows: every template has a row in the kept matrix; FAISS ids are row numbers (the
IVF keeps the ids given to it, so no id map: an ``IndexIDMap2`` over an IVF maps the
wrong template ids after a removal, because the IVF does not renumber its entries
as the flat index does). A removed template's row is zeroed and never reused."""
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
CANDIDATES_PER_QUERY = 256    # IVF: candidates ranked by their codes, then scored exactly
TRAIN_SAMPLE = 50_000         # IVF: the coarse quantiser and the codes learn from this many
KMEANS_ITER = 10
PQ_BITS = 4                   # fast-scan codes: 4 bits per sub-vector, dim/8 sub-vectors


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for an IVF of ``n`` templates: about sqrt(n) lists (a power of
    two, 64..4096), 3/16 of them probed and at least 64. Measured (kiosk bench,
    clustered templates, 4 per resident, docs/benchmarks.md): at 10^6 (1,024 lists)
    recall@1 0.994 with 128 probes, 0.996-0.998 with 192; at 10^5 (256 lists) 0.988
    with 48 probes, so at least 64."""
    nlist = int(2 ** round(math.log2(max(64.0, math.sqrt(max(n, 1))))))
    nlist = min(4096, nlist)
    return nlist, min(nlist, max(64, nlist * 3 // 16))


def template_key(template_id: str) -> int:
    """Stable positive int64 for a template id (kept for callers; the gallery uses rows)."""
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


def _group_rows(rows: np.ndarray, scores: np.ndarray, tids: list, rids: list, k_residents: int) -> list[Candidate]:
    best: dict[str, Candidate] = {}
    for row, s in zip(rows.tolist(), scores.tolist()):
        if row < 0:
            continue
        rid = rids[row]
        if rid is None:
            continue
        c = best.get(rid)
        if c is None or s > c.score:
            best[rid] = Candidate(resident_id=rid, score=float(s), template_id=tids[row])
    return sorted(best.values(), key=lambda c: -c.score)[:k_residents]


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
    """FAISS gallery: exact (IndexFlatIP) below EXACT_LIMIT templates, IVF with
    fast-scan codes and exact re-ranking above (the module's docstring). Templates are
    added and removed in place without a rebuild."""

    def __init__(self, dim: int, contract_id: str, *, nprobe: int | None = None) -> None:
        self.dim, self.contract_id = dim, contract_id
        self._nprobe = nprobe
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.kind = "flat"
        self._vecs = np.zeros((0, dim), np.float32)    # row -> template (zeroed when removed)
        self._n = 0                                    # rows used
        self._tids: list[str | None] = []
        self._rids: list[str | None] = []
        self._row: dict[str, int] = {}                 # template id -> row
        self._list = np.zeros((0,), np.int32)          # ivf: row -> inverted list
        self.stored_generation: int | None = None      # the store's gallery counter when written

    def __len__(self) -> int:
        return len(self._row)

    @classmethod
    def build(cls, dim: int, contract_id: str, template_ids: list[str], resident_ids: list[str],
              vectors: np.ndarray, *, kind: str | None = None, nprobe: int | None = None) -> "FaissGallery":
        """Build in one go, choosing the index type by size unless ``kind`` is given."""
        g = cls(dim, contract_id, nprobe=nprobe)
        v = _check(vectors, dim) if len(template_ids) else np.zeros((0, dim), np.float32)
        n = len(template_ids)
        kind = kind or ("flat" if n < EXACT_LIMIT else "ivf")
        if kind == "ivf" and n >= 1000:
            nlist, default_probe = ivf_params(n)
            rng = np.random.default_rng(0)
            m = min(n, TRAIN_SAMPLE, 64 * nlist)        # 64 per list (FAISS asks for at least 39)
            sample = v[np.sort(rng.choice(n, size=m, replace=False))] if m < n else v
            km = faiss.Kmeans(dim, nlist, niter=KMEANS_ITER, seed=1)
            km.cp.max_points_per_centroid = 1 << 30      # the sample is already drawn
            km.cp.min_points_per_centroid = 1            # (small galleries: no warning)
            km.train(sample)
            quant = faiss.IndexFlatIP(dim)
            quant.add(km.centroids)
            ivf = faiss.IndexIVFPQFastScan(quant, dim, nlist, max(2, dim // 8), PQ_BITS, faiss.METRIC_INNER_PRODUCT)
            ivf.pq.cp.niter = KMEANS_ITER
            ivf.train(sample)                            # the quantiser is trained: only the codes learn
            ivf.nprobe = min(nlist, nprobe or default_probe)
            g._index = ivf
            g.kind = "ivf"
        if n:
            g._append(list(template_ids), list(resident_ids), v)
        return g

    @property
    def nprobe(self) -> int | None:
        return int(self._index.nprobe) if self.kind == "ivf" else None

    def set_nprobe(self, nprobe: int) -> None:
        if self.kind == "ivf":
            self._index.nprobe = nprobe

    def _append(self, template_ids: list[str], resident_ids: list[str], v: np.ndarray) -> None:
        k = len(template_ids)
        if self._n + k > len(self._vecs):
            cap = max(self._n + k, int(len(self._vecs) * 1.5) + 64)
            grown = np.zeros((cap, self.dim), np.float32)
            grown[:self._n] = self._vecs[:self._n]
            self._vecs = grown
            lists = np.full(cap, -1, np.int32)
            lists[:self._n] = self._list[:self._n]
            self._list = lists
        rows = np.arange(self._n, self._n + k, dtype=np.int64)
        self._vecs[self._n:self._n + k] = v
        self._index.add_with_ids(v, rows)
        if self.kind == "ivf":
            if k > 10_000:
                self._list[:self._n + k] = self._lists_from_index(self._n + k)
            else:
                self._list[self._n:self._n + k] = self._index.quantizer.search(v, 1)[1][:, 0]
        self._tids.extend(template_ids)
        self._rids.extend(resident_ids)
        self._row.update(zip(template_ids, range(self._n, self._n + k)))
        self._n += k

    def add(self, template_ids: list[str], resident_ids: list[str], vectors: np.ndarray) -> None:
        v = _check(vectors, self.dim)
        existing = [t for t in template_ids if t in self._row]
        if existing:
            self.remove(existing)
        self._append(list(template_ids), list(resident_ids), v)

    def _lists_from_index(self, n_rows: int) -> np.ndarray:
        """row -> inverted list, read from the IVF's lists."""
        out = np.full(n_rows, -1, np.int32)
        inv = self._index.invlists
        for lst in range(self._index.nlist):
            size = inv.list_size(lst)
            if size:
                ids = faiss.rev_swig_ptr(inv.get_ids(lst), size).copy()
                out[ids] = lst
        return out

    def remove(self, template_ids: list[str]) -> int:
        rows = [self._row.pop(t) for t in dict.fromkeys(template_ids) if t in self._row]
        if not rows:
            return 0
        for r in rows:
            self._tids[r] = self._rids[r] = None
        self._vecs[rows] = 0.0          # an erased template leaves memory and the index file
        if self.kind == "ivf":
            # FAISS 1.15's remove_ids on a fast-scan IVF misplaces the codes added after it
            # (measured: a template re-added after a removal ranked 551st for itself), so
            # each list that held a removed template is emptied and refilled with the
            # templates it keeps (they go back to the same list: the quantiser is fixed)
            inv, gone = self._index.invlists, set(rows)
            for lst in sorted({int(self._list[r]) for r in rows}):
                keep = [int(r) for r in np.nonzero(self._list[:self._n] == lst)[0] if int(r) not in gone]
                self._index.ntotal -= inv.list_size(lst)
                inv.resize(lst, 0)
                if keep:
                    self._index.add_with_ids(self._vecs[keep], np.array(keep, np.int64))
            self._list[rows] = -1
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(np.array(rows, np.int64)))
        return len(rows)

    def remove_resident(self, resident_id: str) -> int:
        return self.remove([t for t, r in zip(self._tids, self._rids) if r == resident_id and t is not None])

    def template_ids(self) -> list[str]:
        return list(self._row)

    def members(self) -> dict[str, str]:
        """template id -> resident id of everything in the index."""
        return {t: self._rids[r] for t, r in self._row.items()}

    def top_templates(self, q: np.ndarray, k: int = TEMPLATES_PER_QUERY) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best templates (rows, exact scores), best first; ``q`` one checked vector."""
        if self.kind == "ivf":
            scores, rows = self._index.search(q[None, :], min(len(self), max(k, CANDIDATES_PER_QUERY)))
            rows = rows[0][rows[0] >= 0]
            exact = self._vecs[rows] @ q
            order = np.argsort(-exact, kind="stable")[:k]
            return rows[order], exact[order]
        scores, rows = self._index.search(q[None, :], min(len(self), k))
        return rows[0], scores[0]

    def search(self, vector: np.ndarray, k_residents: int = 5) -> list[Candidate]:
        if not len(self):
            return []
        q = _check(vector, self.dim)[0]
        rows, scores = self.top_templates(q)
        return _group_rows(rows, scores, self._tids, self._rids, k_residents)

    # -- persistence (the caller encrypts) -------------------------------------------
    def to_bytes(self, db_fingerprint: str, generation: int | None = None) -> bytes:
        """Meta (JSON), the template and resident ids per row, the kept templates and the
        FAISS index. ``generation``: the store's gallery counter this gallery reflects."""
        blob = faiss.serialize_index(self._index).tobytes()
        vecs = np.ascontiguousarray(self._vecs[:self._n]).tobytes()
        ids = json.dumps([self._tids, self._rids]).encode()
        meta = json.dumps({"format": 2, "contract_id": self.contract_id, "dim": self.dim, "kind": self.kind,
                           "fingerprint": db_fingerprint, "generation": generation, "rows": self._n}).encode()
        buf = io.BytesIO()
        for part in (meta, ids, vecs):
            buf.write(len(part).to_bytes(8, "little"))
            buf.write(part)
        buf.write(blob)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple["FaissGallery", str]:
        """The gallery written by ``to_bytes`` and its fingerprint (ValueError/KeyError on
        a file of another format: the caller rebuilds)."""
        parts, at = [], 0
        for _ in range(3):
            n = int.from_bytes(data[at:at + 8], "little")
            parts.append(data[at + 8:at + 8 + n])
            at += 8 + n
        meta = json.loads(parts[0])
        if meta.get("format") != 2:
            raise ValueError("index file of an older format")
        g = cls(meta["dim"], meta["contract_id"])
        g._tids, g._rids = json.loads(parts[1])
        g._n = int(meta["rows"])
        g._vecs = np.frombuffer(parts[2], np.float32).reshape(g._n, g.dim).copy()
        g._row = {t: i for i, t in enumerate(g._tids) if t is not None}
        g._index = faiss.deserialize_index(np.frombuffer(data[at:], dtype=np.uint8))
        g.kind = meta["kind"]
        if g.kind == "ivf":
            g._list = g._lists_from_index(g._n)
        else:
            g._list = np.full(g._n, -1, np.int32)
        g.stored_generation = meta.get("generation")
        if g._index.ntotal != len(g._row) or len(g._tids) != g._n:
            raise ValueError("index file inconsistent")
        return g, meta["fingerprint"]
