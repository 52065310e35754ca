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

    from kiosk.ui import theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    families = set(QFontDatabase.families())
    if theme.FONT_FAMILY not in families:
        for path in ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",):
            if Path(path).is_file():
                QFontDatabase.addApplicationFont(path)
    app.setFont(QFont(theme.FONT_FAMILY, 16))
    return app


def build_window(app_ctx, source_spec=None, *, capture=None, voice=None, fps: float = 12.0,
                 leave_seconds: float = 4.0):
    """The window with its worker; ``capture`` (a Capture) overrides ``source_spec``.
    The camera and the recognition pipeline come from the service layer."""
    from kiosk.terminal.counter import KioskService
    from kiosk.services.receipts import FilePrinter
    from kiosk.ui.main_window import KioskWindow
    from kiosk.ui.voice import Voice
    from kiosk.ui.worker import VisionWorker

    s = app_ctx.settings
    svc = KioskService(app_ctx)
    worker = VisionWorker(svc.camera.open_source(source_spec, capture), svc.camera.recognition_pipeline(), fps=fps)
    win = KioskWindow(svc, voice or Voice(enabled=s.audio), worker, leave_seconds=leave_seconds,
                      printer=FilePrinter(s.home / "receipts", s.canteen_name))
    if s.is_terminal:          # the camera's state goes to the district with each sync
        from kiosk.terminal.sync.health import record_camera

        worker.source_state.connect(lambda state: record_camera(app_ctx, state))
    return win, worker


def show_full_screen(win) -> None:
    """Fill the screen with or without a window manager: under a bare X server nobody
    honours the full-screen request, so the window also takes the screen's geometry
    itself, without a frame."""
    from PySide6.QtCore import Qt

    screen = win.screen() or win.windowHandle() and win.windowHandle().screen()
    if screen is None:
        from PySide6.QtGui import QGuiApplication
        screen = QGuiApplication.primaryScreen()
    geo = screen.availableGeometry()   # = the whole screen when no window manager reserves a panel
    win.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)
    win.setGeometry(geo)
    win.showFullScreen()
    win.setGeometry(geo)       # again after mapping: a bare X server keeps what it is given


def run(source: str | None, windowed: bool, *, demo: bool = False, seconds: float | None = None,
        autopilot: bool = True, keep_demo: bool = False, sales: int | None = None) -> int:
    from PySide6.QtCore import QTimer

    from kiosk.services.context import App

    qapp = _qt_app()
    if demo:
        from kiosk.terminal.demo import DemoCapture, make_demo_home, seed_demo

        settings, base = make_demo_home()
        ctx = App(settings)
        print(f"demo canteen in {base} ({'kept' if keep_demo else 'removed'} on exit); "
              "staff PIN 1234, admin PIN 888888", flush=True)
        seed_demo(ctx)
        capture = DemoCapture(settings.model_dir)
        win, worker = build_window(ctx, capture=capture)
        if autopilot:
            from kiosk.ui.demo_pilot import DemoPilot
            # --sales N: end 3 s after the N-th receipt is shown (its lines are spoken by then)
            def served() -> None:
                print(f"demo: stopping after {sales} meals", flush=True)
                QTimer.singleShot(3000, qapp.quit)
            win._pilot = DemoPilot(win, capture, on_sales=(sales, served) if sales else None)
    else:
        ctx = App()
        win, worker = build_window(ctx, source)
    worker.failed.connect(lambda m: log.error("vision: %s", m))
    if windowed:
        win.resize(720, 1280)
        win.show()
    elif os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        win.resize(1080, 1920)
        win.show()
    else:
        show_full_screen(win)
    worker.start()
    signal.signal(signal.SIGINT, lambda *_: qapp.quit())
    tick = QTimer()                      # lets Python see Ctrl-C while Qt runs
    tick.start(300)
    tick.timeout.connect(lambda: None)
    if seconds:
        QTimer.singleShot(int(seconds * 1000), qapp.quit)
    code = qapp.exec()
    worker.stop()
    if ctx.settings.is_terminal:
        from kiosk.terminal.sync.health import record_camera

        record_camera(ctx, "stopped")
    win.close()
    from PySide6.QtCore import QThreadPool
    QThreadPool.globalInstance().waitForDone(5000)
    ctx.close()
    if demo and not keep_demo:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return code
