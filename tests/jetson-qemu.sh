#!/usr/bin/env bash
# The aarch64 (Jetson-class) build under qemu-user, against the x86-64 build on the same inputs:
#  1. the vmunet-scan test binaries (NEON property tests) run under qemu (`cargo test --target`);
#  2. the aarch64 `vmunet` runs `forward` on the golden models (all three scan forms) and on the
#     reference model (models/isic2017-16-128.bpk, exported here by the x86 binary in the
#     custom-operator form, the one a CPU deployment runs; REF_FORMS="scan custom" adds the
#     standard form, slow under qemu) with a real image, in tract and in ONNX Runtime with the
#     libonnxruntime.so of PyPI's aarch64 onnxruntime wheel; logits within TOL of the x86 tract
#     output, and `infer` masks byte-identical to the x86 ones;
#  3. the aarch64 libvmunet_ort_ops.so exports RegisterCustomOps;
#  4. a Jetson Orin Nano bundle (x86 `vmunet bundle` with the aarch64 binary, library and ONNX
#     Runtime) verifies with the bundle's own aarch64 binary (ONNX Runtime found in the bundle's
#     lib/, no ORT_DYLIB_PATH), and its service segments a real image into the mask x86 writes.
# ONNX Runtime's CPU detection reads /proc/cpuinfo and crashes under qemu on the host's x86 file:
# its runs get tests/qemu/cpuinfo-aarch64 bind-mounted there, in a private mount namespace
# (`unshare -m`, root or user namespaces needed).
#
# Environment:
#   JETSON_BIN     aarch64 vmunet (deployment build)          (required)
#   JETSON_OPS     aarch64 libvmunet_ort_ops.so               (required)
#   X86_BIN        x86-64 full vmunet (exports the reference model, gives the reference outputs)
#   ORT_AARCH64    aarch64 libonnxruntime.so                  (required)
#   QEMU_SYSROOT   the cross toolchain's sysroot (default /usr/aarch64-linux-gnu)
#   PYTHON         x86 Python with numpy (default build/venv/bin/python)
#   VMUNET_SHARED  ../shared (a real ISIC 2017 image; else the test says SKIP for that part)
#   TOL            largest |aarch64 - x86| accepted (default 1e-4)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${JETSON_BIN:?set JETSON_BIN}" "${JETSON_OPS:?set JETSON_OPS}" "${X86_BIN:?set X86_BIN}" "${ORT_AARCH64:?set ORT_AARCH64}"
QEMU_SYSROOT=${QEMU_SYSROOT:-/usr/aarch64-linux-gnu}
PYTHON=${PYTHON:-build/venv/bin/python}
TOL=${TOL:-1e-4}
REF_FORMS=${REF_FORMS:-custom}
SHARED=${VMUNET_SHARED:-$root/../shared}
for f in "$JETSON_BIN" "$JETSON_OPS" "$X86_BIN" "$ORT_AARCH64"; do
  [ -e "$f" ] || { echo "jetson-qemu: $f is missing" >&2; exit 2; }
