"""Store: SQLAlchemy 2 models, sessions and Alembic migrations; the audit log (audit)
and who may do what (permissions), below the services so that every layer uses them."""
