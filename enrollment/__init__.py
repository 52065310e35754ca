"""Staff enrollment: consent, capture, batch import of photos, duplicate checks."""
