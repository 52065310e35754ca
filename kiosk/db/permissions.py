"""Who may do what: the roles, their permissions, and the check made inside a unit of
work (``require``). An ``Actor`` is a staff member whose PIN was verified in this
process (kiosk.services.auth.StaffAuth proves the PIN, then calls ``make_actor``).

This sits with the store, below the services, so that every layer that changes
money, consent, faces or staff (the services, enrollment) checks the same way."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from kiosk.errors import NotFoundError, PermissionDeniedError
from kiosk.db.models import Staff

ROLES = ("staff", "supervisor", "admin")
ROLE_ZH = {"staff": "工作人员", "supervisor": "主管", "admin": "管理员"}

# the one role -> permission table (each role holds the ones before it)
_STAFF = frozenset({"order.void", "account.topup", "face.consent", "face.enroll", "meal.book"})
_SUPERVISOR = _STAFF | {"face.override", "face.erase"}
_ADMIN = _SUPERVISOR | {"face.reembed", "data.import", "canteen.configure", "staff.manage", "offline.limits"}
PERMISSIONS: dict[str, frozenset[str]] = {"staff": _STAFF, "supervisor": _SUPERVISOR, "admin": _ADMIN}
PERMISSION_ZH = {"order.void": "作废订单", "account.topup": "充值", "face.consent": "登记人脸授权",
                 "face.enroll": "采集人脸", "face.override": "授权登记疑似重复的人脸",
                 "face.erase": "删除人脸数据", "face.reembed": "重新生成人脸模板",
                 "data.import": "导入花名册、菜单和补贴政策", "canteen.configure": "设置食堂",
                 "staff.manage": "添加或停用工作人员", "meal.book": "报餐或报停",
                 "offline.limits": "设置离线限额和挂失名单"}

_PROOF_KEY = secrets.token_bytes(32)      # this process's: an Actor is only made by make_actor


def roles_with(permission: str) -> list[str]:
    return [r for r in ROLES if permission in PERMISSIONS[r]]


@dataclass(frozen=True)
class Actor:
    """A staff member whose PIN was verified in this process."""

    staff_id: str
    name: str
    role: str
    proven_at: datetime
    _proof: str = field(repr=False, default="")

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def to_dict(self) -> dict:
        return {"staff_id": self.staff_id, "name": self.name, "role": self.role}


def _proof(staff_id: str, role: str, at: datetime) -> str:
    return hmac.new(_PROOF_KEY, f"{staff_id}\0{role}\0{at.isoformat()}".encode(), hashlib.sha256).hexdigest()


def make_actor(st: Staff, at: datetime) -> Actor:
    """The Actor of a staff row whose PIN the caller has just verified."""
    return Actor(st.id, st.name, st.role, at, _proof(st.id, st.role, at))


def require(session: Session, actor: object, permission: str) -> Staff:
    """Inside a unit of work: the actor was proven by PIN, is still active, and the role
    stored now holds ``permission``. Returns the staff row."""
    if not isinstance(actor, Actor) or not hmac.compare_digest(
            actor._proof, _proof(actor.staff_id, actor.role, actor.proven_at)):
        raise PermissionDeniedError(
            f"「{PERMISSION_ZH.get(permission, permission)}」需要工作人员用工号和 PIN 确认身份",
            detail=f"{permission} needs an Actor proven by PIN, got {type(actor).__name__}")
    st = session.get(Staff, actor.staff_id)
    if st is None:
        raise NotFoundError(f"没有工号为 {actor.staff_id} 的工作人员", detail=f"staff {actor.staff_id!r} not found")
    if not st.active:
        raise PermissionDeniedError(f"工作人员 {st.id}（{st.name}）已停用，不能操作",
                                    detail=f"staff {st.id} is inactive")
    check_role(st, permission)
    return st


def check_role(st: Staff, permission: str) -> None:
    """The staff row's role (as stored now) holds ``permission``, or PermissionDeniedError."""
    if permission not in PERMISSIONS.get(st.role, frozenset()):
        need = "或".join(ROLE_ZH[r] for r in roles_with(permission))
        raise PermissionDeniedError(
            f"{ROLE_ZH.get(st.role, st.role)} {st.id}（{st.name}）没有「{PERMISSION_ZH.get(permission, permission)}」"
            f"的权限，需要{need}",
            detail=f"{st.id} is {st.role}; {permission} needs one of {roles_with(permission)}")
