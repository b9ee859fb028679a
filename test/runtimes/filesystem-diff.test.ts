import { describe, expect, it } from 'vitest';
import { planChanges, rewriteTar } from '../../src/runtimes/docker/filesystem-diff.js';

describe('planChanges', () => {
  it('archives the minimal set of paths and lists minimal deletions', () => {
    const plan = planChanges(
      [
        { Path: '/workspace', Kind: 0 },
        { Path: '/workspace/new', Kind: 1 },
        { Path: '/workspace/new/a', Kind: 1 },
        { Path: '/workspace/new/b', Kind: 1 },
        { Path: '/etc', Kind: 0 },
        { Path: '/etc/group', Kind: 0 },
        { Path: '/etc/hosts', Kind: 0 },
        { Path: '/usr/share', Kind: 2 },
        { Path: '/usr/share/doc', Kind: 2 },
        { Path: '/.faas', Kind: 1 },
        { Path: '/.faas/run', Kind: 1 },
        { Path: '/sbin', Kind: 0 },
        { Path: '/sbin/docker-init', Kind: 1 },
        { Path: '/root/.cache', Kind: 1 },
        { Path: '/root/.cache/pip', Kind: 1 },
        { Path: '/root/.cache/mine.txt', Kind: 1 },
      ],
      ['/root/.cache/pip'],
    );
    expect(plan.archive).toEqual(['/etc/group', '/root/.cache/mine.txt', '/workspace/new']);
    expect(plan.deletions).toEqual(['/usr/share']);
  });
});

function header(name: string, size: number, type = '0', link = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write(link, 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

describe('rewriteTar', () => {
  it('prefixes names and hard-link targets, keeps symlink targets, uses PAX for long names', async () => {
    const data = Buffer.from('hello');
    const tar = Buffer.concat([
      header('d/', 0, '5'),
      header('d/f', data.length),
      data,
      Buffer.alloc(512 - data.length),
      header('d/hard', 0, '1', 'd/f'),
      header('d/sym', 0, '2', '../f'),
      Buffer.alloc(1024),
    ]);
    const stats = { entries: 0, contentBytes: 0 };
    const out: Buffer[] = [];
    for await (const piece of rewriteTar((async function* () { yield tar; })(), `/${'x'.repeat(120)}`, stats)) out.push(piece);
    const text = Buffer.concat(out).toString('latin1');
    expect(stats).toEqual({ entries: 4, contentBytes: 5 });
    expect(text).toContain(`path=${'x'.repeat(120)}/d/f\n`);
    expect(text).toContain(`linkpath=${'x'.repeat(120)}/d/f\n`);
    expect(text).toContain('linkpath=../f\n');
    expect(text).toContain('hello');
  });
});
