"""Month-sized results kept for a few minutes, so the console's pages answer at once at the
size of a district (10^5 residents, 3x10^6 orders a month: docs/benchmarks.md).

A result that took at least ``SLOW_S`` to compute (a month's anomaly scan, the monthly
report, the proof-of-life list) is kept in this server process under its key (the page
and its arguments). Within ``FRESH_S`` it is shown as it is; after that it is still shown
at once while a background thread computes it again (stale-while-revalidate). Quick
results (a small district, every test store) are never kept: they are computed for each
request, as before. The page says when its figures were computed and offers 立即刷新
(``?refresh=1``), which computes them again before answering; files downloaded (xlsx,
PDF) and the command line always compute afresh. A change made through the console
(a reconciliation decision, thresholds, a visit) drops every kept result."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Hashable

from kiosk.timeutil import now_cst

log = logging.getLogger(__name__)

SLOW_S = 0.5          # results quicker than this are not kept
FRESH_S = 300         # a kept result is shown as it is for this long, then recomputed in the background
MAX_KEPT = 32


@dataclass
class Snapshot:
    value: object
    computed_at: datetime            # China Standard Time
    seconds: float                   # how long the computation took
    kept: bool = False               # True: this answer came from the kept results
    born: float = field(default_factory=time.monotonic)

    @property
    def note(self) -> str | None:
        """What a page says under a kept result (None: computed for this request)."""
        if not self.kept:
            return None
        return f"数据计算于 {self.computed_at:%H:%M:%S}（每 {FRESH_S // 60} 分钟更新；下载的文件总是最新）"


class ResultCache:
    def __init__(self, fresh_s: float = FRESH_S, slow_s: float = SLOW_S, max_kept: int = MAX_KEPT) -> None:
        self.fresh_s, self.slow_s, self.max_kept = fresh_s, slow_s, max_kept
        self._kept: dict[Hashable, Snapshot] = {}
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}
        self._refreshing: set[Hashable] = set()

    def _compute(self, key: Hashable, compute: Callable[[], object]) -> Snapshot:
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:                                   # one computation of a key at a time
            t0 = time.perf_counter()
            value = compute()
            snap = Snapshot(value, now_cst(), time.perf_counter() - t0)
            with self._lock:
                if snap.seconds >= self.slow_s:
                    self._kept[key] = snap
                    while len(self._kept) > self.max_kept:
                        self._kept.pop(min(self._kept, key=lambda k: self._kept[k].born))
                else:
                    self._kept.pop(key, None)
            return snap

    def get(self, key: Hashable, compute: Callable[[], object], *, refresh: bool = False) -> Snapshot:
        """The result of ``compute()`` under ``key``: kept, or computed now (see the module)."""
        with self._lock:
            snap = None if refresh else self._kept.get(key)
        if snap is None:
            return self._compute(key, compute)
        if time.monotonic() - snap.born > self.fresh_s:
            self._refresh_later(key, compute)
        return Snapshot(snap.value, snap.computed_at, snap.seconds, kept=True, born=snap.born)

    def warm(self, key: Hashable, compute: Callable[[], object], ahead_s: float = 0.0) -> Snapshot | None:
        """Compute ``key`` now, in the caller's thread, unless it is kept and will stay fresh
        for ``ahead_s`` more (the server's warmer: kiosk.district.console.warm); None when
        nothing was computed."""
        with self._lock:
            snap = self._kept.get(key)
            if snap is not None and time.monotonic() - snap.born < self.fresh_s - ahead_s:
                return None
            if key in self._refreshing:
                return None
            self._refreshing.add(key)
        try:
            return self._compute(key, compute)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _refresh_later(self, key: Hashable, compute: Callable[[], object]) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def run() -> None:
            try:
                self._compute(key, compute)
            except Exception:                            # the kept result stays; the next view tries again
                log.exception("refreshing a kept console result failed: %r", key)
            finally:
                with self._lock:
                    self._refreshing.discard(key)
        threading.Thread(target=run, name="console-refresh", daemon=True).start()

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


results = ResultCache()     # this server process's kept results
