import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { blobFile, prng, sha256 } from './helpers.js';
import { tmpDir } from './tmp-dir.js';

const VITE_NODE = path.resolve('node_modules/.bin/vite-node');
const CLI = path.resolve('test/storage/fixtures/faas-cli.ts');

function faas(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(VITE_NODE, [CLI, ...args], {
    env: { ...process.env, FAAS_OBJECT_STORE_URL: '', ...env },
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'buffer',
  });
  return { code: r.status, stdout: r.stdout, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe('faas storage CLI', () => {
  it('put prints the sha256 last; get returns the bytes; a 1 MiB change in 64 MiB grows stored_bytes < 4 MiB; a flipped byte is reported', () => {
    const dir = tmpDir();
    const dataDir = path.join(dir, 'data');
    const a = prng(64 * 1024 * 1024, 1);
    const b = Buffer.from(a);
    prng(1024 * 1024, 2).copy(b, 20 * 1024 * 1024 + 999);
    fs.writeFileSync(path.join(dir, 'a'), a);
    fs.writeFileSync(path.join(dir, 'b'), b);

    const pa = faas(['storage', 'put', path.join(dir, 'a'), '--data-dir', dataDir]);
    expect(pa.code).toBe(0);
    const idA = pa.out.trim().split('\n').pop();
    expect(idA).toBe(sha256(a));
    const s1 = JSON.parse(faas(['storage', 'stats', '--json', '--data-dir', dataDir]).out);
    for (const k of ['blobs', 'logical_bytes', 'stored_bytes', 'chunks', 'dedup_ratio', 'compression_ratio', 'pending_replication']) {
      expect(s1).toHaveProperty(k);
    }
    const pb = faas(['storage', 'put', path.join(dir, 'b'), '--data-dir', dataDir]);
    const idB = pb.out.trim().split('\n').pop()!;
    expect(idB).toBe(sha256(b));
    const s2 = JSON.parse(faas(['storage', 'stats', '--json', '--data-dir', dataDir]).out);
    expect(s2.stored_bytes - s1.stored_bytes).toBeLessThan(4 * 1024 * 1024);

    const g = faas(['storage', 'get', idB, '--data-dir', dataDir]);
    expect(g.code).toBe(0);
    expect(g.stdout.equals(b)).toBe(true);
    expect(faas(['storage', 'verify', '--data-dir', dataDir]).code).toBe(0);
    expect(faas(['storage', 'gc', '--data-dir', dataDir, '--grace', '0']).code).toBe(0);
    expect(faas(['storage', 'get', idA, '--data-dir', dataDir]).stdout.equals(a)).toBe(true); // CLI puts are referenced

    // Flip one byte of a small single blob on disk.
    const small = prng(5000, 3);
    fs.writeFileSync(path.join(dir, 'small'), small);
    const idS = faas(['storage', 'put', path.join(dir, 'small'), '--data-dir', dataDir]).out.trim();
    const f = blobFile(dataDir, idS);
    const bytes = fs.readFileSync(f);
    bytes[bytes.length - 10]! ^= 0x04;
    fs.writeFileSync(f, bytes);
    const bad = faas(['storage', 'get', idS, '--data-dir', dataDir]);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout.length).toBe(0);
    expect(bad.err).toContain(idS);
    expect(bad.err).toMatch(/corrupt/);
    const v = faas(['storage', 'verify', '--data-dir', dataDir]);
    expect(v.code).toBe(1);
    expect(v.out).toContain(idS);
    // And inside a chunked file: get fails (exit != 0), verify names the chunk.
    const chunk = fs
      .readdirSync(path.join(dataDir, 'blobs'))
      .filter((d) => /^[0-9a-f]{2}$/.test(d))
      .flatMap((d) => fs.readdirSync(path.join(dataDir, 'blobs', d)).map((n) => d + n))
      .find((id) => id !== idA && id !== idB && id !== idS && fs.statSync(blobFile(dataDir, id)).size > 100_000)!;
    const cf = blobFile(dataDir, chunk);
    const cb = fs.readFileSync(cf);
    cb[50_000]! ^= 0x01;
    fs.writeFileSync(cf, cb);
    // A chunked blob with one corrupt chunk: get fails and writes nothing (verified whole before output).
    const gb = faas(['storage', 'get', idB, '--data-dir', dataDir]);
    const ga = faas(['storage', 'get', idA, '--data-dir', dataDir]);
    expect([gb.code, ga.code].some((c) => c !== 0)).toBe(true);
    for (const r of [gb, ga]) if (r.code !== 0) {
      expect(r.stdout.length).toBe(0);
      expect(r.err).toMatch(/corrupt/);
    }
    const vb = faas(['storage', 'verify', '--json', '--data-dir', dataDir]);
    expect(vb.code).toBe(1);
    expect(JSON.parse(vb.out).problems.map((p: { id: string }) => p.id)).toContain(chunk);
  }, 120_000);

  it('bad usage is one clear line and exit 2; --help everywhere', () => {
    const dataDir = tmpDir();
    const r = faas(['storage', 'get', 'not-an-id', '--data-dir', dataDir]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/64 lowercase hex/);
    for (const sub of ['put', 'get', 'stats', 'gc', 'verify']) {
      const h = faas(['storage', sub, '--help']);
      expect(h.code).toBe(0);
      expect(h.out).toContain(`faas storage ${sub}`);
    }
    expect(faas(['storage', 'frob']).code).toBe(2);
    const env = faas(['storage', 'stats', '--data-dir', dataDir], { FAAS_L1_MAX_BYTES: 'lots' });
    expect(env.code).toBe(2);
    expect(env.err).toMatch(/FAAS_L1_MAX_BYTES/);
    const missing = faas(['storage', 'get', 'a'.repeat(64), '--data-dir', dataDir]);
    expect(missing.code).not.toBe(0);
  }, 120_000);
});
