"""The district: `kiosk server`, `kiosk server terminal ...`, `kiosk sync`,
`kiosk report reconcile`."""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from kiosk.cli.main import out_json

DEFAULT_PORT = 8700


def register(sub) -> None:
    sv = sub.add_parser("server", help="the district server (HTTP API over the district database)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    sv.add_argument("--ssl-certfile", help="serve HTTPS directly with this certificate (PEM)")
    sv.add_argument("--ssl-keyfile", help="... and this private key (PEM)")
    sv.add_argument("--insecure-templates", action="store_true",
                    help="send face templates over plain http to terminals on other machines (NOT for production)")
    sv.add_argument("--workers", type=int, default=1, help="server processes (default 1; e.g. the CPU count)")
    sv.add_argument("--log-level", default="warning")
    sv.set_defaults(func=cmd_server)
    svs = sv.add_subparsers(dest="server_cmd")
    t = svs.add_parser("terminal", help="terminal tokens")
    ts = t.add_subparsers(dest="terminal_cmd", required=True)
    ta = ts.add_parser("add", help="register a terminal of a canteen; prints its token once")
    ta.add_argument("canteen_id")
    ta.add_argument("--name")
    ta.add_argument("--id", dest="terminal_id", help="terminal id (default CANTEEN-Tn)")
    ta.add_argument("--staff", help="acting admin; the password is asked (scripts: KIOSK_STAFF_PASSWORD; the PIN while no terminal exists)")
    ta.add_argument("--json", action="store_true")
    ta.set_defaults(func=cmd_terminal_add)
    tr = ts.add_parser("revoke", help="revoke a terminal's token (refused at its next request)")
    tr.add_argument("terminal_id")
    tr.add_argument("--staff", help="acting admin; the password is asked (scripts: KIOSK_STAFF_PASSWORD; the PIN while no terminal exists)")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_terminal_revoke)
    tl = ts.add_parser("list")
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(func=cmd_terminal_list)


    sy = sub.add_parser("sync", help="a terminal: push the outbox to the district server and pull changes")
    sy.add_argument("--json", action="store_true")
    sy.set_defaults(func=cmd_sync)
    st = sub.add_parser("sync-status", help="a terminal: online or offline, orders waiting")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_sync_status)

    report = sub.choices.get("report")
    if report is not None:
        rsub = next(x for x in report._actions if isinstance(x, argparse._SubParsersAction))
        rc = rsub.add_parser("reconcile", help="the district server: orders that broke a district-wide limit")
        rc.add_argument("--month", required=True, help="YYYY-MM")
        rc.add_argument("--decide", metavar="FLAG_ID", help="record the office's decision on one flag")
        g = rc.add_mutually_exclusive_group()
        g.add_argument("--accept", action="store_true", help="with --decide: accept (reimburse as served)")
        g.add_argument("--charge-back", action="store_true", help="with --decide: charge the excess back")
        rc.add_argument("--note")
        rc.add_argument("--staff", help="supervisor or admin deciding; the password is asked (scripts: KIOSK_STAFF_PASSWORD)")
        rc.add_argument("--json", action="store_true")
        rc.set_defaults(func=cmd_reconcile)


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

    from kiosk.config import get_settings
    from kiosk.errors import ConfigError
    from kiosk.district.app import create_app

    log = logging.getLogger("kiosk.district")
    tls = bool(a.ssl_certfile or a.ssl_keyfile)
    if tls and not (a.ssl_certfile and a.ssl_keyfile):
        raise ConfigError("HTTPS 需要同时给出 --ssl-certfile 和 --ssl-keyfile", detail="both TLS files are needed")
    settings = get_settings().model_copy(update={"serve_tls": tls, "serve_insecure_templates": a.insecure_templates})
    api = create_app(settings)
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
    if a.workers > 1:    # each worker process builds the app from these settings (kiosk.district.app.WorkerApp)
        from uvicorn.supervisors import Multiprocess

        from kiosk.district.app import WorkerApp

        api.state.kiosk_app.close()
        _metrics_dir_for_workers()      # prometheus-client's own variable, read by the library in each worker
        config = uvicorn.Config(WorkerApp(settings), factory=True, workers=a.workers,
                                log_level=a.log_level, ssl_certfile=a.ssl_certfile, ssl_keyfile=a.ssl_keyfile,
                                access_log=False, timeout_keep_alive=30)
        Multiprocess(config, sockets=[sock]).run()
        return 0
    config = uvicorn.Config(api, log_level=a.log_level, ssl_certfile=a.ssl_certfile, ssl_keyfile=a.ssl_keyfile,
                            access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0


def _metrics_dir_for_workers() -> None:
    """The workers count pushes into files of one fresh folder (prometheus-client's
    multiprocess mode), so /metrics answered by any of them sums them all; the folder is
    removed when the server stops."""
    import atexit
    import os
    import shutil
    import tempfile

    from kiosk.district.api.ops import MULTIPROC_ENV

    d = tempfile.mkdtemp(prefix="kiosk-metrics-")
    os.environ[MULTIPROC_ENV] = d
    atexit.register(shutil.rmtree, d, True)


def _server_app():
    from kiosk.services.context import App
    from kiosk.errors import ServerOnlyError

    app = App()
    if app.settings.is_terminal:
        raise ServerOnlyError("这是终端，终端令牌只能在区服务器上管理",
                              detail="run `kiosk server terminal ...` on the server (without KIOSK_SERVER_URL)")
    return app


def _admin(app, staff_id: str | None) -> str:
    """Terminal tokens are issued by an admin proven by password (by PIN before the first
    terminal; while the store has no staff
    at all, during setup, by "system")."""
    from kiosk.cli.staffpin import acting_staff

    actor = acting_staff(app, staff_id, "staff.manage", setup_ok=True)
    return actor.staff_id if actor is not None else "system"


def cmd_terminal_add(a: argparse.Namespace) -> int:
    from kiosk.district.domain.terminals import add_terminal

    app = _server_app()
    ident, token = add_terminal(app, a.canteen_id, name=a.name, terminal_id=a.terminal_id,
                                actor=_admin(app, a.staff))
    if a.json:
        out_json({"token": token, "terminal_id": ident.terminal_id, "canteen_id": ident.canteen_id})
    else:
        print(f"终端 {ident.terminal_id}（食堂 {ident.canteen_id}）的令牌（只显示这一次，请妥善保存）：")
        print(token)
        print(f"在终端上设置：KIOSK_SERVER_URL=https://<服务器> KIOSK_SERVER_TOKEN={token}")
    return 0


def cmd_terminal_revoke(a: argparse.Namespace) -> int:
    from kiosk.district.domain.terminals import revoke_terminal

    app = _server_app()
    res = revoke_terminal(app, a.terminal_id, actor=_admin(app, a.staff))
    out_json(res) if a.json else print(f"终端 {a.terminal_id} 的令牌已吊销")
    return 0


def cmd_terminal_list(a: argparse.Namespace) -> int:
    from kiosk.district.domain.terminals import list_terminals

    rows = list_terminals(_server_app())
    if a.json:
        out_json(rows)
    else:
        for r in rows:
            state = "已吊销" if r["revoked"] else "有效"
            disk = f"{r['disk_free_bytes'] / 1024 ** 3:.1f} GB" if r.get("disk_free_bytes") is not None else "-"
            print(f"{r['terminal_id']:16} {r['canteen_id']:12} {state}  最近同步 {r['last_pull_at'] or '-'}  "
                  f"待上传 {r['pending'] if r['pending'] is not None else '-'}  摄像头 {r.get('camera_state') or '-'}  "
                  f"磁盘剩余 {disk}  最后售餐 {r.get('last_sale_at') or '-'}  软件 {r['software_version'] or '-'}")
    return 0


def _terminal_app():
    from kiosk.services.context import App
    from kiosk.errors import TerminalOnlyError

    app = App()
    if not app.settings.is_terminal:
        raise TerminalOnlyError(detail="set KIOSK_SERVER_URL and KIOSK_SERVER_TOKEN (from `kiosk server terminal add`)")
    return app


def cmd_sync(a: argparse.Namespace) -> int:
    from kiosk.terminal.sync.client import SyncClient
    from kiosk.errors import ServerUnreachableError
    from kiosk.terminal.sync.outbox import pending_count

    app = _terminal_app()
    client = SyncClient(app)
    try:
        rep = client.sync()
    except ServerUnreachableError as exc:
        with app.db.session(read_only=True) as s:
            waiting = pending_count(s)
        if a.json:
            out_json({"error": exc.user_message, "detail": exc.detail, "type": type(exc).__name__,
                      "offline": True, "pending": waiting})
        else:
            print(f"错误：{exc.user_message}（待上传 {waiting} 笔）", file=sys.stderr)
            print(f"  detail: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        client.close()
    if a.json:
        out_json(rep.to_json())
    else:
        print(f"上传 {rep.pushed} 笔（重复 {rep.duplicates}，被拒 {rep.rejected}），下载 {rep.pulled} 条变更，"
              f"待上传 {rep.pending}，服务器版本 {rep.server_version}")
        for f in rep.flagged:
            print(f"  已标记待对账：订单 {f['order_id']} {f['kind']} 超出 {f['over_fen']} 分")
        if rep.warning:
            print(f"警告：{rep.warning}", file=sys.stderr)
    return 0


def cmd_sync_status(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from kiosk.terminal.sync.status import sync_status

    st = sync_status(_terminal_app())
    d = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(st).items()}
    if a.json:
        out_json(d)
    else:
        state = "在线" if st.online else (f"离线（自 {st.offline_since:%H:%M}）" if st.offline_since else "尚未同步")
        print(f"{state}，待上传 {st.pending} 笔，最近同步 {d['last_sync'] or '-'}，服务器版本 {st.server_version}")
    return 0


def cmd_reconcile(a: argparse.Namespace) -> int:
    from kiosk.money import fen_to_yuan
    from kiosk.district.domain.reconcile import BALANCE, SUBSIDY, decide, reconcile
    from kiosk.errors import ServerOnlyError

    app = _server_app()
    if app.settings.is_terminal:
        raise ServerOnlyError(detail="reconciliation runs on the district server")
    if a.decide:
        from kiosk.errors import ValidationError
        from kiosk.cli.staffpin import prove

        if not (a.accept or a.charge_back):
            raise ValidationError("请用 --accept 或 --charge-back 写明处理结果", detail="--decide needs a decision")
        if not a.staff:
            from kiosk.errors import PermissionDeniedError
            raise PermissionDeniedError("对账处理需要写明经办人：--staff 工号（主管或管理员），并输入其密码",
                                        detail="--decide needs --staff and the password (KIOSK_STAFF_PASSWORD "
                                               "for scripts; the PIN where the store has no terminals)")
        actor = prove(app, a.staff, min_role="supervisor")
        res = decide(app, a.decide, "accept" if a.accept else "charge_back", actor, a.note)
        out_json(res) if a.json else print(f"{a.decide}: {res['decision_zh']}，经办 {res['decided_by']}")
        return 0
    rep = reconcile(app, a.month)
    if a.json:
        out_json(rep)
        return 0
    print(f"{rep['month']}：待对账 {len(rep['flagged'])} 条（未处理 {rep['undecided']}）")
    for group, amount in ((SUBSIDY, "超出"), (BALANCE, "透支")):
        t = rep[group]
        print(f"{t['label']}：{t['flags']} 条（未处理 {t['undecided']}），{amount}合计 {fen_to_yuan(t['total_fen'])} 元"
              + (f"，其中追回 {fen_to_yuan(t['charged_back_fen'])} 元" if group == SUBSIDY else ""))
        for f in (x for x in rep["flagged"] if x["group"] == group):
            meals = "；".join(f"{m['canteen_id']} {m['meal']} 补贴{fen_to_yuan(m['subsidy_fen'])}元 售于{m['sold_at']} "
                             f"到达服务器{m['synced_at'] or '-'}" for m in f["meals"])
            print(f"  {f['flag_id']}  {f['resident_id']} {f['name'] or ''}  {f['meal_date']}  {f['reason']}  "
                  f"{amount} {fen_to_yuan(f['over_fen'])} 元  [{meals}]  {f['decision_zh']}")
    return 0
