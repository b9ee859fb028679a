import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestS3 } from '../storage/s3-server.js';

let s3: TestS3;
let first: TestGateway;
let second: TestGateway;
const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

beforeAll(async () => {
  s3 = await TestS3.start('faas-snapshots');
  // The AWS default credential chain reads these from the process environment.
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  const env = { FAAS_OBJECT_STORE_URL: `s3://${s3.bucket}/shared`, FAAS_S3_ENDPOINT: s3.endpoint };
  first = await startTestGateway({ env });
  second = await startTestGateway({ env });
});
afterAll(async () => {
  await first?.close();
  await second?.close();
  await s3?.destroy();
  if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
  else process.env.AWS_ACCESS_KEY_ID = saved.id;
  if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
});

describe('snapshots through a shared S3 tier', () => {
  it('restores on a second gateway a snapshot taken on the first (they share only the S3 tier)', async () => {
    const taken = await api(first.url, 'POST', '/api/v1/execute', {
      mode: 'checkpointed',
      command: 'echo portable > /workspace/p && chmod 600 /workspace/p && head -c 3000000 /dev/urandom > /workspace/blob && md5sum /workspace/blob > /tmp/sum && rm /etc/group',
    });
    expect(taken.body.exit_code).toBe(0);
    await first.gateway.platform.blobs.flushReplication(30_000);
    const id = taken.body.snapshot_id as string;
    expect(second.gateway.platform.snapshots.list('default')).toEqual([]);
    const info = await api(second.url, 'GET', `/api/v1/snapshots/${id}`);
    expect(info.body).toMatchObject({ id });
    expect(info.status).toBe(200);
    expect(info.body).toMatchObject({ id, image: 'faas/busybox:latest' });
    const restored = await api(second.url, 'POST', '/api/v1/execute', {
      mode: 'checkpointed',
      checkpoint: id,
      command: 'cat /workspace/p; stat -c %a /workspace/p; md5sum -c /tmp/sum >/dev/null && echo same; test -e /etc/group || echo no-group',
    });
    expect(restored.body.stdout).toBe('portable\n600\nsame\nno-group\n');
    // Another tenant cannot reach it through storage either.
    await expect(second.gateway.platform.snapshots.get('other', id)).rejects.toMatchObject({ code: 'not_found' });
  });
});
