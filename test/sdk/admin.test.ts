/**
 * The SDK's admin-side API against a real gateway with API keys on: tenants, keys, quotas, warm pools, image
 * templates, caches, read-only sandboxes, lifecycle, and replay of missed stream events with `since`.
 */
import crypto from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, ConflictError, FaasClient, FaasError, QuotaError, ValidationError, type Sandbox, type StreamEvent } from '@faas/sdk';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const suffix = crypto.randomBytes(3).toString('hex');
let gw: TestGateway;
let admin: FaasClient;
const created: Sandbox[] = [];
const images: string[] = [];

beforeAll(async () => {
  gw = await startTestGateway({ env: { FAAS_ADMIN_KEY: ADMIN } });
  admin = new FaasClient({ baseUrl: gw.url, apiKey: ADMIN, retries: 0 });
});
afterEach(async () => {
  for (const s of created.splice(0)) await s.delete().catch(() => undefined);
});
afterAll(async () => {
  for (const name of images) await admin?.images.delete(name).catch(() => undefined);
  await gw?.close();
});

describe('tenants and keys', () => {
  it('creates, lists, shows and updates tenants; keys work until revoked', async () => {
    const tenant = await admin.tenants.create({ name: `acme-${suffix}`, quotas: { maxSandboxes: 3, maxMemoryMb: 512 } });
    expect(tenant).toMatchObject({ name: `acme-${suffix}`, quotas: { maxSandboxes: 3, maxMemoryMb: 512 } });
    expect(tenant.id).not.toBe('');
    expect(Number.isNaN(Date.parse(tenant.createdAt))).toBe(false);

    expect((await admin.tenants.list()).map((t) => t.id)).toContain(tenant.id);
    expect(await admin.tenants.get(tenant.id)).toEqual(tenant);

    const updated = await admin.tenants.setQuotas(tenant.id, { maxSandboxes: 5, executionsPerMinute: 100 });
    expect(updated.quotas).toEqual({ maxSandboxes: 5, executionsPerMinute: 100 });

    const key = await admin.tenants.createKey(tenant.id);
    expect(key).toMatchObject({ tenantId: tenant.id, revokedAt: null });
    expect(key.key.startsWith(key.prefix)).toBe(true);
    const keys = await admin.tenants.listKeys(tenant.id);
    expect(keys.map((k) => k.id)).toEqual([key.id]);
    expect(keys[0]).not.toHaveProperty('key');

    const user = new FaasClient({ baseUrl: gw.url, apiKey: key.key, retries: 0 });
    expect(await user.containers.list()).toEqual([]);
    const forbidden = await user.tenants.list().catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(AuthError);
    expect(forbidden).toMatchObject({ code: 'forbidden', status: 403 });

    const revoked = await admin.tenants.revokeKey(tenant.id, key.id);
    expect(revoked.id).toBe(key.id);
    expect(revoked.revokedAt).not.toBeNull();
    const refused = await user.containers.list().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AuthError);
    expect(refused).toMatchObject({ code: 'unauthorized', status: 401 });
  });

  it('checks options before sending, naming the camelCase option', async () => {
    await expect(admin.tenants.create({ name: 'Not Valid' })).rejects.toMatchObject({ name: 'ValidationError', field: 'name', status: 0 });
    const err = await admin.tenants.setQuotas('x', { maxSandboxes: -1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ field: 'maxSandboxes' });
    await expect(admin.tenants.setQuotas('x', { max_sandboxes: 1 } as never)).rejects.toMatchObject({ field: 'max_sandboxes' });
    await expect(admin.tenants.get('no-such-tenant')).rejects.toMatchObject({ name: 'NotFoundError', status: 404 });
  });

  it('a quota reached is a QuotaError with retryAfterS from Retry-After', async () => {
    const tenant = await admin.tenants.create({ name: `quota-${suffix}`, quotas: { executionsPerMinute: 1 } });
    const user = new FaasClient({ baseUrl: gw.url, apiKey: (await admin.tenants.createKey(tenant.id)).key, retries: 0 });
    expect((await user.execute({ command: 'echo one' })).stdout).toBe('one\n');
    const err = await user.execute({ command: 'echo two' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaError);
    expect(err).toMatchObject({ code: 'rate_limited', status: 429 });
    const retryAfterS = (err as QuotaError).retryAfterS;
    expect(retryAfterS).toBeGreaterThan(0);
    expect(retryAfterS).toBeLessThanOrEqual(60);
  });
});

describe('warm pools', () => {
  it('prewarms a pool, lists it, and empties it', async () => {
    const pool = await admin.pools.prewarm({ count: 1, memoryMb: 64, readOnly: true });
    expect(pool).toMatchObject({ image: 'faas/busybox:latest', workingDir: '/workspace', memoryMb: 64, size: 1, network: 'none' });
    expect(typeof pool.inUse).toBe('number');
    const deadline = Date.now() + 30_000;
    let listed = (await admin.pools.list()).find((p) => p.key === pool.key);
    while (listed && listed.ready < 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      listed = (await admin.pools.list()).find((p) => p.key === pool.key);
    }
    expect(listed).toMatchObject({ key: pool.key, ready: 1 });
    const emptied = await admin.pools.prewarm({ count: 0, memoryMb: 64, readOnly: true });
    expect(emptied).toMatchObject({ key: pool.key, size: 0 });
    await expect(admin.pools.prewarm({ count: -1 })).rejects.toMatchObject({ name: 'ValidationError', field: 'count' });
  });
});

