/**
 * Wire protocol of the in-sandbox agent (see docs/agent-protocol.md). Pure: encoding and a streaming decoder.
 *
 * Frame: u8 type | u32 id | u32 length | payload[length], big-endian; strings are u32 length + bytes.
 */

export const FrameType = {
  // host -> agent
  SPAWN: 0x01,
  STDIN: 0x02,
  STDIN_EOF: 0x03,
  SIGNAL: 0x04,
  RESIZE: 0x05,
  PING: 0x06,
  LIST: 0x07,
  SUBSCRIBE: 0x08,
  ATTACH: 0x09,
  // agent -> host
  STARTED: 0x81,
  STDOUT: 0x82,
  STDERR: 0x83,
  EXIT: 0x84,
  ERROR: 0x85,
  PONG: 0x86,
  PROCESS_LIST: 0x87,
  PROCESS_EVENT: 0x88,
  FILE_EVENT: 0x89,
  CUSTOM: 0x8a,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

export const HEADER_LENGTH = 9;
export const MAX_PAYLOAD = 16 * 1024 * 1024;
export const MAX_CHUNK = 64 * 1024;

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(FrameType));

export interface Frame {
  type: number;
  id: number;
  payload: Buffer;
}

/** A frame that cannot be decoded: unknown type, oversize length or a payload that does not parse. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    readonly frameType?: number,
    readonly frameId?: number,
  ) {
    super(message);
  }
}

export const FILE_EVENT_KINDS = ['created', 'modified', 'deleted', 'renamed', 'overflow'] as const;
export type FileEventKind = (typeof FILE_EVENT_KINDS)[number];
export const PROCESS_EVENT_KINDS = ['started', 'exited'] as const;
export type ProcessEventKind = (typeof PROCESS_EVENT_KINDS)[number];

export interface SpawnRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  pty?: { cols: number; rows: number };
  stdin?: boolean;
}
export interface ExitInfo {
  code: number;
  signal: number;
  oomKilled: boolean;
}
export interface ProcessEventPayload {
  kind: ProcessEventKind;
  pid: number;
  code: number;
  signal: number;
  command: string;
}
export interface FileEventPayload {
  kind: FileEventKind;
  isDir: boolean;
  path: string;
  from: string;
}

// ---------------------------------------------------------------------------------------------- encoding

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} must be a u32, got ${v}`);
}
function checkU16(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${what} must be a u16, got ${v}`);
}

export function encodeFrame(type: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  checkU32(id, 'frame id');
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const b = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  b.writeUInt8(type, 0);
  b.writeUInt32BE(id, 1);
  b.writeUInt32BE(payload.length, 5);
  payload.copy(b, HEADER_LENGTH);
  return b;
}

function str(s: string | Buffer): Buffer {
  const body = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(body.length, 0);
  return Buffer.concat([len, body]);
}
function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}
function i32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v, 0);
  return b;
}
function u64(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, v), 0);
  return b;
}

export function encodeSpawn(id: number, req: SpawnRequest): Buffer {
  if (req.argv.length === 0) throw new RangeError('argv must not be empty');
  const flags = (req.pty ? 1 : 0) | (req.stdin ? 2 : 0);
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(flags, 0);
  const cols = req.pty?.cols ?? 0;
  const rows = req.pty?.rows ?? 0;
  checkU16(cols, 'cols');
  checkU16(rows, 'rows');
  head.writeUInt16BE(cols, 1);
  head.writeUInt16BE(rows, 3);
  const env = Object.entries(req.env ?? {}).map(([k, v]) => {
    if (k === '' || k.includes('=') || k.includes('\0')) throw new RangeError(`invalid environment variable name ${JSON.stringify(k)}`);
    return `${k}=${v}`;
  });
  const parts: Buffer[] = [head, u32(req.argv.length), ...req.argv.map(str), u32(env.length), ...env.map(str), str(req.cwd ?? '')];
  return encodeFrame(FrameType.SPAWN, id, Buffer.concat(parts));
}
export function encodeStdin(id: number, data: Buffer): Buffer {
  return encodeFrame(FrameType.STDIN, id, data);
}
export function encodeStdinEof(id: number): Buffer {
  return encodeFrame(FrameType.STDIN_EOF, id);
}
export function encodeSignal(id: number, signo: number, tree = false): Buffer {
  checkU32(signo, 'signal');
  const b = Buffer.allocUnsafe(5);
  b.writeUInt32BE(signo, 0);
  b.writeUInt8(tree ? 1 : 0, 4);
  return encodeFrame(FrameType.SIGNAL, id, b);
}
export function encodeResize(id: number, cols: number, rows: number): Buffer {
  checkU16(cols, 'cols');
  checkU16(rows, 'rows');
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(cols, 0);
  b.writeUInt16BE(rows, 2);
  return encodeFrame(FrameType.RESIZE, id, b);
}
export function encodePing(id: number, nonce: bigint): Buffer {
  return encodeFrame(FrameType.PING, id, u64(nonce));
}
export function encodeList(id: number): Buffer {
  return encodeFrame(FrameType.LIST, id);
}
export function encodeSubscribe(): Buffer {
  return encodeFrame(FrameType.SUBSCRIBE, 0);
}
export function encodeAttach(id: number): Buffer {
  return encodeFrame(FrameType.ATTACH, id);
}

// agent -> host encoders (used by tests and by alternative agents / fakes)
export function encodeStarted(id: number, pid: number): Buffer {
  return encodeFrame(FrameType.STARTED, id, u32(pid));
}
export function encodeOutput(id: number, stream: 'stdout' | 'stderr', data: Buffer): Buffer {
  return encodeFrame(stream === 'stdout' ? FrameType.STDOUT : FrameType.STDERR, id, data);
}
export function encodeExit(id: number, exit: ExitInfo): Buffer {
  return encodeFrame(FrameType.EXIT, id, Buffer.concat([i32(exit.code), i32(exit.signal), Buffer.from([exit.oomKilled ? 1 : 0])]));
}
export function encodeError(id: number, message: string): Buffer {
  return encodeFrame(FrameType.ERROR, id, Buffer.from(message, 'utf8'));
}
export function encodePong(id: number, nonce: bigint): Buffer {
  return encodeFrame(FrameType.PONG, id, u64(nonce));
}
export function encodeProcessList(id: number, json: string): Buffer {
  return encodeFrame(FrameType.PROCESS_LIST, id, Buffer.from(json, 'utf8'));
}
export function encodeProcessEvent(id: number, ev: ProcessEventPayload): Buffer {
  const head = Buffer.allocUnsafe(13);
  head.writeUInt8(PROCESS_EVENT_KINDS.indexOf(ev.kind), 0);
  head.writeUInt32BE(ev.pid, 1);
  head.writeInt32BE(ev.code, 5);
  head.writeInt32BE(ev.signal, 9);
  return encodeFrame(FrameType.PROCESS_EVENT, id, Buffer.concat([head, str(ev.command)]));
}
export function encodeFileEvent(ev: FileEventPayload): Buffer {
  const head = Buffer.from([FILE_EVENT_KINDS.indexOf(ev.kind), ev.isDir ? 1 : 0]);
  return encodeFrame(FrameType.FILE_EVENT, 0, Buffer.concat([head, str(ev.path), str(ev.from)]));
}
export function encodeCustom(line: string | Buffer): Buffer {
  return encodeFrame(FrameType.CUSTOM, 0, typeof line === 'string' ? Buffer.from(line, 'utf8') : line);
}

// ---------------------------------------------------------------------------------------------- decoding

/** Reads fields of one payload; throws ProtocolError when a field runs past the end. */
export class PayloadReader {
  private off = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly frame: Frame,
  ) {}
  private need(n: number): void {
    if (this.buf.length - this.off < n) throw this.error('payload is truncated');
  }
  error(message: string): ProtocolError {
    return new ProtocolError(`malformed frame type 0x${this.frame.type.toString(16)} id ${this.frame.id}: ${message}`, this.frame.type, this.frame.id);
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.off++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    this.need(n);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  string(): string {
    return this.bytes().toString('utf8');
  }
  end(): void {
    if (this.off !== this.buf.length) throw this.error(`${this.buf.length - this.off} unexpected trailing bytes`);
  }
}

