#!/usr/bin/env bash
# Installs the kiosk on Debian (12 or newer): system libraries Qt needs, a CJK
# font (also embedded in the PDF reports), espeak-ng for voice prompts, a virtual environment in .venv with the
# package, the default face-model pack and the sample photos.
#   bash install.sh          everything to run the kiosk and its demo
#   bash install.sh --test   also the test tools, the insightface pack and PostgreSQL
set -euo pipefail
cd "$(dirname "$0")"
MODE="${1:-run}"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# -- 1. Debian packages ---------------------------------------------------------
APT_PKGS=(python3 python3-venv python3-pip
          libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
          libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0
          libxcb-randr0 libxcb-render-util0 libxcb-image0 libxrender1 libxi6
          fonts-wqy-microhei espeak-ng)
# --test: PostgreSQL; Debian's chromium (the console's browser tests drive it with Playwright,
# which never downloads a browser of its own) and poppler-utils (pdftotext reads the PDF reports);
# xvfb: a bare X server (no window manager) on which the UI test checks that the kiosk fills the screen
if [ "$MODE" = "--test" ]; then APT_PKGS+=(postgresql chromium poppler-utils xvfb); fi
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
EXTRA=""
if [ "$MODE" = "--test" ]; then EXTRA="[test,postgres]"; fi
say "pip install -e .$EXTRA"
$VPY -m pip install -q --disable-pip-version-check -e ".$EXTRA"
# insightface's metadata asks for opencv-python, which bundles Qt 5 and breaks
# PySide6: install it without dependencies (its real needs are in pyproject).
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
if [ "$MODE" = "--test" ]; then .venv/bin/kiosk models install insightface; fi
.venv/bin/kiosk keygen --if-missing
say "installed. Start the demo with: .venv/bin/kiosk demo"
