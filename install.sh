#!/bin/sh
# agent-shield installer: venv + package + shims + compiled rules, then `shield doctor`.
# POSIX sh; idempotent (re-running upgrades in place). Needs: python3 >= 3.11 with venv and pip,
# and either network access to PyPI or a pip configured with a local index/wheelhouse.
#
#   ./install.sh --prefix /opt/shield --agent deploy-bot
#
# Options:
#   --prefix DIR    where to install (default /opt/shield): DIR/venv, DIR/bin (shims), DIR/home
#   --agent NAME    the agent's name, baked into its shims (default: agent)
#   --home DIR      the agent side's shield home (default: PREFIX/home)
#   --python PY     the interpreter to build the venv from (default: python3)
#   --real T=PATH   pin the real binary of tool T (repeatable)
set -eu

PREFIX=/opt/shield
AGENT=agent
HOME_DIR=
PYTHON=${PYTHON:-python3}
PINS=

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a value"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --agent) [ $# -ge 2 ] || die "--agent needs a value"; AGENT=$2; shift 2 ;;
        --agent=*) AGENT=${1#*=}; shift ;;
        --home) [ $# -ge 2 ] || die "--home needs a value"; HOME_DIR=$2; shift 2 ;;
        --home=*) HOME_DIR=${1#*=}; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs a value"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#*=}; shift ;;
        --real) [ $# -ge 2 ] || die "--real needs TOOL=PATH"; PINS="$PINS --real $2"; shift 2 ;;
        --real=*) PINS="$PINS --real ${1#*=}"; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

SRC=$(cd "$(dirname "$0")" && pwd)
[ -n "$HOME_DIR" ] || HOME_DIR=$PREFIX/home
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install Python 3.11+ (with venv)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$PYTHON is older than 3.11"

mkdir -p "$PREFIX"
if [ ! -x "$PREFIX/venv/bin/python" ]; then
    "$PYTHON" -m venv "$PREFIX/venv" || die "cannot create a venv (on Debian: apt-get install python3-venv)"
fi
"$PREFIX/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$SRC" \
    || die "pip install failed"

# shellcheck disable=SC2086  # PINS is a list of options
SHIELD_HOME=$HOME_DIR "$PREFIX/venv/bin/shield" install --dir "$PREFIX/bin" --agent "$AGENT" $PINS
echo
echo "Put the shims first on the agent's PATH:"
echo "  export PATH=\"$PREFIX/bin:\$PATH\""
echo
SHIELD_HOME=$HOME_DIR PATH="$PREFIX/bin:$PATH" "$PREFIX/venv/bin/shield" doctor --dir "$PREFIX/bin" || true
