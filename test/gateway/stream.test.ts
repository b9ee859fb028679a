import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ClientOutbox, type OutboxSocket } from '../../src/gateway/stream.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestStream } from '../helpers/ws.js';
import { waitFor } from '../helpers/wait.js';

let gw: TestGateway;
let id: string;

/** A client that stops reading is cut after 1 s; the byte bound is above any output of these tests (see below). */
const STALL_MS = 1000;

beforeAll(async () => {
  gw = await startTestGateway({
    heartbeatMs: 300,
    env: { FAAS_WS_STALL_MS: String(STALL_MS), FAAS_WS_MAX_BUFFERED_BYTES: String(256 * 1024 * 1024) },
  });
  id = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
});
afterAll(async () => {
  await gw?.close();
});

const isExit = (execId: string) => (e: { type: string; exec_id?: string }) => e.type === 'exit' && e.exec_id === execId;

/** The client's TCP socket: pausing it stops reading, so what the gateway sends piles up in kernel buffers, then in the gateway. */
const tcpOf = (s: TestStream) => (s.ws as unknown as { _socket: { pause(): void; resume(): void; localPort: number } })._socket;

/** The gateway's end of a client's connection. */
function serverEnd(g: TestGateway, client: TestStream): { readyState: number } | undefined {
  const port = tcpOf(client).localPort;
  return [...g.gateway.app.websocketServer.clients].find((c) => (c as unknown as { _socket?: { remotePort?: number } })._socket?.remotePort === port);
}

/**
 * A paused client is cut by the gateway (its end turns CLOSING) while the client cannot see it; once it reads
 * again, the close frame comes after at most what the socket and kernel held.
 */
async function expectCut(g: TestGateway, client: TestStream, reason: RegExp): Promise<void> {
  await waitFor('the gateway closes the paused client', () => serverEnd(g, client)?.readyState !== 1 /* OPEN */, 20_000);
  tcpOf(client).resume();
  await waitFor('the client sees the close', () => client.closed !== null, 10_000);
  expect(client.closed?.code).toBe(1013);
  expect(client.closed?.reason).toMatch(reason);
}

const bytesOf = (s: TestStream, execId: string) => s.of('stdout', execId).reduce((n, e) => n + e.data.length, 0);

