/**
 * Typed errors of the SDK. Every error the SDK throws is a `FaasError`; the subclass says what kind of problem it
 * is, `code` is the gateway's wire code (or one of the SDK's own codes below) and `status` the HTTP status (0 when
 * no HTTP answer was received).
 *
 * SDK-side codes (never sent by the gateway): `connection_error`, `stream_overflow`, `timeout`, `invalid_response`.
 */
import { ERROR_CODES, type ErrorCode } from '@faas/protocol';

export interface FaasErrorDetails {
  status?: number;
  field?: string | undefined;
  cause?: unknown;
  /** Seconds, from a `Retry-After` header (quota errors). */
  retryAfterS?: number | undefined;
  /** Connection errors: the gateway's base URL and the low-level reason (e.g. `connect ECONNREFUSED 127.0.0.1:8080`). */
  url?: string | undefined;
  reason?: string | undefined;
}

export class FaasError extends Error {
  /** HTTP status of the answer; 0 when none was received (connection problems, client-side checks, timeouts). */
  readonly status: number;
  /** Machine-readable code: a key of `ERROR_CODES` when it came from the gateway. */
  readonly code: string;
  /** The request field (or SDK option) at fault, for validation errors. */
  readonly field: string | undefined;

  constructor(code: string, message: string, details: FaasErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = details.status ?? 0;
    this.field = details.field;
  }
}

/** The request was malformed, or an option failed the SDK's own checks before anything was sent (`status` 0). */
export class ValidationError extends FaasError {}
/** No such sandbox, execution, route or image. */
export class NotFoundError extends FaasError {}
/** The sandbox is not in a state that allows this (e.g. exec on a stopped sandbox). */
export class ConflictError extends FaasError {}
/** Missing, invalid or insufficient API key. */
export class AuthError extends FaasError {}
/** A quota or rate limit was reached; `retryAfterS` says when to try again, when the gateway said. */
export class QuotaError extends FaasError {
  readonly retryAfterS: number | undefined;
  constructor(code: string, message: string, details: FaasErrorDetails = {}) {
    super(code, message, details);
    this.retryAfterS = details.retryAfterS;
  }
}
/** The client-side deadline (`timeoutMs`) passed before the gateway answered. */
export class TimeoutError extends FaasError {}
/** The gateway could not be reached, or the connection dropped before the answer (or stream) was complete. */
export class ConnectionError extends FaasError {
  /** The gateway's base URL. */
  readonly url: string | undefined;
  /** The low-level reason, e.g. `connect ECONNREFUSED 127.0.0.1:8080` or `socket closed (code 1006)`. */
  readonly reason: string;
  constructor(code: string, message: string, details: FaasErrorDetails = {}) {
    super(code, message, details);
    this.url = details.url;
    this.reason = details.reason ?? message;
  }
}
/** The gateway is up but its container engine is not; retry when it is back. */
export class EngineUnavailableError extends FaasError {}
/** The execution existed but its state is no longer kept (past the fork retention window). */
export class GoneError extends FaasError {}

type ErrorClass = new (code: string, message: string, details?: FaasErrorDetails) => FaasError;

/**
 * THE table from wire codes to classes. Typed over every key of `ERROR_CODES`, so a code added to the protocol
 * does not compile until it is mapped here. HTTP statuses map through the same table (see `classForStatus`).
 */
export const ERROR_CLASSES: { readonly [C in ErrorCode]: ErrorClass } = {
  validation_error: ValidationError,
  invalid_json: ValidationError,
  mode_not_available: ValidationError,
  unauthorized: AuthError,
  forbidden: AuthError,
  not_found: NotFoundError,
  image_not_found: NotFoundError,
  conflict: ConflictError,
  gone: GoneError,
  payload_too_large: ValidationError,
  unsupported_media_type: ValidationError,
  rate_limited: QuotaError,
  internal_error: FaasError,
  engine_unavailable: EngineUnavailableError,
};

/** Status → class, derived from `ERROR_CODES` and `ERROR_CLASSES` (used when the code is unknown or absent). */
const CLASS_BY_STATUS: ReadonlyMap<number, ErrorClass> = (() => {
  const map = new Map<number, ErrorClass>();
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    const status = ERROR_CODES[code].status;
    if (!map.has(status)) map.set(status, ERROR_CLASSES[code]);
  }
  return map;
})();

function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

export function classForStatus(status: number): ErrorClass {
  return CLASS_BY_STATUS.get(status) ?? FaasError;
}

/** The class for a wire code, falling back to the HTTP status when the code is not one the SDK knows. */
export function classFor(code: string | undefined, status: number): ErrorClass {
  if (code !== undefined && isErrorCode(code)) return ERROR_CLASSES[code];
  return classForStatus(status);
}

/** Builds the typed error for an error answer (`{error, message, field?}`) or an `error` stream event. */
export function errorFromWire(
  status: number,
  body: { error?: unknown; message?: unknown; field?: unknown; code?: unknown } | undefined,
  retryAfterS?: number,
): FaasError {
  const rawCode = typeof body?.error === 'string' ? body.error : typeof body?.code === 'string' ? body.code : undefined;
  const code = rawCode ?? (status > 0 ? `http_${status}` : 'error');
  const message = typeof body?.message === 'string' && body.message !== '' ? body.message : `the gateway answered HTTP ${status}`;
  const field = typeof body?.field === 'string' ? body.field : undefined;
  const Cls = classFor(rawCode, status);
  return new Cls(code, message, { status, field, retryAfterS });
}
