// Snapshots and cached results survive a gateway restart on the same data dir.
import { afterAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const gateways: TestGateway[] = [];
afterAll(async () => {
  for (const g of gateways.reverse()) await g.close();
});

describe('after a restart', () => {
  it('restores snapshots and answers cached results; executions of the previous run answer 410', async () => {
    const first = await startTestGateway();
    gateways.push(first);
    const snap = await api(first.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', command: 'echo kept > /workspace/k' });
    const cached = await api(first.url, 'POST', '/api/v1/execute', { mode: 'cached', command: 'cat /proc/sys/kernel/random/uuid' });
    const plain = await api(first.url, 'POST', '/api/v1/execute', { command: 'true' });
    await first.stop();
    const second = await startTestGateway({ dataDir: first.dataDir });
    gateways.push(second);
    const restored = await api(second.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', checkpoint: snap.body.snapshot_id, command: 'cat /workspace/k' });
    expect(restored.body.stdout).toBe('kept\n');
    const again = await api(second.url, 'POST', '/api/v1/execute', { mode: 'cached', command: 'cat /proc/sys/kernel/random/uuid' });
    expect(again.body).toMatchObject({ cached: true, stdout: cached.body.stdout });
    const fork = await api(second.url, 'POST', '/api/v1/fork', { parent: plain.body.id, command: 'true' });
    expect(fork.status).toBe(410);
  });
});
