/**
 * Where a guest's boot id is in its guest-physical memory, as its agent reports it and as a
 * saved state's record keeps it (the mechanism and its reasons: hypervisor/qemu/boot-id.ts).
 * Nothing here depends on one hypervisor: the agent client checks the report, the snapshot
 * code writes and reads the record, and a VMM driver makes the copy's boot id new there.
 */

/** Physical addresses are under 2^52 on x86-64 and arm64. */
const MAX_GUEST_PHYSICAL = 2n ** 52n;

/** The address a guest reported, as hull keeps it; undefined if it gave none (0) or nonsense. */
export function checkedBootIdAddress(reported: bigint): bigint | undefined {
  return reported > 0n && reported + 16n <= MAX_GUEST_PHYSICAL ? reported : undefined;
}

/** How a saved state's record keeps it (JSON has no 64-bit integers). */
export function bootIdAddressText(address: bigint): string {
  return `0x${address.toString(16)}`;
}

/** A recorded address read back: the record is the host's, its value still the guest's. */
export function parseBootIdAddressText(text: unknown): bigint | undefined {
  if (typeof text !== 'string' || !/^0x[0-9a-f]{1,13}$/.test(text)) return undefined;
  return checkedBootIdAddress(BigInt(text));
}
