"""The data folder (KIOSK_HOME) holds ID numbers, PIN hashes and encrypted face data:
it is made 0700 and everything the process writes is made 0600 (umask 077), so no
other account on the machine can read it. A folder or store file found open to
others (made by an older version) is closed at start."""
from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from kiosk.errors import ConfigError, DiskFullError, StorageError

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
STORE_FILES = ("kiosk.db", "kiosk.db-wal", "kiosk.db-shm", "gallery.faiss.enc")


def use_private_umask() -> None:
    """Files and folders this process creates from now on: 0600 / 0700."""
    os.umask(PRIVATE_UMASK)


def ensure_private_home(home: Path) -> Path:
    use_private_umask()
    home = Path(home)
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        _tighten(home, 0o700)
        for name in STORE_FILES:
            _tighten(home / name, 0o600)
        logs = home / "logs"
        if logs.is_dir():
            _tighten(logs, 0o700)
    except OSError as exc:
        raise ConfigError(f"无法创建数据目录：{home}", detail=str(exc)) from None
    return home


def _tighten(path: Path, mode: int) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
        log.warning("%s was mode %04o; made %04o", path, stat.S_IMODE(st.st_mode), mode)
        os.chmod(path, mode)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_atomic(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write a file whole or not at all: into ``NAME.tmp`` beside it, flushed to disk, then
    renamed over ``path``. A full disk (or quota) is DiskFullError (存储空间不足), any other
    failure StorageError; either way the temporary file is removed and ``path`` is as
    before (absent, or the old file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    raw = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if exc.errno in NO_SPACE:
            raise DiskFullError(f"存储空间不足，文件未写入：{path}", detail=f"{path}: {exc}") from None
        raise StorageError(f"文件无法写入：{path}", detail=f"{path}: {exc}") from None
    return path
