#!/usr/bin/env bash
# Sets everything up, then runs every test: lint, unit tests, and end-to-end tests that boot
# real VMs.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
./scripts/setup.sh
# The guest-kernel test also boots the minimal kernel (built from linux-source, several minutes
# the first time, then cached with the test images); building it here keeps that long compile
# from competing with the VMs of the tests running side by side.
HULL_STATE_DIR=/var/tmp/hull-test-images/minimal-kernel-state ./bin/hull image build --kernel minimal
# Sandboxes are cloned from VM templates, made on first use and kept by a process each; the
# run makes the usual ones first (so tests side by side do not wait on one another for them)
# and ends every template it made, whatever the tests left.
remove_templates() {
  ./bin/hull template rm --all || true
  HULL_STATE_DIR=/var/tmp/hull-test-images/minimal-kernel-state ./bin/hull template rm --all || true
}
trap remove_templates EXIT
./bin/hull template build
./bin/hull template build --nics 1
npm test
