/**
 * The one error type the server layers throw for anything a caller can act on. Its `code` comes from the shared
 * table in @faas/protocol, which also fixes the HTTP status the gateway answers with.
 */
import { type ErrorCode, statusOf } from '@faas/protocol';

export class FaasError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    /** Seconds after which a retry may succeed (429, 503). */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'FaasError';
  }

  get status(): number {
    return statusOf(this.code);
  }
}

export function notFound(what: string, id: string): FaasError {
  return new FaasError('not_found', `no ${what} with id "${id}"`);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