describe('WebSocket stream', () => {
  it('exec streams ordered stdout then exit', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'for i in 1 2 3 4 5; do echo line$i; done; exit 7', exec_id: 'e1' });
    const exit = await s.waitFor(isExit('e1'));
    expect(exit).toMatchObject({ code: 7, signal: null });
    expect(s.stdout('e1')).toBe('line1\nline2\nline3\nline4\nline5\n');
    const started = s.of('process_event').find((e) => e.exec_id === 'e1' && e.event === 'started');
    expect(started?.command).toContain('for i in');
    s.close();
  });

  it('reports files written under /workspace', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'mkdir -p sub && echo hi > sub/new.txt' });
    const event = await s.waitFor((e) => e.type === 'file_event' && e.path === 'sub/new.txt' && e.event === 'created');
    expect(event).toMatchObject({ type: 'file_event', path: 'sub/new.txt', event: 'created' });
    s.close();
  });

  it('relays custom events written to $FAAS_EVENTS', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: `echo '{"name":"metrics","data":{"loss":0.5}}' > "$FAAS_EVENTS"` });
    const event = await s.waitFor((e) => e.type === 'custom' && e.name === 'metrics');
    expect(event).toMatchObject({ type: 'custom', name: 'metrics', data: { loss: 0.5 } });
    s.send({ type: 'exec', command: `echo 'not json' > "$FAAS_EVENTS"` });
    const bad = await s.waitFor((e) => e.type === 'error' && e.code === 'bad_custom_event');
    expect(bad).toMatchObject({ message: expect.stringContaining('not json') });
    s.close();
  });

  it('delivers stdin, including end of input, to cat', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'cat', exec_id: 'cat1' });
    await s.waitFor((e) => e.type === 'process_event' && e.exec_id === 'cat1' && e.event === 'started');
    s.send({ type: 'stdin', data: 'ping\n', exec_id: 'cat1' });
    await s.waitFor((e) => e.type === 'stdout' && e.exec_id === 'cat1');
    s.send({ type: 'stdin', data: 'last', eof: true });
    const exit = await s.waitFor(isExit('cat1'));
    expect(exit).toMatchObject({ code: 0 });
    expect(s.stdout('cat1')).toBe('ping\nlast');
    s.close();
  });

  it('takes commands in order: stdin sent right after exec reaches it', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'cat', exec_id: 'quick' });
    s.send({ type: 'stdin', data: 'no wait', exec_id: 'quick', eof: true });
    await s.waitFor(isExit('quick'));
    expect(s.stdout('quick')).toBe('no wait');
    expect(s.of('error')).toEqual([]);
    s.close();
  });

  it('closes streams with 1001 when the gateway shuts down', async () => {
    const other = await startTestGateway();
    try {
      const box = (await api(other.url, 'POST', '/api/v1/containers', {})).body.id;
      const s = await TestStream.open(other.url, box);
      await other.stop();
      for (let i = 0; i < 50 && !s.closed; i++) await new Promise((r) => setTimeout(r, 20));
      expect(s.closed?.code).toBe(1001);
    } finally {
      await other.close();
    }
  });

  it('runs a PTY, resizes it and delivers signals', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'stty size; read line; stty size; sleep 30', pty: true, cols: 100, rows: 30, exec_id: 'tty' });
    await s.waitFor((e) => e.type === 'stdout' && e.exec_id === 'tty' && s.stdout('tty').includes('30 100'));
    s.send({ type: 'resize', cols: 120, rows: 40, exec_id: 'tty' });
    s.send({ type: 'stdin', data: 'go\r', exec_id: 'tty' });
    await s.waitFor(() => s.stdout('tty').includes('40 120'));
    s.send({ type: 'signal', signal: 'SIGINT', exec_id: 'tty' });
    const exit = await s.waitFor(isExit('tty'));
    expect(exit).toMatchObject({ signal: 'SIGINT', code: 130 });
    s.close();
  });

  it('tells concurrent execs apart by exec_id', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'for i in 1 2 3; do echo a$i; sleep 0.05; done', exec_id: 'A' });
    s.send({ type: 'exec', command: 'for i in 1 2 3; do echo b$i; sleep 0.05; done', exec_id: 'B' });
    await Promise.all([s.waitFor(isExit('A')), s.waitFor(isExit('B'))]);
    expect(s.stdout('A')).toBe('a1\na2\na3\n');
    expect(s.stdout('B')).toBe('b1\nb2\nb3\n');
    s.close();
  });

  it('answers get_state with the processes', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'sleep 5', exec_id: 'sleeper' });
    await s.waitFor((e) => e.type === 'process_event' && e.exec_id === 'sleeper');
    s.send({ type: 'get_state' });
    const state = await s.waitFor((e) => e.type === 'custom' && e.name === 'state');
    const data = (state as { data: { id: string; status: string; processes: Array<{ command: string; exec_id?: string }> } }).data;
    expect(data.id).toBe(id);
    expect(data.status).toBe('running');
    expect(data.processes.some((p) => p.exec_id === 'sleeper')).toBe(true);
    s.send({ type: 'signal', signal: 'KILL', exec_id: 'sleeper' });
    await s.waitFor(isExit('sleeper'));
    s.close();
  });

  it('sends heartbeats', async () => {
    const s = await TestStream.open(gw.url, id);
    await s.waitFor((e) => e.type === 'heartbeat', 2000);
    s.close();
  });

  it('lets several clients watch one sandbox', async () => {
    const a = await TestStream.open(gw.url, id);
    const b = await TestStream.open(gw.url, id);
    a.send({ type: 'exec', command: 'echo shared', exec_id: 'shared' });
    await Promise.all([a.waitFor(isExit('shared')), b.waitFor(isExit('shared'))]);
    expect(b.stdout('shared')).toBe('shared\n');
    a.close();
    b.close();
  });

  it('answers bad commands with error events and stays usable', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send('this is not json');
    expect(await s.waitFor((e) => e.type === 'error' && e.code === 'invalid_json')).toBeTruthy();
    s.send({ type: 'teleport' });
    const unknown = await s.waitFor((e) => e.type === 'error' && e.message.includes('teleport'));
    expect(unknown.type).toBe('error');
    s.send({ type: 'exec', command: '' });
    expect(await s.waitFor((e) => e.type === 'error' && e.message.includes('command'))).toBeTruthy();
    s.send({ type: 'stdin', data: 'x', exec_id: 'no-such-exec' });
    expect(await s.waitFor((e) => e.type === 'error' && e.message.includes('no-such-exec'))).toBeTruthy();
    s.send({ type: 'signal', signal: 'SIGBOGUS', exec_id: 'x' });
    s.send({ type: 'checkpoint' });
    expect(await s.waitFor((e) => e.type === 'error' && e.message.includes('checkpoint'))).toBeTruthy();
    s.send({ type: 'exec', command: 'echo still alive', exec_id: 'alive' });
    await s.waitFor(isExit('alive'));
    expect(s.stdout('alive')).toBe('still alive\n');
    s.close();
  });

  it('answers an exec with a bad environment or working_dir like REST does: validation_error naming the field', async () => {
    const s = await TestStream.open(gw.url, id);
    for (const [env, name] of [[{ 'A=B': 'x' }, 'env.A=B'], [{ '': 'x' }, 'env.']] as const) {
      s.events.length = 0;
      s.send({ type: 'exec', command: 'env', env });
      const error = await s.waitFor((e) => e.type === 'error');
      expect(error).toMatchObject({ type: 'error', code: 'validation_error' });
      expect((error as { message: string }).message).toContain(name);
      expect((error as { message: string }).message).toContain('env names must be non-empty and contain no "="');
    }
    s.events.length = 0;
    s.send({ type: 'exec', command: 'pwd', working_dir: 'relative' });
    const error = await s.waitFor((e) => e.type === 'error');
    expect(error).toMatchObject({ type: 'error', code: 'validation_error' });
    expect((error as { message: string }).message).toContain('working_dir must be an absolute path');
    s.close();
  });

  it('refuses a stream for an unknown sandbox with 404', async () => {
    await expect(TestStream.open(gw.url, 'sb-unknown')).rejects.toThrow(/404/);
  });

  it('disconnects a client that stops reading, without holding up the others', async () => {
    const slow = await TestStream.open(gw.url, id);
    const fast = await TestStream.open(gw.url, id);
    tcpOf(slow).pause();
    // 60 MB is more than the kernel's buffers of one loopback connection hold (tcp_wmem + tcp_rmem maxima), so
    // data waits in the gateway for the paused client and nothing of it is accepted.
    fast.send({ type: 'exec', command: 'head -c 60000000 /dev/zero | tr "\\0" x', exec_id: 'flood' });
    await fast.waitFor(isExit('flood'), 60_000);
    expect(bytesOf(fast, 'flood')).toBe(60_000_000);
    expect(fast.closed).toBeNull();
    await expectCut(gw, slow, /^stopped reading \(no data accepted for 1000 ms\)/);
    fast.close();
  });

  it('keeps a client that reads slowly, however far behind it is', async () => {
    const reader = await TestStream.open(gw.url, id);
    const tcp = tcpOf(reader) as ReturnType<typeof tcpOf> & NodeJS.ReadableStream;
    // Reads 2 MiB every 250 ms (8 MB/s): megabytes wait for it in the gateway for seconds, longer than the stall
    // limit, yet the socket always takes some.
    let budget = 0;
    const meter = (chunk: Buffer) => {
      budget -= chunk.length;
      if (budget <= 0) tcp.pause();
    };
    tcp.pause();
    tcp.on('data', meter);
    const throttle = setInterval(() => {
      budget = 2 * 1024 * 1024;
      tcp.resume();
    }, 250);
    const started = Date.now();
    try {
      reader.send({ type: 'exec', command: 'head -c 20000000 /dev/zero | tr "\\0" y', exec_id: 'trickle' });
      await reader.waitFor(isExit('trickle'), 60_000);
    } finally {
      clearInterval(throttle);
      tcp.off('data', meter);
      tcp.resume();
    }
    expect(Date.now() - started).toBeGreaterThan(2 * STALL_MS);
    expect(bytesOf(reader, 'trickle')).toBe(20_000_000);
    expect(reader.closed).toBeNull();
    reader.close();
  });

  it('disconnects a client that falls more than FAAS_WS_MAX_BUFFERED_BYTES behind, before any stall', async () => {
    const other = await startTestGateway({ env: { FAAS_WS_MAX_BUFFERED_BYTES: String(1024 * 1024), FAAS_WS_STALL_MS: '600000' } });
    try {
      const box = (await api(other.url, 'POST', '/api/v1/containers', {})).body.id;
      const s = await TestStream.open(other.url, box);
      tcpOf(s).pause();
      // A paused client still sends: it runs the flood it will not read.
      s.send({ type: 'exec', command: 'head -c 60000000 /dev/zero | tr "\\0" z', exec_id: 'behind' });
      await expectCut(other, s, /^fell more than 1048576 bytes behind/);
    } finally {
      await other.close();
    }
  });

  it('stop command stops the sandbox', async () => {
    const other = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
    const s = await TestStream.open(gw.url, other);
    s.send({ type: 'stop' });
    await s.waitFor((e) => e.type === 'custom' && e.name === 'lifecycle');
    expect((await api(gw.url, 'GET', `/api/v1/containers/${other}`)).body.status).toBe('stopped');
    s.close();
    await api(gw.url, 'DELETE', `/api/v1/containers/${other}`);
  });
});

