import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.close();
});

const execute = (body: unknown, headers?: Record<string, string>) => api(gw.url, 'POST', '/api/v1/execute', body, headers);

async function containersOfThisGateway(): Promise<number> {
  await gw.gateway.platform.executor.drain();
  return (await gw.gateway.platform.runtime.list()).filter((c) => c.labels['faas.kind'] === 'ephemeral').length;
}

describe('POST /api/v1/execute (ephemeral)', () => {
  it('runs echo and removes its sandbox', async () => {
    const res = await execute({ command: 'echo hello' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ exit_code: 0, stdout: 'hello\n', stderr: '', signal: null, timed_out: false, oom_killed: false, mode: 'ephemeral' });
    expect(res.body.id).toMatch(/^ex-/);
    expect(res.body.container_id).toBeUndefined();
    expect(await containersOfThisGateway()).toBe(0);
  });

  it('keeps stdout and stderr apart and reports the exact exit code', async () => {
    const res = await execute({ command: 'echo out; echo err >&2; exit 3' });
    expect(res.body).toMatchObject({ exit_code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('runs argv without a shell, with env and working_dir', async () => {
    const res = await execute({ argv: ['sh', '-c', 'echo "$GREETING from $(pwd)"'], env: { GREETING: 'hi' }, working_dir: '/tmp' });
    expect(res.body.stdout).toBe('hi from /tmp\n');
  });

  it('feeds stdin and then end of input', async () => {
    const res = await execute({ command: 'cat; echo done', stdin: 'line one\nline two\n' });
    expect(res.body.stdout).toBe('line one\nline two\ndone\n');
  });

  it('kills the whole tree at the timeout and answers promptly', async () => {
    const started = Date.now();
    const res = await execute({ command: 'sleep 100 & sleep 10', timeout_ms: 500 });
    expect(res.body).toMatchObject({ timed_out: true, signal: 'SIGKILL', exit_code: 137 });
    // Timed from the process start, so a slow cold start does not count: killed at the timeout, not at the end of
    // `sleep 10`, and not held up by the background `sleep 100`, which keeps the output open.
    expect(res.body.duration_ms).toBeGreaterThanOrEqual(450);
    expect(res.body.duration_ms).toBeLessThan(3000);
    expect(Date.now() - started).toBeLessThan(8000); // cold start included
  });

  it('reports a killing signal', async () => {
    const res = await execute({ command: 'kill -TERM $$' });
    expect(res.body).toMatchObject({ exit_code: 143, signal: 'SIGTERM' });
  });

  it('answers 127 with a message for a program that does not exist', async () => {
    const res = await execute({ argv: ['/no/such/program'] });
    expect(res.body.exit_code).toBe(127);
  });

  it('cuts output beyond the cap and says so', async () => {
    const res = await execute({ command: 'head -c 17000000 /dev/zero | tr "\\0" a; echo tail >&2' });
    expect(res.body.stdout_truncated).toBe(true);
    expect(res.body.stdout.length).toBe(16 * 1024 * 1024);
    expect(res.body.stderr).toBe('tail\n');
    expect(res.body.stderr_truncated).toBe(false);
  });

  it('stops a fork bomb at the pids limit', async () => {
    const res = await execute({ command: 'i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done 2>/dev/null; echo spawned; ps | wc -l', pids_limit: 20, timeout_ms: 10_000 });
    expect(res.status).toBe(200);
    // The shell keeps going, but the kernel refused processes beyond the limit.
    const lines = Number(res.body.stdout.trim().split('\n').pop());
    expect(lines).toBeLessThanOrEqual(25);
  });

  it('OOM-kills a memory hog and reports it', async () => {
    const res = await execute({ command: 'x=a; while true; do x="$x$x"; done', memory_mb: 32, timeout_ms: 20_000 });
    expect(res.body).toMatchObject({ oom_killed: true, signal: 'SIGKILL', exit_code: 137, timed_out: false });
  });

  it('caps CPU with cpu_cores', async () => {
    const res = await execute({ command: 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max', cpu_cores: 0.5 });
    const nums = res.body.stdout.trim().split(/\s+/).map(Number);
    expect(nums[0]! / nums[1]!).toBeCloseTo(0.5, 2);
  });

  it('has no network by default, and a network when asked', async () => {
    const none = await execute({ command: 'ls /sys/class/net' });
    expect(none.body.stdout.trim().split('\n')).toEqual(['lo']);
    const bridge = await execute({ command: 'ls /sys/class/net', network: 'bridge' });
    expect(bridge.body.stdout).toContain('eth0');
  });

  it('labels its containers faas.managed=true', async () => {
    const instance = gw.gateway.platform.store.instanceId();
    const seen = execute({ command: 'sleep 1' });
    // Its sandbox is there from its creation (however slow a cold start is) until its removal after the answer.
    let all: Docker.ContainerInfo[] = [];
    for (let i = 0; i < 400 && all.length === 0; i++) {
      all = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instance}`] } });
      if (all.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(all.length).toBeGreaterThan(0);
    for (const c of all) expect(c.Labels).toMatchObject({ 'faas.managed': 'true', 'faas.sandbox': expect.stringMatching(/^sb-/) });
    await seen;
  });

  it('streams NDJSON events ending with exit', async () => {
    const res = await fetch(`${gw.url}/api/v1/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ command: 'echo a; sleep 0.2; echo b >&2; exit 2' }),
    });
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const events = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type !== 'process_event')).toEqual([
      { type: 'stdout', data: 'a\n', exec_id: expect.any(String) },
      { type: 'stderr', data: 'b\n', exec_id: expect.any(String) },
      { type: 'exit', code: 2, signal: null, timed_out: false, oom_killed: false, exec_id: expect.any(String) },
    ]);
  });
});

