#!/bin/sh
# agent-shield installer: venv + package + shims + compiled rules (+ the two-user setup), then
# `shield doctor`. POSIX sh; idempotent: re-running upgrades in place. `./install.sh --help`.
set -eu

usage() {
    cat <<'EOF'
Usage: install.sh [OPTIONS]

Install agent-shield for one agent: a venv with the package, the shims, the agent's home
(rules layer, trust store, log, spool) and the compiled rules, then run `shield doctor`.
Idempotent: re-running upgrades in place. Needs python3 >= 3.11 with venv and pip, and PyPI
or a pip set up with a local index or wheelhouse.

Options:
  --prefix DIR          where to install (default /opt/shield): DIR/venv, DIR/bin (the shims),
                        DIR/home (the agent's home)
  --agent NAME          the agent's name, baked into its shims (default: agent)
  --home DIR            the agent's home (default: PREFIX/home)
  --python PY           the interpreter for the venv (default: python3; an existing venv is
                        kept unless --python names another one, then it is rebuilt). Use one
                        every user can run, e.g. /usr/bin/python3: the agent's user starts it
  --real TOOL=PATH      pin the real binary of TOOL (repeatable); keep it off the agent's PATH
  --spool DIR           where held requests and decisions meet (default: HOME/state/spool),
                        baked into the shims; share it with the approver (a bind mount)
  --agent-user USER     the user the agent runs as (needs root): it gets the log, the spool,
                        its used decisions and preview snapshots; everything else stays
                        root's and read-only to it
  --approver-group G    the approver's group (the agent's user is not in it): the spool
                        becomes G's, setgid and group-writable; the log group-readable, so the
                        approver can verify it, sign checkpoints beside it and import
                        anchor.json (which `shield log anchor import` then deletes); with
                        --agent-user, anchor.json stays unreadable to the agent
  -h, --help            this text

Examples:
  ./install.sh --prefix /opt/shield --agent deploy-bot
  ./install.sh --prefix /opt/shield --agent deploy-bot --python /usr/bin/python3 \
      --agent-user agent --spool /spool --approver-group shield \
      --real kubectl=/opt/real/kubectl --real aws=/opt/real/aws
EOF
}

PREFIX=/opt/shield
AGENT=agent
HOME_DIR=
PYTHON=${PYTHON:-python3}
PYTHON_GIVEN=
PINS=
SPOOL=
AGENT_USER=
APPROVER_GROUP=

die() { echo "install.sh: $*" >&2; exit 1; }
need() { [ "$1" -ge 2 ] || die "$2 needs a value (see --help)"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) need $# "$1"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --agent) need $# "$1"; AGENT=$2; shift 2 ;;
        --agent=*) AGENT=${1#*=}; shift ;;
        --home) need $# "$1"; HOME_DIR=$2; shift 2 ;;
        --home=*) HOME_DIR=${1#*=}; shift ;;
        --python) need $# "$1"; PYTHON=$2; PYTHON_GIVEN=1; shift 2 ;;
        --python=*) PYTHON=${1#*=}; PYTHON_GIVEN=1; shift ;;
        --real) need $# "$1"; PINS="$PINS --real $2"; shift 2 ;;
        --real=*) PINS="$PINS --real ${1#*=}"; shift ;;
        --spool) need $# "$1"; SPOOL=$2; shift 2 ;;
        --spool=*) SPOOL=${1#*=}; shift ;;
        --agent-user) need $# "$1"; AGENT_USER=$2; shift 2 ;;
        --agent-user=*) AGENT_USER=${1#*=}; shift ;;
        --approver-group) need $# "$1"; APPROVER_GROUP=$2; shift 2 ;;
        --approver-group=*) APPROVER_GROUP=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

SRC=$(cd "$(dirname "$0")" && pwd)
[ -n "$HOME_DIR" ] || HOME_DIR=$PREFIX/home
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install Python 3.11+ (with venv)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$PYTHON is older than 3.11"
if [ -n "$AGENT_USER" ]; then
    [ "$(id -u)" = 0 ] || die "--agent-user needs root (it hands the agent's files to that user)"
    case "$AGENT_USER" in
        *[!0-9]*) id -u "$AGENT_USER" >/dev/null 2>&1 || die "no user $AGENT_USER" ;;
    esac
