"""What gets installed, per role (README: Install).

* Each deployable imports without the other role's libraries: a Python with the other
  role's packages blocked (a meta-path hook that refuses them, as if never installed)
  imports every module of the role, and runs a real command of it.
* The wheel holds nothing but ``kiosk/`` (enrollment/ and models/ inside it), with the
  model manifest and the console's templates.
* The extras of pyproject.toml say the same as the hook: the server's extra holds no Qt,
  the terminal's no web server.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# the libraries only one role installs (the import names of pyproject's extras)
TERMINAL_ONLY = ("PySide6", "shiboken6", "pypinyin", "cn2an", "jieba", "httpx")
SERVER_ONLY = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "jinja2", "multipart",
               "python_multipart", "reportlab", "psycopg", "psycopg_binary", "argon2",
               "_argon2_cffi_bindings", "prometheus_client")

# every module a role's process may import, by package prefix
CORE_PREFIXES = ("kiosk.errors", "kiosk.money", "kiosk.timeutil", "kiosk.limits", "kiosk.idcard",
                 "kiosk.config", "kiosk.datadir", "kiosk.db", "kiosk.billing", "kiosk.vision",
                 "kiosk.services", "kiosk.enrollment", "kiosk.models", "kiosk.cli")
TERMINAL_PREFIXES = CORE_PREFIXES + ("kiosk.terminal", "kiosk.ui")
SERVER_PREFIXES = CORE_PREFIXES + ("kiosk.district",)

BLOCKER = r'''
import importlib, importlib.abc, json, os, pkgutil, sys
BLOCKED = set(json.loads(os.environ["BLOCKED_LIBS"]))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in this role)", name=name)
        return None
for m in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
    del sys.modules[m]
sys.meta_path.insert(0, Blocker())
'''

WALK = BLOCKER + r'''
import kiosk, kiosk.enrollment, kiosk.models
prefixes = tuple(json.loads(os.environ["PREFIXES"]))
names = set()
for pkg in (kiosk, kiosk.enrollment, kiosk.models):
    names.add(pkg.__name__)
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        names.add(info.name)
failed, done = {}, []
for name in sorted(names):
    if not name.startswith(prefixes) or name.startswith("kiosk.bench"):
        continue
    try:
        importlib.import_module(name)
        done.append(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
leaked = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
print(json.dumps({"imported": done, "failed": failed, "leaked": leaked}))
'''

CLI = BLOCKER + r'''
from kiosk.cli.main import main
sys.argv = ["kiosk"] + json.loads(os.environ["KIOSK_ARGS"])
main()
'''


def _env(blocked: tuple[str, ...], tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update(BLOCKED_LIBS=json.dumps(blocked), KIOSK_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen", **extra)
    return env


def _walk(blocked: tuple[str, ...], prefixes: tuple[str, ...], tmp_path: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, timeout=240,
                       env=_env(blocked, tmp_path, PREFIXES=json.dumps(prefixes)))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _cli(blocked: tuple[str, ...], tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI], capture_output=True, text=True, timeout=240,
                          env=_env(blocked, tmp_path, KIOSK_ARGS=json.dumps(list(args)), **extra))


def test_blocker_really_blocks(tmp_path):
    """The hook itself: a blocked library cannot be imported, so the role tests can fail."""
    code = BLOCKER + "import fastapi\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=_env(("fastapi",), tmp_path))
    assert r.returncode != 0 and "blocked: not in this role" in r.stderr
    # and a district module cannot be imported with the server's libraries blocked
    out = _walk(SERVER_ONLY, ("kiosk.district.app",), tmp_path)
    assert "kiosk.district.app" in out["failed"]


def test_server_role_imports_without_qt(tmp_path):
    out = _walk(TERMINAL_ONLY, SERVER_PREFIXES, tmp_path)
    assert out["failed"] == {}
    assert out["leaked"] == []
    assert {"kiosk.district.app", "kiosk.district.console.pages.reports", "kiosk.district.domain.push",
            "kiosk.services.pdf", "kiosk.cli.main"} <= set(out["imported"])


def test_terminal_role_imports_without_web_server(tmp_path):
    out = _walk(SERVER_ONLY, TERMINAL_PREFIXES, tmp_path)
    assert out["failed"] == {}
    assert out["leaked"] == []
    assert {"kiosk.ui.main_window", "kiosk.ui.app", "kiosk.terminal.counter", "kiosk.terminal.demo",
            "kiosk.terminal.sync.client", "kiosk.services.faces", "kiosk.cli.main"} <= set(out["imported"])


def test_server_role_commands_without_qt(tmp_path):
    """A district server's own commands run with Qt and the sync client absent."""
    r = _cli(TERMINAL_ONLY, tmp_path, "canteen", "set", "--name", "长寿食堂一号")
    assert r.returncode == 0, r.stderr[-2000:]
    r = _cli(TERMINAL_ONLY, tmp_path, "server", "terminal", "add", "C1", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["canteen_id"] == "C1"
    r = _cli(TERMINAL_ONLY, tmp_path, "report", "monthly", "--month", "2026-11", "--json")
    assert r.returncode == 0, r.stderr[-2000:]


def test_terminal_role_commands_without_web_server(tmp_path):
    """A counter terminal's commands run with FastAPI, reportlab and psycopg absent."""
    r = _cli(SERVER_ONLY, tmp_path, "staff", "add", "A1", "--name", "管理员", "--role", "admin",
             "--pin", "888888", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    r = _cli(SERVER_ONLY, tmp_path, "staff", "list", "--json")
    assert r.returncode == 0 and "A1" in r.stdout, r.stderr[-2000:]
    r = _cli(SERVER_ONLY, tmp_path, "sync-status", "--json",
             KIOSK_SERVER_URL="http://127.0.0.1:9", KIOSK_SERVER_TOKEN="t" * 32)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pending" in json.loads(r.stdout)


def _extras() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"core": data["dependencies"], **data["optional-dependencies"]}


def _names(reqs: list[str]) -> set[str]:
    import re
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in reqs}


