/**
 * The monitor's socket in its container's directory: the Monitor API, and the agent's passed
 * through. Apart from monitor.ts so that a verb names it without loading the monitor.
 */
export const MONITOR_SOCKET = 'monitor.sock';
