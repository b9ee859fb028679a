import { describe, expect, it } from 'vitest';
import {
  CHANGE_ADDED as A,
  CHANGE_DELETED as D,
  CHANGE_MODIFIED as M,
  COVER_BUDGET_BYTES,
  ChangeIndex,
  archiveChanges,
  engineSpelling,
} from '../../src/runtimes/docker/filesystem-diff.js';
import { TarReader } from '../../src/runtimes/docker/tar-entries.js';

describe('ChangeIndex', () => {
  it('starts from the topmost changed paths and lists minimal deletions, leaving out managed paths and mounts', () => {
    const index = new ChangeIndex(
      [
        { Path: '/workspace', Kind: M },
        { Path: '/workspace/new', Kind: A },
        { Path: '/workspace/new/a', Kind: A },
        { Path: '/etc', Kind: M },
        { Path: '/etc/group', Kind: M },
        { Path: '/etc/hosts', Kind: M },
        { Path: '/usr', Kind: M },
        { Path: '/usr/share', Kind: D },
        { Path: '/usr/share/doc', Kind: D },
        { Path: '/.faas', Kind: A },
        { Path: '/.faas/run', Kind: A },
        { Path: '/root', Kind: M },
        { Path: '/root/.cache', Kind: A },
        { Path: '/root/.cache/pip', Kind: A },
        { Path: '/root/.cache/mine.txt', Kind: A },
      ],
      ['/root/.cache/pip'],
    );
    expect(index.roots).toEqual(['/etc', '/root', '/usr', '/workspace']);
    expect(index.deletions).toEqual(['/usr/share']);
    expect(index.childrenOf('/root')).toEqual(['/root/.cache']);
    // An added directory holding a mount point is covered, not archived whole.
    expect(index.wantsWhole('/workspace/new')).toBe(true);
    expect(index.wantsWhole('/root/.cache')).toBe(false);
    expect(index.isChanged('/root/.cache/pip/wheel')).toBe(false);
    expect(index.isChanged('/workspace/new/unlisted')).toBe(true);
    expect(index.isChanged('/etc/passwd')).toBe(false);
    expect(index.listedCountUnder('/workspace')).toBe(3);
  });

  it("leaves out the directories the engine changed to make its mount points, unless something else changed below", () => {
    const fresh = [
      { Path: '/.faas', Kind: A },
      { Path: '/.faas/run', Kind: A },
      { Path: '/sbin', Kind: M },
      { Path: '/sbin/docker-init', Kind: A },
      { Path: '/root', Kind: M },
      { Path: '/root/.cache', Kind: A },
      { Path: '/root/.cache/pip', Kind: A },
    ];
    expect(new ChangeIndex(fresh, ['/.faas/run', '/root/.cache/pip']).roots).toEqual([]);
    const changed = new ChangeIndex([...fresh, { Path: '/root/.cache/x', Kind: A }, { Path: '/etc', Kind: M }], ['/.faas/run', '/root/.cache/pip']);
    expect(changed.roots).toEqual(['/etc', '/root']);
  });

  it('treats a deleted path with listed children as a directory made again: deleted, then archived whole', () => {
    const index = new ChangeIndex([
      { Path: '/var', Kind: D },
      { Path: '/var/x', Kind: A },
      { Path: '/gone', Kind: D },
    ]);
    expect(index.deletions).toEqual(['/gone', '/var']);
    expect(index.roots).toEqual(['/var']);
    expect(index.wantsWhole('/var')).toBe(true);
  });
});

describe('engineSpelling', () => {
  it('spells invalid UTF-8 as the engine does, one U+FFFD per byte', () => {
    expect(engineSpelling(Buffer.from('/a/ü').toString('latin1'))).toBe('/a/ü');
    expect(engineSpelling('/a/\xffbad')).toBe('/a/\ufffdbad');
    expect(engineSpelling('/a/\xe2\x82x')).toBe('/a/\ufffd\ufffdx');
  });
});

// ------------------------------------------------------------------------------ a container's files, as tars

interface FakeFile {
  type: '0' | '1' | '2' | '5';
  data?: Buffer;
  link?: string;
}

function header(name: string, size: number, type: string, link = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'latin1');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write(link, 157, 100, 'latin1');
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** A PAX header for the values that do not fit a USTAR header, as the engine writes one. */
function pax(values: Record<string, string>): Buffer[] {
  const records = Object.entries(values)
    .filter(([, v]) => v.length > 100)
    .map(([k, v]) => {
      const body = ` ${k}=${v}\n`;
      return `${body.length + String(body.length + 3).length}${body}`;
    })
    .join('');
  if (!records) return [];
  const data = Buffer.from(records, 'latin1');
  return [header('PaxHeader', data.length, 'x'), data, Buffer.alloc((512 - (data.length % 512)) % 512)];
}

/** Archives like the engine's: the path first, then its tree in byte order, named relative to its parent. */
function fakeContainer(files: Record<string, FakeFile>) {
  const requests: string[] = [];
  const abandoned: string[] = [];
  const fetch = async (p: string) => {
    requests.push(p);
    if (!files[p]) throw new Error(`no ${p}`);
    const parent = p.slice(0, p.lastIndexOf('/'));
    const paths = Object.keys(files)
      .filter((f) => f === p || f.startsWith(`${p}/`))
      .sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
    let finished = false;
    async function* tar(): AsyncGenerator<Buffer> {
      try {
        for (const f of paths) {
          const file = files[f]!;
          const name = f.slice(parent.length + 1) + (file.type === '5' ? '/' : '');
          const data = file.data ?? Buffer.alloc(0);
          yield* pax({ path: name, linkpath: file.link ?? '' });
          yield header(name, data.length, file.type, file.link);
          if (data.length) yield Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
        }
        yield Buffer.alloc(1024);
        finished = true;
      } finally {
        if (!finished) abandoned.push(p);
      }
    }
    return tar();
  };
  return { fetch, requests, abandoned };
}

