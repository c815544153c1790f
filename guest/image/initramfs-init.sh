#!/bin/sh
# hull guest initramfs: load the drivers the root disk needs, mount the read-only root
# filesystem from its virtio disk, and hand over to hull-init.
export PATH=/bin

fail() {
  echo "hull-initramfs: $*" >/dev/console
  reboot -f
}

mount -t proc proc /proc
# Boot phase times (guest uptime) for the host's boot trace; hull-init passes them on.
read -r HULL_T_INITRAMFS _ </proc/uptime
export HULL_T_INITRAMFS
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# microvm lists its virtio-mmio devices on the kernel command line; a module does not read
# /proc/cmdline by itself, so hand the device= parameters to virtio_mmio explicitly.
mmio=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in virtio_mmio.device=*) mmio="$mmio device=${arg#virtio_mmio.device=}" ;; esac
done

while read -r module; do
  case "$module" in
    */virtio_mmio.ko) insmod "/lib/modules/$module" $mmio || fail "cannot load $module" ;;
    *) insmod "/lib/modules/$module" || fail "cannot load $module" ;;
  esac
done </lib/modules/load-order

# The root disk is the virtio disk whose serial is hull-root (another disk, the agent's
# snapshot, may probe first).
root=""
tries=0
while [ -z "$root" ]; do
  for serial in /sys/block/vd*/serial; do
    [ -r "$serial" ] && [ "$(cat "$serial")" = hull-root ] && { dev=${serial%/serial}; root=/dev/${dev##*/}; }
  done
  [ -n "$root" ] && [ -b "$root" ] && break
  root=""
  tries=$((tries + 1))
  [ "$tries" -gt 1000 ] && fail "the root disk (virtio serial hull-root) did not appear"
  usleep 5000
done

mount -t erofs -o ro "$root" /root || fail "cannot mount the root filesystem"
read -r HULL_T_ROOT _ </proc/uptime
export HULL_T_ROOT
mount --move /dev /root/dev
umount /sys
umount /proc
exec switch_root /root /sbin/hull-init
