"""Secrets: the key that encrypts face templates at rest, and staff PIN hashes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ..errors import TemplateKeyError


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
        return cls(kf.read_text().strip())

    def encrypt(self, data: bytes) -> bytes:
        return self._f.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._f.decrypt(token)
        except InvalidToken:
            raise TemplateKeyError("人脸数据无法解密（密钥不对），请联系管理员",
                                   detail="InvalidToken: data was encrypted with another key or is corrupt") from None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2 ** 14, r=8, p=1)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_pin(pin: str, stored: str) -> bool:
    try:
        _, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    salt = base64.b64decode(salt_b64)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2 ** 14, r=8, p=1)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))
