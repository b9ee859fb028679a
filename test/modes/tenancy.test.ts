// Snapshots, cached results and forkable executions belong to their tenant: another tenant gets 404 over HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const ADMIN = 'admin-key-for-snapshot-tests-0123';
let gw: TestGateway;
const admin = { authorization: `Bearer ${ADMIN}` };

beforeAll(async () => {
  gw = await startTestGateway({ env: { FAAS_ADMIN_KEY: ADMIN } });
});
afterAll(async () => {
  await gw?.close();
});

async function tenant(name: string): Promise<Record<string, string>> {
  const t = await api(gw.url, 'POST', '/api/v1/tenants', { name }, admin);
  const key = await api(gw.url, 'POST', `/api/v1/tenants/${t.body.id}/keys`, undefined, admin);
  return { authorization: `Bearer ${key.body.key}` };
}

describe('tenancy of snapshots, cache and forks', () => {
  it('keeps every tenant to its own', async () => {
    const alice = await tenant('alice-snap');
    const bob = await tenant('bob-snap');
    const a = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', command: 'echo secret > /workspace/s' }, alice);
    expect(a.status).toBe(200);
    const snap = a.body.snapshot_id as string;
    expect((await api(gw.url, 'GET', `/api/v1/snapshots/${snap}`, undefined, bob)).status).toBe(404);
    expect((await api(gw.url, 'GET', '/api/v1/snapshots', undefined, bob)).body.snapshots).toEqual([]);
    expect((await api(gw.url, 'DELETE', `/api/v1/snapshots/${snap}`, undefined, bob)).status).toBe(404);
    const restore = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', checkpoint: snap, command: 'cat /workspace/s' }, bob);
    expect(restore.status).toBe(404);
    expect((await api(gw.url, 'POST', '/api/v1/containers', { checkpoint: snap }, bob)).status).toBe(404);
    expect((await api(gw.url, 'POST', '/api/v1/fork', { parent: snap, command: 'cat /workspace/s' }, bob)).status).toBe(404);
    expect((await api(gw.url, 'POST', '/api/v1/fork', { parent: a.body.id, command: 'true' }, bob)).status).toBe(404);
    expect((await api(gw.url, 'POST', `/api/v1/executions/${a.body.id}/fork`, { command: 'cat /workspace/s' }, alice)).body.variants[0].result.stdout).toBe('secret\n');

    const box = await api(gw.url, 'POST', '/api/v1/containers', {}, alice);
    expect((await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/checkpoint`, {}, bob)).status).toBe(404);
    await api(gw.url, 'DELETE', `/api/v1/containers/${box.body.id}`, undefined, alice);

    const cmd = { mode: 'cached', command: 'cat /proc/sys/kernel/random/uuid' };
    const c1 = await api(gw.url, 'POST', '/api/v1/execute', cmd, alice);
    const c2 = await api(gw.url, 'POST', '/api/v1/execute', cmd, bob);
    expect(c2.body.cached).toBe(false);
    expect(c2.body.cache_key).not.toBe(c1.body.cache_key);
    expect((await api(gw.url, 'DELETE', `/api/v1/cache/${c1.body.cache_key}`, undefined, bob)).status).toBe(404);
    expect((await api(gw.url, 'DELETE', '/api/v1/cache', undefined, bob)).body.deleted).toBe(1);
    expect((await api(gw.url, 'POST', '/api/v1/execute', cmd, alice)).body).toMatchObject({ cached: true, stdout: c1.body.stdout });
  });
});
