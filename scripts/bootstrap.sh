#!/usr/bin/env bash
# Set up what circuitwatch needs on a fresh Debian machine, idempotently.
#   scripts/bootstrap.sh python   # .venv with circuitwatch and its runtime extras
#   scripts/bootstrap.sh dev      # .venv with the dev extras (tests, lint, types)
#   scripts/bootstrap.sh system   # Debian packages the integration tests use
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PIP_CACHE_DIR="$ROOT/.cache/pip"
PY=${PYTHON:-python3}

need_python() {
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "error: circuitwatch needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))" >&2; exit 1; }
}

venv() {  # venv EXTRAS
  local extras=$1 stamp=".venv/.installed-$1"
  need_python
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}

system() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

case "${1:-}" in
  python) venv all ;;
  dev) venv dev ;;
  system) system ;;
  *) echo "usage: $0 python|dev|system" >&2; exit 2 ;;
esac