done
command -v qemu-aarch64 >/dev/null || { echo "jetson-qemu: qemu-aarch64 is missing (apt-get install qemu-user)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/jetson-qemu.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail=0
file "$JETSON_BIN" | grep -q "ARM aarch64" || { echo "jetson-qemu: $JETSON_BIN is not an aarch64 executable" >&2; exit 2; }

# aarch64 vmunet under qemu; ONNX Runtime runs get the aarch64 /proc/cpuinfo.
arm() {
  unshare -m --propagation private bash -c '
    mount --bind "$0" /proc/cpuinfo
    exec qemu-aarch64 -L "$1" "${@:2}"' \
    "$root/tests/qemu/cpuinfo-aarch64" "$QEMU_SYSROOT" "$JETSON_BIN" "$@"
}

# Another aarch64 executable (a bundle's own copy) under qemu, likewise.
arm_exe() {
  unshare -m --propagation private bash -c '
    mount --bind "$0" /proc/cpuinfo
    exec qemu-aarch64 -L "$1" "${@:2}"' \
    "$root/tests/qemu/cpuinfo-aarch64" "$QEMU_SYSROOT" "$@"
}

# max |a - b| of two .npy files, and whether it is within TOL.
compare() {
  "$PYTHON" - "$1" "$2" "$TOL" <<'PY'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
if a.shape != b.shape:
    print(f"shape {a.shape} vs {b.shape}")
    sys.exit(1)
d = float(np.abs(a.astype(np.float64) - b).max())
print(f"max|diff| {d:.3e}")
sys.exit(0 if d <= float(sys.argv[3]) else 1)
PY
}

check() { # name model runtime input [extra args]
  local name=$1 model=$2 runtime=$3 input=$4; shift 4
  "$X86_BIN" forward --model "$model" --runtime tract --input "$input" --output "$work/$name-x86.npy" "$@" 2>/dev/null
  if ! ORT_DYLIB_PATH="$ORT_AARCH64" arm forward --model "$model" --runtime "$runtime" --input "$input" \
      --output "$work/$name-arm.npy" "$@" 2>"$work/$name.err"; then
    echo "FAIL $name: aarch64 forward failed: $(tail -n 3 "$work/$name.err")"; fail=1; return
  fi
  if r=$(compare "$work/$name-arm.npy" "$work/$name-x86.npy"); then
    echo "ok   $name: aarch64 $runtime vs x86 tract: $r"
  else
    echo "FAIL $name: aarch64 $runtime vs x86 tract: $r (tolerance $TOL)"; fail=1
  fi
}

echo "== aarch64 vmunet: $(file -b "$JETSON_BIN" | cut -d, -f1-2)"
glibc=$(aarch64-linux-gnu-objdump -T "$JETSON_BIN" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -n 1)
echo "   needs $glibc or newer (JetPack 6: Ubuntu 22.04, glibc 2.35)"
arm --version
arm info --system | sed "s/^/   /"

echo "== golden models (onnx/golden), tract and ONNX Runtime $(basename "$ORT_AARCH64")"
for form in scan chunked custom; do
  for rt in tract ort; do
    check "golden-$form-$rt" onnx/golden/tiny-$form.onnx $rt onnx/golden/tiny-input.npy
  done
done

echo "== the reference model on a real image"
img=$(ls "$SHARED"/data/isic2017/val/images/* 2>/dev/null | head -n 1 || true)
if [ -z "$img" ]; then
  echo "SKIP (real image): $SHARED/data/isic2017 is absent"
else
  for form in $REF_FORMS; do
    "$X86_BIN" export --checkpoint models/isic2017-16-128.bpk --class-names lesion --scan $form \
      -o "$work/ref-$form.onnx" >/dev/null 2>&1
    for rt in tract ort; do
      check "reference-$form-$rt" "$work/ref-$form.onnx" $rt "$img"
      mkdir -p "$work/masks-x86-$form" "$work/masks-arm-$form-$rt"
      "$X86_BIN" infer --model "$work/ref-$form.onnx" --runtime tract "$img" --out "$work/masks-x86-$form" >/dev/null 2>&1
      ORT_DYLIB_PATH="$ORT_AARCH64" arm infer --model "$work/ref-$form.onnx" --runtime $rt "$img" \
        --out "$work/masks-arm-$form-$rt" >/dev/null 2>"$work/infer.err" || { echo "FAIL infer $form $rt: $(tail -n 3 "$work/infer.err")"; fail=1; continue; }
      if cmp -s "$work"/masks-x86-$form/*_mask.png "$work"/masks-arm-$form-$rt/*_mask.png; then
        echo "ok   reference-$form-$rt: mask of $(basename "$img") identical to x86"
      else
        echo "FAIL reference-$form-$rt: mask of $(basename "$img") differs from x86"; fail=1
      fi
    done
  done
fi

echo "== libvmunet_ort_ops.so (aarch64)"
if aarch64-linux-gnu-nm -D --defined-only "$JETSON_OPS" | grep -q ' T RegisterCustomOps$'; then
  echo "ok   $(basename "$JETSON_OPS"): $(file -b "$JETSON_OPS" | cut -d, -f1-2), exports RegisterCustomOps"
else
  echo "FAIL $(basename "$JETSON_OPS"): no RegisterCustomOps"; fail=1
fi

echo "== Jetson Orin Nano bundle, checked and served by its own aarch64 binary"
bundle_model=onnx/golden/tiny-custom.onnx
[ -f "$work/ref-custom.onnx" ] && bundle_model=$work/ref-custom.onnx
if ! "$X86_BIN" bundle --profile devices/jetson-orin-nano.toml --model "$bundle_model" \
    --model onnx/golden/tiny-chunked.onnx --binary "$JETSON_BIN" --ort-ops "$JETSON_OPS" \
    --ort-lib "$ORT_AARCH64" -o "$work/bundle" >"$work/bundle.log" 2>&1; then
  echo "FAIL bundle: $(tail -n 3 "$work/bundle.log")"; fail=1
elif ! (unset ORT_DYLIB_PATH; arm_exe "$work/bundle/bin/vmunet" verify-bundle "$work/bundle") >"$work/verify.log" 2>&1; then
  echo "FAIL verify-bundle under qemu: $(tail -n 5 "$work/verify.log")"; fail=1
else
  echo "ok   verify-bundle (aarch64): $(tail -n 1 "$work/verify.log")"
  grep -q "ONNX Runtime 1.23.2 from .*(../lib of the executable)" "$work/verify.log" \
    && echo "ok   the bundle's lib/libonnxruntime.so was used" \
    || { echo "FAIL the bundle's ONNX Runtime was not used: $(head -n 2 "$work/verify.log")"; fail=1; }
  if [ -n "$img" ]; then
    mkdir -p "$work/svc-in" && cp "$img" "$work/svc-in/"
    if (unset ORT_DYLIB_PATH; arm_exe "$work/bundle/bin/vmunet" serve --watch "$work/svc-in" \
        --out "$work/svc-out" --profile "$work/bundle/profile.toml" \
        --model "$work/bundle/models/$(basename "$bundle_model")" --once) >"$work/serve.log" 2>&1 \
      && cmp -s "$work"/svc-out/*_mask.png "$work"/masks-x86-custom/*_mask.png; then
      echo "ok   serve (aarch64, bundle): mask of $(basename "$img") identical to x86; $(tail -n 1 "$work/serve.log")"
    else
      echo "FAIL serve (aarch64, bundle): $(tail -n 3 "$work/serve.log")"; fail=1
    fi
  fi
fi

[ $fail = 0 ] && echo "jetson-qemu: all passed" || echo "jetson-qemu: FAILED"
exit $fail
