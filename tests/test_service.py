"""`kiosk service install`: the systemd units as printed, and as written to a folder
given for the test (systemctl is never called for a folder other than /etc/systemd/system)."""
from __future__ import annotations

import configparser
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

KIOSK = [sys.executable, "-m", "kiosk.cli.main"]


def _run(args, env_extra: dict | None = None, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(KIOSK + args, capture_output=True, text=True, env=env, timeout=60)


def _unit(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(text)
    return cp


def _environment(text: str) -> dict[str, str]:
    return dict(line.split("=", 2)[1:] for line in text.splitlines() if line.startswith("Environment="))


def test_printed_terminal_unit_starts_the_kiosk_under_a_bare_x_server_and_restarts_it(env):
    r = _run(["service", "install", "--terminal", "--print", "--json", "--user", "canteen"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["unit"] == "kiosk-terminal.service"
    u = _unit(out["text"])
    svc = u["Service"]
    start = shlex.split(svc["ExecStart"])
    # xinit CLIENT -- SERVER: the client is this installation's kiosk with `run`, by absolute path
    assert Path(start[0]).name == "xinit" and start[0].startswith("/")
    sep = start.index("--")
    client, server = start[1:sep], start[sep + 1:]
    assert client[-1] == "run" and Path(client[0]).is_absolute() and Path(client[0]).exists()
    assert client[:-1] in ([str(Path(sys.executable).absolute().parent / "kiosk")],
                           [str(Path(sys.executable).absolute()), "-m", "kiosk.cli.main"])
    assert Path(server[0]).name == "Xorg" and ":0" in server and "vt1" in server
    assert svc["Restart"] == "always" and svc["User"] == "canteen" and svc["PAMName"] == "login"
    assert svc["TTYPath"] == "/dev/tty1"
    assert u["Unit"]["StartLimitIntervalSec"] == "0"           # never given up on, however often it dies
    envs = _environment(out["text"])
    assert envs["KIOSK_HOME"] == str(env.absolute()) and envs["QT_QPA_PLATFORM"] == "xcb"
    assert svc["EnvironmentFile"] == "-/etc/kiosk/terminal.env"
    assert u["Install"]["WantedBy"] == "graphical.target"
    assert "getty@tty1.service" in u["Unit"]["Conflicts"]


def test_printed_server_unit_runs_the_server_with_its_workers(env, tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    r = _run(["service", "install", "--server", "--print", "--json", "--user", "kiosk", "--workers", "3",
              "--host", "0.0.0.0", "--port", "8443", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])
    assert r.returncode == 0, r.stderr
    text = json.loads(r.stdout)["text"]
    svc = _unit(text)["Service"]
    start = shlex.split(svc["ExecStart"])
    i = start.index("server")
    assert Path(start[0]).is_absolute() and Path(start[0]).exists()
    assert start[i + 1:] == ["--host", "0.0.0.0", "--port", "8443", "--workers", "3",
                             "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    assert svc["Restart"] == "always" and svc["User"] == "kiosk" and svc["UMask"] == "0077"
    assert _environment(text)["KIOSK_HOME"] == str(env.absolute()) and svc["ReadWritePaths"] == str(env.absolute())
    assert _unit(text)["Install"]["WantedBy"] == "multi-user.target"
    assert _unit(text)["Unit"]["StartLimitIntervalSec"] == "0"


def test_install_writes_unit_and_private_env_file_to_the_given_folder_without_systemctl(env, tmp_path):
    units, envf = tmp_path / "units", tmp_path / "etc" / "server.env"
    # a systemctl that records being called: it must not be, for a folder given for tests
    fake = tmp_path / "bin"
    fake.mkdir()
    called = tmp_path / "systemctl-called"
    (fake / "systemctl").write_text(f"#!/bin/sh\ntouch {called}\n")
    (fake / "systemctl").chmod(0o755)
    r = _run(["service", "install", "--server", "--json", "--user", "kiosk", "--unit-dir", str(units),
              "--env-file", str(envf)],
             env_extra={"KIOSK_DATABASE_URL": "postgresql+psycopg://kiosk:s3cret@db/kiosk"},
             path=f"{fake}:{os.environ['PATH']}")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out == {"unit": str(units / "kiosk-server.service"), "env_file": str(envf), "env_file_written": True,
                   "enabled": False}
    printed = _run(["service", "install", "--server", "--print", "--json", "--user", "kiosk",
                    "--env-file", str(envf)])
    assert (units / "kiosk-server.service").read_text() == json.loads(printed.stdout)["text"]
    assert "KIOSK_DATABASE_URL=postgresql+psycopg://kiosk:s3cret@db/kiosk" in envf.read_text()
    assert stat.S_IMODE(envf.stat().st_mode) == 0o600
    assert not called.exists()
    # a second install keeps the environment file someone may have edited
    envf.write_text("KIOSK_DATABASE_URL=edited\n")
    r = _run(["service", "install", "--server", "--json", "--user", "kiosk", "--unit-dir", str(units),
              "--env-file", str(envf)])
    assert json.loads(r.stdout)["env_file_written"] is False and envf.read_text() == "KIOSK_DATABASE_URL=edited\n"


@pytest.mark.parametrize("args, says", [(["--user", "root"], "root"),
                                        (["--ssl-certfile", "c.pem"], "--ssl-keyfile")])
def test_install_refuses_root_and_half_tls(env, tmp_path, args, says):
    r = _run(["service", "install", "--server", "--unit-dir", str(tmp_path)] + (["--user", "kiosk"] if args[0] != "--user" else []) + args)
    assert r.returncode == 2 and says in r.stderr
    assert list(tmp_path.iterdir()) == []
