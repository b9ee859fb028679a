import { describe, expect, it } from 'vitest';
import { api, useTestGateway } from '../helpers/gateway.js';

const gw = useTestGateway();

const execute = (body: unknown) => api(gw.url, 'POST', '/api/v1/execute', body);

describe('checkpointed mode and snapshots', () => {
  it('restores deletions, permissions, owners, symlinks, hard links, empty dirs and large files', async () => {
    const setup = [
      'mkdir -p /workspace/d/empty /workspace/d/sub',
      'echo hello > /workspace/d/sub/file',
      'chmod 751 /workspace/d/sub/file',
      'chown 1234:2345 /workspace/d/sub/file',
      'ln -s sub/file /workspace/d/link',
      'ln /workspace/d/sub/file /workspace/d/hard',
      'head -c 5242880 /dev/urandom > /workspace/big',
      'md5sum /workspace/big | cut -d" " -f1 > /tmp/big.md5',
      'rm /etc/passwd',
      'rm -r /usr/share 2>/dev/null || true',
      'echo changed >> /etc/group',
      `mkdir -p "/workspace/${'long-name-'.repeat(12)}" && echo long > "/workspace/${'long-name-'.repeat(12)}/f"`,
    ].join(' && ');
    const first = await execute({ mode: 'checkpointed', command: setup });
    expect(first.status).toBe(200);
    expect(first.body.exit_code).toBe(0);
    expect(first.body.snapshot_id).toMatch(/^snap_[0-9a-f]{64}$/);
    const check = [
      'cat /workspace/d/sub/file',
      'stat -c "%a %u %g" /workspace/d/sub/file',
      'readlink /workspace/d/link',
      'cat /workspace/d/link',
      'stat -c "%h" /workspace/d/hard',
      'test -d /workspace/d/empty && echo empty-dir',
      'test -e /etc/passwd || echo passwd-deleted',
      'test -e /usr/share || echo share-deleted',
      'tail -1 /etc/group',
      'test "$(md5sum /workspace/big | cut -d" " -f1)" = "$(cat /tmp/big.md5)" && echo big-ok',
      `cat "/workspace/${'long-name-'.repeat(12)}/f"`,
    ].join('; ');
    const second = await execute({ mode: 'checkpointed', checkpoint: first.body.snapshot_id, command: check });
    expect(second.body.stderr).toBe('');
    expect(second.body.stdout.split('\n')).toEqual([
      'hello',
      '751 1234 2345',
      'sub/file',
      'hello',
      '2',
      'empty-dir',
      'passwd-deleted',
      'share-deleted',
      'changed',
      'big-ok',
      'long',
      '',
    ]);
    const snap = await api(gw.url, 'GET', `/api/v1/snapshots/${first.body.snapshot_id}`);
    expect(snap.status).toBe(200);
    expect(snap.body).toMatchObject({ id: first.body.snapshot_id, image: 'faas/busybox:latest', parent: null });
    expect(snap.body.size_bytes).toBeGreaterThan(5_000_000);
    expect(snap.body.stored_bytes).toBeGreaterThan(0);
    expect(snap.body.deletions).toBeGreaterThanOrEqual(1);
    const child = await api(gw.url, 'GET', `/api/v1/snapshots/${second.body.snapshot_id}`);
    expect(child.body.parent).toBe(first.body.snapshot_id);
  });

  it('chains three checkpoints, each seeing the earlier ones', async () => {
    const a = await execute({ mode: 'checkpointed', command: 'echo 1 >> /workspace/chain' });
    const b = await execute({ mode: 'checkpointed', checkpoint: a.body.snapshot_id, command: 'echo 2 >> /workspace/chain' });
    const c = await execute({ mode: 'checkpointed', checkpoint: b.body.snapshot_id, command: 'echo 3 >> /workspace/chain; rm -f /bin/vi' });
    const d = await execute({ mode: 'checkpointed', checkpoint: c.body.snapshot_id, command: 'cat /workspace/chain; test -e /bin/vi || echo no-vi' });
    expect(d.body.stdout).toBe('1\n2\n3\nno-vi\n');
    const lineage = await api(gw.url, 'GET', `/api/v1/snapshots/${c.body.snapshot_id}`);
    expect(lineage.body.parent).toBe(b.body.snapshot_id);
    // A parent is not deleted while a child names it, unless forced.
    const refused = await api(gw.url, 'DELETE', `/api/v1/snapshots/${b.body.snapshot_id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain(c.body.snapshot_id);
    expect((await api(gw.url, 'DELETE', `/api/v1/snapshots/${b.body.snapshot_id}?force=true`)).status).toBe(204);
    const gone = await api(gw.url, 'GET', `/api/v1/snapshots/${b.body.snapshot_id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.message).toContain(b.body.snapshot_id);
    const list = await api(gw.url, 'GET', '/api/v1/snapshots');
    expect(list.body.snapshots.map((s: { id: string }) => s.id)).toContain(c.body.snapshot_id);
    expect(list.body.snapshots.map((s: { id: string }) => s.id)).not.toContain(b.body.snapshot_id);
    // Restoring the deleted one: a clear 404 naming it, and no sandbox left behind.
    const restore = await execute({ mode: 'checkpointed', checkpoint: b.body.snapshot_id, command: 'true' });
    expect(restore.status).toBe(404);
    expect(restore.body.message).toContain(b.body.snapshot_id);
  });

  it('checkpoints a live sandbox over REST and WebSocket, and starts a sandbox from it', async () => {
    const created = await api(gw.url, 'POST', '/api/v1/containers', {});
    const id = created.body.id as string;
    await api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'echo live > /workspace/state' });
    const cp = await api(gw.url, 'POST', `/api/v1/containers/${id}/checkpoint`, { name: 'first' });
    expect(cp.status).toBe(201);
    expect(cp.body).toMatchObject({ name: 'first', source: id });
    const ws = new (await import('ws')).WebSocket(`${gw.url.replace('http', 'ws')}/api/v1/containers/${id}/stream`);
    const event = await new Promise<any>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ type: 'checkpoint', name: 'ws' })));
      ws.on('message', (raw) => {
        const e = JSON.parse(raw.toString());
        if (e.type === 'custom' && e.name === 'checkpoint') resolve(e);
        if (e.type === 'error') reject(new Error(e.message));
      });
    });
    ws.close();
    expect(event.data.snapshot_id).toMatch(/^snap_/);
    expect(event.data.name).toBe('ws');
    const restored = await api(gw.url, 'POST', '/api/v1/containers', { checkpoint: event.data.snapshot_id });
    expect(restored.status).toBe(201);
    const out = await api(gw.url, 'POST', `/api/v1/containers/${restored.body.id}/exec`, { command: 'cat /workspace/state' });
    expect(out.body.stdout).toBe('live\n');
    // Stopped and deleted sandboxes are refused, naming them.
    await api(gw.url, 'POST', `/api/v1/containers/${id}/stop`);
    const stopped = await api(gw.url, 'POST', `/api/v1/containers/${id}/checkpoint`, {});
    expect(stopped.status).toBe(409);
    expect(stopped.body.message).toContain(id);
    await api(gw.url, 'DELETE', `/api/v1/containers/${id}`);
    const deleted = await api(gw.url, 'POST', `/api/v1/containers/${id}/checkpoint`, {});
    expect(deleted.status).toBe(404);
    expect(deleted.body.message).toContain(id);
    await api(gw.url, 'DELETE', `/api/v1/containers/${restored.body.id}`);
  });

  it('refuses unknown snapshots, another image, and another tenant', async () => {
    const unknown = await execute({ mode: 'checkpointed', checkpoint: 'snap_nope', command: 'true' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toContain('snap_nope');
    const a = await execute({ mode: 'checkpointed', command: 'echo x > /workspace/x' });
    const other = await execute({ mode: 'checkpointed', checkpoint: a.body.snapshot_id, image: 'faas/debian:bookworm', command: 'true' });
    expect([409, 404]).toContain(other.status);
    if (other.status === 409) {
      expect(other.body.message).toContain('faas/debian:bookworm');
      expect(other.body.message).toContain('faas/busybox:latest');
    }
    const snapshots = gw.gateway.platform.snapshots;
    await expect(snapshots.get('another-tenant', a.body.snapshot_id)).rejects.toMatchObject({ code: 'not_found' });
    expect(snapshots.list('another-tenant')).toEqual([]);
    const withCheckpointInEphemeral = await execute({ checkpoint: a.body.snapshot_id, command: 'true' });
    expect(withCheckpointInEphemeral.status).toBe(400);
    // Finished sandboxes are removed in the next pause and pools fill on their own: neither may change the count
    // between the two looks.
    const count = async () => (await gw.gateway.platform.runtime.list()).filter((c) => c.labels['faas.kind'] !== 'pool').length;
    await gw.gateway.platform.executor.drain();
    const before = await count();
    const missing = await api(gw.url, 'POST', '/api/v1/containers', { checkpoint: 'snap_missing' });
    expect(missing.status).toBe(404);
    expect(await count()).toBe(before);
  });
});

describe('streamed checkpointed executions', () => {
  it('end with a custom checkpoint event carrying the snapshot id', async () => {
    const res = await fetch(`${gw.url}/api/v1/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ mode: 'checkpointed', command: 'echo streamed > /workspace/x; echo out' }),
    });
    const events = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    const exit = events.findIndex((e) => e.type === 'exit');
    const cp = events.findIndex((e) => e.type === 'custom' && e.name === 'checkpoint');
    expect(exit).toBeGreaterThanOrEqual(0);
    expect(cp).toBeGreaterThan(exit);
    const read = await execute({ mode: 'checkpointed', checkpoint: events[cp].data.snapshot_id, command: 'cat /workspace/x' });
    expect(read.body.stdout).toBe('streamed\n');
  });
});
