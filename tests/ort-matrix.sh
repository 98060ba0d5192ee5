#!/usr/bin/env bash
# ONNX Runtime version matrix: the vmunet binary against the libonnxruntime.so of several
# onnxruntime wheels. For each version and each golden form (scan, chunked, custom), `vmunet
# forward --runtime ort` must match `--runtime tract` within 1e-4; a library older than the
# build's floor must fail with one clear message; and with ORT_DYLIB_PATH unset the library is
# found beside the executable, in ../lib and through the system loader.
#
# Environment (all optional):
#   VMUNET_BIN     binary under test (default: $CARGO_TARGET_DIR/debug/vmunet)
#   ORT_VERSIONS   versions that must work (default: 1.20.1 1.23.2 $ORT_VERSION)
#   ORT_VERSION    the current wheel, as in the Makefile (default 1.32.0)
#   ORT_TOO_OLD    a version below the floor whose wheel ships libonnxruntime.so (default 1.19.2;
#                  wheels before 1.19 link ONNX Runtime statically and have no such file)
#   ORT_CACHE      where libraries are kept, one folder per version (default build/ort)
#   PYTHON         a Python with pip and numpy (default build/venv/bin/python)
#   TOL            largest |ort - tract| accepted (default 1e-4)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
VMUNET_BIN=${VMUNET_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/vmunet/target}/debug/vmunet}
ORT_VERSION=${ORT_VERSION:-1.32.0}
ORT_VERSIONS=${ORT_VERSIONS:-1.20.1 1.23.2 $ORT_VERSION}
ORT_TOO_OLD=${ORT_TOO_OLD:-1.19.2}
ORT_CACHE=${ORT_CACHE:-build/ort}
PYTHON=${PYTHON:-build/venv/bin/python}
TOL=${TOL:-1e-4}
golden=onnx/golden
forms="scan chunked custom"

[ -x "$VMUNET_BIN" ] || { echo "ort-matrix: no binary at $VMUNET_BIN (build vmunet-cli or set VMUNET_BIN)" >&2; exit 2; }
[ -x "$PYTHON" ] || { echo "ort-matrix: no Python at $PYTHON (run \`make venv\` or set PYTHON)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ort-matrix.XXXXXX")
trap 'rm -rf "$work"' EXIT
unset ORT_DYLIB_PATH
fail=0

# The library of onnxruntime==$1, fetched once into $ORT_CACHE/$1/.
lib_of() {
  local v=$1 dir=$ORT_CACHE/$1 lib
  lib=$(ls "$dir"/libonnxruntime.so.* 2>/dev/null | head -n 1 || true)
  if [ -z "$lib" ]; then
    mkdir -p "$dir/wheel"
    echo "ort-matrix: fetching the onnxruntime $v wheel into $dir" >&2
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      "onnxruntime==$v" -d "$dir/wheel" >&2
    "$PYTHON" - "$dir" <<'EOF'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[1])
(whl,) = (out / "wheel").glob("*.whl")
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so")]
    if not names:
        sys.exit(f"{whl.name} has no onnxruntime/capi/libonnxruntime.so*")
    for n in names:
        (out / pathlib.PurePosixPath(n).name).write_bytes(z.read(n))
EOF
    rm -rf "$dir/wheel"
    lib=$(ls "$dir"/libonnxruntime.so.* | head -n 1)
  fi
  echo "$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
}

# max |a - b| of two .npy files, or a word saying why they cannot be compared.
maxdiff() {
  "$PYTHON" -c '
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
if a.shape != b.shape: print(f"shape{a.shape}!={b.shape}")
elif not np.isfinite(a).all(): print("non-finite")
else: print(f"{float(np.abs(a.astype(np.float64) - b).max()):.3e}")
' "$1" "$2"
}

# Runs `forward` in ONNX Runtime and compares with tract; prints one table row.
check_forward() {
  local label=$1 form=$2 bin=$3 out=$work/$1-$2.npy d
  shift 3
  if ! env "$@" "$bin" forward --model "$golden/tiny-$form.onnx" --runtime ort \
      --input "$golden/tiny-input.npy" --output "$out" 2>"$work/err"; then
    printf '%-24s %-8s %s\n' "$label" "$form" "FAILED: $(tail -n 3 "$work/err" | tr '\n' ' ')"
    fail=1
    return
  fi
  d=$(maxdiff "$out" "$work/tract-$form.npy")
  if "$PYTHON" -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$d" "$TOL" 2>/dev/null; then
    printf '%-24s %-8s %s\n' "$label" "$form" "$d"
  else
    printf '%-24s %-8s %s  > %s MISMATCH\n' "$label" "$form" "$d" "$TOL"
    fail=1
  fi
}

