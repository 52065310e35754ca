"""The application context: settings, store, face engine and services, built lazily."""
from __future__ import annotations

from functools import cached_property

from ..config import Settings, get_settings
from ..datadir import ensure_private_home
from ..db.session import Database


class App:
    def __init__(self, settings: Settings | None = None, *, db: Database | None = None,
                 engine=None) -> None:
        self.settings = settings or get_settings()
        ensure_private_home(self.settings.home)     # 0700, and 0600 files from here on (umask 077)
        self.db = db or Database(self.settings.db_url)
        if engine is not None:  # share one loaded model between contexts (tests, bench)
            self.__dict__["engine"] = engine

    @cached_property
    def cipher(self):
        from .security import TemplateCipher

        s = self.settings
        return TemplateCipher.from_settings(s.template_key, s.template_key_file, s.home)

    @cached_property
    def engine(self):
        from ..vision.engine import create_engine

        return create_engine(self.settings.backend, self.settings.model_dir)

    @cached_property
    def faces(self):
        from .faces import FaceService

        return FaceService(self)

    @cached_property
    def auth(self):
        from .auth import StaffAuth

        return StaffAuth(self)

    @cached_property
    def residents(self):
        from .residents import ResidentService

        return ResidentService(self)

    @cached_property
    def billing(self):
        from .checkout import CheckoutService

        return CheckoutService(self)

    def close(self) -> None:
        self.db.dispose()