async function entriesOf(archive: AsyncIterable<Buffer>): Promise<Array<{ name: string; type: string; link: string; data: string }>> {
  const reader = new TarReader(archive);
  const out = [];
  for (let e = await reader.next(); e; e = await reader.next()) {
    const body = [];
    for await (const piece of reader.body()) body.push(piece);
    out.push({ name: e.name, type: e.type, link: e.link, data: Buffer.concat(body).subarray(0, e.size).toString('latin1') });
  }
  return out;
}

const dir: FakeFile = { type: '5' };
const file = (text: string): FakeFile => ({ type: '0', data: Buffer.from(text, 'latin1') });

describe('archiveChanges', () => {
  it("covers a modified directory: its own entry and its changes only, stopping once they are all read", async () => {
    const container = fakeContainer({
      '/etc': dir,
      '/etc/a-new': file('new'),
      '/etc/group': file('changed'),
      '/etc/hosts': file('mounted'),
      '/etc/passwd': file('image'),
      '/etc/zz': file('image'),
    });
    const index = new ChangeIndex([
      { Path: '/etc', Kind: M },
      { Path: '/etc/a-new', Kind: A },
      { Path: '/etc/group', Kind: M },
      { Path: '/etc/hosts', Kind: M },
    ]);
    const captured = archiveChanges(index, container.fetch);
    const entries = await entriesOf(captured.archive);
    await captured.read;
    expect(entries.map((e) => e.name)).toEqual(['etc/', 'etc/a-new', 'etc/group']);
    expect(container.requests).toEqual(['/etc']);
    expect(container.abandoned).toEqual(['/etc']);
    expect(captured.stats).toEqual({ entries: 3, contentBytes: 10, requests: 1 });
  });

  it('leaves a directory whose unchanged content passes the budget and fetches its unread changes one by one', async () => {
    const big = { type: '0' as const, data: Buffer.alloc(COVER_BUDGET_BYTES / 2 + 1) };
    const container = fakeContainer({
      '/fx': dir,
      '/fx/a': file('changed'),
      '/fx/big': dir,
      '/fx/big/b1': big,
      '/fx/big/b2': big,
      '/fx/big/b3': big,
      '/fx/big/zz': file('new'),
      '/fx/zz': file('new'),
      '/fx/zz-dir': dir,
      '/fx/zz-dir/\xffodd': file('odd name'),
    });
    const index = new ChangeIndex([
      { Path: '/fx', Kind: M },
      { Path: '/fx/a', Kind: M },
      { Path: '/fx/big', Kind: M },
      { Path: '/fx/big/zz', Kind: A },
      { Path: '/fx/zz', Kind: A },
      { Path: '/fx/zz-dir', Kind: M },
      { Path: '/fx/zz-dir/\ufffdodd', Kind: A },
    ]);
    const captured = archiveChanges(index, container.fetch);
    const entries = await entriesOf(captured.archive);
    expect(entries.map((e) => e.name)).toEqual(['fx/', 'fx/a', 'fx/big/', 'fx/big/zz', 'fx/zz', 'fx/zz-dir/', 'fx/zz-dir/\xffodd']);
    expect(entries.at(-1)!.data).toBe('odd name');
    // /fx/a was read whole before /fx was left; /fx/big is left too, then its one change is fetched alone.
    expect(container.requests).toEqual(['/fx', '/fx/big', '/fx/big/zz', '/fx/zz', '/fx/zz-dir']);
  });

  it('archives an added directory whole, rewriting hard-link targets, keeping symlink targets, long names in PAX', async () => {
    const long = 'x'.repeat(120);
    const container = fakeContainer({
      [`/${long}`]: dir,
      [`/${long}/d`]: dir,
      [`/${long}/d/f`]: file('hello'),
      [`/${long}/d/hard`]: { type: '1', link: `${long}/d/f` },
      [`/${long}/d/sym`]: { type: '2', link: '../f' },
    });
    const captured = archiveChanges(new ChangeIndex([{ Path: `/${long}`, Kind: A }]), container.fetch);
    const entries = await entriesOf(captured.archive);
    expect(entries).toEqual([
      { name: `${long}/`, type: '5', link: '', data: '' },
      { name: `${long}/d/`, type: '5', link: '', data: '' },
      { name: `${long}/d/f`, type: '0', link: '', data: 'hello' },
      { name: `${long}/d/hard`, type: '1', link: `${long}/d/f`, data: '' },
      { name: `${long}/d/sym`, type: '2', link: '../f', data: '' },
    ]);
  });

  it('prefixes the names of a nested path with its parent', async () => {
    const container = fakeContainer({ '/usr/local/bin/tool': file('t'), '/usr/local/bin/other': { type: '1', link: 'tool' } });
    const index = new ChangeIndex([{ Path: '/usr/local/bin/tool', Kind: A }, { Path: '/usr/local/bin/other', Kind: A }]);
    const entries = await entriesOf(archiveChanges(index, container.fetch).archive);
    expect(entries.map((e) => [e.name, e.link])).toEqual([
      ['usr/local/bin/other', 'usr/local/bin/tool'],
      ['usr/local/bin/tool', ''],
    ]);
  });
});
