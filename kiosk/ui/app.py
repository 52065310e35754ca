"""Start the kiosk: `kiosk run` and `kiosk demo`."""
from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _qt_app():
    from PySide6.QtGui import QFont, QFontDatabase
    from PySide6.QtWidgets import QApplication

    from . import theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    families = set(QFontDatabase.families())
    if theme.FONT_FAMILY not in families:
        for path in ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",):
            if Path(path).is_file():
                QFontDatabase.addApplicationFont(path)
    app.setFont(QFont(theme.FONT_FAMILY, 16))
    return app


def build_window(app_ctx, source_spec=None, *, capture=None, voice=None, fps: float = 12.0,
                 receipt_seconds: float = 8.0):
    """The window with its worker; ``capture`` (a Capture) overrides ``source_spec``."""
    from ..services.kiosk import KioskService
    from ..services.receipts import FilePrinter
    from ..vision.camera import ResilientSource, opener_for
    from ..vision.pipeline import RecognitionPipeline
    from ..vision.tracker import PersonTracker
    from .main_window import KioskWindow
    from .voice import Voice
    from .worker import VisionWorker

    s = app_ctx.settings
    opener = (lambda: capture) if capture is not None else opener_for(source_spec if source_spec is not None else 0)
    source = ResilientSource(opener)
    pipeline = RecognitionPipeline(app_ctx.engine, app_ctx.faces.match,
                                   PersonTracker(votes_needed=s.votes_needed, window=s.vote_window))
    app_ctx.faces.gallery()            # load the index before the first frame
    worker = VisionWorker(source, pipeline, fps=fps)
    win = KioskWindow(KioskService(app_ctx), voice or Voice(), worker, receipt_seconds=receipt_seconds,
                      printer=FilePrinter(s.home / "receipts", s.canteen_name))
    return win, worker


def run(source: str | None, windowed: bool, *, demo: bool = False, seconds: float | None = None,
        autopilot: bool = True, keep_demo: bool = False) -> int:
    from PySide6.QtCore import QTimer

    from ..services.context import App

    qapp = _qt_app()
    if demo:
        from ..demo import DemoCapture, make_demo_home, seed_demo

        settings, base = make_demo_home()
        ctx = App(settings)
        print(f"demo canteen in {base} ({'kept' if keep_demo else 'removed'} on exit); "
              "staff PIN 1234, admin PIN 888888", flush=True)
        seed_demo(ctx)
        capture = DemoCapture(settings.model_dir)
        win, worker = build_window(ctx, capture=capture)
        if autopilot:
            from .demo_pilot import DemoPilot
            win._pilot = DemoPilot(win, capture)
    else:
        ctx = App()
        win, worker = build_window(ctx, source)
    worker.failed.connect(lambda m: log.error("vision: %s", m))
    if windowed or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        win.resize(1080, 1920 if not windowed else 1000)
        win.show()
    else:
        win.showFullScreen()
    worker.start()
    signal.signal(signal.SIGINT, lambda *_: qapp.quit())
    tick = QTimer()                      # lets Python see Ctrl-C while Qt runs
    tick.start(300)
    tick.timeout.connect(lambda: None)
    if seconds:
        QTimer.singleShot(int(seconds * 1000), qapp.quit)
    code = qapp.exec()
    worker.stop()
    win.close()
    from PySide6.QtCore import QThreadPool
    QThreadPool.globalInstance().waitForDone(5000)
    ctx.close()
    if demo and not keep_demo:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return code
