"""The server computes ahead what a clerk opens first (kiosk.district.console.shared.views:
this month's and last month's pages, today's sales, the welfare list), so at the size of a
district (a month's anomaly scan: seconds) the first view answers from the kept results.

A `kiosk server` process runs one ``Warmer`` thread (Settings.console_warm; off for a
terminal's store and for the test suite's in-process apps): a pass when the server starts,
then one every ``interval_s`` (less than the cache's FRESH_S, so a kept result is renewed
before it goes stale). Each result is computed only when it is missing or about to go stale,
one at a time, in this thread: requests and pushes are answered by the server's other
threads meanwhile. Results quicker than the cache's SLOW_S (a small district) are not kept,
so there a pass costs what the queries cost and changes nothing a page shows."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from kiosk.district.console.shared import views
from kiosk.district.console.shared.cache import FRESH_S, ResultCache, results
from kiosk.timeutil import now_cst

log = logging.getLogger(__name__)

INTERVAL_S = FRESH_S * 0.8


@dataclass
class Pass:
    """One warming pass: the keys computed and how long each took (seconds)."""
    computed: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)


def warm_once(app, cache: ResultCache = results, ahead_s: float = FRESH_S - INTERVAL_S) -> Pass:
    """Compute every result a clerk opens first that is missing or goes stale within
    ``ahead_s``. A failure is logged and left for the page to meet (and say) itself."""
    out = Pass()
    try:
        todo = views.opened_first(app, now_cst().date())
    except Exception as exc:                      # the store unreachable: the next pass tries again
        log.warning("console warm-up: cannot list the results (%s)", exc)
        out.failed["views"] = str(exc)
        return out
    for key, compute in todo:
        try:
            snap = cache.warm(key, compute, ahead_s=ahead_s)
        except Exception as exc:
            log.warning("console warm-up: %r failed (%s)", key[0], exc)
            out.failed[key] = str(exc)
            continue
        if snap is not None:
            out.computed[key] = round(snap.seconds, 3)
    return out


class Warmer:
    """The background thread of one server process (``start`` / ``stop``)."""

    def __init__(self, app, interval_s: float = INTERVAL_S, cache: ResultCache = results) -> None:
        self.app, self.interval_s, self.cache = app, interval_s, cache
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.last_pass_s: float | None = None
        self.last_computed = 0

    def start(self) -> "Warmer":
        self._thread = threading.Thread(target=self._run, name="console-warm", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            done = warm_once(self.app, self.cache)
            self.last_pass_s, self.last_computed = round(time.perf_counter() - t0, 2), len(done.computed)
            self.passes += 1
            if done.computed:
                log.info("console warm-up: %d results in %.1f s", len(done.computed), time.perf_counter() - t0)
            self._stop.wait(self.interval_s)

    def status(self) -> dict:
        """This process's warm-up as /healthz shows it."""
        return {"passes": self.passes, "last_pass_s": self.last_pass_s, "last_computed": self.last_computed}

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
