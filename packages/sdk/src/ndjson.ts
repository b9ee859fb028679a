/** Splits an NDJSON byte stream into parsed values, whatever the chunk boundaries (lines, UTF-8 sequences). */
import { StreamEvent } from '@faas/protocol';
import { FaasError } from './errors.js';

/** Longest line accepted (a stdout event carries at most one chunk of output; this is far above it). */
export const MAX_NDJSON_LINE_BYTES = 64 * 1024 * 1024;

export class NdjsonDecoder {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';

  /** Feeds one chunk; returns the values of the lines it completed. */
  push(chunk: Uint8Array | string): unknown[] {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const values: unknown[] = [];
    let newline = this.pending.indexOf('\n');
    while (newline !== -1) {
      const line = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      const value = parseLine(line);
      if (value !== undefined) values.push(value);
      newline = this.pending.indexOf('\n');
    }
    if (this.pending.length > MAX_NDJSON_LINE_BYTES) {
      throw new FaasError('invalid_response', `an NDJSON line from the gateway is longer than ${MAX_NDJSON_LINE_BYTES} bytes`);
    }
    return values;
  }

  /** Ends the input: a last line without a newline still counts. */
  end(): unknown[] {
    this.pending += this.decoder.decode();
    const line = this.pending;
    this.pending = '';
    const value = parseLine(line);
    return value === undefined ? [] : [value];
  }
}

function parseLine(raw: string): unknown {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.trim() === '') return undefined;
  try {
    return JSON.parse(line) as unknown;
  } catch {
    const shown = line.length > 80 ? `${line.slice(0, 80)}...` : line;
    throw new FaasError('invalid_response', `the gateway sent a line that is not JSON: ${shown}`);
  }
}

const KNOWN_EVENT_TYPES = new Set<string>(StreamEvent.options.map((o) => o.shape.type.value));

/**
 * Checks one decoded value against the protocol's `StreamEvent`. Events of a type this SDK does not know (a newer
 * gateway) are skipped (`undefined`); a known type with a malformed body is an error.
 */
export function toStreamEvent(value: unknown): StreamEvent | undefined {
  const parsed = StreamEvent.safeParse(value);
  if (parsed.success) return parsed.data;
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  if (typeof type === 'string' && !KNOWN_EVENT_TYPES.has(type)) return undefined;
  const issue = parsed.error.issues[0];
  throw new FaasError(
    'invalid_response',
    `the gateway sent an event that does not match the protocol (${issue ? `${issue.path.join('.') || 'type'}: ${issue.message}` : 'unknown'})`,
  );
}
