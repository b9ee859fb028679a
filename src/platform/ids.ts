import { randomBytes } from 'node:crypto';

/** Ids are a kind prefix plus 16 random hex digits: short enough for a terminal, unguessable enough to not collide. */
export function newId(prefix: 'sb' | 'ex'): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

export function nowIso(): string {
  return new Date().toISOString();
}
