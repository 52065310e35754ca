"""The audit log is append-only in effect (issue 10, item 3): a hash chain over each
entry's canonical JSON; `kiosk audit verify` names the first broken entry; two
processes appending at once do not fork the chain."""
import json
import os
import subprocess
import sys
import time

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, select, text

from kiosk.cli.main import main
from kiosk.db.models import AuditEntry
from kiosk.db.session import MIGRATIONS, Database
from kiosk.db import audit
from kiosk.services.context import App

APPEND = """
import sys, time
from kiosk.services.context import App
from kiosk.db import audit
app = App()
start, n, who = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
while time.time() < start:
    time.sleep(0.005)
for i in range(n):
    with app.db.session() as s:
        audit.record(s, who, "test.append", str(i), n=i)
"""


def append_from_two_processes(n: int = 40) -> None:
    start = time.time() + 1.5          # both begin at the same moment, after their imports
    procs = [subprocess.Popen([sys.executable, "-c", APPEND, str(start), str(n), who], env=dict(os.environ),
                              stderr=subprocess.PIPE, text=True) for who in ("P1", "P2")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


def check_two_process_chain(app, n: int = 40) -> None:
    with app.db.session() as s:
        before = len(audit.entries_since(s))
    append_from_two_processes(n)
    with app.db.session() as s:
        rows = audit.entries_since(s)
        assert len(rows) == before + 2 * n
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1))          # no gap, no fork
        assert {r.actor for r in rows[before:]} == {"P1", "P2"}
        rep = audit.verify(s)
    assert rep.intact and rep.entries == before + 2 * n


def test_two_processes_appending_at_once_keep_one_chain(env):
    app = App()
    check_two_process_chain(app)


def _seed(app, n=5):
    for i in range(n):
        with app.db.session() as s:
            audit.record(s, "S01", "test.action", f"R{i}", amount_fen=100 * i, note="备注", score=0.1 + i / 3)


def test_verify_names_the_first_edited_removed_or_cut_entry(env, capsys):
    app = App()
    _seed(app)
    assert main(["audit", "verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["intact"] and out["entries"] == 5 and len(out["head_hash"]) == 64
    with app.db.engine.begin() as c:     # someone edits the database directly
        c.execute(text("UPDATE audit_log SET detail = :d WHERE seq = 2"),
                  {"d": json.dumps({"amount_fen": 1, "note": "备注", "score": 0.1 + 1 / 3})})
    assert main(["audit", "verify", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert (out["intact"], out["first_broken_seq"]) == (False, 2) and "改动" in out["problem"]
    with app.db.session() as s:
        eid = s.scalar(select(AuditEntry.id).where(AuditEntry.seq == 2))
    assert out["first_broken_id"] == eid
    assert main(["audit", "verify"]) == 2
    assert "第 2 条" in capsys.readouterr().err


def test_verify_finds_a_removed_entry_and_a_cut_tail(env):
    app = App()
    _seed(app)
    with app.db.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    with app.db.session() as s:
        rep = audit.verify(s)
    assert (rep.intact, rep.first_broken_seq) == (False, 4) and "缺失" in rep.problem
    other = App(app.settings.model_copy(update={"home": app.settings.home.parent / "h2"}))
    _seed(other)
    with other.db.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    with other.db.session() as s:
        rep = audit.verify(s)
    assert not rep.intact and rep.first_broken_seq == 5 and "截断" in rep.problem
    # and an actor changed on an entry, with its own hash recomputed: the next link breaks
    from kiosk.db.chain import canonical, link
    third = App(app.settings.model_copy(update={"home": app.settings.home.parent / "h3"}))
    _seed(third)
    with third.db.session() as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.seq == 2)).one()
        e.actor = "ADM"
        e.entry_hash = link(e.prev_hash, canonical(e.seq, e.id, e.at, e.actor, e.action, e.subject, e.detail))
    with third.db.session() as s:
        rep = audit.verify(s)
    assert (rep.intact, rep.first_broken_seq) == (False, 3)


def test_entries_written_before_the_chain_are_chained_by_the_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        for i, at in enumerate(["2026-11-01 08:00:00.000000", "2026-11-01 09:00:00.500000",
                                "2026-11-02 10:00:00.000001"]):
            conn.execute(text("INSERT INTO audit_log (id, at, actor, action, subject, detail) "
                              "VALUES (:id, :at, 'S01', 'order.void', :sub, :d)"),
                         {"id": f"e{i}", "at": at, "sub": f"O{i}", "d": json.dumps({"reason": "打错了", "n": i})})
    eng.dispose()
    db = Database(url)
    with db._factory() as s:
        rows = audit.entries_since(s)
        assert [(r.seq, r.id) for r in rows] == [(1, "e0"), (2, "e1"), (3, "e2")]
        assert audit.verify(s).intact
        audit.record(s, "S01", "after.upgrade")
        s.commit()
        assert audit.verify(s).intact and audit.verify(s).entries == 4
    db.dispose()


def test_an_export_into_a_long_folder_is_audited_by_its_file_name(shop, tmp_path):
    """An export's audit entry names the file; the whole path (as long as KIOSK_HOME or a
    USB stick's mount point makes it, here over the subject's 100 characters) is in the
    detail, and the export succeeds (it failed with 'audit_log.subject 太长' before)."""
    from kiosk.terminal.counter import KioskService

    folder = tmp_path / ("一个很长的文件夹名称_" * 6) / "exports"
    path = folder / "orders-today.csv"
    assert len(str(path)) > audit.SUBJECT_MAX
    out = KioskService(shop).records.export_today_csv(path, "S01")
    assert out == path and path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")[:2] == ["订单号", "时间"]
    with shop.db.session() as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == "orders.export")).one()
        assert (e.actor, e.subject, e.detail["path"]) == ("S01", "orders-today.csv", str(path))
        long_name = "x" * 150 + ".csv"
        f = audit.record_file(s, "S01", "report.monthly", folder / long_name)
        assert f.subject == long_name[-audit.SUBJECT_MAX:] and f.subject.endswith(".csv")
