"""`kiosk backup --out F` and `kiosk restore F [--check] [--yes]` (kiosk/services/backup.py,
docs/operations.md). The passphrase comes from the prompt, or KIOSK_BACKUP_PASSPHRASE in scripts."""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from kiosk.cli.main import out_json


def register(sub) -> None:
    b = sub.add_parser("backup", help="an online copy of the store and the template key (encrypted) in one file")
    b.add_argument("--out", required=True, type=Path, help="the archive to write (refused when it exists)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="put a backup back (checks the whole archive before changing anything)")
    r.add_argument("archive", type=Path)
    r.add_argument("--check", action="store_true", help="only check the archive and the passphrase")
    r.add_argument("--yes", action="store_true", help="overwrite the store and key file without asking")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_restore)


def _passphrase(settings, *, twice: bool) -> str:
    from kiosk.errors import BackupError

    if settings.backup_passphrase is not None:
        return settings.backup_passphrase.get_secret_value()
    if sys.stdin is None or not sys.stdin.isatty():
        raise BackupError("需要备份口令：请在终端里运行以便输入，脚本可设置环境变量 KIOSK_BACKUP_PASSPHRASE",
                          detail="no terminal to ask the passphrase and KIOSK_BACKUP_PASSPHRASE is not set")
    p = getpass.getpass("备份口令：")
    if twice and getpass.getpass("再输入一次：") != p:
        raise BackupError("两次输入的口令不一致", detail="passphrases differ")
    return p


def cmd_backup(a: argparse.Namespace) -> int:
    from kiosk.config import get_settings
    from kiosk.datadir import use_private_umask
    from kiosk.services.backup import backup

    s = get_settings()
    use_private_umask()
    res = backup(s, a.out, _passphrase(s, twice=True))
    if a.json:
        out_json(res.to_json())
    else:
        c = res.counts
        print(f"已备份到 {res.path}（{res.dialect}，{res.bytes:,} 字节）：订单 {c['orders']}，审计记录 {c['audit_log']}，"
              f"人脸模板 {c['face_templates']}；密钥 {res.key_id} 已用口令加密。请妥善保管此文件与口令")
    return 0


def cmd_restore(a: argparse.Namespace) -> int:
    from kiosk.config import get_settings
    from kiosk.datadir import ensure_private_home
    from kiosk.errors import BackupError
    from kiosk.services.backup import check_archive, restore, sqlite_path, target_in_use

    s = get_settings()
    ensure_private_home(s.home)
    db_file = sqlite_path(s.db_url)
    checked = check_archive(a.archive, _passphrase(s, twice=False),
                            work_dir=db_file.parent if db_file is not None else None)
    try:
        m = checked.manifest
        summary = {"archive": str(a.archive), "created_at": m["created_at"], "dialect": m["dialect"],
                   "migration": m["migration"], "counts": m["counts"], "key_id": m["key_id"]}
        if a.check:
            out_json({"ok": True, **summary}) if a.json else print(
                f"备份完好，口令正确：{m['created_at']} 的 {m['dialect']} 备份，订单 {m['counts']['orders']}")
            return 0
        existing = target_in_use(s)
        if existing and not a.yes:
            if sys.stdin is None or not sys.stdin.isatty():
                raise BackupError("恢复会覆盖现有数据：" + "，".join(existing) + "。确认无误请加 --yes",
                                  detail="refusing to overwrite without --yes (no terminal to ask)")
            print("恢复会覆盖：" + "，".join(existing) + "。请先停止本机的 kiosk 和服务器。", file=sys.stderr)
            if input("确认覆盖请输入 yes：").strip().lower() not in ("yes", "是"):
                raise BackupError("已取消，未做任何改动", detail="not confirmed")
        res = restore(s, checked, str(a.archive))
    finally:
        checked.cleanup()
    if a.json:
        out_json({"ok": True, **summary, **res})
    else:
        print(f"已恢复 {m['created_at']} 的备份：订单 {m['counts']['orders']}，审计记录 {m['counts']['audit_log']}"
              + (f"；原密钥文件另存为 {res['previous_key_kept_at']}" if res["previous_key_kept_at"] else ""))
        print("请运行 kiosk audit verify 核对审计链，然后重新启动服务")
    return 0
