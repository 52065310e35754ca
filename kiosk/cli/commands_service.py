"""`kiosk service install --terminal|--server [--print]`: systemd units that start the
kiosk full screen at boot (restarted when it dies) or the district server with its
workers. See docs/operations.md.

The terminal runs under a bare X server started by ``xinit`` on tty1 (Debian packages
``xserver-xorg-core xserver-xorg-input-libinput xinit``): no window manager, no
desktop; the kiosk takes the screen's geometry itself (kiosk.ui.app.show_full_screen)
and Qt talks to X through the xcb libraries install.sh already installs. The unit
logs in the kiosk's account on tty1 through PAM (``PAMName=login``), so logind gives
the session the seat and Xorg runs without root."""
from __future__ import annotations

import argparse
import getpass
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kiosk.cli.main import out_json

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
ENV_DIR = Path("/etc/kiosk")
UNIT_NAMES = {"terminal": "kiosk-terminal.service", "server": "kiosk-server.service"}
# settings a unit's environment file carries (secrets included: the file is 0600, read by systemd as root)
ENV_KEYS = ("KIOSK_DATABASE_URL", "KIOSK_MODEL_DIR", "KIOSK_BACKEND", "KIOSK_TEMPLATE_KEY", "KIOSK_TEMPLATE_KEY_FILE",
            "KIOSK_CANTEEN_ID", "KIOSK_CANTEEN_NAME", "KIOSK_SERVER_URL", "KIOSK_SERVER_TOKEN",
            "KIOSK_SYNC_INTERVAL_S", "KIOSK_LIVENESS", "KIOSK_LIVENESS_MODEL")
X_PACKAGES = "xserver-xorg-core xserver-xorg-input-libinput xinit"


@dataclass(frozen=True)
class UnitSpec:
    role: str                     # terminal | server
    kiosk: list[str]              # the command that runs `kiosk`
    user: str
    home: Path                    # KIOSK_HOME
    env_file: Path
    tty: int = 1
    host: str = "127.0.0.1"
    port: int = 8700
    workers: int = 2
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


def kiosk_command() -> list[str]:
    """The installed `kiosk` next to this interpreter (the virtual environment's), else
    this interpreter running the CLI module; absolute paths either way."""
    exe = Path(sys.executable).absolute()
    script = exe.parent / "kiosk"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(exe), "-m", "kiosk.cli.main"]


def _q(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def terminal_unit(u: UnitSpec) -> str:
    tty = f"tty{u.tty}"
    xorg = shutil.which("Xorg") or "/usr/bin/Xorg"
    xinit = shutil.which("xinit") or "/usr/bin/xinit"
    # xinit CLIENT -- SERVER DISPLAY OPTIONS: the kiosk is X's only client; when it exits X
    # stops, the unit ends and systemd starts both again
    start = [xinit] + u.kiosk + ["run", "--", xorg, ":0", f"vt{u.tty}", "-keeptty", "-nolisten", "tcp",
                                  "-nocursor", "-s", "0", "-dpms"]
    return f"""[Unit]
Description=长寿食堂 kiosk (full screen under a bare X server on {tty})
After=systemd-user-sessions.service network-online.target getty@{tty}.service
Wants=network-online.target
Conflicts=getty@{tty}.service
StartLimitIntervalSec=0

[Service]
Type=simple
User={u.user}
PAMName=login
TTYPath=/dev/{tty}
TTYReset=yes
TTYVHangup=yes
StandardInput=tty
StandardOutput=journal
StandardError=journal
UtmpIdentifier={tty}
UtmpMode=user
Environment=KIOSK_HOME={u.home}
Environment=QT_QPA_PLATFORM=xcb
EnvironmentFile=-{u.env_file}
UMask=0077
ExecStart={_q(start)}
Restart=always
RestartSec=3

[Install]
WantedBy=graphical.target
"""


def server_unit(u: UnitSpec) -> str:
    args = u.kiosk + ["server", "--host", u.host, "--port", str(u.port), "--workers", str(u.workers)]
    if u.ssl_certfile:
        args += ["--ssl-certfile", u.ssl_certfile, "--ssl-keyfile", u.ssl_keyfile or ""]
    return f"""[Unit]
Description=长寿食堂 district server ({u.workers} workers on {u.host}:{u.port})
After=network-online.target postgresql.service
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User={u.user}
Environment=KIOSK_HOME={u.home}
EnvironmentFile=-{u.env_file}
UMask=0077
ExecStart={_q(args)}
Restart=always
RestartSec=3
KillSignal=SIGTERM
TimeoutStopSec=30
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ReadWritePaths={u.home}

[Install]
WantedBy=multi-user.target
"""


def env_file_text(environ: dict[str, str]) -> str:
    """The KIOSK_* settings of this shell, for the unit's EnvironmentFile."""
    lines = ["# kiosk settings for the systemd unit (written by `kiosk service install`)"]
    for k in ENV_KEYS:
        v = environ.get(k)
        if v:
            if "\n" in v:
                from kiosk.errors import ConfigError
                raise ConfigError(f"环境变量 {k} 含有换行，不能写入服务配置", detail=f"{k} holds a newline")
            lines.append(f"{k}={shlex.quote(v)}")
    return "\n".join(lines) + "\n"


def register(sub) -> None:
    sv = sub.add_parser("service", help="systemd units: the kiosk at boot, or the district server")
    ss = sv.add_subparsers(dest="service_cmd", required=True)
    i = ss.add_parser("install", help="write and enable the systemd unit (--print: show it instead)")
    role = i.add_mutually_exclusive_group(required=True)
    role.add_argument("--terminal", action="store_true", help="the kiosk, full screen on tty1 at boot")
    role.add_argument("--server", action="store_true", help="the district server with its workers")
    i.add_argument("--print", dest="print_only", action="store_true", help="print the unit(s), install nothing")
    i.add_argument("--user", help="account the service runs as (default: the one running this; not root)")
    i.add_argument("--unit-dir", type=Path, default=SYSTEM_UNIT_DIR,
                   help=f"where to write the unit (default {SYSTEM_UNIT_DIR}; another folder: no systemctl)")
    i.add_argument("--env-file", type=Path, help=f"the unit's environment file (default {ENV_DIR}/ROLE.env)")
    i.add_argument("--tty", type=int, default=1, help="terminal: the virtual console (default 1)")
    i.add_argument("--host", default="127.0.0.1", help="server: address (default 127.0.0.1)")
    i.add_argument("--port", type=int, default=8700, help="server: port (default 8700)")
    i.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 1),
                   help="server: worker processes (default the CPU count, at least 2)")
    i.add_argument("--ssl-certfile")
    i.add_argument("--ssl-keyfile")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_service_install)


