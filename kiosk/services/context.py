"""The application context: settings, store, face engine and services, built lazily."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from kiosk.config import Settings, get_settings
from kiosk.datadir import ensure_private_home
from kiosk.db.session import Database

if TYPE_CHECKING:
    from kiosk.vision.engine import FaceEngine


class App:
    def __init__(self, settings: Settings | None = None, *, db: Database | None = None,
                 engine: FaceEngine | None = None) -> None:
        self.settings = settings or get_settings()
        ensure_private_home(self.settings.home)     # 0700, and 0600 files from here on (umask 077)
        self.db = db or Database(self.settings.db_url)
        if engine is not None:  # share one loaded model between contexts (tests, bench)
            self.__dict__["engine"] = engine

    @cached_property
    def events(self):
        """The one port through which the core publishes what changed (kiosk.services.events)."""
        from kiosk.services.events import ChangeEvents

        return ChangeEvents(terminal=self.settings.is_terminal)

    @cached_property
    def cipher(self):
        from kiosk.services.security import TemplateCipher

        s = self.settings
        return TemplateCipher.from_settings(s.template_key, s.template_key_file, s.home)

    @cached_property
    def engine(self) -> FaceEngine:
        from kiosk.vision.engine import create_engine

        return create_engine(self.settings.backend, self.settings.model_dir)

    @cached_property
    def faces(self):
        from kiosk.services.faces import FaceService

        return FaceService(self)

    @cached_property
    def auth(self):
        from kiosk.services.auth import StaffAuth

        return StaffAuth(self)

    @cached_property
    def residents(self):
        from kiosk.services.residents import ResidentService

        return ResidentService(self)

    @cached_property
    def billing(self):
        from kiosk.services.checkout import CheckoutService

        return CheckoutService(self)

    def close(self) -> None:
        self.db.dispose()
