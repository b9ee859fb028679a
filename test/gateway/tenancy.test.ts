import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config.js';
import { startGateway } from '../../src/gateway/server.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const ADMIN = 'admin-key-for-tests-0123456789';
let gw: TestGateway;
const admin = { authorization: `Bearer ${ADMIN}` };

beforeAll(async () => {
  gw = await startTestGateway({ env: { FAAS_ADMIN_KEY: ADMIN } });
});
afterAll(async () => {
  await gw?.close();
});

async function tenantWithKey(name: string, quotas?: object): Promise<{ id: string; key: string; headers: Record<string, string> }> {
  const tenant = await api(gw.url, 'POST', '/api/v1/tenants', { name, ...(quotas ? { quotas } : {}) }, admin);
  expect(tenant.status).toBe(201);
  const key = await api(gw.url, 'POST', `/api/v1/tenants/${tenant.body.id}/keys`, undefined, admin);
  expect(key.status).toBe(201);
  expect(key.body.key).toMatch(/^faas_[a-z0-9]{12}_/);
  return { id: tenant.body.id, key: key.body.key, headers: { authorization: `Bearer ${key.body.key}` } };
}

function wsStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => resolve(-1));
  });
}

describe('API keys and tenants', () => {
  it('refuses requests without a valid key, but /health and the OpenAPI document are public', async () => {
    const none = await api(gw.url, 'GET', '/api/v1/containers');
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ error: 'unauthorized', message: expect.stringContaining('Authorization: Bearer') });
    expect((await api(gw.url, 'GET', '/api/v1/containers', undefined, { authorization: 'Bearer faas_nope' })).status).toBe(401);
    expect((await api(gw.url, 'GET', '/api/v1/containers', undefined, { authorization: 'Basic abc' })).status).toBe(401);
    expect((await api(gw.url, 'GET', '/health')).status).toBe(200);
    expect((await api(gw.url, 'GET', '/api/v1/openapi.json')).status).toBe(200);
    expect((await api(gw.url, 'POST', '/api/v1/execute', { command: 'echo' })).status).toBe(401);
  });

  it('keeps tenants apart on REST and WebSocket alike', async () => {
    const a = await tenantWithKey('team-a');
    const b = await tenantWithKey('team-b');
    const box = await api(gw.url, 'POST', '/api/v1/containers', {}, a.headers);
    expect(box.status).toBe(201);
    const id = box.body.id;

    expect((await api(gw.url, 'GET', `/api/v1/containers/${id}`, undefined, a.headers)).status).toBe(200);
    expect((await api(gw.url, 'GET', '/api/v1/containers', undefined, a.headers)).body.containers.map((c: { id: string }) => c.id)).toEqual([id]);
    expect((await api(gw.url, 'GET', '/api/v1/containers', undefined, b.headers)).body.containers).toEqual([]);
    for (const [method, path, body] of [
      ['GET', `/api/v1/containers/${id}`, undefined],
      ['POST', `/api/v1/containers/${id}/exec`, { command: 'id' }],
      ['POST', `/api/v1/containers/${id}/stop`, undefined],
      ['POST', `/api/v1/containers/${id}/resume`, undefined],
      ['DELETE', `/api/v1/containers/${id}`, undefined],
    ] as const) {
      const res = await api(gw.url, method, path, body, b.headers);
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    const wsUrl = `${gw.url.replace('http', 'ws')}/api/v1/containers/${id}/stream`;
    expect(await wsStatus(wsUrl, b.headers)).toBe(404);
    expect(await wsStatus(wsUrl)).toBe(401);
    expect(await wsStatus(wsUrl, a.headers)).toBe(101);
    expect(await wsStatus(`${wsUrl}?api_key=${a.key}`)).toBe(101);

    // X-API-Key works as well as Authorization.
    const viaHeader = await api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'echo mine' }, { 'x-api-key': a.key });
    expect(viaHeader.body.stdout).toBe('mine\n');
    expect((await api(gw.url, 'DELETE', `/api/v1/containers/${id}`, undefined, a.headers)).status).toBe(204);
  });

  it("keeps a tenant's templates out of other tenants' executions, pools and sandboxes", async () => {
    const owner = await tenantWithKey('template-owner');
    const other = await tenantWithKey('template-other');
    const name = `faas-test/tenancy-${process.pid}:1`;
    const built = await api(gw.url, 'POST', '/api/v1/images', { name, dockerfile: 'FROM faas/busybox:latest\nRUN echo mine > /owner\n' }, owner.headers);
    expect(built.status).toBe(201);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await api(gw.url, 'POST', '/api/v1/execute', { image: name, command: 'cat /owner' }, other.headers);
        expect(res.status).toBe(404);
        expect(res.body.error).toBe('image_not_found');
      }
      expect((await api(gw.url, 'POST', '/api/v1/containers', { image: name }, other.headers)).status).toBe(404);
      expect((await api(gw.url, 'POST', '/api/v1/prewarm', { image: name, count: 1 }, other.headers)).status).toBe(404);
      const pools = (await api(gw.url, 'GET', '/api/v1/pools', undefined, other.headers)).body.pools as Array<{ image: string; size: number; ready: number }>;
      expect(pools.filter((p) => p.image === name && (p.size > 0 || p.ready > 0))).toEqual([]);
      const mine = await api(gw.url, 'POST', '/api/v1/execute', { image: name, command: 'cat /owner' }, owner.headers);
      expect(mine.body.stdout).toBe('mine\n');
    } finally {
      await api(gw.url, 'DELETE', `/api/v1/images/${encodeURIComponent(name)}`, undefined, owner.headers);
    }
  });

  it('lets only the admin manage tenants and keys, and revoked keys stop working', async () => {
    const c = await tenantWithKey('team-c');
    expect((await api(gw.url, 'GET', '/api/v1/tenants', undefined, c.headers)).status).toBe(403);
    expect((await api(gw.url, 'POST', '/api/v1/tenants', { name: 'sneaky' }, c.headers)).status).toBe(403);
    expect((await api(gw.url, 'GET', '/metrics', undefined, c.headers)).status).toBe(403);
    expect((await api(gw.url, 'GET', '/metrics', undefined, admin)).status).toBe(200);
    const keys = await api(gw.url, 'GET', `/api/v1/tenants/${c.id}/keys`, undefined, admin);
    expect(keys.body.keys).toHaveLength(1);
    expect(JSON.stringify(keys.body)).not.toContain(c.key.slice(20));
    expect((await api(gw.url, 'GET', '/api/v1/containers', undefined, c.headers)).status).toBe(200);
    const revoked = await api(gw.url, 'DELETE', `/api/v1/tenants/${c.id}/keys/${keys.body.keys[0].id}`, undefined, admin);
    expect(revoked.body.revoked_at).not.toBeNull();
    expect((await api(gw.url, 'GET', '/api/v1/containers', undefined, c.headers)).status).toBe(401);
    expect((await api(gw.url, 'POST', '/api/v1/tenants', { name: 'team-c' }, admin)).status).toBe(409);
    expect((await api(gw.url, 'POST', '/api/v1/tenants', { name: 'Bad Name!' }, admin)).status).toBe(400);
  });
});

