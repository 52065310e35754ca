"""Model packs: the manifest of face-model files the kiosk may install."""
from pathlib import Path

MANIFEST_PATH = Path(__file__).with_name("manifest.yaml")
