// Shared dependency caches against the real engine: sandboxes are made with the Docker runtime directly, with the
// mounts `DependencyCaches.mountsFor(tenant)` gives, as the platform does for every sandbox.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AGENT_PATH } from '../../src/config.js';
import { DependencyCaches, KNOWN_CACHES, cacheConfigFromEnv } from '../../src/platform/dependency-caches.js';
import { DockerRuntime } from '../../src/runtimes/docker/docker-runtime.js';
import type { VolumeMount } from '../../src/runtimes/runtime.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const run = crypto.randomBytes(4).toString('hex');
const tenantA = `test-${run}-a`;
const tenantB = `test-${run}-b`;
const runRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-cache-test-'));
const runtime = new DockerRuntime({ socketPath: '/var/run/docker.sock', agentPath: DEFAULT_AGENT_PATH, runRoot, instanceId: `test-caches-${run}` });
const caches = new DependencyCaches(docker, cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'npm,pip' }));
let seq = 0;

async function sandbox(volumes: VolumeMount[]): Promise<string> {
  const id = `sb-cache-${run}-${seq++}`;
  await runtime.create({ id, image: 'faas/busybox:latest', env: {}, workingDir: '/workspace', limits: { network: 'none' }, labels: { 'faas.kind': 'test' }, volumes });
  return id;
}

async function sh(id: string, command: string): Promise<{ code: number; out: string }> {
  const p = await runtime.exec(id, { argv: ['sh', '-c', command] });
  let out = '';
  p.on('stdout', (b: Buffer) => (out += b.toString()));
  p.on('stderr', (b: Buffer) => (out += b.toString()));
  const exit = await p.exited;
  return { code: exit.exitCode, out };
}

/** A fresh sandbox per call, removed after it: the cache must outlive it. */
async function once(tenant: string, command: string, cachesOf = caches): Promise<{ code: number; out: string }> {
  const id = await sandbox(await cachesOf.mountsFor(tenant));
  try {
    return await sh(id, command);
  } finally {
    await runtime.remove(id);
  }
}

async function cleanup(): Promise<void> {
  for (const c of await runtime.list().catch(() => [])) await runtime.remove(c.id).catch(() => undefined);
  const { Volumes } = await docker.listVolumes({ filters: { label: ['faas.cache'] } });
  for (const v of Volumes ?? []) if (v.Name.includes(`test-${run}-`)) await docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined);
}

afterAll(async () => {
  await cleanup();
  await runtime.close();
  fs.rmSync(runRoot, { recursive: true, force: true });
});

describe('configuration', () => {
  it('enables the five known caches by default, none with off, and extra ones by path', () => {
    expect(cacheConfigFromEnv({}).caches.map((c) => c.name)).toEqual(Object.keys(KNOWN_CACHES));
    expect(cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'off' }).caches).toEqual([]);
    const cfg = cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'npm,gradle:/root/.gradle/caches', FAAS_SHARED_CACHES: 'gradle=ci' });
    expect(cfg.caches).toEqual([
      { name: 'npm', target: '/root/.npm' },
      { name: 'gradle', target: '/root/.gradle/caches' },
    ]);
    expect(cfg.shared).toEqual({ gradle: 'ci' });
    expect(() => cacheConfigFromEnv({ FAAS_SHARED_CACHES: 'npm=ci' })).toThrow(/npm cannot work with a read-only cache/);
    expect(() => cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'bogus' })).toThrow(/unknown cache "bogus"/);
    expect(() => cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'x:relative' })).toThrow(/absolute path/);
    expect(() => cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'npm', FAAS_SHARED_CACHES: 'pip=ci' })).toThrow(/enabled cache/);
  });

  it('names one volume per tenant and cache, labelled, mounted at the tools\' paths', async () => {
    const mounts = await caches.mountsFor(tenantA);
    expect(mounts).toEqual([
      { volume: `faas-cache-${tenantA}-npm`, target: '/root/.npm' },
      { volume: `faas-cache-${tenantA}-pip`, target: '/root/.cache/pip' },
    ]);
    const info = await docker.getVolume(`faas-cache-${tenantA}-npm`).inspect();
    expect(info.Labels).toMatchObject({ 'faas.managed': 'true', 'faas.cache': 'npm', 'faas.tenant': tenantA });
    expect(() => caches.plan('../etc')).toThrow(/invalid tenant/);
  });
});

describe('sharing', () => {
  it('a file written under /root/.npm by one sandbox is seen by the next sandbox of the same tenant, not by another tenant', async () => {
    expect(await once(tenantA, 'echo from-a > /root/.npm/probe && echo pip > /root/.cache/pip/p')).toMatchObject({ code: 0 });
    expect(await once(tenantA, 'cat /root/.npm/probe')).toEqual({ code: 0, out: 'from-a\n' });
    const other = await once(tenantB, 'cat /root/.npm/probe 2>/dev/null || echo absent; ls -A /root/.npm | wc -l');
    expect(other.out).toBe('absent\n0\n');
  });

  it('shares across tenants only when opted in, read-only for the consumers', async () => {
    const shared = new DependencyCaches(docker, cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'npm,pip', FAAS_SHARED_CACHES: `pip=${tenantA}` }));
    expect(await shared.mountsFor(tenantB)).toEqual([
      { volume: `faas-cache-${tenantB}-npm`, target: '/root/.npm' },
      { volume: `faas-cache-${tenantA}-pip`, target: '/root/.cache/pip', readOnly: true },
    ]);
    expect(await once(tenantB, 'cat /root/.cache/pip/p; echo x > /root/.cache/pip/poison', shared)).toMatchObject({ code: 1, out: expect.stringMatching(/pip\n.*Read-only file system/s) });
    expect(await once(tenantA, 'echo owner > /root/.cache/pip/owner && cat /root/.cache/pip/owner', shared)).toEqual({ code: 0, out: 'owner\n' });
    await expect(shared.purge(tenantB, 'pip')).rejects.toThrow(/only that tenant may purge/);
  });
});

