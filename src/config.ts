/**
 * Gateway configuration: command-line flags over environment variables over defaults. Every value is checked
 * here, so a typo fails at start with a message naming the flag or variable rather than deep inside a request.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuietTimeOptions } from './platform/quiet-time.js';
import type { WarmPoolOptions } from './platform/warm-pool.js';

export interface GatewayConfig {
  /** The environment it was loaded from: modules with their own variables (storage, result cache, forks) read it. */
  env?: NodeJS.ProcessEnv;
  host: string;
  port: number;
  dataDir: string;
  /** Host path of the static in-sandbox agent binary. */
  agentPath: string;
  /** Interval of `heartbeat` events on WebSocket streams. */
  heartbeatMs: number;
  /** How often idle persistent sandboxes are looked for. */
  idleCheckMs: number;
  /** Unsent bytes a WebSocket client may fall behind by before it is disconnected, however it reads. */
  wsMaxBufferedBytes: number;
  /** How long data may wait for a WebSocket client that accepts none of it before it is disconnected. */
  wsStallMs: number;
  /** Docker Engine socket. */
  dockerSocket: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  pools: WarmPoolOptions;
  /** When background work (removals, pool refills) may run: see QuietTime. */
  background: QuietTimeOptions;
  /**
   * API keys. On when FAAS_ADMIN_KEY is set or FAAS_AUTH=on (or a generated admin key exists in the data dir);
   * off only for a single-user gateway on loopback.
   */
  auth: { requested: boolean; adminKey: string | undefined };
}

/** The repository (or installed package) root: bin/, agent/ and dist/ hang from it. */
export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  let dir = from;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'faas-platform') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the faas-platform package root above ${from}`);
    dir = parent;
  }
}

export const DEFAULT_AGENT_PATH = path.join(PACKAGE_ROOT, 'agent', 'build', 'faas-agent');

export interface ConfigInput {
  host?: string | undefined;
  port?: string | number | undefined;
  dataDir?: string | undefined;
  heartbeatMs?: string | number | undefined;
}

function intFrom(name: string, raw: string | number | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function flag(name: string, raw: string | undefined): boolean {
  if (raw === undefined || raw === '' || raw === 'off' || raw === '0' || raw === 'false') return false;
  if (raw === 'on' || raw === '1' || raw === 'true') return true;
  throw new Error(`${name} must be on or off, got "${raw}"`);
}

export function loadConfig(input: ConfigInput = {}, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const logLevel = (env.FAAS_LOG_LEVEL ?? 'info') as GatewayConfig['logLevel'];
  if (env.FAAS_ADMIN_KEY !== undefined && env.FAAS_ADMIN_KEY.length < 16) {
    throw new Error('FAAS_ADMIN_KEY must be at least 16 characters long');
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new Error(`FAAS_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got "${logLevel}"`);
  }
  return {
    env,
    host: input.host ?? env.FAAS_HOST ?? '127.0.0.1',
    port: intFrom('--port / FAAS_PORT', input.port ?? env.FAAS_PORT, 8080, 0, 65535),
    dataDir: path.resolve(input.dataDir ?? env.FAAS_DATA_DIR ?? '.faas'),
    agentPath: path.resolve(env.FAAS_AGENT_PATH ?? DEFAULT_AGENT_PATH),
    heartbeatMs: intFrom('--heartbeat-ms / FAAS_HEARTBEAT_MS', input.heartbeatMs ?? env.FAAS_HEARTBEAT_MS, 15_000, 100, 3_600_000),
    idleCheckMs: intFrom('FAAS_IDLE_CHECK_MS', env.FAAS_IDLE_CHECK_MS, 5_000, 100, 3_600_000),
    wsMaxBufferedBytes: intFrom('FAAS_WS_MAX_BUFFERED_BYTES', env.FAAS_WS_MAX_BUFFERED_BYTES, 16 * 1024 * 1024, 64 * 1024, 1024 ** 3),
    wsStallMs: intFrom('FAAS_WS_STALL_MS', env.FAAS_WS_STALL_MS, 5_000, 100, 600_000),
    dockerSocket: env.FAAS_DOCKER_SOCKET ?? (env.DOCKER_HOST?.startsWith('unix://') ? env.DOCKER_HOST.slice(7) : '/var/run/docker.sock'),
    logLevel,
    auth: {
      requested: env.FAAS_ADMIN_KEY !== undefined || flag('FAAS_AUTH', env.FAAS_AUTH),
      adminKey: env.FAAS_ADMIN_KEY,
    },
    pools: {
      maxTotal: intFrom('FAAS_POOL_MAX_TOTAL', env.FAAS_POOL_MAX_TOTAL, 128, 0, 10_000),
      maxPerPool: intFrom('FAAS_POOL_MAX_PER_POOL', env.FAAS_POOL_MAX_PER_POOL, 64, 0, 10_000),
      idleShrinkMs: intFrom('FAAS_POOL_IDLE_SHRINK_MS', env.FAAS_POOL_IDLE_SHRINK_MS, 60_000, 100, 86_400_000),
      fillConcurrency: intFrom('FAAS_POOL_FILL_CONCURRENCY', env.FAAS_POOL_FILL_CONCURRENCY, 2, 1, 64),
      minAvailableMb: intFrom('FAAS_POOL_MIN_AVAILABLE_MB', env.FAAS_POOL_MIN_AVAILABLE_MB, 1024, 0, 16 * 1024 * 1024),
    },
    background: {
      quietMs: intFrom('FAAS_BACKGROUND_QUIET_MS', env.FAAS_BACKGROUND_QUIET_MS, 150, 0, 60_000),
      maxDelayMs: intFrom('FAAS_BACKGROUND_MAX_DELAY_MS', env.FAAS_BACKGROUND_MAX_DELAY_MS, 2_000, 0, 600_000),
    },
  };
}
