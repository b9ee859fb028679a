/** `faas tenants`, `faas keys` and `faas pools` (the compiled CLI as a child process) against a real gateway with API keys on. */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaasClient } from '@faas/sdk';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { BIN, ROOT, buildCli } from './build.js';

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const suffix = crypto.randomBytes(3).toString('hex');
let gw: TestGateway;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `faas ARGS` against the test gateway, with the admin key in FAAS_API_KEY unless `env` says otherwise. */
function faas(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, FAAS_URL: gw.url, FAAS_API_KEY: ADMIN, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  buildCli();
  gw = await startTestGateway({ env: { FAAS_ADMIN_KEY: ADMIN } });
});
afterAll(async () => {
  await gw?.close();
});

describe('faas tenants', () => {
  it('create, ls, show and quotas, human and --json', async () => {
    const name = `acme-${suffix}`;
    const created = await faas(['tenants', 'create', name, '--max-sandboxes', '3', '--max-cpus', '1.5']);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const id = created.stdout.trim();
    expect(id).toMatch(/^\S+$/);

    const ls = await faas(['tenants', 'ls']);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^ID\s+NAME\s+CREATED\s+QUOTAS/);
    expect(ls.stdout).toContain(name);
    const lsJson = JSON.parse((await faas(['tenants', 'ls', '--json'])).stdout);
    expect(lsJson.find((t: { id: string }) => t.id === id)).toMatchObject({ name, quotas: { maxSandboxes: 3, maxCpuCores: 1.5 } });

    const show = await faas(['tenants', 'show', name]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`id:      ${id}`);
    expect(show.stdout).toContain('max-sandboxes=3 max-cpus=1.5');

    const changed = await faas(['tenants', 'quotas', id, '--executions-per-minute', '10', '--max-cpus', 'none', '--json']);
    expect(changed.code).toBe(0);
    expect(JSON.parse(changed.stdout)).toEqual({ maxSandboxes: 3, executionsPerMinute: 10 });
    expect((await faas(['tenants', 'quotas', id])).stdout).toBe('max-sandboxes=3 executions-per-minute=10\n');
    expect((await faas(['tenants', 'quotas', id, '--reset'])).stdout).toBe('no limits\n');
  });

  it('usage errors and gateway errors are one line', async () => {
    const bad = await faas(['tenants', 'create', 'x', '--max-sandboxes', 'many']);
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toBe('faas tenants: --max-sandboxes must be an integer, got "many"\n');
    const missing = await faas(['tenants', 'show', 'no-such-tenant']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/^faas tenants: .*\(not_found\)\n$/);
    const noKey = await faas(['tenants', 'ls'], { FAAS_API_KEY: '' });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/^faas tenants: .*\(unauthorized\)\n$/);
    const help = await faas(['tenants', 'quotas', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--executions-per-minute N');
  });
});

