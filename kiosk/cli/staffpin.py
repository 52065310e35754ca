"""Who acts, on the command line: ``--staff ID`` and the proof of that staff member.

* On a terminal and on a single machine: the PIN, asked with getpass on a terminal;
  scripts set ``KIOSK_STAFF_PIN`` (and, for a duplicate-face override by another person,
  ``KIOSK_SUPERVISOR_PIN``).
* On a district server (a store that has issued a terminal token): the console
  **password**, never the PIN, since every canteen's terminal holds its staff's PIN
  hashes (kiosk.district.domain.passwords); scripts set ``KIOSK_STAFF_PASSWORD`` (and
  ``KIOSK_SUPERVISOR_PASSWORD``). Wrong passwords count apart from wrong PINs.

Every command that proves a person goes through ``acting_staff`` or ``prove`` here.
Wrong PIN or password, inactive staff or a role without the right: a KioskError, exit 2."""
from __future__ import annotations

import getpass
import os
import sys

from kiosk.errors import PermissionDeniedError
from kiosk.db.permissions import PERMISSION_ZH, ROLE_ZH, Actor, roles_with

PASSWORD_ENV = {"KIOSK_STAFF_PIN": "KIOSK_STAFF_PASSWORD", "KIOSK_SUPERVISOR_PIN": "KIOSK_SUPERVISOR_PASSWORD"}


def read_pin(staff_id: str, env: str = "KIOSK_STAFF_PIN") -> str:
    pin = os.environ.get(env)
    if pin is not None:
        return pin.strip()
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"工号 {staff_id} 的 PIN：").strip()
    raise PermissionDeniedError(f"需要工号 {staff_id} 的 PIN：请在终端里运行以便输入，脚本可设置环境变量 {env}",
                                detail=f"no terminal to ask the PIN and {env} is not set")


def read_password(staff_id: str, env: str = "KIOSK_STAFF_PASSWORD", what: str = "密码") -> str:
    pw = os.environ.get(env)
    if pw is not None:
        return pw.rstrip("\r\n")
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"工号 {staff_id} 的{what}：")
    raise PermissionDeniedError(
        f"这是区服务器：需要工号 {staff_id} 的{what}（不是 PIN）：请在终端里运行以便输入，脚本可设置环境变量 {env}",
        detail=f"no terminal to ask the password and {env} is not set (a PIN is no proof on a district server)")


def password_needed(app) -> bool:
    if app.settings.is_terminal:        # a terminal: the counter's PIN, as ever
        return False
    from kiosk.district.domain.passwords import is_district_server

    return is_district_server(app)


def prove(app, staff_id: str, *, permission: str | None = None, min_role: str | None = None,
          pin_env: str = "KIOSK_STAFF_PIN") -> Actor:
    """The staff member ``staff_id`` proven as this machine proves people: the password on
    a district server, the PIN elsewhere."""
    if password_needed(app):
        from kiosk.district.domain import passwords

        env = PASSWORD_ENV.get(pin_env, "KIOSK_STAFF_PASSWORD")
        return passwords.verify(app, staff_id, read_password(staff_id, env), permission=permission,
                                min_role=min_role)
    return app.auth.verify(staff_id, read_pin(staff_id, pin_env), permission, min_role=min_role)


def acting_staff(app, staff_id: str | None, permission: str, *, flag: str = "--staff",
                 pin_env: str = "KIOSK_STAFF_PIN", setup_ok: bool = False) -> Actor | None:
    """The proven staff member for ``permission``. ``setup_ok``: while the store has no
    staff at all (a canteen being set up) the action runs without one (returns None)."""
    if not staff_id:
        if setup_ok and not app.auth.has_staff():
            return None
        need = "或".join(ROLE_ZH[r] for r in roles_with(permission))
        proof = "密码" if password_needed(app) else "PIN"
        raise PermissionDeniedError(
            f"「{PERMISSION_ZH.get(permission, permission)}」需要写明经办人：{flag} 工号（{need}），并输入其{proof}",
            detail=f"{permission} needs {flag} STAFF_ID and the {proof} "
                   f"({PASSWORD_ENV.get(pin_env) if proof == '密码' else pin_env} for scripts)")
    return prove(app, staff_id, permission=permission, pin_env=pin_env)
