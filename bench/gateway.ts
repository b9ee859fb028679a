/** Gateways and raw-engine baselines for the benchmark suites. */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Docker from 'dockerode';
import { DEFAULT_IMAGE } from '@faas/protocol';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/sqlite.js';
import { type RunningGateway, startGateway } from '../src/gateway/server.js';
import { exitOf, startServe } from '../test/helpers/serve-process.js';

export const BENCH_LABEL = 'faas.bench';

export interface ServedGateway {
  url: string;
  pid: number;
  /** Its `faas.instance` label. */
  instance: string;
  /** Resolves once its background work is done: no finished sandbox waits for removal, no pool is filling. */
  settled(): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * A gateway in its own process (`faas serve`, as users run it) on a free port with its own data dir; `env`
 * overrides configuration. `dispose()` stops it and removes every container it left.
 */
export async function serveGateway(workDir: string, name: string, env: Record<string, string> = {}): Promise<ServedGateway> {
  const dataDir = path.join(workDir, name);
  const serve = await startServe(['--data-dir', dataDir], env);
  const db = openDatabase(dataDir);
  const instance = (db.prepare("SELECT value FROM platform_settings WHERE key = 'instance_id'").get() as { value: string }).value;
  db.close();
  const docker = new Docker({ socketPath: loadConfig().dockerSocket });
  return {
    url: serve.url,
    pid: serve.child.pid!,
    instance,
    async settled() {
      for (let i = 0; i < 600; i++) {
        const finished = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instance}`, 'faas.kind=ephemeral'] } });
        const pools = (await (await fetch(`${serve.url}/api/v1/pools`)).json()) as { pools: Array<{ creating: number }> };
        if (finished.length === 0 && pools.pools.every((p) => p.creating === 0)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`gateway ${instance} still had background work after 60 s`);
    },
    async dispose() {
      serve.child.kill('SIGTERM');
      await exitOf(serve.child);
      const left = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instance}`] } });
      await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An in-process gateway on a free port with its own data dir; `env` overrides configuration. */
export async function benchGateway(workDir: string, name: string, env: Record<string, string> = {}): Promise<RunningGateway & { dispose(): Promise<void> }> {
  const dataDir = path.join(workDir, name);
  // Dependency caches are the default tenant's volumes, kept across gateways on purpose (they may be the user's
  // own): off here, as startServe and the test gateways leave them, so a run leaves none behind.
  const config = loadConfig({ host: '127.0.0.1', port: 0, dataDir }, { ...process.env, FAAS_DEPENDENCY_CACHES: 'off', ...env });
  const gateway = await startGateway({ ...config, logLevel: 'silent' });
  return {
    ...gateway,
    async dispose() {
      const runtime = gateway.platform.runtime;
      const mine = await runtime.list().catch(() => []);
      await gateway.close();
      await Promise.all(mine.map((c) => runtime.remove(c.id).catch(() => undefined)));
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Kept-alive connections, as curl or a Go client would use: Node's own fetch adds about 0.5 ms per request on
 * this machine, which would be measured as the gateway's.
 */
const keepAlive = new http.Agent({ keepAlive: true });

export function post(url: string, body: unknown): Promise<any> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: keepAlive, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          const json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${url} answered ${res.statusCode}: ${JSON.stringify(json)}`));
          else resolve(json);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export async function timeIt(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    samples.push(performance.now() - t);
  }
  return samples;
}

/** The raw Engine API doing what an ephemeral execution does: create, start, wait, remove. */
export async function rawContainerRun(docker: Docker): Promise<void> {
  const c = await docker.createContainer({
    Image: DEFAULT_IMAGE,
    Cmd: ['echo', 'hi'],
    HostConfig: { NetworkMode: 'none' },
    Labels: { 'faas.managed': 'true', [BENCH_LABEL]: 'raw' },
  });
  await c.start();
  await c.wait();
  await c.remove({ force: true });
}

/** The raw Engine API running one command in a running container: exec create, start, read to the end, inspect. */
export async function rawExec(container: Docker.Container): Promise<void> {
  const exec = await container.exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise((resolve) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.resume();
  });
  await exec.inspect();
}

export async function removeRawLeftovers(docker: Docker): Promise<void> {
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`${BENCH_LABEL}=raw`] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}

/** Runs `fn` with `concurrency` workers for `ms`; returns completed operations per second. */
export async function throughput(concurrency: number, ms: number, fn: () => Promise<unknown>): Promise<number> {
  const end = performance.now() + ms;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await fn();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}
