"""The staff screen's desk: log in by PIN, find a resident, enrol a face from the
camera, erase faces, void the last order and top up an account.

Staff act as an ``Actor`` proven by PIN (kiosk.services.auth). The staff screen logs in
with the PIN; the desk keeps that Actor for the session and the screen names the staff
member by id; every service checks the Actor again inside its unit of work."""
from __future__ import annotations

from sqlalchemy import select

from kiosk.db.models import Order, OrderVoid, Resident
from kiosk.errors import KioskError, PermissionDeniedError
from kiosk.db.permissions import Actor
from kiosk.timeutil import CST


class StaffDesk:
    def __init__(self, app) -> None:
        self.app = app
        self._actors: dict[str, Actor] = {}     # staff logged in on this screen: staff id -> Actor

    # -- who acts ------------------------------------------------------------------------
    def login(self, pin: str, min_role: str = "staff") -> dict:
        """The PIN alone finds the staff member; returns staff_id, name, role."""
        actor = self.app.auth.login(pin, min_role)
        self._actors[actor.staff_id] = actor
        return actor.to_dict()

    def logout(self, staff_id: str | None) -> None:
        self._actors.pop(staff_id, None)

    def actor(self, staff_id: str) -> Actor:
        """The Actor of a staff member logged in on this screen (the login still fresh)."""
        actor = self._actors.get(staff_id)
        if actor is None or not self.app.auth.fresh(actor):
            self._actors.pop(staff_id, None)
            raise PermissionDeniedError("登录已过期，请重新输入 PIN", detail=f"no fresh login for {staff_id!r}")
        return actor

    def resolve_resident(self, text: str) -> str:
        """A resident id, or a 助老卡 number, typed by staff."""
        try:
            return self.app.residents.get(text.strip()).resident_id
        except KioskError:
            return self.app.residents.by_card(text.strip().upper()).resident_id

    # -- faces -----------------------------------------------------------------------------
    def start_capture(self):
        """A guided capture (frontal, a little left, a little right); feed it with ``capture_offer``."""
        from kiosk.enrollment.capture import CaptureSession

        return CaptureSession()

    def capture_offer(self, capture, embedding, aligned, quality: float, landmarks, hint: str | None) -> str | None:
        from kiosk.vision.quality import pose_from_landmarks

        yaw = pose_from_landmarks(landmarks)[0] if embedding is not None and landmarks is not None else 0.0
        return capture.offer(embedding, aligned, embedding is not None, quality, yaw, hint)

    def enroll_captured(self, who: str, capture, staff_id: str, *, consent_now: bool,
                        override_reason: str | None = None, supervisor_pin: str | None = None):
        """Templates from a guided camera capture. A duplicate face needs a supervisor's
        PIN and a reason (audited)."""
        from kiosk.enrollment.capture import enroll_captured

        rid = self.resolve_resident(who)
        sup = self.app.auth.login(supervisor_pin or "", "supervisor") if override_reason else None
        return enroll_captured(self.app, rid, capture, self.actor(staff_id), consent="self" if consent_now else None,
                               override_reason=override_reason, override_by=sup)

    def erase_faces(self, who: str, staff_id: str) -> dict:
        return self.app.residents.erase_faces(self.resolve_resident(who), self.actor(staff_id))

    # -- money -----------------------------------------------------------------------------
    def last_order(self) -> dict | None:
        """This canteen's newest order not voided (what 作废 offers)."""
        with self.app.db.session() as s:
            o = s.scalars(select(Order).outerjoin(OrderVoid, OrderVoid.order_id == Order.id)
                          .where(OrderVoid.id.is_(None), Order.canteen_id == self.app.settings.canteen_id)
                          .order_by(Order.created_at.desc())).first()
            if o is None:
                return None
            r = s.get(Resident, o.resident_id)
            return {"order_id": o.id, "resident": r.name if r else o.resident_id, "total_fen": o.total_fen,
                    "to_pay_fen": o.to_pay_fen, "pay": o.pay_method, "at": o.created_at.astimezone(CST)}

    def void(self, order_id: str, reason: str, staff_id: str) -> dict:
        return self.app.billing.void(order_id, reason, self.actor(staff_id))

    def topup(self, who: str, amount_fen: int, payer: str | None, staff_id: str) -> dict:
        """A top-up for a resident named by id or 助老卡 number."""
        return self.app.billing.topup(self.resolve_resident(who), amount_fen, payer=payer, actor=self.actor(staff_id))
