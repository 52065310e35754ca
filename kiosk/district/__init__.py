"""The district server: an HTTP API over the district database (docs/district.md)."""
