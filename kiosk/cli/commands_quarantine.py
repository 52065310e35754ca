"""The district server's quarantine list (待核查): `kiosk report quarantine` and
`kiosk quarantine accept|reject OP_ID --staff ADM` (an admin, proven as the server's
command line proves people: kiosk.cli.staffpin.prove, the password on a district
server; scripts: KIOSK_STAFF_PASSWORD)."""
from __future__ import annotations

import argparse

from kiosk.cli.main import out_json


def register(sub) -> None:
    report = sub.choices.get("report")
    if report is not None:
        rsub = next(x for x in report._actions if isinstance(x, argparse._SubParsersAction))
        rq = rsub.add_parser("quarantine", help="the district server: pushed ops not applied, with their reasons (待核查)")
        rq.add_argument("--status", default="waiting", choices=("waiting", "accepted", "rejected", "all"),
                        help="which items (default: waiting for a decision)")
        rq.add_argument("--json", action="store_true")
        rq.set_defaults(func=cmd_report_quarantine)
    q = sub.add_parser("quarantine", help="the district server: accept or reject a quarantined op (admin, password)")
    qs = q.add_subparsers(dest="quarantine_cmd", required=True)
    for name, zh in (("accept", "认可：照上传入账（一次）"), ("reject", "驳回：不入账")):
        p = qs.add_parser(name, help=zh)
        p.add_argument("op_id")
        p.add_argument("--staff", required=True, help="acting admin; the password is asked (scripts: KIOSK_STAFF_PASSWORD)")
        p.add_argument("--note", help="why (kept on the item and in the audit log)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_quarantine_decide, decision=name)


def _server_app():
    from kiosk.errors import ServerOnlyError
    from kiosk.services.context import App

    app = App()
    if app.settings.is_terminal:
        raise ServerOnlyError("这是终端：待核查列表在区服务器上", detail="run it on the district server")
    return app


def cmd_report_quarantine(a: argparse.Namespace) -> int:
    from kiosk.district.domain.quarantine import list_quarantine
    from kiosk.money import fen_to_yuan

    app = _server_app()
    try:
        items = list_quarantine(app, status=None if a.status == "all" else a.status)
    finally:
        app.close()
    if a.json:
        out_json({"quarantined": items, "count": len(items)})
        return 0
    print(f"待核查 {len(items)} 条" if a.status == "waiting" else f"{len(items)} 条")
    for x in items:
        amount = "" if x["amount_fen"] is None else f"  {fen_to_yuan(x['amount_fen'])} 元"
        print(f"  {x['op_id']}  {x['terminal_id']}  {x['kind_zh']}  {x['resident_id'] or ''}{amount}  "
              f"{x['received_at']}  {x['status_zh']}\n      {x['reason']}")
    return 0


def cmd_quarantine_decide(a: argparse.Namespace) -> int:
    from kiosk.cli.staffpin import prove
    from kiosk.district.domain.quarantine import decide

    app = _server_app()
    try:
        actor = prove(app, a.staff, min_role="admin")
        res = decide(app, a.op_id, a.decision, actor, a.note)
    finally:
        app.close()
    if a.json:
        out_json(res)
    else:
        print(f"{res['op_id']}: {res['status_zh']}，经办 {res['decided_by']}")
    return 0