for form in $forms; do
  "$VMUNET_BIN" forward --model "$golden/tiny-$form.onnx" --runtime tract \
    --input "$golden/tiny-input.npy" --output "$work/tract-$form.npy" 2>/dev/null
done

echo "ONNX Runtime matrix for $VMUNET_BIN (max |ort - tract|, tolerance $TOL)"
printf '%-24s %-8s %s\n' "library" "form" "max |diff|"
# tract itself against the golden logits (written by burn when the golden models were made).
for form in $forms; do
  d=$(maxdiff "$work/tract-$form.npy" "$golden/tiny-logits.npy")
  if "$PYTHON" -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$d" "$TOL" 2>/dev/null; then
    printf '%-24s %-8s %s\n' "tract vs golden logits" "$form" "$d"
  else
    printf '%-24s %-8s %s  > %s MISMATCH\n' "tract vs golden logits" "$form" "$d" "$TOL"
    fail=1
  fi
done
for v in $ORT_VERSIONS; do
  lib=$(lib_of "$v")
  for form in $forms; do
    check_forward "$v" "$form" "$VMUNET_BIN" ORT_DYLIB_PATH="$lib"
  done
done

# Discovery with ORT_DYLIB_PATH unset: a copy of the binary with the current library beside it,
# in ../lib, and on LD_LIBRARY_PATH.
cur=$(lib_of "$ORT_VERSION")
copy_bin() { mkdir -p "$(dirname "$2")"; ln -f "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
for where in beside lib system; do
  d=$work/$where
  copy_bin "$VMUNET_BIN" "$d/bin/vmunet"
  case $where in
    beside) cp "$cur" "$d/bin/"; expect="(beside the executable)"; envs=() ;;
    lib) mkdir -p "$d/lib"; cp "$cur" "$d/lib/"; expect="(../lib of the executable)"; envs=() ;;
    system) mkdir -p "$d/sys"; cp "$cur" "$d/sys/libonnxruntime.so"; expect="(found by the system loader)"
            envs=("LD_LIBRARY_PATH=$d/sys${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}") ;;
  esac
  check_forward "found: $where" scan "$d/bin/vmunet" "${envs[@]}"
  if ! grep -qF "$expect" "$work/err"; then
    echo "ort-matrix: discovery ($where) did not report $expect:" >&2
    cat "$work/err" >&2
    fail=1
  fi
  rm -rf "$d"
done

# Expect `forward` to fail with a message matching $2 (extended regex); $3... are VAR=VALUE.
expect_error() {
  local label=$1 pattern=$2 rc=0
  shift 2
  env "$@" "$VMUNET_BIN" forward --model "$golden/tiny-scan.onnx" --runtime ort \
    --input "$golden/tiny-input.npy" --output "$work/never.npy" 2>"$work/err" || rc=$?
  if [ "$rc" -ne 0 ] && grep -qE "$pattern" "$work/err" && [ ! -e "$work/never.npy" ]; then
    printf '%-24s %-8s %s\n' "$label" "-" "refused (exit $rc): $(grep -oE "$pattern" "$work/err" | head -n 1)"
  else
    printf '%-24s %-8s %s\n' "$label" "-" "WRONG (exit $rc)"
    cat "$work/err" >&2
    fail=1
  fi
}

old=$(lib_of "$ORT_TOO_OLD")
expect_error "$ORT_TOO_OLD (too old)" \
  "is ONNX Runtime ${ORT_TOO_OLD//./\\.}; this vmunet build needs 1\.[0-9]+ or newer" \
  ORT_DYLIB_PATH="$old"
if ldconfig -p 2>/dev/null | grep -q 'libonnxruntime\.so'; then
  printf '%-24s %-8s %s\n' "not found" "-" "skipped: the system has libonnxruntime.so installed"
else
  copy_bin "$VMUNET_BIN" "$work/none/bin/vmunet"
  VMUNET_BIN=$work/none/bin/vmunet expect_error "not found" \
    "looked for:" LD_LIBRARY_PATH=
fi
if [ "$fail" -ne 0 ]; then
  echo "ort-matrix: FAILED" >&2
  exit 1
fi
echo "ort-matrix: all passed"
