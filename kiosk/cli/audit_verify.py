"""`kiosk audit verify [--json]`: walk the audit log's hash chain. Exit 0 when intact,
2 when an entry was edited, removed or slipped in (the first broken one is named)."""
from __future__ import annotations

import argparse
import sys

from kiosk.cli.main import out_json


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from kiosk.db.audit import verify
    from kiosk.services.context import App

    app = App()
    with app.db.session(read_only=True) as s:
        rep = verify(s)
        from kiosk.db.models import AuditHead
        head = s.get(AuditHead, 1)
        head_hash = head.last_hash if head else None
    d = rep.to_json()
    d["head_hash"] = head_hash     # write it down elsewhere: a rewrite of the whole chain changes it
    if args.json:
        out_json(d)
    elif rep.intact:
        print(f"审计记录完好：共 {rep.entries} 条，链尾 {head_hash}")
    else:
        where = f"第 {rep.first_broken_seq} 条" + (f"（{rep.first_broken_id}）" if rep.first_broken_id else "")
        print(f"审计记录被改动：{where}：{rep.problem}", file=sys.stderr)
    return 0 if rep.intact else 2