describe('sizes and purge', () => {
  it('reports a size per cache', async () => {
    await once(tenantA, 'head -c 300000 /dev/zero > /root/.npm/blob');
    const list = await caches.list(tenantA);
    const npm = list.find((c) => c.name === 'npm');
    expect(npm).toMatchObject({ volume: `faas-cache-${tenantA}-npm`, owner: tenantA, read_only: false, exists: true });
    expect(npm!.size_bytes).toBeGreaterThanOrEqual(300000);
  });

  it('purging a cache in use empties it and the running sandbox keeps a working mount', async () => {
    const id = await sandbox(await caches.mountsFor(tenantA));
    try {
      expect((await sh(id, 'ls /root/.npm | sort')).out).toContain('blob');
      expect(await caches.purge(tenantA, 'npm')).toEqual({ name: 'npm', volume: `faas-cache-${tenantA}-npm`, method: 'emptied' });
      expect(await sh(id, 'ls -A /root/.npm | wc -l; echo again > /root/.npm/after && cat /root/.npm/after')).toEqual({ code: 0, out: '0\nagain\n' });
    } finally {
      await runtime.remove(id);
    }
    // Unused now: purging removes the volume, and the next sandbox gets a fresh one.
    expect((await caches.purge(tenantA, 'npm')).method).toBe('removed');
    expect((await caches.purge(tenantA, 'npm')).method).toBe('absent');
    expect(await once(tenantA, 'ls -A /root/.npm | wc -l')).toEqual({ code: 0, out: '0\n' });
    await expect(caches.purge(tenantA, 'nope')).rejects.toThrow(/no dependency cache named "nope"/);
  });

  it('forgets every cache volume of a tenant', async () => {
    await caches.mountsFor(tenantB);
    const gone = await caches.forget(tenantB);
    expect(gone.sort()).toEqual([`faas-cache-${tenantB}-npm`, `faas-cache-${tenantB}-pip`]);
    const { Volumes } = await docker.listVolumes({ filters: { label: [`faas.tenant=${tenantB}`] } });
    expect(Volumes ?? []).toEqual([]);
  });
});

describe('routes', () => {
  // A tenant of its own: the default tenant's caches may belong to someone's gateway on this engine.
  const ADMIN = `admin-${run}-0123456789abcdef`;
  let gw: TestGateway;
  let tenant: string;
  let headers: Record<string, string>;
  beforeAll(async () => {
    gw = await startTestGateway({ env: { FAAS_ADMIN_KEY: ADMIN, FAAS_DEPENDENCY_CACHES: 'npm,pip,cargo,go-mod,go-build' } });
    const admin = { authorization: `Bearer ${ADMIN}` };
    tenant = (await api(gw.url, 'POST', '/api/v1/tenants', { name: `caches-${run}` }, admin)).body.id;
    headers = { authorization: `Bearer ${(await api(gw.url, 'POST', `/api/v1/tenants/${tenant}/keys`, undefined, admin)).body.key}` };
  });
  afterAll(async () => {
    await gw?.close();
    const made = ((await docker.listVolumes()).Volumes ?? []).filter((v) => tenant && v.Name.startsWith(`faas-cache-${tenant}-`));
    await Promise.all(made.map((v) => docker.getVolume(v.Name).remove().catch(() => undefined)));
  });

  it('GET /api/v1/caches lists the caches of the tenant with sizes; DELETE of an unknown one is a 404', async () => {
    const res = await api(gw.url, 'GET', '/api/v1/caches', undefined, headers);
    expect(res.status).toBe(200);
    expect(res.body.caches.map((c: { name: string }) => c.name)).toEqual(gw.gateway.platform.caches.config.caches.map((c) => c.name));
    for (const c of res.body.caches) expect(c).toMatchObject({ owner: tenant, volume: `faas-cache-${tenant}-${c.name}` });
    const missing = await api(gw.url, 'DELETE', '/api/v1/caches/nope', undefined, headers);
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe('not_found');
  });

  it('executions of one tenant share /root/.npm through POST /api/v1/execute; DELETE purges it', async () => {
    const probe = `probe-${run}`;
    const write = await api(gw.url, 'POST', '/api/v1/execute', { command: `echo shared > /root/.npm/${probe}` }, headers);
    expect(write.body).toMatchObject({ exit_code: 0 });
    const read = await api(gw.url, 'POST', '/api/v1/execute', { command: `cat /root/.npm/${probe}` }, headers);
    expect(read.body).toMatchObject({ exit_code: 0, stdout: 'shared\n' });
    const purge = await api(gw.url, 'DELETE', '/api/v1/caches/npm', undefined, headers);
    expect(purge.status).toBe(200);
    expect(['removed', 'emptied']).toContain(purge.body.method);
    const after = await api(gw.url, 'POST', '/api/v1/execute', { command: `cat /root/.npm/${probe} 2>/dev/null || echo gone` }, headers);
    expect(after.body.stdout).toBe('gone\n');
  });
});
