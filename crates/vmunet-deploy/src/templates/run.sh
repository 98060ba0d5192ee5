#!/bin/sh
# vmunet bundle for {{profile}} (vmunet {{version}}, {{arch}}).
#   ./run.sh serve            segment every image dropped into $VMUNET_IN (default var/in)
#   ./run.sh bench            latency table for this device into var/logs/
#   ./run.sh verify           check every file against MANIFEST.sha256 and open the models
#   ./run.sh status           the service's status file
#   ./run.sh install-service  install and start the systemd unit (as root)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
VMUNET_IN=${VMUNET_IN:-$HERE/var/in}
VMUNET_OUT=${VMUNET_OUT:-$HERE/var/out}
VMUNET_LOGS=${VMUNET_LOGS:-$HERE/var/logs}
VMUNET_MODEL=${VMUNET_MODEL:-$HERE/{{model}}}
# ONNX Runtime: ORT_DYLIB_PATH if set, else lib/ beside bin/, else the system loader's path.
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  for lib in "$HERE"/lib/libonnxruntime.so*; do
    [ -e "$lib" ] && ORT_DYLIB_PATH=$lib && export ORT_DYLIB_PATH && break
  done
fi
cmd=${1:-serve}
[ $# -gt 0 ] && shift
case "$cmd" in
  serve)
    mkdir -p "$VMUNET_IN" "$VMUNET_OUT" "$VMUNET_LOGS"
    exec "$HERE/bin/vmunet" serve --watch "$VMUNET_IN" --out "$VMUNET_OUT" \
      --profile "$HERE/profile.toml" --model "$VMUNET_MODEL" "$@" ;;
  bench)
    mkdir -p "$VMUNET_LOGS"
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    "$HERE/bin/vmunet" bench --profile "$HERE/profile.toml" --model "$VMUNET_MODEL" \
      --json "$VMUNET_LOGS/bench-$stamp.json" "$@" | tee "$VMUNET_LOGS/bench-$stamp.txt" ;;
  verify)
    exec "$HERE/bin/vmunet" verify-bundle "$HERE" "$@" ;;
  status)
    cat "$VMUNET_OUT/status.json" ;;
  install-service)
    sed -e "s|@BUNDLE@|$HERE|g" -e "s|@USER@|${VMUNET_USER:-$(id -un)}|g" \
      "$HERE/vmunet.service" > /etc/systemd/system/vmunet.service
    systemctl daemon-reload
    systemctl enable --now vmunet.service
    echo "vmunet.service installed and started; logs: journalctl -u vmunet -f" ;;
  *)
    echo "usage: $0 [serve|bench|verify|status|install-service]" >&2
    exit 2 ;;
esac
