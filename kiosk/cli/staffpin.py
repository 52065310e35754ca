"""Who acts, on the command line: ``--staff ID`` and that staff member's PIN, asked
with getpass on a terminal; scripts set ``KIOSK_STAFF_PIN`` (and, for a duplicate-face
override by another person, ``KIOSK_SUPERVISOR_PIN``). Wrong PIN, inactive staff or a
role without the right: a KioskError, exit 2."""
from __future__ import annotations

import getpass
import os
import sys

from kiosk.errors import PermissionDeniedError
from kiosk.db.permissions import PERMISSION_ZH, ROLE_ZH, Actor, roles_with


def read_pin(staff_id: str, env: str = "KIOSK_STAFF_PIN") -> str:
    pin = os.environ.get(env)
    if pin is not None:
        return pin.strip()
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"工号 {staff_id} 的 PIN：").strip()
    raise PermissionDeniedError(f"需要工号 {staff_id} 的 PIN：请在终端里运行以便输入，脚本可设置环境变量 {env}",
                                detail=f"no terminal to ask the PIN and {env} is not set")


def acting_staff(app, staff_id: str | None, permission: str, *, flag: str = "--staff",
                 pin_env: str = "KIOSK_STAFF_PIN", setup_ok: bool = False) -> Actor | None:
    """The proven staff member for ``permission``. ``setup_ok``: while the store has no
    staff at all (a canteen being set up) the action runs without one (returns None)."""
    if not staff_id:
        if setup_ok and not app.auth.has_staff():
            return None
        need = "或".join(ROLE_ZH[r] for r in roles_with(permission))
        raise PermissionDeniedError(
            f"「{PERMISSION_ZH.get(permission, permission)}」需要写明经办人：{flag} 工号（{need}），并输入其 PIN",
            detail=f"{permission} needs {flag} STAFF_ID and the PIN ({pin_env} for scripts)")
    return app.auth.verify(staff_id, read_pin(staff_id, pin_env), permission)