describe('faas keys', () => {
  it('create prints the key once with a warning, ls lists it, revoke makes it fail with exit code 1 and one line', async () => {
    const name = `keys-${suffix}`;
    expect((await faas(['tenants', 'create', name])).code).toBe(0);
    const created = await faas(['keys', 'create', name]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^\S{16,}$/);
    expect(created.stderr).toMatch(/will not be shown again/);

    // The key works: an execution as the tenant.
    const ran = await faas(['run', '--', 'echo', 'as-tenant'], { FAAS_API_KEY: key });
    expect(ran).toMatchObject({ code: 0, stdout: 'as-tenant\n' });
    // A tenant key is not the admin's.
    const forbidden = await faas(['tenants', 'ls'], { FAAS_API_KEY: key });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/^faas tenants: .*\(forbidden\)\n$/);

    const ls = await faas(['keys', 'ls', name, '--json']);
    expect(ls.code).toBe(0);
    const keys = JSON.parse(ls.stdout) as Array<{ id: string; prefix: string; revokedAt: string | null }>;
    expect(keys).toHaveLength(1);
    const [info] = keys;
    expect(key.startsWith(info!.prefix)).toBe(true);
    expect(ls.stdout).not.toContain(key);
    const human = await faas(['keys', 'ls', name]);
    expect(human.stdout).toMatch(/^ID\s+PREFIX\s+CREATED\s+LAST USED\s+REVOKED\n/);
    expect(human.stdout).toContain(info!.id);

    const revoked = await faas(['keys', 'revoke', name, info!.id]);
    expect(revoked).toMatchObject({ code: 0, stdout: `${info!.id} revoked\n` });
    const refused = await faas(['sandbox', 'ls'], { FAAS_API_KEY: key });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/^faas sandbox: the API key is not valid.*\(unauthorized\)\n$/);

    const json = await faas(['keys', 'create', name, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ key: expect.any(String), revokedAt: null });
    expect(json.stderr).toMatch(/will not be shown again/);
  });

  it('quota reached: one line, exit code 1', async () => {
    const name = `quota-${suffix}`;
    expect((await faas(['tenants', 'create', name, '--executions-per-minute', '1'])).code).toBe(0);
    const key = (await faas(['keys', 'create', name])).stdout.trim();
    expect((await faas(['run', '--', 'true'], { FAAS_API_KEY: key })).code).toBe(0);
    const limited = await faas(['run', '--', 'true'], { FAAS_API_KEY: key });
    expect(limited.code).toBe(1);
    expect(limited.stderr).toMatch(/^faas run: .*executions_per_minute.*\(rate_limited\)\n$/);
  });

  it('usage errors', async () => {
    const r = await faas(['keys', 'revoke', 'x']);
    expect(r).toMatchObject({ code: 2, stderr: 'faas keys: missing KEY_ID: faas keys revoke TENANT KEY_ID\n' });
    expect((await faas(['keys', 'nope'])).code).toBe(2);
  });
});

describe('--read-only', () => {
  it('runs with a read-only root filesystem (faas run and faas sandbox create)', async () => {
    const r = await faas(['run', '--read-only', '--', 'sh', '-c', 'touch /x 2>/dev/null || echo read-only; echo ok > f && cat f']);
    expect(r).toMatchObject({ code: 0, stdout: 'read-only\nok\n' });
    const created = await faas(['sandbox', 'create', '--read-only', '--json']);
    expect(created.code).toBe(0);
    const box = JSON.parse(created.stdout);
    expect(box.limits.readOnly).toBe(true);
    expect((await faas(['sandbox', 'rm', box.id])).code).toBe(0);
  });
});

describe('faas pools', () => {
  it('prewarm and ls, human and --json; count 0 empties the pool', async () => {
    const warmed = await faas(['pools', 'prewarm', '--count', '1', '--memory', '96', '--read-only', '--json']);
    expect(warmed.code).toBe(0);
    const pool = JSON.parse(warmed.stdout);
    expect(pool).toMatchObject({ image: 'faas/busybox:latest', memoryMb: 96, readOnly: true, size: 1 });

    const ls = await faas(['pools', 'ls']);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^IMAGE\s+WORKDIR\s+LIMITS\s+SIZE\s+READY/);
    // Pools that differ only by working directory or read-only root must not look alike.
    expect(ls.stdout).toMatch(/faas\/busybox:latest\s+\/workspace\s+mem=96 cpus=- pids=- net=none read-only/);
    const listed = JSON.parse((await faas(['pools', 'ls', '--json'])).stdout) as Array<{ key: string; size: number }>;
    expect(listed.find((p) => p.key === pool.key)).toMatchObject({ size: 1 });

    const emptied = await faas(['pools', 'prewarm', '--count', '0', '--memory', '96', '--read-only']);
    expect(emptied.code).toBe(0);
    expect(emptied.stdout).toMatch(/^faas\/busybox:latest .*size 0/);

    const noCount = await faas(['pools', 'prewarm']);
    expect(noCount).toMatchObject({ code: 2, stderr: 'faas pools: missing --count N: faas pools prewarm --count N [options]\n' });
    const negative = await faas(['pools', 'prewarm', '--count=-1']);
    expect(negative.code).toBe(2);
    expect(negative.stderr).toMatch(/^faas pools: invalid --count: /);
  });

  it('the pool\'s sandboxes are gone once emptied', async () => {
    const client = new FaasClient({ baseUrl: gw.url, apiKey: ADMIN });
    const deadline = Date.now() + 20_000;
    let pools = await client.pools.list();
    while (pools.some((p) => p.ready + p.creating > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      pools = await client.pools.list();
    }
    expect(pools.every((p) => p.ready + p.creating === 0)).toBe(true);
  });
});