describe('POST /api/v1/execute with bad input', () => {
  const cases: Array<[string, unknown, string, string?]> = [
    ['an empty command', { command: '' }, 'validation_error', 'command'],
    ['no command at all', {}, 'validation_error', 'command'],
    ['both command and argv', { command: 'ls', argv: ['ls'] }, 'validation_error', 'command'],
    ['a wrong type', { command: 42 }, 'validation_error', 'command'],
    ['a negative timeout', { command: 'ls', timeout_ms: -1 }, 'validation_error', 'timeout_ms'],
    ['an absurd memory limit', { command: 'ls', memory_mb: 10_000_000 }, 'validation_error', 'memory_mb'],
    ['zero cpu', { command: 'ls', cpu_cores: 0 }, 'validation_error', 'cpu_cores'],
    ['a pids limit of 0', { command: 'ls', pids_limit: 0 }, 'validation_error', 'pids_limit'],
    ['an unknown mode', { command: 'ls', mode: 'turbo' }, 'validation_error', 'mode'],
    ['an unknown field', { command: 'ls', timeout: 5 }, 'validation_error', 'timeout'],
    ['a relative working_dir', { command: 'ls', working_dir: 'tmp' }, 'validation_error', 'working_dir'],
    ['an unknown network', { command: 'ls', network: 'host' }, 'validation_error', 'network'],
    ['a body that is not an object', [1, 2], 'validation_error'],
    // The engine redirects such a name, and following that redirect crashed the gateway.
    ['an image name with ".." segments', { command: 'ls', image: '../../etc' }, 'validation_error', 'image'],
    ['an image name that is no reference', { command: 'ls', image: 'NOT VALID' }, 'validation_error', 'image'],
    ['an image name with a broken tag', { command: 'ls', image: 'a/b:::' }, 'validation_error', 'image'],
    ['a cpu cap below the engine\'s smallest quota', { command: 'ls', cpu_cores: 0.001 }, 'validation_error', 'cpu_cores'],
    // The agent gets C strings: a NUL would silently cut the value (`echo a\0b` printed "a").
    ['a NUL in the command', { command: 'echo a\u0000b' }, 'validation_error', 'command'],
    ['a NUL in an argv entry', { argv: ['echo', 'a\u0000b'] }, 'validation_error', 'argv.1'],
    ['a NUL in an env value', { command: 'ls', env: { A: 'a\u0000b' } }, 'validation_error', 'env.A'],
    ['a NUL in working_dir', { command: 'ls', working_dir: '/tmp\u0000x' }, 'validation_error', 'working_dir'],
  ];
  for (const [what, body, code, field] of cases) {
    it(`rejects ${what} with 400 naming the field`, async () => {
      const res = await execute(body);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe(code);
      expect(typeof res.body.message).toBe('string');
      if (field) expect(res.body.field).toBe(field);
    });
  }

  it('rejects malformed JSON', async () => {
    const res = await execute('{"command": ');
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_json');
  });

  it('sends branched mode to the fork route', async () => {
    const res = await execute({ command: 'ls', mode: 'branched' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'mode_not_available', field: 'mode' });
    expect(res.body.message).toContain('/api/v1/fork');
  });

  it('answers 404 naming a missing image, and leaks nothing', async () => {
    const res = await execute({ command: 'ls', image: 'faas/no-such-image:never' });
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('image_not_found');
    expect(res.body.message).toContain('faas/no-such-image:never');
    expect(await containersOfThisGateway()).toBe(0);
  });

  it('says what is wrong with a bad env name (not zod\'s "Invalid key in record")', async () => {
    const res = await execute({ command: 'env', env: { 'A=B': 'x' } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'validation_error', field: 'env.A=B' });
    expect(res.body.message).toBe('env.A=B: env names must be non-empty and contain no "=" or NUL');
  });

  it('answers 400 naming cpu_cores when it asks for more CPUs than the host has, and leaks nothing', async () => {
    const res = await execute({ command: 'ls', cpu_cores: os.cpus().length + 1 });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'validation_error', field: 'cpu_cores' });
    expect(res.body.message).toContain(`cpu_cores ${os.cpus().length + 1}`);
    expect(await containersOfThisGateway()).toBe(0);
  });

  it('runs an image named by its id or by a reference with a digest-free tag', async () => {
    const id = (await docker.getImage('faas/busybox:latest').inspect()).Id;
    for (const image of [id, 'faas/busybox', 'faas/busybox:latest']) {
      const res = await execute({ command: 'echo ok', image });
      expect(res.status, image).toBe(200);
      expect(res.body.stdout).toBe('ok\n');
    }
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await api(gw.url, 'GET', '/api/v1/nope');
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('not_found');
  });
});
