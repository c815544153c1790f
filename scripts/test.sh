#!/usr/bin/env bash
# Sets everything up, then runs every test: lint, unit tests, and end-to-end tests that boot
# real VMs.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
./scripts/setup.sh
npm test
