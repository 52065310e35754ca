#!/usr/bin/env bash
# Installs the kiosk on Debian (12 or newer) for a role: the Debian packages that role needs,
# a virtual environment in .venv with the package and the role's extras (pyproject.toml), the
# default face-model pack and the sample photos, and checks that every library the wheels
# need is on the machine (.ci/check_shared_libs.py).
#   bash install.sh              one machine: the counter terminal and the district server
#   bash install.sh --terminal   a counter terminal (Qt screens, voice, sync client; no web server)
#   bash install.sh --server     a district server and its console (no Qt)
#   bash install.sh --test       both, plus the test tools, the insightface pack and PostgreSQL
set -euo pipefail
cd "$(dirname "$0")"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

TERMINAL=0; SERVER=0; TEST=0
for arg in "$@"; do
  case "$arg" in
    --terminal) TERMINAL=1 ;;
    --server) SERVER=1 ;;
    --test) TEST=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (--terminal, --server, --test)" >&2; exit 2 ;;
  esac
done
# no role named: one machine holds both; the tests cover both
if [ $TERMINAL -eq 0 ] && [ $SERVER -eq 0 ] || [ $TEST -eq 1 ]; then TERMINAL=1; SERVER=1; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# -- 1. Debian packages ---------------------------------------------------------
# both roles: Python, the CJK font (the kiosk's screens and the PDF reports embed it), libglib
# (OpenCV)
APT_PKGS=(python3 python3-venv python3-pip libglib2.0-0 fonts-wqy-microhei fontconfig)
# the terminal: the system libraries Qt's xcb and Wayland platforms load, espeak-ng for the voice
if [ $TERMINAL -eq 1 ]; then
  APT_PKGS+=(libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
             libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0
             libxcb-randr0 libxcb-render-util0 libxcb-image0 libxrender1 libxi6
             libwayland-client0 libwayland-cursor0 libwayland-egl1 espeak-ng)
fi
# --test: PostgreSQL; Debian's chromium (the console's browser tests drive it with Playwright,
# which never downloads a browser of its own) and libatomic1 (Playwright's node driver links
# it); poppler-utils (pdftotext reads the PDF reports); xvfb: a bare X server (no window
# manager) on which the UI test checks that the kiosk fills the screen
if [ $TEST -eq 1 ]; then APT_PKGS+=(postgresql chromium libatomic1 poppler-utils xvfb); fi
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- 2. Python environment --------------------------------------------------------
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "Python 3.11 or newer is needed (found $("$PY" --version 2>&1))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --disable-pip-version-check --upgrade pip
# the role's extras (pyproject.toml); the insightface pack's needs in every role, since the
# district's model is chosen per store and the server enrols roster photos with it
EXTRAS=(insightface)
if [ $TERMINAL -eq 1 ]; then EXTRAS+=(terminal); fi
if [ $SERVER -eq 1 ]; then EXTRAS+=(server); fi
if [ $TEST -eq 1 ]; then EXTRAS+=(test); fi
EXTRA="[$(IFS=,; echo "${EXTRAS[*]}")]"
say "pip install -e .$EXTRA"
$VPY -m pip install -q --disable-pip-version-check -e ".$EXTRA"
# insightface's metadata asks for opencv-python, which bundles Qt 5 and breaks
# PySide6: install it without dependencies (its real needs are the extra above).
$VPY -m pip install -q --disable-pip-version-check --no-deps "insightface==2.1"
if $VPY -m pip show -q opencv-python >/dev/null 2>&1; then
  $VPY -m pip uninstall -q -y opencv-python
  $VPY -m pip install -q --force-reinstall --no-deps opencv-python-headless
fi

# -- 3. Models, sample photos and the template key ---------------------------------
say "face models and sample photos"
.venv/bin/kiosk models install sface
# two sample photos come out of Debian packages (apt-get download: unpacked, never
# installed); apt needs its package lists for that
if ! apt-cache show tk8.6-doc python-matplotlib-data >/dev/null 2>&1; then $SUDO apt-get update -qq; fi
.venv/bin/kiosk models samples
if [ $TEST -eq 1 ]; then .venv/bin/kiosk models install insightface; fi
.venv/bin/kiosk keygen --if-missing

# -- 4. Every shared library the installed wheels need is on this machine ------------
# (a missing one fails here, named, not later deep in a test or at the first PDF)
say "checking the shared libraries of .venv"
$VPY .ci/check_shared_libs.py .venv

if [ $TERMINAL -eq 1 ]; then say "installed. Start the demo with: .venv/bin/kiosk demo"
else say "installed (server). Start it with: .venv/bin/kiosk server"; fi
