import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
let current: TestGateway | undefined;

afterAll(async () => {
  await current?.close();
});

describe('a restarted gateway', () => {
  it('adopts running sandboxes, records stopped and vanished ones, removes orphans, fails interrupted executions', async () => {
    const first = await startTestGateway();
    current = first;
    // Its kept-alive command is still running under the agent when the next gateway connects.
    const keep = (await api(first.url, 'POST', '/api/v1/containers', { command: 'sleep 1000' })).body.id as string;
    await api(first.url, 'POST', `/api/v1/containers/${keep}/exec`, { command: 'echo persisted > /workspace/note' });
    const stopMe = (await api(first.url, 'POST', '/api/v1/containers', {})).body.id as string;
    const vanish = (await api(first.url, 'POST', '/api/v1/containers', {})).body.id as string;
    const instance = first.gateway.platform.store.instanceId();
    await first.stop();
    // What a crash leaves: a labelled container no record owns, and an execution still marked running.
    const orphan = await docker.createContainer({
      Image: 'faas/busybox:latest',
      Cmd: ['sleep', '60'],
      Labels: { 'faas.managed': 'true', 'faas.instance': instance, 'faas.sandbox': 'sb-orphan0000000000', 'faas.kind': 'ephemeral' },
      name: 'faas-sb-orphan0000000000',
    });
    await orphan.start();
    const { openDatabase } = await import('../../src/db/sqlite.js');
    const db = openDatabase(first.dataDir);
    db.prepare("INSERT INTO platform_executions (id, mode, sandbox_id, status, started_at) VALUES ('ex-crashed', 'ephemeral', NULL, 'running', ?)").run(new Date().toISOString());
    db.close();

    // Behind the gateway's back: one sandbox stopped, one removed.
    await docker.getContainer(`faas-${stopMe}`).stop({ t: 1 });
    await docker.getContainer(`faas-${vanish}`).remove({ force: true });
    fs.rmSync(`${first.dataDir}/run/${vanish}`, { recursive: true, force: true });

    const second = await startTestGateway({ dataDir: first.dataDir });
    current = second;
    const list = (await api(second.url, 'GET', '/api/v1/containers')).body.containers as Array<{ id: string; status: string; stopped_reason: string | null }>;
    const byId = new Map(list.map((c) => [c.id, c]));
    expect(byId.get(keep)).toMatchObject({ status: 'running' });
    expect(byId.get(stopMe)).toMatchObject({ status: 'stopped', stopped_reason: 'engine' });
    expect(byId.get(vanish)).toMatchObject({ status: 'lost', stopped_reason: 'vanished' });

    for (let i = 0; i < 5; i++) {
      const read = await api(second.url, 'POST', `/api/v1/containers/${keep}/exec`, { command: 'cat /workspace/note' });
      expect(read.body.stdout).toBe('persisted\n');
    }

    const leftovers = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instance}`, 'faas.kind=ephemeral'] } });
    expect(leftovers).toHaveLength(0);
    expect(second.gateway.platform.store.getExecution('ex-crashed')).toMatchObject({ status: 'failed', error: expect.stringContaining('gateway stopped') });

    const resumed = await api(second.url, 'POST', `/api/v1/containers/${stopMe}/resume`);
    expect(resumed.body.status).toBe('running');
    const lost = await api(second.url, 'POST', `/api/v1/containers/${vanish}/resume`);
    expect(lost.status).toBe(409);
  });
});
