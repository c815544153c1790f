#!/usr/bin/env bash
# Sets everything up, then runs a busybox container in its own VM and shows the guest's
# kernel and hostname next to the host's.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
# Setup shows one line per step with its time (fd 3) and keeps its full output in a file,
# shown if it fails.
log=$(mktemp /tmp/hull-setup.XXXXXX.log)
echo "setup: its full output goes to $log"
HULL_SETUP_PROGRESS_FD=3 ./scripts/setup.sh 3>&1 >"$log" 2>&1 || { cat "$log" >&2; echo "setup failed: its output is above and in $log" >&2; exit 1; }
rm -f "$log"
# The first start of a VM shape boots a VM and saves it as a template; later starts clone it.
start=$SECONDS
echo "template: making the default VM template (first time only)…"
./bin/hull template build >/dev/null
echo "template: ready ($((SECONDS - start)) s)"

work=$(mktemp -d /tmp/hull-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
node scripts/make-bundle.mjs "$work/bundle" --hostname hull-demo sh -c 'echo "container: kernel $(uname -r), hostname $(hostname)"'
echo "host:      kernel $(uname -r), hostname $(hostname)"
time ./bin/hull run --bundle "$work/bundle" "demo-$$"
