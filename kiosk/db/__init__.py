"""Store: SQLAlchemy 2 models, sessions and Alembic migrations; the audit log (audit)
and who may do what (permissions), below the services so that every layer uses them.

Importing the store installs its change tracking on every session (``changes``: the
district server's change log, a terminal's outbox rows), so no program can write
district records without it."""
from kiosk.db import changes  # noqa: F401  (registers the session listeners)
