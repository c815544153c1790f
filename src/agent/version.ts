/**
 * The agent protocol version. The host and the agent in the guest image must agree on the
 * major number; the image's manifest pins the exact agent build (image/manifest.ts).
 */
export const AGENT_PROTOCOL_VERSION = '1.9';
