// Snapshots and cached results survive a gateway restart on the same data dir.
import { afterAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const gateways: TestGateway[] = [];
afterAll(async () => {
  for (const g of gateways.reverse()) await g.close();
});

describe('after a restart', () => {
  it('restores snapshots, answers cached results, and forks executions of the previous run whose state was kept', async () => {
    const first = await startTestGateway();
    gateways.push(first);
    const snap = await api(first.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', command: 'echo kept > /workspace/k' });
    const cached = await api(first.url, 'POST', '/api/v1/execute', { mode: 'cached', command: 'cat /proc/sys/kernel/random/uuid' });
    const plain = await api(first.url, 'POST', '/api/v1/execute', { command: 'echo plain > /workspace/p' });
    // Its state is taken while its sandbox waits for removal, in the next pause.
    await first.gateway.platform.executor.drain();
    // Stopped right after it ended: the gateway shuts down before keeping its state.
    const late = await api(first.url, 'POST', '/api/v1/execute', { command: 'true' });
    await first.stop();
    const second = await startTestGateway({ dataDir: first.dataDir });
    gateways.push(second);
    const restored = await api(second.url, 'POST', '/api/v1/execute', { mode: 'checkpointed', checkpoint: snap.body.snapshot_id, command: 'cat /workspace/k' });
    expect(restored.body.stdout).toBe('kept\n');
    const again = await api(second.url, 'POST', '/api/v1/execute', { mode: 'cached', command: 'cat /proc/sys/kernel/random/uuid' });
    expect(again.body).toMatchObject({ cached: true, stdout: cached.body.stdout });
    const fork = await api(second.url, 'POST', '/api/v1/fork', { parent: plain.body.id, command: 'cat /workspace/p' });
    expect(fork.status).toBe(200);
    expect(fork.body.variants[0]).toMatchObject({ status: 'ok', result: { stdout: 'plain\n', exit_code: 0 } });
    const checkpointFork = await api(second.url, 'POST', '/api/v1/fork', { parent: snap.body.id, command: 'cat /workspace/k' });
    expect(checkpointFork.body.variants[0]).toMatchObject({ status: 'ok', result: { stdout: 'kept\n' } });
    const gone = await api(second.url, 'POST', '/api/v1/fork', { parent: late.body.id, command: 'true' });
    expect(gone.status).toBe(410);
    expect(gone.body.message).toContain(late.body.id);
  });
});
