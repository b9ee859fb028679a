// A sandbox whose agent cannot start fails at once with its output, not after the agent timeout, and leaves
// nothing behind.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/runtimes/docker/docker-runtime.js';

const run = crypto.randomBytes(4).toString('hex');
const runRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-agent-start-'));
const instanceId = `test-agent-start-${run}`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
// The host's /bin/true is linked against the host's C library, which the busybox image does not have.
const runtime = new DockerRuntime({ socketPath: '/var/run/docker.sock', agentPath: '/bin/true', runRoot, instanceId, agentTimeoutMs: 30_000 });

afterAll(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instanceId}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  await runtime.close();
  fs.rmSync(runRoot, { recursive: true, force: true });
});

describe('a sandbox whose agent cannot start', () => {
  it('fails within a second or two, saying it stopped and with its output, and is removed', async () => {
    const t = performance.now();
    const id = `sb_${run}`;
    const err = await runtime
      .create({ id, image: 'faas/busybox:latest', env: {}, workingDir: '/workspace', limits: { network: 'none' }, labels: { 'faas.kind': 'test' } })
      .then(() => null, (e: unknown) => e as Error);
    expect(err).not.toBeNull();
    expect(err!.message).toMatch(new RegExp(`sandbox ${id} stopped before its agent answered \\(exit code \\d+\\)`));
    expect(err!.message).toContain('faas/busybox:latest');
    // Far below the 30 s agent timeout.
    expect(performance.now() - t).toBeLessThan(10_000);
    const left = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instanceId}`] } });
    expect(left).toHaveLength(0);
  });
});
