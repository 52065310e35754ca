"""The terminal side of the district: outbox, replica, sync client and status
(docs/district.md). Importing this package installs the change tracking on sessions."""
from . import changes  # noqa: F401  (registers the session listeners)
