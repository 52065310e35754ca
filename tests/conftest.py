"""Shared fixtures. Vision tests use the real model packs and real photos that
install.sh fetched from PyPI and Debian (KIOSK_MODEL_DIR); nothing here fakes an embedding.

Optional parts. A test that needs one is marked, and is skipped with the reason when
that part is absent; nothing else is ever skipped here:

* ``insightface``: the insightface package and its model pack (``install.sh --test``).
  Tests parametrized with ``backend="insightface"`` and tests that use the
  ``insightface_images`` fixture get the marker by themselves.
* ``postgres``: psycopg and a PostgreSQL server that the test can start
  (``install.sh --test`` installs both; tests/test_postgres.py starts a throwaway cluster).

In CI (the environment variable ``CI`` set, as ``.ci/run`` has it) nothing is skipped:
a missing optional part there is an install defect, so those tests run and fail."""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("KIOSK_AUDIO", "off")

from kiosk.config import get_settings, load_settings  # noqa: E402
from kiosk.services.security import generate_key  # noqa: E402

# copies of the ../shared/formats examples ship with the package (the demo uses them too),
# so a clone without shared/ still tests them
from kiosk.terminal.demo import FORMATS  # noqa: E402


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
    """Photos of people who are none of the enrolled ones, one face each, every one a
    different person, all with a licence for this use (models/manifest.yaml, samples
    ``strangers``: where each comes from and its licence)."""
    from kiosk.vision.modelpacks import get_pack, verify_pack

    files = verify_pack(model_dir(), "strangers", section="samples")
    expected = len(get_pack("strangers", "samples").files)
    assert len(files) == expected >= 3, f"expected {expected} stranger photos; run `kiosk models samples`"
    return [files[role] for role in sorted(files)]


# -- optional parts: markers and the reason a marked test is skipped -----------------------

@lru_cache(maxsize=None)
def insightface_missing() -> str | None:
    """Why the insightface backend cannot run here, or None when it can."""
    if importlib.util.find_spec("insightface") is None:
        return "the insightface package is not installed (bash install.sh --test installs it)"
    from kiosk.errors import ModelError
    from kiosk.vision.modelpacks import verify_pack

    try:
        verify_pack(model_dir(), "insightface", full_hash=False)
    except ModelError as exc:
        return f"the insightface model pack is not installed: {exc.detail}"
    return None


@lru_cache(maxsize=None)
def postgres_missing() -> str | None:
    """Why a throwaway PostgreSQL server cannot be started here, or None (the bench's check)."""
    from kiosk.bench.pgcluster import postgres_missing as why

    return why()


OPTIONAL_PARTS = {"insightface": insightface_missing, "postgres": postgres_missing}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if ((callspec is not None and callspec.params.get("backend") == "insightface")
                or "insightface_images" in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.insightface)
        if os.environ.get("CI"):
            continue         # in CI every optional part must be there: run, and fail if it is not
        for name, missing in OPTIONAL_PARTS.items():
            if item.get_closest_marker(name) is not None:
                reason = missing()
                if reason is not None:
                    item.add_marker(pytest.mark.skip(reason=f"{name}: {reason}"))


@pytest.fixture(scope="session")
def insightface_images() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images"


# How long a UI test waits by default for what the kiosk does on its worker threads (an
# export, a model's first load, a check). pytest-qt's own default is 5 s; the suite runs on two
# workers on 2 cores, where such a step can take longer. A wait returns as soon as its condition
# holds, so a longer limit changes only how long a real failure takes to be reported.
UI_WAIT_MS = 30_000


@pytest.fixture
def qtbot(qtbot):
    """pytest-qt's qtbot, its waitUntil's default limit ``UI_WAIT_MS``."""
    wait_until = qtbot.waitUntil

    def patient(callback, *, timeout: int = UI_WAIT_MS) -> None:
        wait_until(callback, timeout=timeout)

    qtbot.waitUntil = patient
    return qtbot


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
    """The example roster, menu (2026-11-23 lunch) and policy, with an admin (ADM, PIN
    246810), a staff member (S01, 1234) and a supervisor (SUP, 5678). Staff act through
    ``staff_actor(app, "S01")`` (their PIN verified, kiosk.services.auth)."""
    from kiosk.services.importing import import_menu, import_policy, import_roster

    import_roster(app, formats / "roster.example.csv")
    import_menu(app, formats / "menu.example.csv")
    import_policy(app, formats / "policy.example.yaml")
    add_test_staff(app)
    return app


STAFF_PINS = {"ADM": "246810", "S01": "1234", "SUP": "5678"}


_STAFF_ROWS = (("ADM", "赵管理", "admin"), ("S01", "李姐", "staff"), ("SUP", "王主管", "supervisor"))
_PIN_HASHES: dict[str, str] = {}


def add_test_staff(app) -> None:
    """The test staff as rows, their Argon2id hashes made once per test session (each
    hash costs ~0.15 s on purpose; adding staff through the rules is tested in
    tests/test_security.py)."""
    from kiosk.db.models import Staff
    from kiosk.services.security import hash_pin

    with app.db.session() as s:
        for sid, name, role in _STAFF_ROWS:
            if sid not in _PIN_HASHES:
                _PIN_HASHES[sid] = hash_pin(STAFF_PINS[sid])
            s.add(Staff(id=sid, name=name, role=role, pin_hash=_PIN_HASHES[sid]))


# console passwords (the district server's proof; kiosk.district.domain.passwords)
STAFF_PASSWORDS = {"ADM": "adm-console-246810", "SUP": "sup-console-5678"}
_PASSWORD_HASHES: dict[str, str] = {}


def add_test_passwords(app, ids=("ADM", "SUP")) -> None:
    """Console passwords of test staff as rows (hashes made once per test session)."""
    from kiosk.db.models import StaffPassword
    from kiosk.district.domain.passwords import hash_password

    with app.db.session() as s:
        for sid in ids:
            if sid not in _PASSWORD_HASHES:
                _PASSWORD_HASHES[sid] = hash_password(STAFF_PASSWORDS[sid])
            s.add(StaffPassword(staff_id=sid, password_hash=_PASSWORD_HASHES[sid], set_by="test"))


def staff_actor(app, staff_id: str = "S01"):
    """A test staff member proven by PIN, to pass to the services as ``actor``."""
    return app.auth.verify(staff_id, STAFF_PINS[staff_id])
