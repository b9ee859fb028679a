/** The minimal logger the storage module writes to (pino, console and the gateway's logger all fit). */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export const consoleLogger: Logger = {
  info: () => {},
  warn: (m) => console.warn(`[storage] ${m}`),
  error: (m) => console.error(`[storage] ${m}`),
};

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
