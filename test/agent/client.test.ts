import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/runtimes/agent/index.js';
import {
  FrameDecoder,
  FrameType,
  encodeError,
  encodeExit,
  encodeOutput,
  encodeStarted,
  type Frame,
} from '../../src/runtimes/agent/protocol.js';

/** A fake agent: calls onFrame for every frame the client sends, with the server-side socket to reply on. */
async function fakeAgent(onFrame: (f: Frame, s: net.Socket) => void): Promise<{ path: string; close: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-fake-agent-'));
  const sock = path.join(dir, 'agent.sock');
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    const d = new FrameDecoder();
    s.on('data', (b: Buffer) => d.push(b).forEach((f) => onFrame(f, s)));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(sock, () => r()));
  return {
    path: sock,
    close: () => {
      sockets.forEach((s) => s.destroy());
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let cleanup: Array<() => void> = [];
afterEach(() => {
  cleanup.forEach((f) => f());
  cleanup = [];
});

describe('AgentClient against a fake agent', () => {
  it('emits all output before exited resolves, even when everything arrives in one read', async () => {
    const fake = await fakeAgent((f, s) => {
      if (f.type !== FrameType.SPAWN) return;
      s.write(
        Buffer.concat([
          encodeStarted(f.id, 42),
          encodeOutput(f.id, 'stdout', Buffer.from('a')),
          encodeOutput(f.id, 'stderr', Buffer.from('b')),
          encodeOutput(f.id, 'stdout', Buffer.from('c')),
          encodeExit(f.id, { code: 0, signal: 9, oomKilled: true }),
        ]),
      );
    });
    cleanup.push(fake.close);
    const c = await AgentClient.connect(fake.path);
    cleanup.push(() => c.close());
    const p = c.spawn({ argv: ['x'] });
    const seen: string[] = [];
    p.on('stdout', (b: Buffer) => seen.push(`out:${b.toString()}`));
    p.on('stderr', (b: Buffer) => seen.push(`err:${b.toString()}`));
    const e = await p.exited;
    seen.push('exit');
    expect(seen).toEqual(['out:a', 'err:b', 'out:c', 'exit']);
    expect(e).toEqual({ exitCode: 0, signal: 'SIGKILL', oomKilled: true });
    expect(await p.started).toBe(42);
  });

  it('resolves a failed exec with 127 and rejects a refused one', async () => {
    const fake = await fakeAgent((f, s) => {
      if (f.type !== FrameType.SPAWN) return;
      if (f.id === 1) s.write(Buffer.concat([encodeError(1, 'exec "nope": No such file or directory'), encodeExit(1, { code: 127, signal: 0, oomKilled: false })]));
      else s.write(Buffer.concat([encodeError(f.id, `exec id ${f.id} is already in use`), encodeExit(f.id, { code: -1, signal: 0, oomKilled: false })]));
    });
    cleanup.push(fake.close);
    const c = await AgentClient.connect(fake.path);
    cleanup.push(() => c.close());
    const p = c.spawn({ argv: ['nope'], id: 1 });
    const msgs: string[] = [];
    p.on('error_message', (m: string) => msgs.push(m));
    expect(await p.exited).toEqual({ exitCode: 127, signal: null, oomKilled: false });
    await expect(p.started).rejects.toThrow(/No such file/);
    expect(msgs).toEqual(['exec "nope": No such file or directory']);
    await expect(c.spawn({ argv: ['x'], id: 2 }).exited).rejects.toThrow(/already in use/);
  });

  it('drops the connection on a malformed agent frame and rejects with a clear error', async () => {
    const fake = await fakeAgent((f, s) => {
      if (f.type === FrameType.SPAWN) s.write(Buffer.concat([encodeStarted(f.id, 1), Buffer.from([0x42, 0, 0, 0, 0, 0, 0, 0, 0])]));
    });
    cleanup.push(fake.close);
    const c = await AgentClient.connect(fake.path);
    const closed = new Promise<Error | undefined>((r) => c.once('close', r));
    const p = c.spawn({ argv: ['x'] });
    await expect(p.exited).rejects.toThrow(new RegExp(`agent connection to ${fake.path} was lost: malformed frame: unknown type 0x42`));
    expect((await closed)?.message).toMatch(/unknown type/);
    expect(() => c.spawn({ argv: ['x'] })).not.toThrow();
    await expect(c.ping()).rejects.toThrow(/was lost/);
  });

  it('retries until the socket appears', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-fake-agent-'));
    const sock = path.join(dir, 'late.sock');
    const server = net.createServer(() => undefined);
    cleanup.push(() => {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    setTimeout(() => server.listen(sock), 300);
    const t0 = Date.now();
    const c = await AgentClient.connect(sock, { timeoutMs: 3000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    c.close();
  });
});
