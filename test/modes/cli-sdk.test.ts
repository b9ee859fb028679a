// The SDK's snapshot, cache and fork calls and the `faas fork|snapshot|cache` commands against a real gateway.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { FaasClient, GoneError, NotFoundError, ConflictError } from '@faas/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/config.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const run = promisify(execFile);
let gw: TestGateway;
let client: FaasClient;

beforeAll(async () => {
  gw = await startTestGateway({ env: { FAAS_FORK_RETENTION_S: '2' } });
  client = new FaasClient({ baseUrl: gw.url });
});
afterAll(async () => {
  await gw?.close();
});

async function faas(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(PACKAGE_ROOT, 'bin/faas.js'), ...args], { timeout: 60_000, env: { ...process.env, FAAS_URL: gw.url } });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('SDK', () => {
  it('cached results, checkpoints, snapshots and forks', async () => {
    const a = await client.execute({ mode: 'cached', command: 'cat /proc/sys/kernel/random/uuid', cacheTtlS: 60 });
    const b = await client.execute({ mode: 'cached', command: 'cat /proc/sys/kernel/random/uuid', cacheTtlS: 60 });
    expect(b).toMatchObject({ cached: true, stdout: a.stdout, cacheKey: a.cacheKey });
    await client.cache.delete(a.cacheKey!);
    await expect(client.cache.delete(a.cacheKey!)).rejects.toBeInstanceOf(NotFoundError);
    const box = await client.containers.create({});
    await box.exec('echo sdk > f');
    const snap = await box.checkpoint('sdk');
    expect(snap).toMatchObject({ name: 'sdk', image: 'faas/busybox:latest', parent: null });
    expect((await client.snapshots.get(snap.id)).id).toBe(snap.id);
    expect((await client.snapshots.list()).map((s) => s.id)).toContain(snap.id);
    const forked = await client.fork({ parent: snap.id, variants: [{ command: 'cat f' }, { command: 'cat f; exit 2' }] });
    expect(forked.variants.map((v) => (v.status === 'ok' ? v.result.exitCode : -1))).toEqual([0, 2]);
    const child = forked.variants[0]!.status === 'ok' ? forked.variants[0]!.snapshotId : '';
    expect((await client.snapshots.get(child)).parent).toBe(snap.id);
    await expect(client.snapshots.delete(snap.id)).rejects.toBeInstanceOf(ConflictError);
    await client.snapshots.delete(snap.id, { force: true });
    const parent = await client.execute({ command: 'true' });
    await new Promise((r) => setTimeout(r, 2200));
    await expect(client.fork({ parent: parent.id, command: 'true' })).rejects.toBeInstanceOf(GoneError);
    await box.delete();
  });
});

describe('CLI', () => {
  it('faas fork, faas snapshot ls|show|rm, faas cache clear', async () => {
    const parent = await client.execute({ mode: 'checkpointed', command: 'echo cli > /workspace/c' });
    const fork = await faas('fork', parent.snapshotId!, '--variant', 'cat /workspace/c', '--variant', 'echo other');
    expect(fork.code, fork.stderr).toBe(0);
    expect(fork.stdout).toMatch(/--- variant 0: exit 0, snapshot snap_/);
    expect(fork.stdout).toContain('cli\n');
    expect(fork.stdout).toContain('other\n');
    const single = await faas('fork', parent.snapshotId!, '--', 'cat', '/workspace/c');
    expect(single.stdout).toContain('cli\n');
    const ls = await faas('snapshot', 'ls');
    expect(ls.stdout).toContain(parent.snapshotId!);
    const show = await faas('snapshot', 'show', parent.snapshotId!);
    expect(show.stdout).toContain('image:     faas/busybox:latest');
    const rm = await faas('snapshot', 'rm', parent.snapshotId!);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain(parent.snapshotId!);
    expect((await faas('snapshot', 'rm', parent.snapshotId!, '--force')).code).toBe(0);
    const missing = await faas('snapshot', 'show', parent.snapshotId!);
    expect(missing.code).not.toBe(0);
    await client.execute({ mode: 'cached', command: 'echo c' });
    const clear = await faas('cache', 'clear');
    expect(clear.stdout).toMatch(/[1-9]\d* cached results? deleted/);
    const cp = await faas('run', '--mode', 'checkpointed', '--', 'sh', '-c', 'echo run > /workspace/r; echo ok');
    expect(cp.stdout).toBe('ok\n');
    const snapId = /snapshot (snap_[0-9a-f]+)/.exec(cp.stderr)?.[1];
    expect(snapId).toBeDefined();
    const resumed = await faas('run', '--mode', 'checkpointed', '--checkpoint', snapId!, '--', 'cat', '/workspace/r');
    expect(resumed.stdout).toBe('run\n');
    const miss = await faas('run', '--mode', 'cached', '--', 'echo', 'c2');
    const hit = await faas('run', '--mode', 'cached', '--', 'echo', 'c2');
    expect(miss.stderr).toMatch(/cache miss [0-9a-f]{64}/);
    expect(hit.stderr).toMatch(/cache hit [0-9a-f]{64}/);
    expect(hit.stdout).toBe('c2\n');
    const none = await faas('fork', 'ex-0000000000000000', '--', 'true');
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('ex-0000000000000000');
  });
});
