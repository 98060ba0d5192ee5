#!/usr/bin/env bash
# The pytest suite's fresh virtual environment (mk/python.mk): its Python packages (numpy,
# pytest, Pillow, Ray Data, onnxruntime; ~40 s of downloads and unpacking on a cold machine)
# are installed in the background while the workspace compiles (`start`, from `make test`);
# `wait` waits for them (or installs them now when nothing was started) and adds the wheel.
#
# usage: mk/pytest-venv.sh start|wait VENV REQUIREMENTS ORT_VERSION [WHEEL]
set -euo pipefail
cmd=$1 venv=$2 reqs=$3 ort=$4 wheel=${5:-}
python=${PYTHON:-python3}
log=$venv.log
pidfile=$venv.pid

install_deps() {
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" "onnxruntime==$ort"
  touch "$venv/.deps-ok"
}

case $cmd in
start)
  mkdir -p "$(dirname "$venv")"
  rm -f "$pidfile"
  (install_deps >"$log" 2>&1) &
  echo $! >"$pidfile"
  echo "pytest-venv: installing the suite's packages into $venv in the background (log: $log)"
  ;;
wait)
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    rm -f "$pidfile"
  fi
  if [ ! -f "$venv/.deps-ok" ]; then
    [ -f "$log" ] && { echo "pytest-venv: the background install failed:" >&2; cat "$log" >&2; }
    echo "pytest-venv: installing the suite's packages into $venv"
    install_deps
  fi
  # The wheel last, without its dependencies (numpy is in): the build tree is never on the path.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
  ;;
*)
  echo "usage: $0 start|wait VENV REQUIREMENTS ORT_VERSION [WHEEL]" >&2
  exit 2
  ;;
esac