export function reader(frame: Frame): PayloadReader {
  return new PayloadReader(frame.payload, frame);
}

export function decodeStarted(f: Frame): number {
  const r = reader(f);
  const pid = r.u32();
  r.end();
  return pid;
}
export function decodeExit(f: Frame): ExitInfo {
  const r = reader(f);
  const code = r.i32();
  const signal = r.i32();
  const flags = r.u8();
  r.end();
  return { code, signal, oomKilled: (flags & 1) !== 0 };
}
export function decodePong(f: Frame): bigint {
  const r = reader(f);
  const v = r.u64();
  r.end();
  return v;
}
export function decodeProcessEvent(f: Frame): ProcessEventPayload {
  const r = reader(f);
  const k = r.u8();
  const pid = r.u32();
  const code = r.i32();
  const signal = r.i32();
  const command = r.string();
  r.end();
  const kind = PROCESS_EVENT_KINDS[k];
  if (kind === undefined) throw r.error(`unknown process event kind ${k}`);
  return { kind, pid, code, signal, command };
}
export function decodeFileEvent(f: Frame): FileEventPayload {
  const r = reader(f);
  const k = r.u8();
  const flags = r.u8();
  const path = r.string();
  const from = r.string();
  r.end();
  const kind = FILE_EVENT_KINDS[k];
  if (kind === undefined) throw r.error(`unknown file event kind ${k}`);
  return { kind, isDir: (flags & 1) !== 0, path, from };
}
export function decodeSpawn(f: Frame): SpawnRequest {
  const r = reader(f);
  const flags = r.u8();
  const cols = r.u16();
  const rows = r.u16();
  const argc = r.u32();
  const argv: string[] = [];
  for (let i = 0; i < argc; i++) argv.push(r.string());
  const envc = r.u32();
  const env: Record<string, string> = {};
  for (let i = 0; i < envc; i++) {
    const kv = r.string();
    const eq = kv.indexOf('=');
    env[eq < 0 ? kv : kv.slice(0, eq)] = eq < 0 ? '' : kv.slice(eq + 1);
  }
  const cwd = r.string();
  r.end();
  const out: SpawnRequest = { argv, env, cwd, stdin: (flags & 2) !== 0 };
  if (flags & 1) out.pty = { cols, rows };
  return out;
}

