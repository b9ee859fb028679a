// DockerRuntime's file reads hold the engine's lock on the sandbox while they last: one whose consumer takes
// nothing for `fileReadStallMs` is abandoned, so the sandbox is not held by a reader that went quiet.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/runtimes/docker/docker-runtime.js';
import { tarFiles } from '../../src/platform/tar-files.js';

const run = crypto.randomBytes(4).toString('hex');
const runRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-sandbox-files-'));
const instanceId = `test-sandbox-files-${run}`;
/** Far above the consumer's pauses below (a loaded machine's timers fire late), far below the test timeout. */
const STALL_MS = 1000;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const runtime = new DockerRuntime({
  socketPath: '/var/run/docker.sock',
  agentPath: path.resolve('agent/build/faas-agent'),
  runRoot,
  instanceId,
  fileReadStallMs: STALL_MS,
});
const id = `sb-${run}files`;

beforeAll(async () => {
  await runtime.create({ id, image: 'faas/busybox:latest', env: {}, workingDir: '/workspace', limits: { network: 'none' }, labels: { 'faas.kind': 'test' } });
  await runtime.writeFiles(id, Readable.from([tarFiles([{ name: 'workspace/big', data: Buffer.alloc(16 * 1024 * 1024, 7) }])]));
});
afterAll(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instanceId}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  await runtime.close();
  fs.rmSync(runRoot, { recursive: true, force: true });
});

describe('file reads of the Docker runtime', () => {
  it('abandon a read whose consumer takes nothing for the stall time, letting go of the sandbox', async () => {
    const read = await runtime.readFile(id, '/workspace/big');
    expect(read).toMatchObject({ type: 'file', size: 16 * 1024 * 1024, mode: 0o644 });
    if (read.type !== 'file') return;
    const error = new Promise<Error>((resolve) => read.content.once('error', resolve));
    // While the read is open and unread, the engine holds the sandbox: a stat waits for the read to be abandoned.
    const t = performance.now();
    const stat = await runtime.statPath(id, '/workspace/big');
    expect(stat).toEqual({ type: 'file', size: 16 * 1024 * 1024, mode: 0o644 });
    expect((await error).message).toMatch(new RegExp(`took nothing for ${STALL_MS} ms; the read was abandoned`));
    expect(performance.now() - t).toBeLessThan(5000);
  });

  it('keep a read going while its consumer takes it, however slowly', async () => {
    const read = await runtime.readFile(id, '/workspace/big');
    if (read.type !== 'file') throw new Error(`not a file: ${read.type}`);
    let got = 0;
    let pauses = 0;
    const t = performance.now();
    // Slower than the stall time in all (8 pauses of 200 ms), but never idle for that long at once.
    for await (const chunk of read.content) {
      got += (chunk as Buffer).length;
      if (pauses++ < 8) await new Promise((r) => setTimeout(r, 200));
    }
    expect(got).toBe(16 * 1024 * 1024);
    expect(performance.now() - t).toBeGreaterThan(STALL_MS);
  });

  it('describe what is not a regular file without reading it', async () => {
    expect(await runtime.readFile(id, '/workspace')).toEqual({ type: 'directory', mode: 0o755 });
    expect(await runtime.readFile(id, '/bin/sh')).toEqual({ type: 'symlink', target: '/bin/busybox' });
    expect(await runtime.readFile(id, '/workspace/none')).toEqual({ type: 'missing' });
    expect(await runtime.statPath(id, '/workspace')).toEqual({ type: 'directory', mode: 0o755 });
    expect(await runtime.statPath(id, '/bin/sh')).toEqual({ type: 'symlink', target: '/bin/busybox' });
    expect(await runtime.statPath(id, '/workspace/none')).toEqual({ type: 'missing' });
  });
});
