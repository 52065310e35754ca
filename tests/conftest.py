"""Shared fixtures. Vision tests use the real model packs and real photos that
install.sh fetched from PyPI (KIOSK_MODEL_DIR); nothing here fakes an embedding."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("KIOSK_AUDIO", "off")

from kiosk.config import get_settings, load_settings  # noqa: E402
from kiosk.services.security import generate_key  # noqa: E402

# copies of the ../shared/formats examples ship with the package (the demo uses them too),
# so a clone without shared/ still tests them
from kiosk.demo import FORMATS  # noqa: E402


def model_dir() -> Path:
    return load_settings().model_dir


def sample(set_name: str, name: str) -> Path:
    p = model_dir() / "samples" / set_name / name
    if not p.is_file():
        raise FileNotFoundError(f"{p} missing: run `kiosk models samples` (install.sh does)")
    return p


@pytest.fixture(scope="session")
def obama() -> list[Path]:
    return [sample("face_recognition", f) for f in ("obama.jpg", "obama2.jpg", "obama3.jpg")]


@pytest.fixture(scope="session")
def biden() -> Path:
    return sample("face_recognition", "biden.jpg")


@pytest.fixture(scope="session")
def strangers() -> list[Path]:
    d = model_dir() / "samples" / "strangers"
    files = sorted(d.glob("*.jpg"))
    assert len(files) == 12, f"expected 12 stranger photos in {d}; run `kiosk models samples`"
    return files


@pytest.fixture(scope="session")
def insightface_images() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh KIOSK_HOME with its own template key."""
    home = tmp_path / "home"
    monkeypatch.setenv("KIOSK_HOME", str(home))
    monkeypatch.setenv("KIOSK_TEMPLATE_KEY", generate_key())
    monkeypatch.delenv("KIOSK_DATABASE_URL", raising=False)
    monkeypatch.delenv("KIOSK_BACKEND", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


_ENGINES: dict = {}


def shared_engine(backend: str):
    if backend not in _ENGINES:
        from kiosk.vision.engine import create_engine

        _ENGINES[backend] = create_engine(backend, model_dir())
    return _ENGINES[backend]


@pytest.fixture
def app(env):
    from kiosk.services.context import App

    a = App(load_settings(), engine=shared_engine("sface"))
    yield a
    a.close()


def make_app(backend: str = "sface"):
    from kiosk.services.context import App

    return App(load_settings(backend=backend), engine=shared_engine(backend))


@pytest.fixture
def formats() -> Path:
    return FORMATS


@pytest.fixture
def shop(app, formats):
    """The example roster, menu (2026-11-23 lunch) and policy, with a staff member and a supervisor."""
    from kiosk.services.importing import import_menu, import_policy, import_roster

    import_roster(app, formats / "roster.example.csv")
    import_menu(app, formats / "menu.example.csv")
    import_policy(app, formats / "policy.example.yaml")
    app.residents.add_staff("S01", "李姐", "staff", "1234")
    app.residents.add_staff("SUP", "王主管", "supervisor", "5678")
    return app
