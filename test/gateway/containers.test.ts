import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

beforeAll(async () => {
  gw = await startTestGateway({ env: { FAAS_IDLE_CHECK_MS: '200' } });
});
afterAll(async () => {
  await gw?.close();
});

const call = (method: string, url: string, body?: unknown) => api(gw.url, method, url, body);

async function engineHas(id: string): Promise<boolean> {
  const found = await docker.listContainers({ all: true, filters: { label: [`faas.sandbox=${id}`] } });
  return found.length > 0;
}

describe('persistent sandboxes', () => {
  it('live through create, exec, stop, resume (files kept) and delete (container gone)', async () => {
    const created = await call('POST', '/api/v1/containers', { env: { COLOR: 'blue' }, memory_mb: 128 });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.body).toMatchObject({ status: 'running', image: 'faas/busybox:latest', working_dir: '/workspace', limits: { memory_mb: 128, network: 'none' } });
    expect(await engineHas(id)).toBe(true);

    const listed = await call('GET', '/api/v1/containers');
    expect(listed.body.containers.map((c: { id: string }) => c.id)).toContain(id);
    expect((await call('GET', `/api/v1/containers/${id}`)).body.id).toBe(id);

    const write = await call('POST', `/api/v1/containers/${id}/exec`, { command: 'echo $COLOR > state.txt; echo written' });
    expect(write.body).toMatchObject({ exit_code: 0, stdout: 'written\n', container_id: id });

    const stopped = await call('POST', `/api/v1/containers/${id}/stop`);
    expect(stopped.body).toMatchObject({ status: 'stopped', stopped_reason: 'request' });
    const refused = await call('POST', `/api/v1/containers/${id}/exec`, { command: 'true' });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toBe('conflict');
    expect(refused.body.message).toContain(id);

    const resumed = await call('POST', `/api/v1/containers/${id}/resume`);
    expect(resumed.body.status).toBe('running');
    const read = await call('POST', `/api/v1/containers/${id}/exec`, { command: 'cat state.txt' });
    expect(read.body.stdout).toBe('blue\n');

    const deleted = await call('DELETE', `/api/v1/containers/${id}`);
    expect(deleted.status).toBe(204);
    expect(await engineHas(id)).toBe(false);
    expect((await call('GET', `/api/v1/containers/${id}`)).status).toBe(404);
  });

  it('keeps a command running when asked', async () => {
    const created = await call('POST', '/api/v1/containers', { command: 'while true; do date > /tmp/beat; sleep 0.2; done' });
    const id = created.body.id;
    expect(created.body.command).toEqual(['/bin/sh', '-c', 'while true; do date > /tmp/beat; sleep 0.2; done']);
    const ps = await call('POST', `/api/v1/containers/${id}/exec`, { command: 'sleep 0.5; cat /tmp/beat >/dev/null && echo beating' });
    expect(ps.body.stdout).toBe('beating\n');
    await call('DELETE', `/api/v1/containers/${id}`);
  });

  it('says in its lifecycle when the kept-alive command ends on its own, with its exit code and stderr', async () => {
    const missing = (await call('POST', '/api/v1/containers', { argv: ['no-such-server'] })).body.id;
    const failing = (await call('POST', '/api/v1/containers', { command: 'echo broken config >&2; exit 3' })).body.id;
    const lifecycleOf = async (id: string) => (await call('GET', `/api/v1/containers/${id}`)).body.lifecycle as Array<{ event: string; detail: any }>;
    const exited = async (id: string) => {
      for (let i = 0; i < 50; i++) {
        const found = (await lifecycleOf(id)).find((e) => e.event === 'command_exited');
        if (found) return found;
        await new Promise((r) => setTimeout(r, 100));
      }
      return undefined;
    };
    expect((await exited(missing))?.detail).toMatchObject({ exit_code: 127, signal: null, stderr: expect.stringContaining('no-such-server') });
    expect((await exited(failing))?.detail).toEqual({ exit_code: 3, signal: null, stderr: 'broken config\n' });
    // A command ended by a stop is not reported as having exited on its own.
    const kept = (await call('POST', '/api/v1/containers', { command: 'sleep 1000' })).body.id;
    await call('POST', `/api/v1/containers/${kept}/stop`);
    expect((await lifecycleOf(kept)).map((e) => e.event)).toEqual(['created', 'stopped']);
    for (const id of [missing, failing, kept]) await call('DELETE', `/api/v1/containers/${id}`);
  });

  it('execute with mode persistent returns the sandbox it made', async () => {
    const res = await call('POST', '/api/v1/execute', { command: 'echo kept > /workspace/f; echo ok', mode: 'persistent' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ stdout: 'ok\n', exit_code: 0, mode: 'persistent' });
    const id = res.body.container_id;
    expect((await call('POST', `/api/v1/containers/${id}/exec`, { command: 'cat /workspace/f' })).body.stdout).toBe('kept\n');
    await call('DELETE', `/api/v1/containers/${id}`);
  });

  it('names the kept sandbox in the exit event of a streamed persistent execute', async () => {
    const res = await fetch(`${gw.url}/api/v1/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ command: 'echo streamed', mode: 'persistent' }),
    });
    const events = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    const exit = events.find((e) => e.type === 'exit');
    expect(exit).toMatchObject({ code: 0, container_id: expect.stringMatching(/^sb-/) });
    expect((await call('GET', `/api/v1/containers/${exit.container_id}`)).body.status).toBe('running');
    await call('DELETE', `/api/v1/containers/${exit.container_id}`);
  });

  it('applies exec timeouts, stdin and per-exec env', async () => {
    const { body } = await call('POST', '/api/v1/containers', {});
    const timed = await call('POST', `/api/v1/containers/${body.id}/exec`, { command: 'sleep 30', timeout_ms: 300 });
    expect(timed.body).toMatchObject({ timed_out: true, exit_code: 137 });
    const piped = await call('POST', `/api/v1/containers/${body.id}/exec`, { command: 'tr a-z A-Z', stdin: 'shout' });
    expect(piped.body.stdout).toBe('SHOUT');
    const env = await call('POST', `/api/v1/containers/${body.id}/exec`, { argv: ['sh', '-c', 'echo $X'], env: { X: 'y' } });
    expect(env.body.stdout).toBe('y\n');
    await call('DELETE', `/api/v1/containers/${body.id}`);
  });

  it('stops an idle sandbox after idle_timeout_s', async () => {
    const { body } = await call('POST', '/api/v1/containers', { idle_timeout_s: 1 });
    let status = body.status;
    for (let i = 0; i < 40 && status === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await call('GET', `/api/v1/containers/${body.id}`)).body.status;
    }
    const after = (await call('GET', `/api/v1/containers/${body.id}`)).body;
    expect(after).toMatchObject({ status: 'stopped', stopped_reason: 'idle' });
    await call('DELETE', `/api/v1/containers/${body.id}`);
  });

  it('answers unknown ids with 404 naming the id', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/containers/sb-nope'],
      ['POST', '/api/v1/containers/sb-nope/exec'],
      ['POST', '/api/v1/containers/sb-nope/stop'],
      ['POST', '/api/v1/containers/sb-nope/resume'],
      ['DELETE', '/api/v1/containers/sb-nope'],
    ] as const) {
      const res = await call(method, url, method === 'POST' && url.endsWith('exec') ? { command: 'ls' } : undefined);
      expect(res.status, `${method} ${url}`).toBe(404);
      expect(res.body.message).toContain('sb-nope');
    }
  });

  it('rejects bad create bodies and leaks nothing', async () => {
    const before = (await gw.gateway.platform.runtime.list()).length;
    for (const body of [{ idle_timeout_s: -1 }, { image: '' }, { memory_mb: 1 }, { command: 'a', argv: ['b'] }, { image: 'faas/missing:nope' }]) {
      const res = await call('POST', '/api/v1/containers', body);
      expect(res.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
    expect((await gw.gateway.platform.runtime.list()).length).toBe(before);
  });
});
