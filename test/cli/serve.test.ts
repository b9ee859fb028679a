import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/sqlite.js';
import { api } from '../helpers/gateway.js';
import { exitOf, startServe } from '../helpers/serve-process.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-serve-'));

afterAll(async () => {
  // Remove whatever the gateways of this file created (their instance label lives in the data dir).
  const db = openDatabase(dataDir);
  const row = db.prepare("SELECT value FROM platform_settings WHERE key = 'instance_id'").get() as { value: string } | undefined;
  db.close();
  if (row) {
    const mine = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${row.value}`] } });
    await Promise.all(mine.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('faas serve', () => {
  it('logs where it listens and which runtime it uses, and exits cleanly on SIGTERM and SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const serve = await startServe(['--data-dir', dataDir, '--host', '127.0.0.1']);
      expect(serve.firstLine).toMatch(/^faas gateway listening on http:\/\/127\.0\.0\.1:\d+ \(runtime: docker, Docker /);
      expect((await api(serve.url, 'GET', '/health')).status).toBe(200);
      serve.child.kill(signal);
      expect(await exitOf(serve.child)).toEqual({ code: 0, signal: null });
    }
  });

  it('still shuts down cleanly when whoever read its output has gone away', async () => {
    const serve = await startServe(['--data-dir', dataDir]);
    serve.child.stdout!.destroy();
    serve.child.stderr!.destroy();
    serve.child.kill('SIGTERM');
    expect(await exitOf(serve.child)).toEqual({ code: 0, signal: null });
  });

  it('takes its settings from the environment too, and rejects bad ones with one line', async () => {
    const serve = await startServe([], { FAAS_DATA_DIR: dataDir, FAAS_HOST: '127.0.0.1' });
    expect(serve.firstLine).toContain(`data: ${dataDir}`);
    serve.child.kill('SIGTERM');
    await exitOf(serve.child);
    await expect(startServe(['--data-dir', dataDir], { FAAS_HEARTBEAT_MS: 'soon' })).rejects.toThrow(/exited with 2[\s\S]*FAAS_HEARTBEAT_MS.*soon/);
  });

  it('survives SIGKILL: the next start adopts persistent sandboxes, fails the interrupted execution, removes its sandbox', async () => {
    const first = await startServe(['--data-dir', dataDir]);
    const box = (await api(first.url, 'POST', '/api/v1/containers', {})).body.id as string;
    await api(first.url, 'POST', `/api/v1/containers/${box}/exec`, { command: 'echo survived > /workspace/f' });
    const inFlight = api(first.url, 'POST', '/api/v1/execute', { command: 'sleep 60' }).catch(() => null);
    await new Promise((r) => setTimeout(r, 1500));
    first.child.kill('SIGKILL');
    await exitOf(first.child);
    await inFlight;

    const second = await startServe(['--data-dir', dataDir]);
    try {
      const listed = (await api(second.url, 'GET', '/api/v1/containers')).body.containers;
      expect(listed.find((c: { id: string }) => c.id === box)?.status).toBe('running');
      expect((await api(second.url, 'POST', `/api/v1/containers/${box}/exec`, { command: 'cat /workspace/f' })).body.stdout).toBe('survived\n');
      const ephemeral = await docker.listContainers({ all: true, filters: { label: ['faas.kind=ephemeral', 'faas.managed=true'] } });
      const db = openDatabase(dataDir);
      const instance = (db.prepare("SELECT value FROM platform_settings WHERE key = 'instance_id'").get() as { value: string }).value;
      const failed = db.prepare("SELECT status, error FROM platform_executions WHERE mode = 'ephemeral' AND status != 'finished'").all() as Array<{ status: string; error: string }>;
      db.close();
      expect(ephemeral.filter((c) => c.Labels['faas.instance'] === instance)).toHaveLength(0);
      expect(failed).toEqual([{ status: 'failed', error: expect.stringContaining('gateway stopped') }]);
    } finally {
      second.child.kill('SIGTERM');
      await exitOf(second.child);
    }
  });
});
