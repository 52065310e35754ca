"""Secrets: the key that encrypts face templates at rest, and staff PIN hashes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken

from kiosk.errors import StoreBusyError, TemplateKeyError

if TYPE_CHECKING:
    import numpy as np


def generate_key() -> str:
    return Fernet.generate_key().decode()


def write_key_file(path: Path, *, overwrite: bool = False) -> bool:
    """Create a key file readable only by its owner. False when one exists already."""
    path = Path(path)
    if path.exists() and not overwrite:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(generate_key() + "\n")
    os.replace(tmp, path)
    return True


class TemplateCipher:
    """Encrypts embeddings, face crops and the index file (Fernet: AES-128-CBC + HMAC)."""

    def __init__(self, key: str) -> None:
        try:
            self._f = Fernet(key.strip().encode())
        except (ValueError, TypeError):
            raise TemplateKeyError("人脸数据密钥格式不正确，请联系管理员",
                                   detail="the template key must be a url-safe base64 Fernet key "
                                          "(make one with `kiosk keygen`)") from None
        self.key_id = hashlib.sha256(key.strip().encode()).hexdigest()[:12]

    @classmethod
    def from_settings(cls, key: str | None, key_file: Path, home: Path | None = None) -> "TemplateCipher":
        if key:
            return cls(key)
        kf = Path(key_file)
        if home is not None and _inside(kf, Path(home)):
            raise TemplateKeyError("人脸数据密钥不能放在数据目录里，请联系管理员",
                                   detail=f"key file {kf} is inside KIOSK_HOME {home}; keep it elsewhere")
        if not kf.is_file():
            raise TemplateKeyError("找不到人脸数据密钥，人脸功能不可用，请联系管理员",
                                   detail=f"no KIOSK_TEMPLATE_KEY and no key file at {kf}; "
                                          f"create one with `kiosk keygen` or set KIOSK_TEMPLATE_KEY_FILE")
        check_key_file_mode(kf)
        return cls(kf.read_text().strip())

    def encrypt(self, data: bytes) -> bytes:
        return self._f.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._f.decrypt(token)
        except InvalidToken:
            raise TemplateKeyError("人脸数据无法解密（密钥不对），请联系管理员",
                                   detail="InvalidToken: data was encrypted with another key or is corrupt") from None


    def decrypt_many(self, tokens: list[bytes], *, as_array: bool = False):
        """``decrypt`` of many tokens (a gallery rebuilt from the store: 10^5 templates),
        one by one: cryptography's Fernet is native since 51 (about 2 µs a 512-byte token
        against 14-17 µs in 44-49; 10^5 templates: 0.17 s). Any token that does not
        verify fails the whole call (TemplateKeyError). ``as_array``: the plaintexts (all
        of one length) as one uint8 matrix."""
        import numpy as np

        f = self._f
        try:
            out = [f.decrypt(t) for t in tokens]
        except InvalidToken:
            raise TemplateKeyError("人脸数据无法解密（密钥不对），请联系管理员",
                                   detail="InvalidToken: data was encrypted with another key or is corrupt") from None
        if as_array:
            return np.frombuffer(b"".join(out), np.uint8).reshape(len(out), -1) if out else np.zeros((0, 0), np.uint8)
        return out

    def decrypt_embeddings(self, tokens: list[bytes], dim: int) -> "np.ndarray":
        """Encrypted float32 vectors (face templates) as one (n, dim) matrix, decrypted
        in bulk (``decrypt_many``)."""
        import numpy as np

        if not tokens:
            return np.zeros((0, dim), np.float32)
        raw = self.decrypt_many(tokens, as_array=True)
        if raw.shape[1] != 4 * dim:
            from kiosk.errors import ModelMismatchError
            raise ModelMismatchError("人脸特征维度与当前模型不一致", detail=f"template of {raw.shape[1]} bytes, not {4 * dim}")
        return np.ascontiguousarray(raw).view(np.float32)


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that the group or others may read or write (e.g. 0644, 0666)."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError as exc:
        raise TemplateKeyError("人脸数据密钥文件无法读取，请联系管理员", detail=f"{path}: {exc}") from None
    if mode & 0o077:
        raise TemplateKeyError(
            f"人脸数据密钥文件 {path} 的权限是 {mode:04o}，其他用户也能读取，已拒绝使用。"
            f"请运行：chmod 600 {path}",
            detail=f"key file {path} has mode {mode:04o}; it must be readable by its owner only: chmod 600 {path}")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


# Staff PINs: Argon2id (memory-hard), parameters recorded in each hash's PHC string
# ($argon2id$v=19$m=65536,t=3,p=1$salt$hash), so they can be raised later while old hashes
# still verify. 64 MiB and 3 passes as in RFC 9106's second recommended setting, one lane.
PIN_HASH_MEMORY_KIB = 65536
PIN_HASH_TIME_COST = 3
PIN_HASH_LANES = 1      # one lane: no threads (measured: lanes > 1 fail inside a process that ran the Qt UI)
_LEGACY_SCRYPT = dict(n=2 ** 14, r=8, p=1)     # hashes written before Argon2id ("scrypt$salt$digest")


def _argon2(salt: bytes, memory_kib: int = PIN_HASH_MEMORY_KIB, time_cost: int = PIN_HASH_TIME_COST,
            lanes: int = PIN_HASH_LANES):
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    return Argon2id(salt=salt, length=32, iterations=time_cost, lanes=lanes, memory_cost=memory_kib)


def _no_memory() -> StoreBusyError:
    return StoreBusyError("系统繁忙（内存不足），请稍后再试", detail=f"not enough memory for the PIN hash "
                          f"({PIN_HASH_MEMORY_KIB} KiB): nothing was done")


def _with_memory(fn):
    """The hash needs 64 MiB at once: when that fails, free what Python can and try once
    more; then it is a busy system (try again), never a traceback."""
    try:
        return fn()
    except MemoryError:
        import gc

        gc.collect()
        try:
            return fn()
        except MemoryError:
            raise _no_memory() from None


def hash_pin(pin: str) -> str:
    """A PHC string: algorithm, version, parameters, salt and hash."""
    salt = secrets.token_bytes(16)
    return _with_memory(lambda: _argon2(salt).derive_phc_encoded(pin.encode()))


def verify_pin(pin: str, stored: str) -> bool:
    """Argon2id PHC strings with whatever parameters they record, and the old scrypt form."""
    if not stored:
        return False
    if stored.startswith("$argon2id$"):
        from cryptography.exceptions import InvalidKey
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        try:
            _with_memory(lambda: Argon2id.verify_phc_encoded(pin.encode(), stored))
            return True
        except (InvalidKey, ValueError):
            return False
    try:
        _, salt_b64, digest_b64 = stored.split("$")
        salt, want = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except ValueError:
        return False
    digest = hashlib.scrypt(pin.encode(), salt=salt, **_LEGACY_SCRYPT)
    return hmac.compare_digest(digest, want)


def pin_hash_params(stored: str) -> dict:
    """The parameters a hash records, e.g. {"alg": "argon2id", "m": 65536, "t": 3, "p": 4}."""
    if stored.startswith("$argon2id$"):
        parts = stored.split("$")
        params = dict(kv.split("=") for kv in parts[3].split(","))
        return {"alg": "argon2id", **{k: int(v) for k, v in params.items()}}
    return {"alg": "scrypt", "n": _LEGACY_SCRYPT["n"], "r": _LEGACY_SCRYPT["r"], "p": _LEGACY_SCRYPT["p"]}


def pin_needs_rehash(stored: str) -> bool:
    """True for the old scrypt form or Argon2id weaker than today's parameters."""
    p = pin_hash_params(stored)
    return p["alg"] != "argon2id" or (p.get("m", 0), p.get("t", 0), p.get("p", 0)) != (
        PIN_HASH_MEMORY_KIB, PIN_HASH_TIME_COST, PIN_HASH_LANES)


def legacy_scrypt_hash(pin: str) -> str:
    """The form hashes had before Argon2id (tests of the upgrade path make one)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, **_LEGACY_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()