/**
 * Streaming decoder: push Buffers split anywhere, get complete frames back. Throws ProtocolError on an unknown
 * type or an oversize length (after which the decoder is unusable: the stream cannot be resynchronised).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: ProtocolError | undefined;

  push(data: Buffer): Frame[] {
    if (this.failed) throw this.failed;
    if (data.length) {
      this.chunks.push(data);
      this.buffered += data.length;
    }
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < HEADER_LENGTH) break;
      const head = this.peek(HEADER_LENGTH);
      const type = head.readUInt8(0);
      const id = head.readUInt32BE(1);
      const length = head.readUInt32BE(5);
      if (!KNOWN_TYPES.has(type)) {
        this.failed = new ProtocolError(`malformed frame: unknown type 0x${type.toString(16)} (id ${id})`, type, id);
        throw this.failed;
      }
      if (length > MAX_PAYLOAD) {
        this.failed = new ProtocolError(`malformed frame: payload length ${length} exceeds ${MAX_PAYLOAD} (type 0x${type.toString(16)}, id ${id})`, type, id);
        throw this.failed;
      }
      if (this.buffered < HEADER_LENGTH + length) break;
      const all = this.take(HEADER_LENGTH + length);
      frames.push({ type, id, payload: all.subarray(HEADER_LENGTH) });
    }
    return frames;
  }

  /** Bytes of an incomplete frame still buffered (non-zero at end of stream means a truncated frame). */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const b = Buffer.concat(this.chunks);
    this.chunks = [b];
    return b.subarray(0, n);
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!;
    if (first.length < n) {
      // gather exactly the chunks needed
      let have = 0;
      let k = 0;
      while (have < n) have += this.chunks[k++]!.length;
      first = Buffer.concat(this.chunks.slice(0, k), have);
      this.chunks.splice(0, k, first);
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
