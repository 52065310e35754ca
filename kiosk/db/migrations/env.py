"""Alembic environment: uses the connection handed over by kiosk.db.session.upgrade,
or KIOSK_DATABASE_URL / the default SQLite file when run from the alembic CLI."""
from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from kiosk.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    from kiosk.config import get_settings

    url = config.get_main_option("sqlalchemy.url") or get_settings().db_url
    engine = engine_from_config({"sqlalchemy.url": url}, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run()
