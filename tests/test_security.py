"""Staff who must prove who they are (issue 10, item 2): PIN hashes, the first admin,
unique PINs, roles, lockouts kept in the store, and the command line asking the PIN."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from kiosk.cli.main import main
from kiosk.db.models import AuditEntry, LedgerEntry, Staff
from kiosk.errors import PermissionDeniedError, ValidationError
from kiosk.db.permissions import PERMISSIONS, ROLES
from kiosk.services.security import (hash_pin, legacy_scrypt_hash, pin_hash_params, pin_needs_rehash,
                                     verify_pin)

from tests.conftest import STAFF_PINS, make_app, staff_actor


def test_pin_hash_is_argon2id_with_its_parameters_and_old_hashes_still_verify():
    h = hash_pin("135790")
    assert h.startswith("$argon2id$v=19$m=65536,t=3,p=1$")
    assert pin_hash_params(h) == {"alg": "argon2id", "m": 65536, "t": 3, "p": 1}
    assert verify_pin("135790", h) and not verify_pin("135791", h) and not pin_needs_rehash(h)
    assert hash_pin("135790") != h                       # salted
    weaker = "$argon2id$v=19$m=8192,t=1,p=1$" + h.split("$", 5)[4] + "$" + h.split("$")[5]
    assert not verify_pin("135790", weaker)              # the parameters are part of the check
    old = legacy_scrypt_hash("1234")
    assert verify_pin("1234", old) and not verify_pin("4321", old) and pin_needs_rehash(old)
    assert not verify_pin("1234", "") and not verify_pin("1234", "garbage")


def test_old_scrypt_hash_is_upgraded_on_a_right_pin(shop):
    with shop.db.session() as s:
        s.get(Staff, "S01").pin_hash = legacy_scrypt_hash("1234")
    assert shop.auth.verify("S01", "1234").staff_id == "S01"
    with shop.db.session() as s:
        assert s.get(Staff, "S01").pin_hash.startswith("$argon2id$")
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.pin_rehash")).one().subject == "S01"


def test_role_permission_table_is_nested():
    assert ROLES == ("staff", "supervisor", "admin")
    assert PERMISSIONS["staff"] < PERMISSIONS["supervisor"] < PERMISSIONS["admin"]
    assert "face.erase" not in PERMISSIONS["staff"] and "face.erase" in PERMISSIONS["supervisor"]
    assert "staff.manage" in PERMISSIONS["admin"] and "staff.manage" not in PERMISSIONS["supervisor"]


def test_first_admin_once_then_only_an_admin_adds_staff(env, monkeypatch, capsys):
    args = ["staff", "add", "S1", "--name", "李姐", "--role", "staff", "--pin", "2468"]
    assert main(args) == 2                                            # the first one must be an admin
    assert "第一位工作人员必须是管理员" in capsys.readouterr().err
    assert main(["staff", "add", "A1", "--name", "王站长", "--role", "admin", "--pin", "1357"]) == 2
    assert "6 到 12 位数字" in capsys.readouterr().err                  # admins: at least 6 digits
    assert main(["staff", "add", "A1", "--name", "王站长", "--role", "admin", "--pin", "135790"]) == 0
    capsys.readouterr()
    assert main(["staff", "add", "A2", "--name", "冒充", "--role", "admin", "--pin", "975310"]) == 2
    assert "需要管理员确认身份" in capsys.readouterr().err               # no second bootstrap
    monkeypatch.setenv("KIOSK_STAFF_PIN", "135790")
    assert main(args + ["--staff", "A1"]) == 0
    capsys.readouterr()
    # PINs are unique among active staff (the salted hashes are compared by verifying)
    assert main(["staff", "add", "S2", "--name", "张", "--role", "staff", "--pin", "2468", "--staff", "A1"]) == 2
    assert "已被另一位在职工作人员使用" in capsys.readouterr().err
    assert main(["staff", "add", "S2", "--name", "张", "--role", "staff", "--pin", "135790", "--staff", "A1"]) == 2
    capsys.readouterr()
    # a staff member may not add staff, whatever their PIN
    monkeypatch.setenv("KIOSK_STAFF_PIN", "2468")
    assert main(["staff", "add", "S3", "--name", "刘", "--role", "admin", "--pin", "864209", "--staff", "S1"]) == 2
    assert "没有「添加或停用工作人员」的权限" in capsys.readouterr().err
    app = make_app()
    assert [r["staff_id"] for r in app.auth.list_staff()] == ["A1", "S1"]
    with app.db.session() as s:
        acts = [(a.actor, a.action, a.subject) for a in s.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(["staff.add", "staff.update"])).order_by(AuditEntry.seq))]
    assert acts == [("A1", "staff.add", "A1"), ("A1", "staff.add", "S1")]


def test_wrong_pin_inactive_staff_and_missing_role_are_refused_with_exit_2(shop, monkeypatch, capsys):
    order = shop.billing.settle("R0001", ["D001"], at=_lunch())
    void = ["orders", "void", order.order_id, "--reason", "打错了", "--json"]
    monkeypatch.delenv("KIOSK_STAFF_PIN", raising=False)
    assert main(void) == 2                                            # nobody named
    assert "--staff" in json.loads(capsys.readouterr().out)["error"]
    assert main(void + ["--staff", "S01"]) == 2                        # no terminal to ask the PIN, none given
    assert "KIOSK_STAFF_PIN" in json.loads(capsys.readouterr().out)["error"]
    monkeypatch.setenv("KIOSK_STAFF_PIN", "9999")
    assert main(void + ["--staff", "S01"]) == 2
    assert "PIN 不正确" in json.loads(capsys.readouterr().out)["error"]
    monkeypatch.setenv("KIOSK_STAFF_PIN", "1234")
    assert main(["residents", "erase", "R0001", "--staff", "S01", "--json"]) == 2     # staff may not erase
    assert "需要主管或管理员" in json.loads(capsys.readouterr().out)["error"]
    monkeypatch.setenv("KIOSK_STAFF_PIN", STAFF_PINS["ADM"])
    assert main(["staff", "disable", "S01", "--staff", "ADM"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("KIOSK_STAFF_PIN", "1234")
    assert main(void + ["--staff", "S01"]) == 2                        # inactive, right PIN or not
    assert "已停用" in json.loads(capsys.readouterr().out)["error"]
    assert main(["accounts", "topup", "R0001", "20", "--staff", "S01"]) == 2
    with shop.db.session() as s:
        assert s.scalars(select(LedgerEntry).where(LedgerEntry.kind.in_(["reversal", "topup"]))).all() == []
    monkeypatch.setenv("KIOSK_STAFF_PIN", "5678")
    assert main(void + ["--staff", "SUP"]) == 0
    assert json.loads(capsys.readouterr().out)["voided"]
    assert main(["accounts", "topup", "R0001", "20", "--staff", "SUP", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["amount_fen"] == 2000
    with shop.db.session() as s:
        actors = {a.action: a.actor for a in s.scalars(select(AuditEntry))}
    assert actors["order.void"] == "SUP" and actors["account.topup"] == "SUP"


def test_the_pin_is_asked_on_a_terminal(shop, monkeypatch, capsys):
    import getpass
    import sys

    asked = []
    monkeypatch.delenv("KIOSK_STAFF_PIN", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(getpass, "getpass", lambda prompt: asked.append(prompt) or "1234")
    assert main(["accounts", "topup", "R0002", "10", "--staff", "S01", "--json"]) == 0
    assert asked == ["工号 S01 的 PIN："]


def test_lockout_after_five_wrong_pins_survives_a_restart(shop):
    now = [shop.auth.clock()]
    shop.auth.clock = lambda: now[0]
    for left in (4, 3, 2, 1):
        with pytest.raises(PermissionDeniedError, match=f"还可再试 {left} 次"):
            shop.auth.verify("S01", "0000")
    with pytest.raises(PermissionDeniedError, match="已锁定"):
        shop.auth.verify("S01", "0000")
    with pytest.raises(PermissionDeniedError, match="错误次数过多"):
        shop.auth.verify("S01", "1234")                                # even the right PIN
    restarted = make_app()                                             # a new process: the lock is in the store
    with pytest.raises(PermissionDeniedError, match="错误次数过多"):
        restarted.auth.verify("S01", "1234")
    assert restarted.auth.verify("SUP", "5678").staff_id == "SUP"     # another staff id is not locked
    restarted.auth.clock = lambda: now[0] + timedelta(minutes=5, seconds=1)
    assert restarted.auth.verify("S01", "1234").staff_id == "S01"
    with shop.db.session() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.pin_locked")).one().subject == "S01"


def test_screen_login_by_pin_alone_locks_the_terminal_and_acts_as_the_staff(shop):
    from kiosk.terminal.counter import KioskService

    svc = KioskService(shop)
    order = shop.billing.settle("R0001", ["D001"], at=_lunch())
    with pytest.raises(PermissionDeniedError, match="PIN"):
        svc.staff.void(order.order_id, "打错了", "S01")                      # a staff id alone does nothing
    user = svc.staff.login("1234")
    assert user == {"staff_id": "S01", "name": "李姐", "role": "staff"}
    assert svc.staff.void(order.order_id, "打错了", "S01")["voided"]
    with pytest.raises(PermissionDeniedError, match="主管"):
        svc.staff.login("1234", min_role="supervisor")
    for _ in range(5):
        with pytest.raises(PermissionDeniedError):
            svc.staff.login("0000")
    with pytest.raises(PermissionDeniedError, match="错误次数过多"):
        svc.staff.login("5678")


def test_services_refuse_a_plain_staff_id(shop):
    with pytest.raises(PermissionDeniedError, match="工号和 PIN"):
        shop.billing.topup("R0001", 100, actor="S01")
    with pytest.raises(PermissionDeniedError):
        shop.residents.erase_faces("R0001", "SUP")
    with pytest.raises(PermissionDeniedError):
        shop.residents.add_staff("X1", "某", "staff", "9753", actor="ADM")
    with pytest.raises(ValidationError, match="4 到 12 位数字"):
        shop.residents.add_staff("X1", "某", "staff", "12", actor=staff_actor(shop, "ADM"))


def _lunch():
    from datetime import datetime

    from kiosk.timeutil import CST
    return datetime(2026, 11, 23, 12, 0, tzinfo=CST)


def test_no_memory_for_the_hash_is_busy_not_a_wrong_pin(shop, monkeypatch):
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    from kiosk.db.models import PinLockout
    from kiosk.errors import StoreBusyError

    def no_memory(*a, **k):
        raise MemoryError("Not enough memory to derive key")

    monkeypatch.setattr(Argon2id, "verify_phc_encoded", no_memory)
    with pytest.raises(StoreBusyError, match="内存不足"):
        shop.auth.verify("S01", "1234")
    with shop.db.session() as s:
        assert s.scalars(select(PinLockout)).all() == []          # not counted as a wrong PIN


def test_bulk_template_decryption_agrees_with_fernet_and_refuses_what_fernet_refuses():
    """TemplateCipher.decrypt_many (a gallery rebuilt from the store) returns what
    Fernet's own decrypt returns, token by token, and fails where Fernet fails."""
    import numpy as np
    from cryptography.fernet import Fernet

    from kiosk.errors import TemplateKeyError
    from kiosk.services.security import TemplateCipher, generate_key

    key = generate_key()
    c, f = TemplateCipher(key), Fernet(key.encode())
    rng = np.random.default_rng(0)
    plain = [rng.normal(size=d).astype(np.float32).tobytes() for d in [128] * 50 + [512] * 5]
    plain += [b"x" * n for n in (0, 1, 15, 16, 17, 100)]          # other lengths and paddings
    tokens = [c.encrypt(p) for p in plain]
    assert c.decrypt_many(tokens) == [f.decrypt(t) for t in tokens] == plain
    assert c.decrypt_many([]) == []
    for spoil in (lambda t: t[:100] + (b"A" if t[100:101] != b"A" else b"B") + t[101:],   # a changed byte
                  lambda t: t[:-4] + b"AAAA"):                                          # a changed tag
        bad = list(tokens)
        bad[7] = spoil(bad[7])
        with pytest.raises(Exception):
            f.decrypt(bad[7])
        with pytest.raises(TemplateKeyError):
            c.decrypt_many(bad)
    with pytest.raises(TemplateKeyError):
        TemplateCipher(generate_key()).decrypt_many(tokens[:50])
    m = c.decrypt_embeddings(tokens[:50], 128)
    assert m.dtype == np.float32 and m.shape == (50, 128) and m.tobytes() == b"".join(plain[:50])
