"""What enrolment needs of the application, as types: the store, the settings and the
face templates. ``kiosk.services.context.App`` (with ``kiosk.services.faces.FaceService``)
is the implementation; enrolment code takes these, never an untyped app."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from kiosk.config import Settings
    from kiosk.db.models import FaceTemplate
    from kiosk.db.session import Database
    from kiosk.vision.engine import FaceObservation
    from kiosk.vision.types import Candidate


@runtime_checkable
class FaceTemplates(Protocol):
    """The face templates and the gallery they are searched in."""

    duplicate_threshold: float

    @property
    def contract_id(self) -> str: ...

    def observe_file(self, path: str | Path) -> FaceObservation: ...

    def search(self, embedding: np.ndarray, k_residents: int = 6) -> list[Candidate]: ...

    def add_template(self, session: Session, resident_id: str, embedding: np.ndarray, *,
                     crop: np.ndarray | None = None, quality: float | None = None,
                     source: str = "enroll") -> FaceTemplate: ...

    def template_count(self, session: Session, resident_id: str) -> int: ...

    def remove_templates(self, session: Session, template_ids: list[str]) -> None: ...

    def rebuild_later(self) -> None: ...

    def save_index(self) -> None: ...


@runtime_checkable
class EnrolmentContext(Protocol):
    """The application as enrolment sees it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def faces(self) -> FaceTemplates: ...
