#!/usr/bin/env python3
"""Every ELF shared object and executable under a virtual environment (the wheels'
bundled libraries, Qt's plugins, Playwright's node driver ...) finds the shared
libraries it needs on this machine: ``ldd`` reports none "not found".

A wheel carries its own libraries but not the system's (libatomic, libxcb-*, libGL ...);
a library missing on a bare Debian shows up only when that code is loaded, often deep in
a test. install.sh runs this at its end, so a missing Debian package fails the install,
naming the library and the file that needs it.

    python3 .ci/check_shared_libs.py .venv [--json]
Exit 0 all found, 1 some missing (listed), 2 ldd not available.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Files whose missing libraries are never loaded by the kiosk, each with its reason. Nothing
# else may be listed here: a library missing for a file the kiosk loads is an install bug.
IGNORED: dict[str, str] = {
    r"PySide6/Qt/plugins/egldeviceintegrations/libqeglfs-kms": "EGL full-screen on KMS (needs PySide6-Addons' "
                                                               "EglFsKmsGbmSupport; the kiosk runs on xcb or Wayland)",
    r"PySide6/Qt/plugins/platformthemes/libqgtk3": "GTK3 theme plugin (no desktop theme on a kiosk)",
    r"PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboard": "Qt's virtual keyboard (the kiosk has its own)",
    r"PySide6/Qt/plugins/sqldrivers/": "Qt's SQL drivers (the store is SQLAlchemy's)",
    r"PySide6/Qt/plugins/printsupport/": "printing through CUPS (the kiosk prints nothing: receipts are on screen)",
    r"PySide6/Qt/plugins/imageformats/libqpdf": "PDF image plugin (needs PySide6-Addons' QtPdf)",
    r"PySide6/Qt/plugins/designer/": "Qt Designer plugins",
    r"PySide6/Qt/plugins/qmltooling/": "QML debugging plugins",
    r"PySide6/Qt/qml/": "QML modules (the kiosk's screens are Qt Widgets, no QML)",
}

ELF_MAGIC = b"\x7fELF"
NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.M)


def elf_files(root: Path) -> list[Path]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            if not (".so" in name or os.access(p, os.X_OK)):
                continue
            try:
                with open(p, "rb") as fh:
                    if fh.read(4) == ELF_MAGIC:
                        out.append(p)
            except OSError:
                continue
    return sorted(out)


def missing_libs(path: Path) -> list[str]:
    try:
        r = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        return []
    return sorted(set(NOT_FOUND.findall(r.stdout)))


def ignored_reason(path: Path) -> str | None:
    s = path.as_posix()
    for pattern, reason in IGNORED.items():
        if re.search(re.escape(pattern), s):
            return reason
    return None


def check(root: Path) -> dict:
    files = elf_files(root)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(missing_libs, files))
    # a wheel's own copy of a library (faiss_cpu.libs/libgfortran-83c28eba.so..., PySide6's
    # libQt6Core.so.6) is found through the RUNPATH of the file that loads it, which ldd run
    # on the bundled file alone does not see: a name shipped inside the venv is not missing
    shipped = {p.name for p in files}
    results = [[lib for lib in libs if lib not in shipped] for libs in results]
    missing: dict[str, list[str]] = {}
    ignored: dict[str, list[str]] = {}
    for path, libs in zip(files, results):
        if not libs:
            continue
        rel = str(path.relative_to(root))
        (ignored if ignored_reason(path) else missing)[rel] = libs
    by_lib: dict[str, list[str]] = {}
    for f, libs in missing.items():
        for lib in libs:
            by_lib.setdefault(lib, []).append(f)
    return {"files_checked": len(files), "missing": missing, "by_library": by_lib, "ignored": ignored}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("venv", type=Path)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if shutil.which("ldd") is None:
        print("ldd not found (Debian package libc-bin)", file=sys.stderr)
        return 2
    res = check(a.venv.resolve())
    if a.json:
        print(json.dumps(res, ensure_ascii=False, indent=1))
    elif res["by_library"]:
        print(f"{len(res['missing'])} of {res['files_checked']} ELF files under {a.venv} need shared "
              f"libraries this machine does not have:", file=sys.stderr)
        for lib, files in sorted(res["by_library"].items()):
            shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            print(f"  {lib}  (needed by {shown})", file=sys.stderr)
        print("Add the Debian package that ships each library to APT_PKGS in install.sh (for the role "
              "that installs the files above), e.g. libatomic.so.1 -> libatomic1.", file=sys.stderr)
    else:
        print(f"shared libraries: all found for {res['files_checked']} ELF files under {a.venv}"
              + (f" ({len(res['ignored'])} never-loaded plugin files skipped)" if res["ignored"] else ""))
    return 1 if res["by_library"] else 0


if __name__ == "__main__":
    sys.exit(main())