/** The policy itself, on a socket whose kernel takes messages only when told to. */
describe('ClientOutbox (slow-client policy)', () => {
  class FakeSocket implements OutboxSocket {
    bufferedAmount = 0;
    readonly accepted: string[] = [];
    private readonly waiting: Array<{ data: string; cb: (err?: Error) => void }> = [];
    send(data: string, cb: (err?: Error) => void): void {
      this.bufferedAmount += data.length;
      this.waiting.push({ data, cb });
    }
    /** The kernel takes the next `n` messages. */
    take(n: number): void {
      for (const { data, cb } of this.waiting.splice(0, n)) {
        this.bufferedAmount -= data.length;
        this.accepted.push(data);
        cb();
      }
    }
  }
  const KiB64 = 'x'.repeat(64 * 1024);

  function setup(limits = { maxBufferedBytes: 8 * 1024 * 1024, stallMs: 1000 }) {
    const socket = new FakeSocket();
    const cut: string[] = [];
    const outbox = new ClientOutbox(socket, limits, (reason) => cut.push(reason));
    return { socket, cut, outbox };
  }

  const withFakeTimers = (body: () => void) => () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'Date'] });
    try {
      body();
    } finally {
      vi.useRealTimers();
    }
  };

  it(
    'cuts a client that accepts nothing for stallMs, even when nothing more is sent',
    withFakeTimers(() => {
      const { socket, cut, outbox } = setup();
      outbox.push('a');
      socket.take(1);
      vi.advanceTimersByTime(5000);
      expect(cut).toEqual([]); // nothing waits: idle, not stalled
      outbox.push('b');
      vi.advanceTimersByTime(999);
      expect(cut).toEqual([]);
      vi.advanceTimersByTime(2); // the timer at 1000 ms, then the verdict after that loop turn's I/O (setImmediate)
      expect(cut).toEqual(['stopped reading (no data accepted for 1000 ms); reconnect with ?since=<last seq>']);
      expect(Buffer.byteLength(cut[0]!)).toBeLessThanOrEqual(123);
      outbox.push('c');
      socket.take(10);
      expect(socket.accepted).toEqual(['a', 'b']);
    }),
  );

  it(
    'does not blame a client for a gateway that was busy: writes reported in the same loop turn count',
    withFakeTimers(() => {
      const { socket, cut, outbox } = setup();
      outbox.push('a');
      outbox.push('b');
      vi.advanceTimersByTime(1000); // the stall timer fires; the verdict waits for this turn's I/O
      socket.take(1); // ... which reports that the kernel took a message meanwhile
      vi.advanceTimersByTime(1);
      expect(cut).toEqual([]);
      vi.advanceTimersByTime(1001);
      expect(cut).toHaveLength(1); // and 'b' then waits 1000 ms more with nothing taken
    }),
  );

  it(
    'keeps a client that accepts a little now and then, and delivers everything in order',
    withFakeTimers(() => {
      const { socket, cut, outbox } = setup();
      const sent: string[] = [];
      for (let i = 0; i < 100; i++) {
        const data = `${i}:${KiB64}`;
        sent.push(data);
        outbox.push(data);
      }
      expect(socket.bufferedAmount).toBeLessThanOrEqual(1024 * 1024 + KiB64.length + 8); // the rest waits in the outbox
      while (socket.accepted.length < sent.length) {
        vi.advanceTimersByTime(900);
        socket.take(1);
      }
      vi.advanceTimersByTime(5000);
      expect(cut).toEqual([]);
      expect(socket.accepted).toEqual(sent);
    }),
  );

  it(
    'cuts a client with more than maxBufferedBytes waiting, without waiting for a stall',
    withFakeTimers(() => {
      const { socket, cut, outbox } = setup({ maxBufferedBytes: 4 * 1024 * 1024, stallMs: 60_000 });
      for (let i = 0; i < 64; i++) outbox.push(KiB64);
      expect(cut).toEqual([]);
      for (let i = 0; i < 64; i++) {
        socket.take(1);
        outbox.push(KiB64);
      }
      expect(cut).toEqual([]); // it reads: as much goes out as comes in
      outbox.push(KiB64);
      expect(cut).toEqual(['fell more than 4194304 bytes behind; reconnect with ?since=<last seq>']);
      vi.advanceTimersByTime(120_000);
      expect(cut).toHaveLength(1);
    }),
  );
});
