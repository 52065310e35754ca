"""Engine and sessions. SQLite runs in WAL mode; PostgreSQL through
KIOSK_DATABASE_URL. The schema is brought to head by Alembic at open."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError, StorageError

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
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


class Database:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

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
        except OperationalError as exc:
            s.rollback()
            raise StorageError(detail=f"{type(exc.orig).__name__}: {exc.orig}") from exc
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()
