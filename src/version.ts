/** hull's version, as its commands and the shim's Connect answer report it. */
export const VERSION = '0.1.0';
