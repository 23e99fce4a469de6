#!/bin/sh
# The whole development set-up on Debian or Ubuntu: system packages, the Python package with every extra,
# and the firmware with its simulator harness. Run as root, it installs the system packages itself;
# otherwise it says exactly what to install and stops. Safe to run again.
set -eu
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
    echo "dev/setup.sh: corridor-rig needs Python 3.11 or 3.12 (found: $("$PY" --version 2>&1)); set PYTHON=..." >&2
    exit 1
fi

# Mesa's software GL/EGL for the renderer, Xvfb and the xcb libraries for Qt, the AVR toolchain, the
# Arduino AVR core and simavr for the firmware bench.
PACKAGES="xvfb xauth libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglx-mesa0 libxkbcommon-x11-0 libxcb-icccm4
 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0
 libxcb-cursor0 libdbus-1-3 libfontconfig1 make gcc g++ gcc-avr avr-libc binutils-avr arduino-core-avr simavr
 libsimavr-dev"

if command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" -eq 0 ]; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            # shellcheck disable=SC2086
            apt-get install -y -qq --no-install-recommends $missing >/dev/null
        else
            echo "dev/setup.sh: these system packages are missing; install them, then run this again:" >&2
            echo "  sudo apt-get install --no-install-recommends$missing" >&2
            exit 1
        fi
    fi
else
    echo "dev/setup.sh: not a Debian/Ubuntu system; install the equivalents of: $PACKAGES" >&2
    echo "  (then run: $PY -m pip install -e '.[dev]' && make -C hil)" >&2
    exit 1
fi

PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check -e ".[dev]"
make -s -C hil >/dev/null
echo "dev/setup.sh: ready (system packages, corridor-rig[dev], firmware and simavr harness in hil/build)"
