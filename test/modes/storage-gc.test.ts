// The gateway's periodic storage gc: deleting a snapshot drops its references at once, and its blobs leave the
// disk at the next gc; what is still referenced stays and restores.
import { describe, expect, it } from 'vitest';
import { storageGcSettingsFromEnv } from '../../src/platform/storage-gc.js';
import { api, useTestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

const gw = useTestGateway({ env: { FAAS_STORAGE_GC_INTERVAL_S: '0.3', FAAS_STORAGE_GC_GRACE_S: '0' } });

const execute = (body: unknown) => api(gw.url, 'POST', '/api/v1/execute', body);
const storedBytes = () => gw.gateway.platform.blobs.stats().stored_bytes;

describe('periodic storage gc', () => {
  it("removes a deleted snapshot's blobs and keeps those still referenced, even while snapshots are being taken", async () => {
    // Taken while gc runs every 0.3 s with no grace: a snapshot's chunks are pinned until it is recorded.
    const kept = await execute({ mode: 'checkpointed', command: 'head -c 3000000 /dev/urandom > /workspace/kept && md5sum /workspace/kept' });
    const dropped = await execute({ mode: 'checkpointed', command: 'head -c 6000000 /dev/urandom > /workspace/dropped' });
    expect([kept.body.exit_code, dropped.body.exit_code]).toEqual([0, 0]);
    const before = storedBytes();
    expect(before).toBeGreaterThan(9_000_000);

    expect((await api(gw.url, 'DELETE', `/api/v1/snapshots/${dropped.body.snapshot_id}`)).status).toBe(204);
    await waitFor('the deleted snapshot’s 6 MB to leave the store', () => before - storedBytes() > 5_900_000, 15_000);
    expect(storedBytes()).toBeGreaterThan(3_000_000);

    const restored = await execute({ mode: 'checkpointed', checkpoint: kept.body.snapshot_id, command: 'md5sum /workspace/kept' });
    expect(restored.body).toMatchObject({ stdout: kept.body.stdout });
    const metrics = await fetch(`${gw.url}/metrics`).then((r) => r.text());
    const removed = Number(/^faas_storage_gc_removed_bytes_total (\d+)/m.exec(metrics)?.[1]);
    expect(removed).toBeGreaterThan(5_900_000);
    expect(gw.gateway.platform.storageGc.last).toMatchObject({ report: expect.objectContaining({ kept: expect.any(Number) }) });
  });

  it('reads its settings from the environment: hourly by default (off by default with an S3 tier), 0 turns it off, nonsense is refused by name', () => {
    expect(storageGcSettingsFromEnv({}, false)).toEqual({ intervalMs: 3_600_000, graceMs: 3_600_000 });
    expect(storageGcSettingsFromEnv({ FAAS_STORAGE_GC_INTERVAL_S: '0' }, false).intervalMs).toBe(0);
    // With an S3 tier (maybe shared with other gateways) it runs only when asked for.
    expect(storageGcSettingsFromEnv({}, true).intervalMs).toBe(0);
    expect(storageGcSettingsFromEnv({ FAAS_STORAGE_GC_INTERVAL_S: '600' }, true).intervalMs).toBe(600_000);
    expect(() => storageGcSettingsFromEnv({ FAAS_STORAGE_GC_GRACE_S: '-1' }, false)).toThrow(/FAAS_STORAGE_GC_GRACE_S="-1" must be a number >= 0/);
    expect(() => storageGcSettingsFromEnv({ FAAS_STORAGE_GC_INTERVAL_S: 'hourly' }, false)).toThrow(/FAAS_STORAGE_GC_INTERVAL_S/);
  });
});
