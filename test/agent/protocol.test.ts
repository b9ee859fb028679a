import { describe, expect, it } from 'vitest';

import {
  FrameDecoder,
  FrameType,
  HEADER_LENGTH,
  MAX_PAYLOAD,
  ProtocolError,
  decodeExit,
  decodeFileEvent,
  decodePong,
  decodeProcessEvent,
  decodeSpawn,
  decodeStarted,
  encodeAttach,
  encodeCustom,
  encodeError,
  encodeExit,
  encodeFileEvent,
  encodeFrame,
  encodeList,
  encodeOutput,
  encodePing,
  encodePong,
  encodeProcessEvent,
  encodeProcessList,
  encodeResize,
  encodeSignal,
  encodeSpawn,
  encodeStarted,
  encodeStdin,
  encodeStdinEof,
  encodeSubscribe,
  reader,
  type Frame,
} from '../../src/runtimes/agent/protocol.js';
import { signalName, signalNumber } from '../../src/runtimes/agent/client.js';

function one(buf: Buffer): Frame {
  const frames = new FrameDecoder().push(buf);
  expect(frames).toHaveLength(1);
  return frames[0]!;
}

describe('agent protocol', () => {
  it('encodes the header big-endian', () => {
    const b = encodeFrame(FrameType.STDIN, 0x01020304, Buffer.from('hi'));
    expect([...b]).toEqual([0x02, 1, 2, 3, 4, 0, 0, 0, 2, 0x68, 0x69]);
  });

  it('round-trips SPAWN', () => {
    const req = { argv: ['sh', '-c', 'echo ü'], env: { A: '1', B: 'x=y' }, cwd: 'sub', pty: { cols: 100, rows: 30 }, stdin: true };
    const f = one(encodeSpawn(7, req));
    expect(f.type).toBe(FrameType.SPAWN);
    expect(f.id).toBe(7);
    expect(decodeSpawn(f)).toEqual(req);
    const plain = decodeSpawn(one(encodeSpawn(8, { argv: ['true'] })));
    expect(plain).toEqual({ argv: ['true'], env: {}, cwd: '', stdin: false });
    expect(() => encodeSpawn(1, { argv: [] })).toThrow(RangeError);
    expect(() => encodeSpawn(1, { argv: ['x'], env: { 'A=B': '1' } })).toThrow(RangeError);
  });

  it('round-trips every other frame kind', () => {
    expect(one(encodeStdin(3, Buffer.from('abc'))).payload.toString()).toBe('abc');
    expect(one(encodeStdinEof(3))).toMatchObject({ type: FrameType.STDIN_EOF, id: 3 });
    const sig = one(encodeSignal(4, 9, true));
    expect(sig.type).toBe(FrameType.SIGNAL);
    const r = reader(sig);
    expect([r.u32(), r.u8()]).toEqual([9, 1]);
    const rs = reader(one(encodeResize(5, 120, 40)));
    expect([rs.u16(), rs.u16()]).toEqual([120, 40]);
    expect(decodePong({ ...one(encodePing(6, 123456789012345n)), type: FrameType.PONG })).toBe(123456789012345n);
    expect(decodePong(one(encodePong(6, 2n ** 64n - 1n)))).toBe(2n ** 64n - 1n);
    expect(one(encodeList(9))).toMatchObject({ type: FrameType.LIST, id: 9 });
    expect(one(encodeSubscribe())).toMatchObject({ type: FrameType.SUBSCRIBE, id: 0 });
    expect(one(encodeAttach(11))).toMatchObject({ type: FrameType.ATTACH, id: 11 });
    expect(decodeStarted(one(encodeStarted(1, 4242)))).toBe(4242);
    expect(one(encodeOutput(1, 'stdout', Buffer.from('o')))).toMatchObject({ type: FrameType.STDOUT });
    expect(one(encodeOutput(1, 'stderr', Buffer.from('e')))).toMatchObject({ type: FrameType.STDERR });
    expect(decodeExit(one(encodeExit(1, { code: 137, signal: 9, oomKilled: true })))).toEqual({ code: 137, signal: 9, oomKilled: true });
    expect(decodeExit(one(encodeExit(1, { code: -1, signal: 0, oomKilled: false })))).toEqual({ code: -1, signal: 0, oomKilled: false });
    expect(one(encodeError(2, 'boom')).payload.toString()).toBe('boom');
    expect(JSON.parse(one(encodeProcessList(2, '[{"pid":1}]')).payload.toString())).toEqual([{ pid: 1 }]);
    const pe = { kind: 'exited' as const, pid: 10, code: 130, signal: 2, command: 'sleep 1' };
    const pf = one(encodeProcessEvent(12, pe));
    expect(pf.id).toBe(12);
    expect(decodeProcessEvent(pf)).toEqual(pe);
    const fe = { kind: 'renamed' as const, isDir: true, path: 'a/new', from: 'a/old' };
    expect(decodeFileEvent(one(encodeFileEvent(fe)))).toEqual(fe);
    expect(one(encodeCustom('{"name":"x"}')).payload.toString()).toBe('{"name":"x"}');
  });

  it('decodes frames fed byte by byte and in arbitrary splits', () => {
    const frames = [
      encodeStarted(1, 99),
      encodeOutput(1, 'stdout', Buffer.alloc(70000, 7)),
      encodeFrame(FrameType.SUBSCRIBE, 0),
      encodeExit(1, { code: 3, signal: 0, oomKilled: false }),
    ];
    const all = Buffer.concat(frames);
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (let i = 0; i < 200; i++) got.push(...d.push(all.subarray(i, i + 1)));
    got.push(...d.push(all.subarray(200)));
    expect(got.map((f) => f.type)).toEqual([FrameType.STARTED, FrameType.STDOUT, FrameType.SUBSCRIBE, FrameType.EXIT]);
    expect(got[1]!.payload.equals(Buffer.alloc(70000, 7))).toBe(true);
    expect(d.pending).toBe(0);

    const d2 = new FrameDecoder();
    const got2: Frame[] = [];
    for (const b of all) got2.push(...d2.push(Buffer.from([b])));
    expect(got2.map((f) => [f.type, f.id, f.payload.length])).toEqual(got.map((f) => [f.type, f.id, f.payload.length]));

    const d3 = new FrameDecoder();
    expect(d3.push(all.subarray(0, HEADER_LENGTH + 2))).toHaveLength(0);
    expect(d3.pending).toBe(HEADER_LENGTH + 2);
  });

  it('rejects malformed frames with a ProtocolError', () => {
    const bad = Buffer.from([0x55, 0, 0, 0, 1, 0, 0, 0, 0]);
    const d = new FrameDecoder();
    expect(() => d.push(bad)).toThrow(ProtocolError);
    expect(() => d.push(Buffer.alloc(0))).toThrow(ProtocolError); // stays failed

    const big = Buffer.alloc(HEADER_LENGTH);
    big[0] = FrameType.STDOUT;
    big.writeUInt32BE(MAX_PAYLOAD + 1, 5);
    expect(() => new FrameDecoder().push(big)).toThrow(/exceeds/);

    // payload that does not parse: truncated EXIT, string past the end, trailing bytes
    expect(() => decodeExit(one(encodeFrame(FrameType.EXIT, 1, Buffer.alloc(5))))).toThrow(ProtocolError);
    const s = Buffer.alloc(2 + 4);
    s.writeUInt32BE(100, 2);
    expect(() => decodeFileEvent(one(encodeFrame(FrameType.FILE_EVENT, 0, s)))).toThrow(/truncated/);
    expect(() => decodeStarted(one(encodeFrame(FrameType.STARTED, 1, Buffer.alloc(5))))).toThrow(/trailing/);
    expect(() => encodeFrame(FrameType.STDIN, 1, Buffer.alloc(MAX_PAYLOAD + 1))).toThrow(RangeError);
  });

  it('maps signal names and numbers', () => {
    expect(signalNumber('SIGINT')).toBe(2);
    expect(signalNumber('int')).toBe(2);
    expect(signalNumber(15)).toBe(15);
    expect(() => signalNumber('SIGNOPE')).toThrow(/unknown signal/);
    expect(signalName(9)).toBe('SIGKILL');
    expect(signalName(6)).toBe('SIGABRT');
    expect(signalName(0)).toBeNull();
  });
});