def test_extras_split_by_role():
    ex = _extras()
    core, term, serv = _names(ex["core"]), _names(ex["terminal"]), _names(ex["server"])
    qt = {"pyside6", "pyside6-essentials"}
    web = {"fastapi", "uvicorn", "reportlab", "jinja2", "python-multipart", "psycopg", "argon2-cffi"}
    assert not (core | serv) & qt, "the server installs no Qt"
    assert not (core | term) & web, "the terminal installs no web server"
    assert qt & term and web <= serv
    # one machine: both roles
    assert any("terminal" in r and "server" in r for r in ex["all"])


@pytest.mark.slow
def test_wheel_holds_only_kiosk(tmp_path):
    """pip wheel: one top-level package, kiosk; enrollment and models inside it, with the
    model manifest and the console's templates."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "-q", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(whl).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"kiosk"}, tops
    assert "kiosk/models/manifest.yaml" in names
    assert "kiosk/enrollment/batch.py" in names
    templates = {n.rsplit("/", 1)[1] for n in names if n.startswith("kiosk/district/console/templates/")}
    expected = {p.name for p in (ROOT / "kiosk/district/console/templates").iterdir() if p.is_file()}
    assert expected and templates == expected
    assert any(n.startswith("kiosk/db/migrations/versions/") for n in names)


def _check_shared_libs(venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / ".ci" / "check_shared_libs.py"), str(venv)],
                          capture_output=True, text=True, timeout=120)


def test_shared_library_check_names_a_missing_library(tmp_path):
    """install.sh ends with .ci/check_shared_libs.py: a library the machine lacks (as
    libatomic.so.1 for Playwright's node driver on a bare Debian) fails the install, named
    with the file that needs it. Shown on a real extension module of this venv whose
    DT_NEEDED entry libm.so.6 is renamed to a library no machine has."""
    site = Path(sys.prefix)
    donor = None
    for p in sorted(site.rglob("*.so")):
        if p.is_file() and not p.is_symlink() and p.stat().st_size < 2_000_000 and b"libm.so.6\0" in p.read_bytes():
            donor = p
            break
    assert donor is not None, "no extension module needing libm.so.6 in this venv"
    fake = tmp_path / "venv" / "lib" / "site-packages" / "pkg"
    fake.mkdir(parents=True)
    (fake / "good.so").write_bytes(donor.read_bytes())
    r = _check_shared_libs(tmp_path / "venv")
    assert r.returncode == 0, r.stdout + r.stderr

    (fake / "bad.so").write_bytes(donor.read_bytes().replace(b"libm.so.6\0", b"libQ.so.6\0", 1))
    r = _check_shared_libs(tmp_path / "venv")
    assert r.returncode == 1
    assert "libQ.so.6" in r.stderr and "pkg/bad.so" in r.stderr and "APT_PKGS in install.sh" in r.stderr
    assert "good.so" not in r.stderr


def test_install_sh_runs_the_check_and_installs_libatomic_for_tests():
    """The README's test command is `bash install.sh --test && pytest`: the shared-library
    check is in that path, and the test role installs libatomic1 (Playwright's node)."""
    text = (ROOT / "install.sh").read_text(encoding="utf-8")
    assert ".ci/check_shared_libs.py .venv" in text
    test_line = next(line for line in text.splitlines() if line.startswith("if [ $TEST -eq 1 ]; then APT_PKGS+="))
    assert "libatomic1" in test_line and "chromium" in test_line
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "bash install.sh --test && .venv/bin/python -m pytest -q"
    assert command in readme and command in ci
