import { describe, expect, it } from 'vitest';
import { api, useTestGateway } from '../helpers/gateway.js';

const gw = useTestGateway({ env: { FAAS_CACHE_TTL_S: '3600' } });

const execute = (body: unknown, headers?: Record<string, string>) => api(gw.url, 'POST', '/api/v1/execute', body, headers);
const uuid = 'cat /proc/sys/kernel/random/uuid';

describe('cached mode', () => {
  it('answers the second identical request from the cache with the same output', async () => {
    const first = await execute({ mode: 'cached', command: `${uuid}; echo err >&2` });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ mode: 'cached', cached: false, exit_code: 0 });
    expect(first.body.cache_key).toMatch(/^[0-9a-f]{64}$/);
    const second = await execute({ mode: 'cached', command: `${uuid}; echo err >&2` });
    expect(second.body).toMatchObject({ cached: true, cache_key: first.body.cache_key, stdout: first.body.stdout, stderr: 'err\n', exit_code: 0 });
    expect(second.body.id).not.toBe(first.body.id);
    expect(second.body.duration_ms).toBe(first.body.duration_ms);
  });

  it('keys on everything that decides the output', async () => {
    const base = { mode: 'cached', command: `${uuid}; echo "$X"; cat` };
    const a = await execute({ ...base, env: { X: '1' } });
    const b = await execute({ ...base, env: { X: '2' } });
    const c = await execute({ ...base, env: { X: '1' }, stdin: 'in' });
    const d = await execute({ ...base, env: { X: '1' }, working_dir: '/tmp' });
    const keys = new Set([a, b, c, d].map((r) => r.body.cache_key));
    expect(keys.size).toBe(4);
    expect([a, b, c, d].every((r) => r.body.cached === false)).toBe(true);
    const again = await execute({ ...base, env: { X: '1' }, stdin: 'in' });
    expect(again.body).toMatchObject({ cached: true, stdout: c.body.stdout });
  });

  it('does not cache failures unless asked', async () => {
    const cmd = `${uuid}; exit 3`;
    const a = await execute({ mode: 'cached', command: cmd });
    const b = await execute({ mode: 'cached', command: cmd });
    expect(a.body.exit_code).toBe(3);
    expect(b.body.cached).toBe(false);
    expect(b.body.stdout).not.toBe(a.body.stdout);
    const c = await execute({ mode: 'cached', command: cmd, cache_failures: true });
    const d = await execute({ mode: 'cached', command: cmd, cache_failures: true });
    expect(d.body).toMatchObject({ cached: true, exit_code: 3, stdout: c.body.stdout });
    const t = await execute({ mode: 'cached', command: `${uuid}; sleep 5`, timeout_ms: 300 });
    expect(t.body.timed_out).toBe(true);
    const t2 = await execute({ mode: 'cached', command: `${uuid}; sleep 5`, timeout_ms: 300 });
    expect(t2.body.cached).toBe(false);
  });

  it('expires entries after cache_ttl_s', async () => {
    const cmd = `${uuid}; echo ttl`;
    const a = await execute({ mode: 'cached', command: cmd, cache_ttl_s: 1 });
    const b = await execute({ mode: 'cached', command: cmd, cache_ttl_s: 1 });
    expect(b.body).toMatchObject({ cached: true, stdout: a.body.stdout });
    await new Promise((r) => setTimeout(r, 1100));
    const c = await execute({ mode: 'cached', command: cmd, cache_ttl_s: 1 });
    expect(c.body.cached).toBe(false);
    expect(c.body.stdout).not.toBe(a.body.stdout);
  });

  it('runs concurrent identical requests once (single flight)', async () => {
    const cmd = `sleep 1; ${uuid}`;
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => execute({ mode: 'cached', command: cmd })));
    const bodies = [a!.body, b!.body, c!.body];
    expect(new Set(bodies.map((x) => x.stdout)).size).toBe(1);
    expect(bodies.filter((x) => x.cached === false)).toHaveLength(1);
    expect(bodies.filter((x) => x.cached === true)).toHaveLength(2);
  });

  it('deletes one key, all keys, or the keys of an image; another tenant never sees them', async () => {
    const cmd = `${uuid}; echo del`;
    const a = await execute({ mode: 'cached', command: cmd });
    expect((await api(gw.url, 'DELETE', `/api/v1/cache/${a.body.cache_key}`)).status).toBe(204);
    expect((await api(gw.url, 'DELETE', `/api/v1/cache/${a.body.cache_key}`)).status).toBe(404);
    const b = await execute({ mode: 'cached', command: cmd });
    expect(b.body.cached).toBe(false);
    const clearOther = await api(gw.url, 'DELETE', '/api/v1/cache?image=faas/debian:bookworm');
    expect(clearOther.body).toEqual({ deleted: 0 });
    expect((await execute({ mode: 'cached', command: cmd })).body.cached).toBe(true);
    const clear = await api(gw.url, 'DELETE', '/api/v1/cache?image=faas/busybox:latest');
    expect(clear.body.deleted).toBeGreaterThan(0);
    expect((await execute({ mode: 'cached', command: cmd })).body.cached).toBe(false);
    const all = await api(gw.url, 'DELETE', '/api/v1/cache');
    expect(all.body.deleted).toBeGreaterThan(0);
    // Other tenants: their key differs and they cannot delete this one.
    const cache = gw.gateway.platform.resultCache;
    const c = await execute({ mode: 'cached', command: cmd });
    expect(cache.delete('someone-else', c.body.cache_key)).toBe(false);
    expect(await cache.lookup('someone-else', c.body.cache_key)).toBeNull();
    expect(await cache.lookup('default', c.body.cache_key)).not.toBeNull();
  });

  it('misses when the image is rebuilt under the same tag', async () => {
    const docker = gw.gateway.platform.runtime as unknown as { docker: import('dockerode') };
    const tag = `faas-test-cache-rebuild:${process.pid}`;
    const base = await docker.docker.getImage('faas/busybox:latest').inspect();
    const cmd = `${uuid}; echo rebuilt`;
    try {
      await docker.docker.getImage(base.Id).tag({ repo: tag.split(':')[0], tag: tag.split(':')[1] });
      const a = await execute({ mode: 'cached', image: tag, command: cmd });
      expect((await execute({ mode: 'cached', image: tag, command: cmd })).body.cached).toBe(true);
      // "Rebuild": commit a container of the image under the same tag, giving it a new id.
      const c = await docker.docker.createContainer({ Image: base.Id, Cmd: ['true'] });
      await c.commit({ repo: tag.split(':')[0], tag: tag.split(':')[1], changes: 'LABEL rebuilt=1' });
      await c.remove({ force: true });
      await new Promise((r) => setTimeout(r, 200));
      const b = await execute({ mode: 'cached', image: tag, command: cmd });
      expect(b.body.cached).toBe(false);
      expect(b.body.cache_key).not.toBe(a.body.cache_key);
    } finally {
      await docker.docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  });

  it('streams a hit as NDJSON too', async () => {
    const cmd = `${uuid}; echo nd`;
    await execute({ mode: 'cached', command: cmd });
    const res = await fetch(`${gw.url}/api/v1/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ mode: 'cached', command: cmd }),
    });
    const events = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => e.type)).toEqual(['stdout', 'exit', 'custom']);
    expect(events[1]).toMatchObject({ type: 'exit', code: 0 });
    expect(events[2]).toMatchObject({ name: 'cache', data: { cached: true } });
    expect(events[2].data.cache_key).toMatch(/^[0-9a-f]{64}$/);
  });
});
