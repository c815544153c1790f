#!/usr/bin/env bash
# Sets everything up, then runs a busybox container in its own VM and shows the guest's
# kernel and hostname next to the host's.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
log=$(mktemp /tmp/hull-setup.XXXXXX.log)
./scripts/setup.sh >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
rm -f "$log"

work=$(mktemp -d /tmp/hull-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
node scripts/make-bundle.mjs "$work/bundle" --hostname hull-demo sh -c 'echo "container: kernel $(uname -r), hostname $(hostname)"'
echo "host:      kernel $(uname -r), hostname $(hostname)"
time ./bin/hull run --bundle "$work/bundle" "demo-$$"
