import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
let short: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
  short = await startTestGateway({ env: { FAAS_FORK_RETENTION_S: '1' } });
});
afterAll(async () => {
  await gw?.close();
  await short?.close();
});

const execute = (body: unknown) => api(gw.url, 'POST', '/api/v1/execute', body);

describe('fork (branched mode)', () => {
  it("forks a default-mode execution: variants see the parent's files, not each other's writes", async () => {
    const parent = await execute({ command: 'echo base > /workspace/shared' });
    expect(parent.body.mode).toBe('ephemeral');
    const fork = await api(gw.url, 'POST', '/api/v1/fork', {
      parent: parent.body.id,
      variants: [
        { command: 'cat /workspace/shared; echo a > /workspace/mine; ls /workspace' },
        { command: 'sleep 0.3; cat /workspace/shared; echo b > /workspace/mine; ls /workspace', env: { X: 'y' } },
      ],
    });
    expect(fork.status).toBe(200);
    expect(fork.body.parent).toBe(parent.body.id);
    expect(fork.body.variants).toHaveLength(2);
    const [a, b] = fork.body.variants;
    expect(a).toMatchObject({ status: 'ok', parent: parent.body.id, result: { stdout: 'base\nmine\nshared\n', mode: 'branched' } });
    expect(b).toMatchObject({ status: 'ok', result: { stdout: 'base\nmine\nshared\n' } });
    expect(a.snapshot_id).toMatch(/^snap_/);
    // Each variant's end state is its own.
    const readA = await execute({ mode: 'checkpointed', checkpoint: a.snapshot_id, command: 'cat /workspace/mine' });
    const readB = await execute({ mode: 'checkpointed', checkpoint: b.snapshot_id, command: 'cat /workspace/mine' });
    expect(readA.body.stdout).toBe('a\n');
    expect(readB.body.stdout).toBe('b\n');
    // The alias, with a single command.
    const alias = await api(gw.url, 'POST', `/api/v1/executions/${parent.body.id}/fork`, { command: 'cat /workspace/shared' });
    expect(alias.body.variants[0]).toMatchObject({ status: 'ok', result: { stdout: 'base\n' } });
  });

  it('forks a snapshot and a live sandbox (keep: true returns live sandboxes)', async () => {
    const snap = await execute({ mode: 'checkpointed', command: 'echo s > /workspace/s' });
    const fromSnap = await api(gw.url, 'POST', '/api/v1/fork', { parent: snap.body.snapshot_id, command: 'cat /workspace/s' });
    expect(fromSnap.body.variants[0].result.stdout).toBe('s\n');
    const box = await api(gw.url, 'POST', '/api/v1/containers', {});
    await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'echo live > /workspace/l' });
    const kept = await api(gw.url, 'POST', '/api/v1/fork', { parent: box.body.id, keep: true, variants: [{ command: 'cat /workspace/l; echo 1 > /workspace/v' }, { command: 'echo 2 > /workspace/v' }] });
    expect(kept.body.variants.map((v: any) => v.status)).toEqual(['ok', 'ok']);
    const ids = kept.body.variants.map((v: any) => v.result.container_id as string);
    expect(kept.body.variants[0].result.stdout).toBe('live\n');
    for (const [i, id] of ids.entries()) {
      const out = await api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'cat /workspace/v' });
      expect(out.body.stdout).toBe(`${i + 1}\n`);
      await api(gw.url, 'DELETE', `/api/v1/containers/${id}`);
    }
    // The parent sandbox is untouched.
    const parentOut = await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'test -e /workspace/v || echo untouched' });
    expect(parentOut.body.stdout).toBe('untouched\n');
    await api(gw.url, 'DELETE', `/api/v1/containers/${box.body.id}`);
  });

  it('reports each variant like allSettled', async () => {
    const snap = await execute({ mode: 'checkpointed', command: 'true' });
    const res = await api(gw.url, 'POST', '/api/v1/fork', { parent: snap.body.snapshot_id, variants: [{ command: 'exit 4' }, { argv: ['/no/such/program'] }, { command: 'echo ok' }] });
    expect(res.status).toBe(200);
    expect(res.body.variants[0]).toMatchObject({ status: 'ok', result: { exit_code: 4 } });
    expect(res.body.variants[1]).toMatchObject({ status: 'ok', result: { exit_code: 127 } });
    expect(res.body.variants[2]).toMatchObject({ status: 'ok', result: { stdout: 'ok\n' } });
  });

  it('refuses bad input with clear 4xx answers naming the id', async () => {
    const none = await api(gw.url, 'POST', '/api/v1/fork', { parent: 'ex-0000000000000000', command: 'true' });
    expect(none.status).toBe(404);
    expect(none.body.message).toContain('ex-0000000000000000');
    const unknown = await api(gw.url, 'POST', '/api/v1/fork', { parent: 'what', command: 'true' });
    expect(unknown.status).toBe(404);
    const zero = await api(gw.url, 'POST', '/api/v1/fork', { parent: 'snap_x', variants: [] });
    expect(zero.status).toBe(400);
    const many = await api(gw.url, 'POST', '/api/v1/fork', { parent: 'snap_x', variants: Array.from({ length: 17 }, () => ({ command: 'true' })) });
    expect(many.status).toBe(400);
    expect(many.body.message).toContain('16');
    const both = await api(gw.url, 'POST', '/api/v1/fork', { parent: 'snap_x', command: 'true', variants: [{ command: 'true' }] });
    expect(both.status).toBe(400);
    const snap = await execute({ mode: 'checkpointed', command: 'true' });
    const image = await api(gw.url, 'POST', '/api/v1/fork', { parent: snap.body.snapshot_id, image: 'faas/debian:bookworm', command: 'true' });
    expect([404, 409]).toContain(image.status);
    const otherTenant = gw.gateway.platform.forks;
    await expect(otherTenant.fork('intruder', { parent: snap.body.snapshot_id, command: 'true' })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('answers 410 once an execution is past its retention window, and leaks nothing', async () => {
    const parent = await api(short.url, 'POST', '/api/v1/execute', { command: 'echo r > /workspace/r' });
    const soon = await api(short.url, 'POST', '/api/v1/fork', { parent: parent.body.id, command: 'cat /workspace/r' });
    expect(soon.body.variants[0].result.stdout).toBe('r\n');
    await new Promise((r) => setTimeout(r, 1200));
    const late = await api(short.url, 'POST', '/api/v1/fork', { parent: parent.body.id, command: 'cat /workspace/r' });
    expect(late.status).toBe(410);
    expect(late.body).toMatchObject({ error: 'gone' });
    expect(late.body.message).toContain(parent.body.id);
    await short.gateway.platform.executor.drain();
    const left = (await short.gateway.platform.runtime.list()).filter((c) => c.labels['faas.kind'] === 'ephemeral');
    expect(left).toHaveLength(0);
  });
});
