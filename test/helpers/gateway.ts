/**
 * A real gateway for integration tests: real Docker engine, real SQLite in a temporary data dir, listening on
 * 127.0.0.1 on a free port. `close()` removes every container this gateway created, so no test leaks one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { type RunningGateway, startGateway } from '../../src/gateway/server.js';

export interface TestGateway {
  url: string;
  dataDir: string;
  gateway: RunningGateway;
  /** Stops the gateway, keeping the data dir and containers (to test a restart). */
  stop(): Promise<void>;
  /** Stops the gateway and removes its containers and data dir. */
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  heartbeatMs?: number;
  /** Reuse a data dir (restart tests). */
  dataDir?: string;
  env?: Record<string, string>;
}

export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'faas-test-'));
  // Dependency caches are named volumes that outlive a gateway (they are shared by tenant); tests that are not
  // about them keep them off, so test tenants do not leave volumes behind.
  const env = { ...process.env, FAAS_DEPENDENCY_CACHES: 'off', ...opts.env };
  const config = {
    ...loadConfig({ host: '127.0.0.1', port: 0, dataDir, heartbeatMs: opts.heartbeatMs }, env),
    logLevel: 'silent' as const,
  };
  const gateway = await startGateway(config);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await gateway.close();
  };
  return {
    url: gateway.url,
    dataDir,
    gateway,
    stop,
    async close() {
      // List before closing: the runtime knows this gateway's instance label.
      const runtime = gateway.platform.runtime;
      const mine = await runtime.list().catch(() => []);
      await stop();
      await Promise.all(mine.map((c) => runtime.remove(c.id).catch(() => undefined)));
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A gateway started before the calling file's (or describe block's) tests and closed after them. Its properties
 * are read when used, so `gw.url` works inside tests.
 */
export function useTestGateway(opts: TestGatewayOptions = {}): TestGateway {
  let started: TestGateway | undefined;
  beforeAll(async () => {
    started = await startTestGateway(opts);
  });
  afterAll(async () => {
    await started?.close();
  });
  const current = (): TestGateway => {
    if (!started) throw new Error('the test gateway is used before its beforeAll ran (use it inside tests)');
    return started;
  };
  return {
    get url() {
      return current().url;
    },
    get dataDir() {
      return current().dataDir;
    },
    get gateway() {
      return current().gateway;
    },
    stop: () => current().stop(),
    close: () => current().close(),
  };
}

/** JSON over HTTP with the status kept, for tests that check error answers too. */
export async function api<T = any>(base: string, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json', ...headers } : headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}