describe('images and caches', () => {
  it('builds a template with its log, runs it, lists it and deletes it', async () => {
    const name = `faas-sdk-test-${suffix}/hello:1`;
    images.push(name);
    const lines: string[] = [];
    const image = await admin.images.build({ name, dockerfile: 'FROM faas/busybox:latest\nRUN echo hi > /hi\n' }, { onLog: (l) => lines.push(l) });
    expect(image).toMatchObject({ name, kind: 'template', present: true });
    expect(lines.length).toBeGreaterThan(0);
    expect((await admin.execute({ image: name, command: 'cat /hi' })).stdout).toBe('hi\n');
    expect((await admin.images.list()).find((i) => i.name === name)).toMatchObject({ kind: 'template', present: true });

    // Tolerate a short ConflictError while the finished execution's sandbox is being removed (older gateways).
    for (let i = 0; ; i++) {
      const err = await admin.images.delete(name).then(() => undefined, (e: unknown) => e);
      if (err === undefined) break;
      if (!(err instanceof ConflictError) || i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await admin.images.list()).find((i) => i.name === name)).toBeUndefined();
    await expect(admin.images.delete(name)).rejects.toMatchObject({ name: 'NotFoundError' });
  });

  it('a failed build rejects with the builder\'s reason; a bad name is refused before sending', async () => {
    const bad = `faas-sdk-test-${suffix}/bad:1`;
    images.push(bad);
    const err = await admin.images.build({ name: bad, dockerfile: 'FROM faas/busybox:latest\nRUN exit 3\n' }, { onLog: () => undefined }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FaasError);
    expect((err as FaasError).status).toBe(0); // reported in the stream, after the 200
    expect((err as FaasError).message).toMatch(/build/);
    expect(String((err as Error).message)).not.toBe('');
    await expect(admin.images.build({ name: 'not a name', dockerfile: 'FROM x' })).rejects.toMatchObject({ name: 'ValidationError', field: 'name', status: 0 });
  });

  it('lists caches', async () => {
    const caches = await admin.caches.list();
    expect(Array.isArray(caches)).toBe(true);
    for (const c of caches) expect(typeof c.readOnly).toBe('boolean');
  });
});

describe('sandboxes: readOnly, lifecycle, containerId of streamed persistent executes', () => {
  it('readOnly makes the root filesystem read-only, with a writable working directory', async () => {
    const result = await admin.execute({ command: 'touch /x 2>/dev/null && echo wrote-root; echo ok > f && cat f', readOnly: true });
    expect(result.stdout).toBe('ok\n');
    const box = await admin.containers.create({ readOnly: true });
    created.push(box);
    expect(box.limits.readOnly).toBe(true);
  });

  it('lifecycle is on a fetched sandbox', async () => {
    const box = await admin.containers.create();
    created.push(box);
    await box.stop();
    await box.resume();
    await box.refresh();
    const events = (box.lifecycle ?? []).map((l) => l.event);
    expect(events).toContain('created');
    expect(events).toContain('stopped');
    expect(box.lifecycle?.[0]?.at).toMatch(/^\d{4}-/);
    expect(JSON.parse(JSON.stringify(box)).lifecycle).toEqual(box.lifecycle);
  });

  it('a streamed persistent execute names its sandbox', async () => {
    const out: string[] = [];
    const result = await admin.execute({ command: 'echo kept', mode: 'persistent', onStdout: (d) => out.push(d) });
    expect(out.join('')).toBe('kept\n');
    expect(result.containerId).toEqual(expect.any(String));
    const box = await admin.containers.get(result.containerId!);
    created.push(box);
    expect(box.status).toBe('running');
  });
});

describe('stream replay with since', () => {
  async function until(stream: AsyncIterable<StreamEvent>, pred: (e: StreamEvent) => boolean): Promise<StreamEvent[]> {
    const seen: StreamEvent[] = [];
    for await (const e of stream) {
      seen.push(e);
      if (pred(e)) return seen;
    }
    throw new Error(`stream ended: ${JSON.stringify(seen)}`);
  }

  it('an explicit reconnect with since: lastSeq loses nothing and repeats nothing', async () => {
    const box = await admin.containers.create();
    created.push(box);
    const first = await admin.stream(box.id);
    expect(first.lastSeq).toBeUndefined();
    const execId = await first.exec('for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.2; done');
    const before = await until(first, (e) => e.type === 'stdout' && e.exec_id === execId);
    const lastSeq = first.lastSeq;
    expect(lastSeq).toEqual(expect.any(Number));
    await first.close();
    await new Promise((r) => setTimeout(r, 600));

    const second = await box.stream({ since: lastSeq });
    const after = await until(second, (e) => e.type === 'exit' && e.exec_id === execId);
    await second.close();
    const text = (events: StreamEvent[]) => events.map((e) => (e.type === 'stdout' && e.exec_id === execId ? e.data : '')).join('');
    expect(text(before) + text(after)).toBe('tick1\ntick2\ntick3\ntick4\ntick5\ntick6\n');
    const seqs = after.map((e) => (e as { seq?: number }).seq).filter((s): s is number => s !== undefined);
    expect(seqs[0]).toBe(lastSeq! + 1);
    expect(second.lastSeq).toBe(seqs[seqs.length - 1]);
    await expect(admin.stream(box.id, { since: -1 })).rejects.toMatchObject({ name: 'ValidationError', field: 'since' });
  });
});
