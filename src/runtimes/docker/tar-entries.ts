/**
 * Reading the entries of a tar stream (USTAR, PAX and GNU long names, as the engine's archives hold) and writing
 * them again under another name. Names are kept byte for byte: they are "binary" strings here (one character per
 * byte, Node's latin1), since file names need not be UTF-8.
 */

export const BLOCK = 512;
/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

export interface TarEntry {
  /** The entry's own header block (extended headers before it are folded into the fields below). */
  header: Buffer;
  /** '0' file, '1' hard link, '2' symlink, '5' directory, … */
  type: string;
  size: number;
  /** Binary strings, as the archive spells them. */
  name: string;
  link: string;
  /** PAX records other than path and linkpath (values binary). */
  pax: Array<[string, string]>;
}

export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function readField(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('latin1', off, end === -1 || end > off + len ? off + len : end);
}

function readSize(header: Buffer): number {
  if ((header[124]! & 0x80) !== 0) {
    // base-256
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + header[i]!;
    return n;
  }
  const text = readField(header, 124, 12).trim();
  return text ? parseInt(text, 8) : 0;
}

function checksum(header: Buffer): void {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += header[i]!;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
}

function parsePax(data: Buffer): Array<[string, string]> {
  const records: Array<[string, string]> = [];
  let off = 0;
  while (off < data.length) {
    const space = data.indexOf(0x20, off);
    if (space === -1) break;
    const len = parseInt(data.toString('ascii', off, space), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = data.toString('latin1', space + 1, off + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) records.push([record.slice(0, eq), record.slice(eq + 1)]);
    off += len;
  }
  return records;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + String(body.length).length;
  if (String(len).length !== String(len - body.length).length) len = body.length + String(len).length;
  return `${len}${body}`;
}

function paxHeaderEntry(records: Array<[string, string]>): Buffer[] {
  const data = Buffer.from(records.map(([k, v]) => paxRecord(k, v)).join(''), 'latin1');
  const header = Buffer.alloc(BLOCK);
  header.write('PaxHeader', 0, 100, 'ascii');
  header.write('0000644\0', 100, 8, 'ascii');
  header.write('0000000\0', 108, 8, 'ascii');
  header.write('0000000\0', 116, 8, 'ascii');
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  header.write('00000000000\0', 136, 12, 'ascii');
  header.write('x', 156, 1, 'ascii');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  checksum(header);
  return [header, data, Buffer.alloc(padding(data.length))];
}

/**
 * The header block(s) of `entry` named `name` (and, for a hard link, pointing at `link`): a PAX header carries
 * what does not fit the USTAR fields.
 */
export function renamedHeader(entry: TarEntry, name: string, link: string): Buffer[] {
  const fits = (s: string) => s.length <= 100 && /^[\x20-\x7e]*$/.test(s);
  const out = Buffer.from(entry.header);
  out.fill(0, 0, 100);
  out.fill(0, 157, 257);
  out.fill(0, 345, 500);
  out.write(name.slice(0, 100), 0, 100, 'latin1');
  out.write(link.slice(0, 100), 157, 100, 'latin1');
  checksum(out);
  if (entry.pax.length === 0 && fits(name) && fits(link)) return [out];
  const records: Array<[string, string]> = [...entry.pax, ['path', name]];
  if (link) records.push(['linkpath', link]);
  return [...paxHeaderEntry(records), out];
}

/** Reads exactly n bytes at a time from a stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        this.chunks.push(r.value);
        this.buffered += r.value.length;
      }
    }
    return this.buffered >= n;
  }

  /** Exactly n bytes, or null at the end of the stream. */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) return null;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  /** Passes n bytes through in pieces (large file contents are never held whole). */
  async *pieces(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) throw new Error('the archive ended in the middle of an entry');
      const head = this.chunks[0]!;
      if (head.length <= left) {
        this.chunks.shift();
        this.buffered -= head.length;
        left -= head.length;
        yield head;
      } else {
        this.chunks[0] = head.subarray(left);
        this.buffered -= left;
        yield head.subarray(0, left);
        left = 0;
      }
    }
  }

  /** Reads to the end (so the engine's connection is released), or, with `abandon`, stops the source at once. */
  async close(abandon: boolean): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    if (abandon) await this.it.return?.();
    else while (!this.done) if ((await this.it.next()).done) this.done = true;
    this.done = true;
  }
}

/** The entries of a tar stream, one at a time; an entry's content not read by `body` is skipped by `next`. */
export class TarReader {
  private readonly reader: ByteReader;
  private unread = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.reader = new ByteReader(source);
  }

  async next(): Promise<TarEntry | null> {
    for await (const _ of this.reader.pieces(this.unread)) {
      // skipped
    }
    this.unread = 0;
    let pax: Array<[string, string]> = [];
    let gnuName: string | null = null;
    let gnuLink: string | null = null;
    for (;;) {
      const header = await this.reader.read(BLOCK);
      if (!header || header.every((b) => b === 0)) {
        // The end blocks and whatever follows: read to the end so the engine's connection is released.
        await this.reader.close(false);
        this.ended = true;
        return null;
      }
      const type = String.fromCharCode(header[156] || 0x30);
      const size = readSize(header);
      if (type === 'x' || type === 'L' || type === 'K' || type === 'g') {
        const data = (await this.reader.read(size + padding(size)))?.subarray(0, size);
        if (!data) throw new Error('the archive ended inside an extended header');
        // Global headers ('g') apply to the whole archive; the engine's archives have none.
        if (type === 'x') pax = [...pax, ...parsePax(data)];
        else if (type === 'L') gnuName = readField(data, 0, data.length);
        else if (type === 'K') gnuLink = readField(data, 0, data.length);
        continue;
      }
      const ustarPrefix = header.toString('ascii', 257, 262) === 'ustar' ? readField(header, 345, 155) : '';
      const fieldName = readField(header, 0, 100);
      const get = (key: string) => pax.find(([k]) => k === key)?.[1];
      this.unread = size + padding(size);
      return {
        header,
        type,
        size,
        name: get('path') ?? gnuName ?? (ustarPrefix ? `${ustarPrefix}/${fieldName}` : fieldName),
        link: get('linkpath') ?? gnuLink ?? readField(header, 157, 100),
        pax: pax.filter(([k]) => k !== 'path' && k !== 'linkpath'),
      };
    }
  }

  /** The content of the entry `next` returned last, with its padding, in pieces. */
  async *body(): AsyncGenerator<Buffer> {
    const n = this.unread;
    this.unread = 0;
    yield* this.reader.pieces(n);
  }

  /** Stops reading; an archive not read to its end is abandoned (the engine sees the connection close). */
  async close(): Promise<void> {
    if (!this.ended) await this.reader.close(true);
    this.ended = true;
  }
}
