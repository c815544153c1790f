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
npm test
