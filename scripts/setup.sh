#!/usr/bin/env bash
# Sets up a Debian bookworm machine for hull, as root, and can be run again at any time:
# Debian packages, Node.js 20, npm dependencies, the build, and the guest image.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (hull starts VMs and mounts the bundle's files for them)" >&2
  exit 1
fi

# One line per step with its time, on the descriptor HULL_SETUP_PROGRESS_FD names (the demo
# keeps the rest of the output in a file and shows these), else on stderr.
progress_fd=${HULL_SETUP_PROGRESS_FD:-2}
step_name='' step_start=0
step() {
  local now=$SECONDS
  [ -n "$step_name" ] && echo "setup: $step_name done ($((now - step_start)) s)" >&"$progress_fd"
  step_name=$1 step_start=$now
  [ -n "$step_name" ] && echo "setup: $step_name…" >&"$progress_fd"
  return 0
}

# What hull needs on the host, and what the guest image is made from.
packages=(
  qemu-system-x86       # the hypervisor
  qemu-system-arm       # arm64 guests (qemu-system-aarch64): `hull image build --arch arm64`
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross   # hull's guest programs for arm64 guests
  busybox-static        # guest initramfs and root tools
  crun                  # the OCI executor inside the guest, built from this package's Debian source:
  libseccomp-dev libcap-dev libyajl-dev dpkg-dev make debian-archive-keyring   # static, no systemd
  erofs-utils           # the guest's read-only root filesystem
  cpio xz-utils         # initramfs packing, kernel unpacking
  gcc libc6-dev         # hull-init, the guest's PID 1, is compiled static
  libfuse3-dev          # hull-share-server, which serves the share to QEMU over FUSE
  kmod                  # the guest's modprobe, and depmod to index its modules
  util-linux            # mount/umount for sharing bundle files
  runc                  # the benchmark compares with containers on the host
  podman conmon docker.io containerd umoci skopeo   # end-to-end tests with real clients
  docker-registry       # a registry on 127.0.0.1 for `hull serve`'s sandboxes from image references
  containernetworking-plugins   # CNI plugins: pod networks in the CRI tests
  iptables iproute2      # hull serve: its sandboxes' bridge, NAT and firewall
  e2fsprogs             # hull serve: a sandbox's writable disk (mkfs.ext4 on the host, never mounted)
  qemu-utils            # qemu-img: a forked sandbox's disk as a qcow2 overlay of its snapshot's
  criu                  # podman checks for CRIU before it asks the runtime to checkpoint
  curl                  # tests and the benchmark fetch from servers in containers
  strace                # a test holds QEMU's exit back (tests/fixtures/held-exit.ts)
  python3 bsdutils      # test peers: a console-socket receiver; `script` for `podman run -t`
  mmdebstrap            # test images made from Debian packages (nginx, iptables, iproute2)
  ca-certificates git
)
step "Debian packages"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# apt-cache needs fresh lists to find the guest kernel package even when nothing is missing.
if [ ${#missing[@]} -gt 0 ] || [ -z "$(apt-cache policy linux-image-amd64 2>/dev/null | grep Candidate)" ] \
  || apt-cache policy linux-image-amd64 | grep -q 'Candidate: (none)'; then
  apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Node.js 20.16 or newer. Debian bookworm ships 18; the npm registry's `node` package
# carries official Node binaries, so the newer one comes from there.
step "Node.js 20"
node_ok() { command -v node >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=16)?0:1)'; }
if ! node_ok; then
  command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
  npm install -g --no-fund --no-audit node@20
  hash -r
fi
node_ok || { echo "setup: could not install Node.js >= 20.16" >&2; exit 1; }

step "npm dependencies"
npm ci --no-fund --no-audit
step "build"
npm run build
step "guest image"
./bin/hull image build
step ""
