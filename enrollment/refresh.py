"""Template refresh: faces change with age. A confident, live, good-quality
checkout may add a fresh template; the oldest refresh templates rotate out."""
from __future__ import annotations

import numpy as np

from kiosk.enrollment.batch import rotate_templates
from kiosk.enrollment.consent import active_consent
from kiosk.enrollment.ports import EnrolmentContext

MIN_QUALITY = 0.6
MIN_MARGIN_OVER_THRESHOLD = 0.10


def should_refresh(score: float, threshold: float, quality: float, status: str, live: bool) -> bool:
    """Pure rule: never on an ambiguous or weak match, never without liveness."""
    return (status == "matched" and live and quality >= MIN_QUALITY
            and score >= threshold + MIN_MARGIN_OVER_THRESHOLD)


def maybe_refresh(app: EnrolmentContext, resident_id: str, embedding: np.ndarray, crop, quality: float) -> bool:
    with app.db.session() as s:
        consent = active_consent(s, resident_id)
        if consent is None:
            return False
        app.faces.add_template(s, resident_id, embedding, crop=crop if consent.allows_crop else None,
                               quality=quality, source="refresh")
        rotate_templates(app, s, resident_id)
    app.faces.save_index()
    return True
