"""The district: `kiosk server`, `kiosk server terminal ...`, `kiosk sync`,
`kiosk report reconcile`."""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from .main import out_json

DEFAULT_PORT = 8700


def register(sub) -> None:
    sv = sub.add_parser("server", help="the district server (HTTP API over the district database)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    sv.add_argument("--ssl-certfile", help="serve HTTPS directly with this certificate (PEM)")
    sv.add_argument("--ssl-keyfile", help="... and this private key (PEM)")
    sv.add_argument("--insecure-templates", action="store_true",
                    help="send face templates over plain http to terminals on other machines (NOT for production)")
    sv.add_argument("--log-level", default="warning")
    sv.set_defaults(func=cmd_server)
    svs = sv.add_subparsers(dest="server_cmd")
    t = svs.add_parser("terminal", help="terminal tokens")
    ts = t.add_subparsers(dest="terminal_cmd", required=True)
    ta = ts.add_parser("add", help="register a terminal of a canteen; prints its token once")
    ta.add_argument("canteen_id")
    ta.add_argument("--name")
    ta.add_argument("--id", dest="terminal_id", help="terminal id (default CANTEEN-Tn)")
    ta.add_argument("--staff", default="system")
    ta.add_argument("--json", action="store_true")
    ta.set_defaults(func=cmd_terminal_add)
    tr = ts.add_parser("revoke", help="revoke a terminal's token (refused at its next request)")
    tr.add_argument("terminal_id")
    tr.add_argument("--staff", default="system")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_terminal_revoke)
    tl = ts.add_parser("list")
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(func=cmd_terminal_list)


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_server(a: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from ..config import get_settings
    from ..errors import ConfigError
    from ..server.app import create_app

    log = logging.getLogger("kiosk.server")
    tls = bool(a.ssl_certfile or a.ssl_keyfile)
    if tls and not (a.ssl_certfile and a.ssl_keyfile):
        raise ConfigError("HTTPS 需要同时给出 --ssl-certfile 和 --ssl-keyfile", detail="both TLS files are needed")
    settings = get_settings()
    api = create_app(settings, tls=tls, insecure_templates=a.insecure_templates)
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((a.host, a.port))
    except OSError as exc:
        raise ConfigError(f"无法监听 {a.host}:{a.port}（端口被占用？）", detail=str(exc)) from None
    sock.listen(2048)
    port = sock.getsockname()[1]
    scheme = "https" if tls else "http"
    if not tls and not _loopback(a.host):
        msg = ("plain HTTP on a non-loopback address: put TLS in front (docs/district.md) or use "
               "--ssl-certfile/--ssl-keyfile; face templates are withheld from terminals on other machines")
        if a.insecure_templates:
            msg = ("!!! --insecure-templates: FACE TEMPLATES WILL CROSS THE NETWORK UNENCRYPTED over plain HTTP. "
                   "Use this only on an isolated test network !!!")
        print(f"WARNING: {msg}", file=sys.stderr, flush=True)
        log.warning(msg)
    print(f"kiosk server: listening on {scheme}://{a.host}:{port} (store {settings.db_url.split('@')[-1]})",
          flush=True)
    config = uvicorn.Config(api, log_level=a.log_level, ssl_certfile=a.ssl_certfile, ssl_keyfile=a.ssl_keyfile,
                            access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0


def _server_app():
    from ..services.context import App
    from ..sync.errors import ServerOnlyError

    app = App()
    if app.settings.is_terminal:
        raise ServerOnlyError("这是终端，终端令牌只能在区服务器上管理",
                              detail="run `kiosk server terminal ...` on the server (without KIOSK_SERVER_URL)")
    return app


def cmd_terminal_add(a: argparse.Namespace) -> int:
    from ..server.auth import add_terminal

    ident, token = add_terminal(_server_app(), a.canteen_id, name=a.name, terminal_id=a.terminal_id,
                                actor=a.staff)
    if a.json:
        out_json({"token": token, "terminal_id": ident.terminal_id, "canteen_id": ident.canteen_id})
    else:
        print(f"终端 {ident.terminal_id}（食堂 {ident.canteen_id}）的令牌（只显示这一次，请妥善保存）：")
        print(token)
        print(f"在终端上设置：KIOSK_SERVER_URL=https://<服务器> KIOSK_SERVER_TOKEN={token}")
    return 0


def cmd_terminal_revoke(a: argparse.Namespace) -> int:
    from ..server.auth import revoke_terminal

    res = revoke_terminal(_server_app(), a.terminal_id, actor=a.staff)
    out_json(res) if a.json else print(f"终端 {a.terminal_id} 的令牌已吊销")
    return 0


def cmd_terminal_list(a: argparse.Namespace) -> int:
    from ..server.auth import list_terminals

    rows = list_terminals(_server_app())
    if a.json:
        out_json(rows)
    else:
        for r in rows:
            state = "已吊销" if r["revoked"] else "有效"
            print(f"{r['terminal_id']:16} {r['canteen_id']:12} {state}  最近同步 {r['last_pull_at'] or '-'}  "
                  f"待上传 {r['pending'] if r['pending'] is not None else '-'}")
    return 0
