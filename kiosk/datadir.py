"""The data folder (KIOSK_HOME) holds ID numbers, PIN hashes and encrypted face data:
it is made 0700 and everything the process writes is made 0600 (umask 077), so no
other account on the machine can read it. A folder or store file found open to
others (made by an older version) is closed at start."""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from kiosk.errors import ConfigError

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
