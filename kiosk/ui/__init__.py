"""The kiosk's screens (PySide6). They call kiosk.services only."""
