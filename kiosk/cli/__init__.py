"""Command line: `kiosk ...`."""
