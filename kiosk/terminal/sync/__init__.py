"""The terminal side of the district: outbox, replica, sync client and status
(docs/district.md). The change tracking they rely on is the store's (kiosk.db.changes)."""
