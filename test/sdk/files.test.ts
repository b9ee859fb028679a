/** `sandbox.files` and `ctx.client.containers.readFile/writeFile` against a real gateway and engine. */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConflictError, LIMITS, NotFoundError, ValidationError } from '@faas/sdk';
import { sdkTestContext } from '../helpers/sdk.js';

const ctx = sdkTestContext();
const { created } = ctx;
const sandbox = () => ctx.sandbox();

describe('sandbox.files', () => {
  it('writes and reads text and bytes (all 256 values), with modes and relative paths', async () => {
    const box = await sandbox();
    expect(await box.files.write('notes/hello.txt', 'héllo\n')).toEqual({ path: '/workspace/notes/hello.txt', size: 7, mode: 0o644 });
    expect(await box.files.readText('/workspace/notes/hello.txt')).toBe('héllo\n');
    const bytes = new Uint8Array(256).map((_, i) => i);
    expect(await box.files.write('/opt/tool.bin', bytes, { mode: 0o755 })).toEqual({ path: '/opt/tool.bin', size: 256, mode: 0o755 });
    const read = await box.files.read('/opt/tool.bin');
    expect(read).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(read).equals(Buffer.from(bytes))).toBe(true);
    expect((await box.exec('stat -c %a /opt/tool.bin; cat notes/hello.txt')).stdout).toBe('755\nhéllo\n');
    // The client-level calls are the same.
    expect(await ctx.client.containers.readFileText(box.id, 'notes/hello.txt')).toBe('héllo\n');
    await ctx.client.containers.writeFile(box.id, 'notes/hello.txt', 'replaced');
    expect(Buffer.from(await ctx.client.containers.readFile(box.id, 'notes/hello.txt')).toString()).toBe('replaced');
    // `files` is not one of the plain fields.
    expect(Object.keys(JSON.parse(JSON.stringify(box)))).not.toContain('files');
  });

  it('streams a large file with its size and mode known first', async () => {
    const box = await sandbox();
    const data = crypto.randomBytes(20 * 1024 * 1024);
    await box.files.write('big.bin', data, { mode: 0o600 });
    const file = await box.files.readStream('big.bin');
    expect([file.size, file.mode]).toEqual([data.length, 0o600]);
    const hash = crypto.createHash('sha256');
    for await (const chunk of file.stream) hash.update(chunk);
    expect(hash.digest('hex')).toBe(crypto.createHash('sha256').update(data).digest('hex'));
  });

  it('throws typed errors: NotFoundError, ConflictError, and ValidationError before sending anything', async () => {
    const box = await sandbox();
    const missing = await box.files.read('nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as NotFoundError).message).toBe(`no file at /workspace/nope in sandbox ${box.id}`);
    const dir = await box.files.read('/etc').catch((e: unknown) => e);
    expect(dir).toBeInstanceOf(ConflictError);
    expect((dir as ConflictError).message).toContain('is a directory');
    expect(await ctx.client.containers.readFile('sb-0000000000000000', 'x').catch((e: unknown) => e)).toBeInstanceOf(NotFoundError);

    for (const [call, field] of [
      [() => box.files.read(''), 'path'],
      [() => box.files.write('dir/', 'x'), 'path'],
      [() => box.files.write('a', 'x', { mode: 0o10000 }), 'mode'],
      [() => box.files.write('a', 5 as unknown as string), 'data'],
      [() => box.files.write('a', new Uint8Array(LIMITS.maxFileWriteBytes + 1)), 'data'],
    ] as const) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect([(err as ValidationError).status, (err as ValidationError).field]).toEqual([0, field]);
    }

    await box.stop();
    expect(await box.files.readText('/etc/hostname')).toMatch(/\S/);
    const stopped = await box.files.write('x', 'y').catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(ConflictError);
    expect((stopped as ConflictError).message).toContain('resume it first');
  });
});
