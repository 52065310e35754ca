"""`kiosk bench` benchmarks the backends that are installed and names the others with
the reason; tests/conftest.py skips a test that needs an absent optional part (with the
reason) and fails everything else. Behaviour, not timing: no figure is asserted."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.cli.main import main

from tests.conftest import model_dir

REPO = Path(__file__).resolve().parents[1]


def _without_insightface(monkeypatch) -> None:
    """As on a machine where the insightface package is not installed: every import of
    it (or of a module inside it) raises ModuleNotFoundError."""
    for name in [n for n in sys.modules if n == "insightface" or n.startswith("insightface.")] or ["insightface"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "insightface", None)


def test_bench_quick_json_skips_a_backend_whose_package_is_missing(env, monkeypatch, capsys):
    _without_insightface(monkeypatch)
    # every section but the district server's (a PostgreSQL cluster and 20 terminals:
    # tests/test_district.py covers that server)
    assert main(["bench", "--quick", "--json", "--sections", "frames,identity,search,billing,rebuild"]) == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    assert r["backends"]["benchmarked"] == ["sface"]
    why = r["backends"]["skipped"]["insightface"]
    assert "insightface" in why and "not installed" in why
    # every section ran, for the installed backend only
    assert set(r["frame_ms"]) == {"sface"} and set(r["identity_decided_ms"]) == {"sface"}
    for size in ("640x480", "1280x720"):
        f = r["frame_ms"]["sface"][size]
        assert f["n"] == 10 and f["p50"] > 0 and f["match_status"] == "matched"
    ident = r["identity_decided_ms"]["sface"]
    runs = ident["runs"]
    assert {x["expected"] for x in runs} == {"OBAMA", "BIDEN", "unknown"}
    # the kiosk's own tracker decided every video, and decided right
    assert all(x["state"] in ("identified", "unknown") and x["ms"] is not None for x in runs), runs
    assert ident["enrolled_identified"]["wrong"] == 0 and ident["stranger_unknown"]["wrong"] == 0
    assert ident["live_clips"] == {"skipped": "--quick"}
    # the kiosk's voting as it runs: two strong frames or three agreeing ones; the worker at
    # camera rate while a face waits
    assert ident["strong_votes"] == 2 and ident["strong_score"] == 0.65 and ident["worker_hurry_fps"] > 12
    # the figures are printed for a person to read, from the same result
    lines = captured.err.splitlines()
    for size in ("640x480", "1280x720"):
        f = r["frame_ms"]["sface"][size]
        assert any(ln.startswith("per frame  sface") and size in ln and f"p50 {f['p50']:6.1f} ms" in ln for ln in lines)
    e = ident["enrolled_identified"]
    assert any("enrolled -> identified" in ln and f"p50 {e['p50']:6.0f} ms" in ln for ln in lines)
    assert any("strangers -> unknown" in ln for ln in lines)
    assert r["search_ms"]["10000"]["recall_at_1"] == 1.0
    assert r["billing"]["quotes"] == 500 and set(r["gallery_rebuild_ms"]) == {"1000", "10000"}
    # the rebuild from a real store: every part timed, and a restart with the index file
    rb = r["gallery_rebuild_ms"]["10000"]
    assert rb["index"] == "flat" and rb["rebuild_ms"] >= rb["decrypt_ms"] > 0 and rb["restart_ms"] > 0
    # issue 19: the kiosk's camera path against the plain pipeline, interleaved, 3,000 templates
    vp = r["vs_plain"]
    assert vp["kiosk"]["n"] == vp["plain"]["n"] == 10 and vp["gallery_templates"] == 3001
    assert abs(vp["ratio_p50"] - vp["kiosk"]["p50"] / vp["plain"]["p50"]) < 0.002
    assert any(ln.startswith("per frame  kiosk") and "plain YuNet + SFace" in ln for ln in lines)
    assert r["machine"]["cpus"] >= 1 and len(r["machine"]["load_avg_1_5_15"]) == 3


def test_bench_names_a_missing_model_pack(tmp_path):
    from kiosk.bench import installed_backends

    (tmp_path / "sface").symlink_to(model_dir() / "sface")
    engines, skipped = installed_backends(tmp_path)
    assert set(engines) == {"sface"}
    assert "model pack" in skipped["insightface"] and "kiosk models install insightface" in skipped["insightface"]


def test_bench_refuses_an_unknown_section(env, capsys):
    assert main(["bench", "--sections", "frames,nope", "--json"]) == 2
    assert "nope" in json.loads(capsys.readouterr().out)["error"]


MINI_SUITE = '''
import pytest
from kiosk.vision.engine import create_engine
from tests.conftest import model_dir

@pytest.mark.insightface
def test_marked():
    create_engine("insightface", model_dir())

@pytest.mark.parametrize("backend", ["sface", "insightface"])
def test_each_backend(backend):
    if backend == "insightface":
        create_engine("insightface", model_dir())

def test_unmarked_needs_a_missing_file():
    create_engine("sface", model_dir())
'''


def _run_mini_suite(tmp_path, **env_extra) -> str:
    """The mini suite above with tests/conftest.py, on a model folder without any pack."""
    (tmp_path / "empty_models").mkdir(exist_ok=True)
    test_file = tmp_path / "test_mini.py"
    test_file.write_text(MINI_SUITE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("KIOSK_")}
    env.update(KIOSK_MODEL_DIR=str(tmp_path / "empty_models"), KIOSK_HOME=str(tmp_path / "home"), **env_extra)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO), str(test_file)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    return proc.stdout + proc.stderr


def test_a_test_that_needs_an_absent_part_is_skipped_with_the_reason_and_others_fail(tmp_path):
    out = _run_mini_suite(tmp_path)
    assert "1 failed, 1 passed, 2 skipped" in out, out[-3000:]
    assert out.count("insightface: the insightface model pack is not installed") == 2, out[-3000:]
    assert "FAILED" in out and "test_unmarked_needs_a_missing_file" in out


def test_in_ci_nothing_is_skipped(tmp_path):
    out = _run_mini_suite(tmp_path, CI="true")
    assert "3 failed, 1 passed in" in out and not re.search(r"\d+ skipped", out), out[-3000:]


def test_postgres_marker_reasons(monkeypatch):
    import importlib.util

    import kiosk.bench.pgcluster as pgcluster

    from tests import conftest

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "psycopg" else real_find_spec(name, *a))
    assert "psycopg is not installed" in conftest.postgres_missing.__wrapped__()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(pgcluster.glob, "glob", lambda pattern: [])
    assert "PostgreSQL server is not installed" in conftest.postgres_missing.__wrapped__()
    monkeypatch.setattr(pgcluster.glob, "glob", lambda pattern: [pattern.replace("*", "15")])
    if os.geteuid() == 0:
        import pwd

        def no_user(name):
            raise KeyError(name)

        monkeypatch.setattr(pwd, "getpwnam", no_user)
        assert "no postgres user" in conftest.postgres_missing.__wrapped__()


@pytest.mark.postgres
@pytest.mark.insightface
def test_markers_are_registered(pytestconfig):
    """Both optional parts are there on this machine when this runs (else it is skipped)."""
    from tests import conftest

    names = [m.split(":", 1)[0] for m in pytestconfig.getini("markers")]
    assert {"insightface", "postgres"} <= set(names)
    assert conftest.insightface_missing() is None and conftest.postgres_missing() is None
