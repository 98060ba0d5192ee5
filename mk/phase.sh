#!/usr/bin/env bash
# One timed phase of `make test`: `mk/phase.sh NAME COMMAND [ARGS...]` runs the command, appends
# "NAME<TAB>SECONDS<TAB>ok|failed" to $PHASE_LOG (default build/phases.tsv; .ci/run prints the
# table) and prints the phase's time. The command's exit status is passed on.
set -uo pipefail
name=$1
shift
log=${PHASE_LOG:-build/phases.tsv}
mkdir -p "$(dirname "$log")"
start=$(date +%s.%N)
"$@"
rc=$?
end=$(date +%s.%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
status=ok
[ "$rc" -eq 0 ] || status=failed
printf '%s\t%s\t%s\n' "$name" "$secs" "$status" >>"$log"
echo "==> phase $name: ${secs} s ($status)"
exit "$rc"
