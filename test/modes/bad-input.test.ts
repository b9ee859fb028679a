// Bad input around snapshots: another image than the snapshot's, a restore that fails half-way.
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const otherTag = { repo: 'faas-test-other-image', tag: String(process.pid) };

beforeAll(async () => {
  gw = await startTestGateway();
  // Another image: busybox with one more layer.
  const c = await docker.createContainer({ Image: 'faas/busybox:latest', Cmd: ['true'] });
  await c.commit({ ...otherTag, changes: 'LABEL other=1' });
  await c.remove({ force: true });
});
afterAll(async () => {
  await gw?.close();
  await docker.getImage(`${otherTag.repo}:${otherTag.tag}`).remove({ force: true }).catch(() => undefined);
});

/** Sandboxes besides the warm pool's (a pool grows when executions miss it: that is not a leftover). */
const count = async () => (await gw.gateway.platform.runtime.list()).filter((s) => s.labels['faas.kind'] !== 'pool').length;

describe('bad input', () => {
  it('refuses a checkpoint of another image with 409 naming both images', async () => {
    const snap = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', command: 'echo x > /workspace/x' });
    const image = `${otherTag.repo}:${otherTag.tag}`;
    await gw.gateway.platform.executor.drain();
    const before = await count();
    for (const [url, body] of [
      ['/api/v1/execute', { mode: 'checkpointed', checkpoint: snap.body.snapshot_id, image, command: 'true' }],
      ['/api/v1/containers', { checkpoint: snap.body.snapshot_id, image }],
      ['/api/v1/fork', { parent: snap.body.snapshot_id, image, command: 'true' }],
    ] as const) {
      const res = await api(gw.url, 'POST', url, body);
      expect(res.status, url).toBe(409);
      expect(res.body.message).toContain(image);
      expect(res.body.message).toContain('faas/busybox:latest');
      expect(res.body.message).toContain(snap.body.snapshot_id);
    }
    // The snapshot's own image by name is fine.
    const same = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', checkpoint: snap.body.snapshot_id, image: 'faas/busybox:latest', command: 'cat /workspace/x' });
    expect(same.body.stdout).toBe('x\n');
    await gw.gateway.platform.executor.drain();
    expect(await count()).toBe(before);
  });

  it('leaves no half-made sandbox behind when a restore fails', async () => {
    const snap = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', command: 'head -c 100000 /dev/urandom > /workspace/x' });
    await gw.gateway.platform.executor.drain();
    const record = await gw.gateway.platform.snapshots.get('default', snap.body.snapshot_id);
    // Lose the archive's bytes.
    await gw.gateway.platform.blobs.delete(record.blobId, { force: true });
    const before = await count();
    const res = await api(gw.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', checkpoint: snap.body.snapshot_id, command: 'true' });
    expect(res.status).toBe(500);
    expect(res.body.message).toContain(snap.body.snapshot_id);
    const box = await api(gw.url, 'POST', '/api/v1/containers', { checkpoint: snap.body.snapshot_id });
    expect(box.status).toBe(500);
    await gw.gateway.platform.executor.drain();
    expect(await count()).toBe(before);
    expect((await api(gw.url, 'GET', '/api/v1/containers')).body.containers).toEqual([]);
  });
});
