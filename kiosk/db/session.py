"""Engine and sessions. SQLite runs in WAL mode; PostgreSQL through
KIOSK_DATABASE_URL. The schema is brought to head by Alembic at open.

Deleted data is overwritten on SQLite (``secure_delete`` on every connection), and
``Database.scrub`` checkpoints and truncates the WAL so deleted bytes leave it too.

A full disk: SQLite in WAL mode cannot even open the store then (the wal-index, the
``-shm`` file, is made anew when the first connection opens it and needs 32 KB). When
the store's folder is full and the WAL holds nothing the database file lacks, the
store opens read-only (``immutable``: the database file alone, no -shm): balances,
identification, reports and sync status still read, and every write is refused with
DiskFullError (存储空间不足) before anything is written.
Database errors become KioskErrors that say what happened (busy: try again; disk
full; a value too long or with a NUL character, naming the field), and text values
are checked against their column's length before the database sees them, so SQLite
and PostgreSQL refuse the same things."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from sqlalchemy import String, create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql import Select
from sqlalchemy.orm import Session, sessionmaker

from kiosk.errors import ConfigError, DiskFullError, StorageError, StoreBusyError, ValidationError

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA secure_delete=ON")      # deleted rows (face templates) are overwritten
    cur.close()
    # SQLAlchemy, not the driver, begins transactions (see _sqlite_begin): the driver's own
    # handling starts them only at the first write, so reads before it saw no snapshot
    dbapi_conn.isolation_level = None


WRITE_LOCK = "kiosk_write_lock"
READ_ONLY = "kiosk_read_only"


def _sqlite_begin(conn) -> None:
    """Every unit of work is a real transaction; one that asked for the write lock takes it
    at the start (BEGIN IMMEDIATE), so two processes that settle a meal for one resident at
    once run one after the other and the second sees the first's subsidy (on PostgreSQL a
    row lock on the resident does this). A read-only unit (a quote) runs without one: each
    read sees the newest commit, and it saves a BEGIN and a COMMIT per call."""
    opts = conn.get_execution_options()
    if opts.get(READ_ONLY):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if opts.get(WRITE_LOCK) else "BEGIN")


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL (None for PostgreSQL or an in-memory store)."""
    if not url.startswith("sqlite"):
        return None
    db_path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(db_path) if db_path and db_path != ":memory:" else None


# below this much free space a folder counts as full: SQLite's wal-index alone needs 32 KB
DISK_FULL_BYTES = 1 << 20


def disk_is_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < DISK_FULL_BYTES


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            try:
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"无法创建数据目录：{Path(db_path).parent}", detail=str(exc)) from None
        eng = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(eng, "connect", _sqlite_pragmas)
        event.listen(eng, "begin", _sqlite_begin)
        return eng
    return create_engine(url, pool_pre_ping=True)


def _read_only_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    dbapi_conn.isolation_level = None


def _read_only_begin(conn) -> None:
    if conn.get_execution_options().get(WRITE_LOCK):
        raise DiskFullError(detail="the store's disk is full: opened read-only, no write lock is taken")
    conn.exec_driver_sql("BEGIN")


def open_read_only(db_file: Path) -> Engine:
    """The store on a full disk: the database file alone, read-only. Refused (DiskFullError)
    when the WAL holds commits the database file lacks (reading the file alone would show
    an older store)."""
    wal = db_file.with_name(db_file.name + "-wal")
    try:
        wal_bytes = wal.stat().st_size
    except FileNotFoundError:
        wal_bytes = 0
    if wal_bytes > 0:
        raise DiskFullError("存储空间不足，数据库无法打开，请联系管理员清理磁盘",
                            detail=f"{db_file.parent} is full and {wal.name} holds {wal_bytes} bytes not yet "
                                   "in the database file: it cannot be read without space for the wal-index")
    url = f"sqlite:///file:{quote(str(db_file))}?mode=ro&immutable=1&uri=true"
    eng = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(eng, "connect", _read_only_pragmas)
    event.listen(eng, "begin", _read_only_begin)
    return eng


def _at_head(engine: Engine) -> bool:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(ScriptDirectory.from_config(cfg).get_heads())


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (keeps data)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise ConfigError("无法打开数据库", detail=f"{engine.url!r}: {exc}") from None


# what the person at the counter calls a column (messages name the field)
FIELD_ZH = {"name": "姓名", "id_number": "身份证号", "hukou": "户籍", "phone": "联系电话", "card_no": "卡号",
            "emergency_contact": "紧急联系人", "dish_id": "菜品编号", "category": "类别", "meal": "餐次",
            "reason": "原因", "note": "备注", "payer": "付款人", "idempotency_key": "请求编号（idempotency key）",
            "staff_id": "工号", "guardian_name": "监护人姓名", "district": "区", "subject": "对象",
            "actor": "操作人", "action": "操作", "tier": "补贴档次", "resident_id": "居民编号"}