fi

# The venv: kept on re-runs, rebuilt when --python names another interpreter than it was made
# from (doctor's remedy for a Python other users cannot start must work on a re-run).
real_python() { "$1" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' 2>/dev/null || true; }
VENV=$PREFIX/venv
mkdir -p "$PREFIX"
if [ -n "$PYTHON_GIVEN" ] && [ -e "$VENV" ] \
        && [ "$(real_python "$VENV/bin/python")" != "$(real_python "$PYTHON")" ]; then
    echo "install.sh: rebuilding $VENV with $PYTHON"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "cannot create a venv (on Debian: apt-get install python3-venv)"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$SRC" \
    || die "pip install failed"

SPOOL_OPT=
[ -z "$SPOOL" ] || SPOOL_OPT="--spool $SPOOL"
# shellcheck disable=SC2086  # PINS and SPOOL_OPT are lists of options
SHIELD_HOME=$HOME_DIR "$VENV/bin/shield" install --dir "$PREFIX/bin" --agent "$AGENT" $PINS $SPOOL_OPT

LOG_DIR=$HOME_DIR/log
SPOOL_DIR=${SPOOL:-$HOME_DIR/state/spool}
if [ -n "$AGENT_USER" ]; then
    # root's and read-only to the agent: the shims, the rules, the trust store, the config;
    # the agent's: its log, its spool, its used decisions, the grants it saw and used, and its
    # preview snapshots
    chown -R 0:0 "$PREFIX/bin" "$HOME_DIR"
    chmod -R go-w "$PREFIX/bin" "$HOME_DIR"
    chown -R "$AGENT_USER" "$LOG_DIR" "$SPOOL_DIR" \
        "$HOME_DIR/state/used-decisions" "$HOME_DIR/state/previews" \
        "$HOME_DIR/state/grants-seen" "$HOME_DIR/state/grant-uses"
    # but never the log's first key: whoever reads it can rewrite the whole log
    [ ! -f "$LOG_DIR/anchor.json" ] || chown 0:0 "$LOG_DIR/anchor.json"
fi
if [ -n "$APPROVER_GROUP" ]; then
    # the spool: the approver writes it through the group (the agent owns it); setgid keeps
    # what either side makes in the group
    chgrp -R "$APPROVER_GROUP" "$SPOOL_DIR" || die "cannot hand $SPOOL_DIR to group $APPROVER_GROUP"
    find "$SPOOL_DIR" -type d -exec chmod 2770 {} +
    # the log: the approver reads it, signs checkpoints beside it, and takes anchor.json away
    # (readable by the group, not by the agent when it runs as --agent-user)
    chgrp -R "$APPROVER_GROUP" "$LOG_DIR"
    chmod 2770 "$LOG_DIR"
    for f in "$LOG_DIR/shield.log" "$LOG_DIR/anchor.json"; do
        [ ! -f "$f" ] || chmod 0640 "$f"
    done
fi

if [ -n "$APPROVER_GROUP" ]; then
    echo "the approver (a user in group $APPROVER_GROUP) decides held calls with:"
    echo "  SHIELD_SPOOL=$SPOOL_DIR shield pending"
fi
echo
if [ -n "$AGENT_USER" ] && [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    # doctor as the agent: what it can write and read is what counts, not root's view
    echo "shield doctor, as $AGENT_USER:"
    AGENT_UID=$(id -u "$AGENT_USER" 2>/dev/null || echo "$AGENT_USER")
    AGENT_GID=$(id -g "$AGENT_USER" 2>/dev/null || echo "$AGENT_UID")
    setpriv --reuid="$AGENT_UID" --regid="$AGENT_GID" --clear-groups \
        env SHIELD_HOME="$HOME_DIR" PATH="$PREFIX/bin:$PATH" \
        "$VENV/bin/shield" doctor --dir "$PREFIX/bin" || true
else
    SHIELD_HOME=$HOME_DIR PATH="$PREFIX/bin:$PATH" "$VENV/bin/shield" doctor --dir "$PREFIX/bin" || true
fi