describe('quotas', () => {
  it('refuses asks above a ceiling with 403 and applies the ceiling when the ask leaves it out', async () => {
    const t = await tenantWithKey('small', { max_memory_mb: 64, max_pids: 50 });
    const big = await api(gw.url, 'POST', '/api/v1/execute', { command: 'true', memory_mb: 128 }, t.headers);
    expect(big.status).toBe(403);
    expect(big.body).toMatchObject({ error: 'forbidden', field: 'memory_mb', message: expect.stringContaining('max_memory_mb') });
    const box = await api(gw.url, 'POST', '/api/v1/containers', {}, t.headers);
    expect(box.body.limits).toMatchObject({ memory_mb: 64, pids_limit: 50 });
    const limit = await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes' }, t.headers);
    expect(Number(limit.body.stdout)).toBe(64 * 2 ** 20);
    await api(gw.url, 'DELETE', `/api/v1/containers/${box.body.id}`, undefined, t.headers);
  });

  it("applies a tenant's ceilings to prewarm: 403 above them, the pool made in the shape its executions use", async () => {
    const t = await tenantWithKey('pooled', { max_memory_mb: 64, max_sandboxes: 2 });
    const big = await api(gw.url, 'POST', '/api/v1/prewarm', { count: 1, memory_mb: 4096, wait_s: 0 }, t.headers);
    expect(big.status).toBe(403);
    expect(big.body).toMatchObject({ error: 'forbidden', field: 'memory_mb', message: expect.stringContaining('max_memory_mb') });
    const many = await api(gw.url, 'POST', '/api/v1/prewarm', { count: 3, wait_s: 0 }, t.headers);
    expect(many.status).toBe(403);
    expect(many.body).toMatchObject({ error: 'forbidden', field: 'count', message: expect.stringContaining('max_sandboxes') });
    const pool = await api(gw.url, 'POST', '/api/v1/prewarm', { count: 1, wait_s: 30 }, t.headers);
    expect(pool.status).toBe(200);
    expect(pool.body).toMatchObject({ memory_mb: 64, ready: 1 });
    // An execution leaving memory_mb out gets the ceiling, so it is served by that pool.
    const ran = await api(gw.url, 'POST', '/api/v1/execute', { command: 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes' }, t.headers);
    expect(Number(ran.body.stdout)).toBe(64 * 2 ** 20);
    const pools = (await api(gw.url, 'GET', '/api/v1/pools', undefined, t.headers)).body.pools;
    expect(pools).toHaveLength(1);
    expect(pools[0]).toMatchObject({ memory_mb: 64, hits: 1 });
    await api(gw.url, 'POST', '/api/v1/prewarm', { count: 0, wait_s: 0 }, t.headers);
  });

  it('limits running sandboxes with 429 and Retry-After', async () => {
    const t = await tenantWithKey('one-box', { max_sandboxes: 1 });
    const first = await api(gw.url, 'POST', '/api/v1/containers', {}, t.headers);
    expect(first.status).toBe(201);
    const second = await api(gw.url, 'POST', '/api/v1/containers', {}, t.headers);
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBeTruthy();
    expect(second.body.message).toContain('max_sandboxes');
    const ephemeral = await api(gw.url, 'POST', '/api/v1/execute', { command: 'true' }, t.headers);
    expect(ephemeral.status).toBe(429);
    await api(gw.url, 'POST', `/api/v1/containers/${first.body.id}/stop`, undefined, t.headers);
    expect((await api(gw.url, 'POST', '/api/v1/execute', { command: 'true' }, t.headers)).status).toBe(200);
    await api(gw.url, 'DELETE', `/api/v1/containers/${first.body.id}`, undefined, t.headers);
  });

  it('limits the bytes of snapshots a tenant keeps with 403 naming snapshot_bytes', async () => {
    const t = await tenantWithKey('few-bytes', { snapshot_bytes: 1 });
    const refused = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', command: 'echo data > /workspace/f' }, t.headers);
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: 'forbidden', message: expect.stringContaining('snapshot_bytes') });
    expect((await api(gw.url, 'GET', '/api/v1/snapshots', undefined, t.headers)).body.snapshots).toEqual([]);
    const roomy = await tenantWithKey('many-bytes', { snapshot_bytes: 10 * 1024 * 1024 });
    const taken = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', command: 'echo data > /workspace/f' }, roomy.headers);
    expect(taken.status).toBe(200);
    expect(taken.body.snapshot_id).toMatch(/^snap_/);
  });

  it('limits executions per minute with 429 and Retry-After', async () => {
    const t = await tenantWithKey('slow-lane', { executions_per_minute: 2 });
    expect((await api(gw.url, 'POST', '/api/v1/execute', { command: 'true' }, t.headers)).status).toBe(200);
    expect((await api(gw.url, 'POST', '/api/v1/execute', { command: 'true' }, t.headers)).status).toBe(200);
    const third = await api(gw.url, 'POST', '/api/v1/execute', { command: 'true' }, t.headers);
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(third.body.message).toContain('executions_per_minute');
  });
});

describe('starting with and without keys', () => {
  it('refuses to listen beyond loopback without keys', async () => {
    const dataDir = `${gw.dataDir}-open`;
    const config = { ...loadConfig({ host: '0.0.0.0', port: 0, dataDir }, {}), logLevel: 'silent' as const };
    try {
      await expect(startGateway(config)).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without API keys/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('generates an admin key once with FAAS_AUTH=on, keeps only its hash, and keeps keys on for that data dir', async () => {
    const first = await startTestGateway({ env: { FAAS_AUTH: 'on' } });
    const key = first.gateway.generatedAdminKey!;
    expect(key).toMatch(/^faas_admin_/);
    expect((await api(first.url, 'GET', '/api/v1/tenants', undefined, { authorization: `Bearer ${key}` })).status).toBe(200);
    await first.stop();
    const second = await startTestGateway({ dataDir: first.dataDir });
    try {
      expect(second.gateway.generatedAdminKey).toBeNull();
      expect((await api(second.url, 'GET', '/api/v1/containers')).status).toBe(401);
      expect((await api(second.url, 'GET', '/api/v1/tenants', undefined, { authorization: `Bearer ${key}` })).status).toBe(200);
    } finally {
      await second.close();
    }
  });
});