TABLE_ZH = {"residents": "居民", "menu_items": "菜单", "staff": "工作人员", "orders": "订单",
            "canteens": "食堂", "face_consents": "人脸授权", "ledger_entries": "账目", "order_voids": "作废记录",
            "subsidy_policies": "补贴政策", "audit_log": "审计记录"}


def field_label(table: str, column: str) -> str:
    return f"{TABLE_ZH.get(table, table)}的{FIELD_ZH.get(column, column)}（{table}.{column}）"


def _check_values(session: Session, _ctx, _instances) -> None:
    """Before a flush: every text value fits its column and holds no NUL character."""
    for obj in list(session.new) + list(session.dirty):
        mapper = inspect(obj).mapper
        table = mapper.local_table.name
        for col in mapper.columns:
            if not isinstance(col.type, String):
                continue
            value = getattr(obj, mapper.get_property_by_column(col).key, None)
            if not isinstance(value, str):
                continue
            if "\x00" in value:
                raise ValidationError(f"{field_label(table, col.name)}含有不允许的空字符（NUL），请删掉后重试",
                                      detail=f"{table}.{col.name}: NUL character in {value[:40]!r}")
            if col.type.length is not None and len(value) > col.type.length:
                raise ValidationError(f"{field_label(table, col.name)}太长：最多 {col.type.length} 个字符，"
                                      f"这里有 {len(value)} 个",
                                      detail=f"{table}.{col.name}: {len(value)} > {col.type.length} characters")


event.listen(Session, "before_flush", _check_values)


def map_db_error(exc: DBAPIError, db_file: Path | None = None, disk_full: bool = False) -> Exception:
    """A database error as a KioskError that says what happened. ``disk_full``: the store
    was opened read-only because its disk is full, so a refused write is DiskFullError;
    ``db_file``: an I/O error while the store's folder is full is DiskFullError too."""
    orig = exc.orig
    msg = str(orig)
    low = msg.lower()
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    detail = f"{type(orig).__name__}: {msg}".strip()
    if disk_full and ("readonly" in low or "read-only" in low or "attempt to write" in low):
        return DiskFullError(detail=f"{detail} (the disk is full: the store is open read-only)")
    if "disk i/o error" in low and db_file is not None and disk_is_full(db_file.parent):
        return DiskFullError(detail=f"{detail} ({db_file.parent} is full)")
    if ("database is locked" in low or "database table is locked" in low or "database is busy" in low
            or code in ("40001", "40P01", "55P03")):
        return StoreBusyError(detail=detail)
    if "disk is full" in low or "disk full" in low or code == "53100" or "no space left" in low:
        return DiskFullError(detail=detail)
    if "nul (0x00)" in low or "0x00" in low:
        return ValidationError("文字中含有不允许的空字符（NUL），请删掉后重试", detail=detail)
    if code == "22001" or "value too long" in low:
        col = ""
        m = getattr(getattr(orig, "diag", None), "column_name", None)
        if m:
            col = f"「{m}」"
        return ValidationError(f"有一项内容{col}太长，超过了数据库允许的长度", detail=detail)
    if isinstance(exc, IntegrityError) and "idempotency_key" in low:
        return StoreBusyError("同一请求编号的订单正在另一处结算，请稍后再试", detail=detail)
    if isinstance(exc, IntegrityError):
        return ValidationError("与已保存的记录冲突（编号重复），本次操作未生效", detail=detail)
    if isinstance(exc, DataError):
        return ValidationError("数据格式不被数据库接受，本次操作未生效", detail=detail)
    return StorageError("数据库不可用或保存失败，本次操作未生效，请联系管理员", detail=detail)