def cmd_service_install(a: argparse.Namespace) -> int:
    from kiosk.config import get_settings
    from kiosk.errors import ConfigError

    role = "terminal" if a.terminal else "server"
    s = get_settings()
    user = a.user or getpass.getuser()
    if user == "root":
        raise ConfigError("服务不能以 root 运行，请用 --user 指定一个普通账户",
                          detail="pass --user ACCOUNT (the account that owns KIOSK_HOME and the template key)")
    if role == "terminal" and not s.is_terminal:
        print("注意：本机未设置 KIOSK_SERVER_URL / KIOSK_SERVER_TOKEN，将作为单机运行（不与区服务器同步）",
              file=sys.stderr)
    if bool(a.ssl_certfile) != bool(a.ssl_keyfile):
        raise ConfigError("HTTPS 需要同时给出 --ssl-certfile 和 --ssl-keyfile", detail="both TLS files are needed")
    if not 1 <= a.tty <= 63 or not 1 <= a.workers <= 256 or not 0 < a.port < 65536:
        raise ConfigError("--tty、--workers 或 --port 超出范围", detail="tty 1..63, workers 1..256, port 1..65535")
    spec = UnitSpec(role=role, kiosk=kiosk_command(), user=user, home=Path(s.home).absolute(),
                    env_file=a.env_file or ENV_DIR / f"{role}.env", tty=a.tty, host=a.host, port=a.port,
                    workers=a.workers,
                    ssl_certfile=str(Path(a.ssl_certfile).absolute()) if a.ssl_certfile else None,
                    ssl_keyfile=str(Path(a.ssl_keyfile).absolute()) if a.ssl_keyfile else None)
    unit = terminal_unit(spec) if role == "terminal" else server_unit(spec)
    name = UNIT_NAMES[role]
    if a.print_only:
        if a.json:
            out_json({"unit": name, "text": unit, "env_file": str(spec.env_file)})
        else:
            print(f"# {a.unit_dir / name}")
            print(unit, end="")
        return 0
    real = a.unit_dir.absolute() == SYSTEM_UNIT_DIR
    if real and role == "terminal" and not (shutil.which("xinit") and shutil.which("Xorg")):
        raise ConfigError(f"未安装 X 服务器：请先运行 sudo apt-get install {X_PACKAGES}",
                          detail=f"xinit and Xorg are needed for the kiosk unit (apt-get install {X_PACKAGES})")
    written = _write(a.unit_dir / name, unit, 0o644)
    env_written = None
    if not spec.env_file.exists():
        env_written = _write(spec.env_file, env_file_text(dict(os.environ)), 0o600)
    enabled = False
    if real and shutil.which("systemctl"):
        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", name]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise ConfigError(f"systemctl 失败：{' '.join(cmd)}", detail=(r.stderr or r.stdout).strip())
        enabled = True
    res = {"unit": str(written), "env_file": str(env_written or spec.env_file), "env_file_written": bool(env_written),
           "enabled": enabled}
    if a.json:
        out_json(res)
    else:
        print(f"已写入 {written}" + (f"，环境文件 {env_written}" if env_written else f"（保留已有的 {spec.env_file}）"))
        print(f"已启用：sudo systemctl start {name} 即可启动" if enabled else
              f"未调用 systemctl（单元目录不是 {SYSTEM_UNIT_DIR} 或没有 systemctl）")
    return 0


def _write(path: Path, content: str, mode: int) -> Path:
    """Write whole or not at all (a temporary file renamed into place)."""
    from kiosk.errors import ConfigError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"无法写入 {path}（需要 sudo？）", detail=str(exc)) from None
    return path
