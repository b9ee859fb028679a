/** The SDK against a real gateway and the real Docker engine. */
import { describe, expect, it } from 'vitest';
import { ConflictError, ConnectionError, FaasClient, NotFoundError, ValidationError, type StreamEvent } from '@faas/sdk';
import { startTestGateway } from '../helpers/gateway.js';
import { sdkTestContext } from '../helpers/sdk.js';

const ctx = sdkTestContext();
const { created } = ctx;
const sandbox = () => ctx.sandbox();

/** Collects a stream's events until the exit of `execId`. */
async function untilExit(events: AsyncIterable<StreamEvent>, execId: string): Promise<{ out: string; code: number; all: StreamEvent[] }> {
  let out = '';
  const all: StreamEvent[] = [];
  for await (const ev of events) {
    all.push(ev);
    if (ev.type === 'stdout' && ev.exec_id === execId) out += ev.data;
    if (ev.type === 'error' && ev.exec_id === execId) throw new Error(`exec failed: ${ev.message}`);
    if (ev.type === 'exit' && ev.exec_id === execId) return { out, code: ev.code, all };
  }
  throw new Error(`stream ended before the exit of ${execId}: ${JSON.stringify(all)}`);
}

describe('execute', () => {
  it('returns stdout, stderr and the exit code', async () => {
    const result = await ctx.client.execute({ command: 'echo out; echo err >&2; exit 3' });
    expect(result).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false, oomKilled: false, signal: null, mode: 'ephemeral' });
    expect(result.id).not.toBe('');
    expect(result.durationMs).toBeGreaterThan(0);
  });

  it('runs an argv with env, working dir and stdin', async () => {
    const result = await ctx.client.execute({ argv: ['sh', '-c', 'echo "$GREETING $(pwd)"; cat'], env: { GREETING: 'hello' }, workingDir: '/tmp', stdin: 'from stdin' });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe('hello /tmp\nfrom stdin');
  });

  it('writes input files (text, bytes, with a mode) before the command, and checks them before sending', async () => {
    const result = await ctx.client.execute({
      command: 'cat a.txt; od -An -tx1 b.bin; ./run.sh',
      files: { 'a.txt': 'text\n', 'b.bin': new Uint8Array([0, 255]), 'run.sh': { content: '#!/bin/sh\necho ran\n', mode: 0o755 } },
    });
    expect(result.stdout).toBe('text\n 00 ff\nran\n');
    const err = await ctx.client.execute({ command: 'true', files: { '/': 'x' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe('files./');
    const box = await sandbox();
    expect((await box.exec({ command: 'cat in.txt', files: { 'in.txt': new TextEncoder().encode('bytes in') } })).stdout).toBe('bytes in');
    const parent = await ctx.client.execute({ mode: 'checkpointed', command: 'echo p > /workspace/p' });
    const forked = await ctx.client.fork({ parent: parent.snapshotId!, files: { 'f.txt': 'shared ' }, variants: [{ command: 'cat p f.txt' }] });
    expect(forked.variants[0]).toMatchObject({ status: 'ok', result: { stdout: 'p\nshared ' } });
  });

  it('streams output to the callbacks as it arrives and still returns the full result', async () => {
    const chunks: Array<[string, number]> = [];
    const errs: string[] = [];
    const result = await ctx.client.execute({
      command: 'echo one; sleep 1; echo two; echo bad >&2; exit 5',
      onStdout: (d) => chunks.push([d, performance.now()]),
      onStderr: (d) => errs.push(d),
    });
    const answered = performance.now();
    expect(chunks.map(([d]) => d).join('')).toBe('one\ntwo\n');
    const first = chunks[0];
    expect(first?.[0]).toBe('one\n');
    // "one" was delivered well before the answer (the command sleeps 1 s after it): live, not at the end. Timed
    // against the answer, not the request, so a slow cold start does not count.
    expect(answered - first![1]).toBeGreaterThan(500);
    expect(errs.join('')).toBe('bad\n');
    expect(result).toMatchObject({ exitCode: 5, stdout: 'one\ntwo\n', stderr: 'bad\n' });
  });

  it('keeps the sandbox in persistent mode and names it', async () => {
    const result = await ctx.client.execute({ command: 'echo kept > /workspace/f', mode: 'persistent' });
    expect(result.containerId).toBeDefined();
    const box = await ctx.client.containers.get(result.containerId!);
    created.push(box);
    expect((await box.exec('cat f')).stdout).toBe('kept\n');
  });

  it('reports a timeout', async () => {
    const result = await ctx.client.execute({ command: 'sleep 5', timeoutMs: 500 });
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).not.toBe(0);
  });

  it('maps gateway errors to typed errors', async () => {
    await expect(ctx.client.execute({ command: 'true', mode: 'branched' })).rejects.toMatchObject({ name: 'ValidationError', code: 'mode_not_available', status: 400 });
    await expect(ctx.client.execute({ command: 'true', image: 'faas/no-such-image:never' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(ctx.client.containers.get('no-such-sandbox')).rejects.toMatchObject({ name: 'NotFoundError', status: 404, code: 'not_found' });
  });

  it('validates options before sending anything', async () => {
    const err = await ctx.client.execute({ command: 'true', memoryMb: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe('memoryMb');
    expect((err as ValidationError).status).toBe(0);
  });

  it('fails with ConnectionError when the gateway is not there', async () => {
    const other = new FaasClient({ baseUrl: 'http://127.0.0.1:9', retries: 1, retryBaseMs: 1 });
    await expect(other.execute({ command: 'true' })).rejects.toBeInstanceOf(ConnectionError);
  });
});

describe('containers', () => {
  it('create, get, list, exec, stop, resume, delete', async () => {
    const s = await sandbox();
    expect(s.status).toBe('running');
    expect(s.workingDir).toBe('/workspace');
    expect((await ctx.client.containers.get(s.id)).id).toBe(s.id);
    expect((await ctx.client.containers.list()).map((x) => x.id)).toContain(s.id);

    const wrote = await s.exec('echo kept > file.txt; echo done');
    expect(wrote).toMatchObject({ exitCode: 0, stdout: 'done\n', containerId: s.id });
    const read = await s.exec(['cat', 'file.txt']);
    expect(read.stdout).toBe('kept\n');

    const live: string[] = [];
    const streamed = await s.exec({ command: 'echo a; echo b >&2; exit 7', onStdout: (d) => live.push(d) });
    expect(streamed).toMatchObject({ exitCode: 7, stdout: 'a\n', stderr: 'b\n' });
    expect(live.join('')).toBe('a\n');

    await s.stop();
    expect(s.status).toBe('stopped');
    await expect(s.exec('true')).rejects.toBeInstanceOf(ConflictError);
    await s.resume();
    expect(s.status).toBe('running');
    expect((await s.exec('cat file.txt')).stdout).toBe('kept\n');
    expect((await s.refresh()).status).toBe('running');
    expect(JSON.parse(JSON.stringify(s))).toMatchObject({ id: s.id, status: 'running' });

    await s.delete();
    created.splice(created.indexOf(s), 1);
    await expect(ctx.client.containers.get(s.id)).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('stream', () => {
  it('exec → stdout → exit over the WebSocket', async () => {
    const s = await sandbox();
    const stream = await s.stream();
    try {
      const execId = await stream.exec('echo streamed; exit 4');
      const { out, code } = await untilExit(stream, execId);
      expect(out).toBe('streamed\n');
      expect(code).toBe(4);
    } finally {
      await stream.close();
    }
  });

  it('sends stdin to cat and answers get_state', async () => {
    const s = await sandbox();
    const stream = await ctx.client.stream(s.id);
    try {
      const execId = await stream.exec('cat');
      await stream.send({ type: 'stdin', data: 'hello cat\n', exec_id: execId, eof: true });
      const { out, code } = await untilExit(stream, execId);
      expect(out).toBe('hello cat\n');
      expect(code).toBe(0);
      await stream.send({ type: 'get_state' });
      for await (const ev of stream) {
        if (ev.type === 'custom' && ev.name === 'state') {
          expect((ev.data as { id: string }).id).toBe(s.id);
          break;
        }
      }
    } finally {
      await stream.close();
    }
  });

  it('rejects exec() with the typed error when the gateway refuses it', async () => {
    const s = await sandbox();
    const stream = await s.stream();
    try {
      await s.stop();
      await expect(stream.exec('echo never')).rejects.toBeInstanceOf(ConflictError);
    } finally {
      await stream.close();
    }
  });

  it('ends normally when the sandbox is deleted, and is refused for an unknown sandbox', async () => {
    const s = await sandbox();
    const stream = await s.stream();
    await s.delete();
    created.splice(created.indexOf(s), 1);
    const rest: StreamEvent[] = [];
    for await (const ev of stream) rest.push(ev);
    expect(stream.isClosed).toBe(true);
    await expect(ctx.client.stream('no-such-sandbox')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('delivers heartbeats, which keep an idle-timeout stream alive', async () => {
    const own = await startTestGateway({ heartbeatMs: 200 });
    try {
      const c = new FaasClient({ baseUrl: own.url });
      const s = await c.containers.create();
      const stream = await s.stream({ idleTimeoutMs: 1000 });
      let beats = 0;
      const started = Date.now();
      for await (const ev of stream) {
        if (ev.type === 'heartbeat') beats++;
        if (Date.now() - started > 2000) break;
      }
      expect(beats).toBeGreaterThanOrEqual(5);
      expect(stream.isClosed).toBe(false);
      await stream.close();
      await s.delete();
    } finally {
      await own.close();
    }
  });

  it('ends with ConnectionError when the gateway goes away', async () => {
    const own = await startTestGateway();
    const runtime = own.gateway.platform.runtime;
    try {
      const c = new FaasClient({ baseUrl: own.url });
      const s = await c.containers.create();
      const stream = await s.stream();
      // The outcome is captured at once, so the rejection is handled while the gateway is still stopping.
      const done = (async () => {
        for await (const _ of stream) void _;
      })().then(
        () => 'ended normally',
        (e: unknown) => e,
      );
      const mine = await runtime.list();
      await own.stop();
      await Promise.all(mine.map((x) => runtime.remove(x.id).catch(() => undefined)));
      const err = await done;
      expect(err).toBeInstanceOf(ConnectionError);
      expect((err as ConnectionError).message).toContain(`the connection to the gateway at ${own.url} was lost`);
    } finally {
      await own.close();
    }
  });
});