class PreparedRead:
    """One SELECT, compiled once for the store's dialect and run straight on a DB-API
    connection this thread keeps for reads: no ORM session, no pool checkout, no
    per-call compilation (the checkout quote). On SQLite the connection is in autocommit
    mode, so no transaction is begun and each call sees the newest commit (like a
    ``read_only`` unit); elsewhere the read's transaction is ended after each call.
    Parameters are converted and rows decoded by the columns' own SQLAlchemy types, so
    dates and JSON come back as they do through the ORM."""

    def __init__(self, db: "Database", stmt: Select) -> None:
        dialect = db.engine.dialect
        compiled = stmt.compile(dialect=dialect)
        self._db = db
        self._sql = compiled.string
        self._order = list(compiled.positiontup or ()) if compiled.positional else None
        self._defaults = {name: b.effective_value for name, b in compiled.binds.items() if not b.required}
        self._convert = {name: proc for name, b in compiled.binds.items()
                         if (proc := b.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        self._decode = [(i, proc) for i, col in enumerate(stmt.selected_columns)
                        if (proc := col.type.dialect_impl(dialect).result_processor(dialect, None)) is not None]
        self._dbapi_error = dialect.loaded_dbapi.Error
        self._end_read = dialect.name != "sqlite"

    def first(self, **params: Any) -> tuple | None:
        """The first row (decoded), or None."""
        values = {**self._defaults, **params}
        for name, proc in self._convert.items():
            values[name] = proc(values[name])
        args = [values[n] for n in self._order] if self._order is not None else values
        conn = self._db.read_connection()
        try:
            cur = conn.cursor()
            try:
                cur.execute(self._sql, args)
                row = cur.fetchone()
            finally:
                cur.close()
            if self._end_read:
                conn.rollback()
        except self._dbapi_error as exc:
            self._db.drop_read_connection()
            raise map_db_error(DBAPIError.instance(self._sql, args, exc, self._dbapi_error)) from exc
        if row is None or not self._decode:
            return row
        out = list(row)
        for i, proc in self._decode:
            out[i] = proc(out[i])
        return tuple(out)


class Database:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.file = sqlite_file(url)
        self.disk_full = False      # opened read-only because the disk is full (module docstring)
        self.engine = make_engine(url)
        if migrate:
            try:
                upgrade(self.engine)
            except ConfigError:
                if self.file is None or not disk_is_full(self.file.parent):
                    raise
                if not self.file.exists() or self.file.stat().st_size == 0:
                    raise DiskFullError("存储空间不足，无法建立数据库，请联系管理员清理磁盘",
                                        detail=f"{self.file.parent} is full") from None
                self.engine.dispose()
                self.engine = open_read_only(self.file)
                self.disk_full = True
                if not _at_head(self.engine):
                    self.engine.dispose()
                    raise DiskFullError("存储空间不足，数据库需要升级但无法写入，请联系管理员清理磁盘",
                                        detail=f"{self.file.parent} is full and the schema is not at the "
                                               "newest migration") from None
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._reads = threading.local()         # each thread's connection for PreparedRead
        self._read_conns: list = []
        self._read_lock = threading.Lock()

    @contextmanager
    def session(self, write_lock: bool = False, read_only: bool = False) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error. A full disk or
        an unreachable database becomes a StorageError: nothing of the unit is kept.
        ``write_lock``: on SQLite, hold the database's write lock from the start (for
        read-then-write money rules; PostgreSQL uses row locks instead). ``read_only``:
        the unit only reads (on SQLite no transaction is begun; it must not write)."""
        s = self._factory()
        try:
            if write_lock or read_only:
                s.connection(execution_options={WRITE_LOCK: write_lock, READ_ONLY: read_only and not write_lock})
            yield s
            s.commit()
        except (OperationalError, DataError, IntegrityError) as exc:
            s.rollback()
            raise map_db_error(exc, self.file, self.disk_full) from exc
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for one large read of plain rows (no ORM objects: 10^5 rows in about
        two thirds of a session's time); a full disk or an unreachable database becomes a
        StorageError, as in ``session``."""
        try:
            with self.engine.connect() as c:
                yield c
        except (OperationalError, DataError) as exc:
            raise map_db_error(exc, self.file, self.disk_full) from exc

    def prepare(self, stmt: Select) -> PreparedRead:
        """A read run often (see ``PreparedRead``)."""
        return PreparedRead(self, stmt)

    def read_connection(self):
        """This thread's DB-API connection for prepared reads (taken out of the pool once)."""
        conn = getattr(self._reads, "conn", None)
        if conn is None:
            try:
                conn = self.engine.raw_connection()
            except (OperationalError, DBAPIError) as exc:
                raise map_db_error(exc) from exc
            conn.detach()                       # kept by this thread, closed by dispose()
            self._reads.conn = conn
            with self._read_lock:
                self._read_conns.append(conn)
        return conn

    def drop_read_connection(self) -> None:
        """After an error: close this thread's read connection (the next read opens another)."""
        conn = getattr(self._reads, "conn", None)
        self._reads.conn = None
        if conn is not None:
            with self._read_lock:
                if conn in self._read_conns:
                    self._read_conns.remove(conn)
            try:
                conn.close()
            except Exception:       # noqa: BLE001 - a broken connection may fail to close
                pass

    def scrub(self, timeout_s: float = 5.0) -> dict:
        """After an erasure: on SQLite checkpoint the WAL into the database file and
        truncate it (with secure_delete the deleted bytes are zeros in both). Waits for
        readers of other connections up to the busy timeout. On PostgreSQL the deleted
        rows stay in the table files until VACUUM reuses the space (docs: README)."""
        if self.engine.dialect.name != "sqlite":
            return {"dialect": self.engine.dialect.name, "wal_truncated": None}
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as c:
            c.exec_driver_sql(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            busy, log_frames, done = c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        return {"dialect": "sqlite", "wal_truncated": busy == 0, "wal_frames": log_frames,
                "checkpointed": done}

    def dispose(self) -> None:
        with self._read_lock:
            conns, self._read_conns = self._read_conns, []
        for conn in conns:
            try:
                conn.close()
            except Exception:       # noqa: BLE001 - closing what another thread left behind
                pass
        self._reads = threading.local()
        self.engine.dispose()
