import { describe, expect, it } from 'vitest';
import {
  AuthError,
  ConflictError,
  ERROR_CLASSES,
  ERROR_CODES,
  EngineUnavailableError,
  FaasError,
  NotFoundError,
  QuotaError,
  ValidationError,
  classFor,
  errorFromWire,
} from '@faas/sdk';

describe('error mapping table', () => {
  it('maps every protocol code', () => {
    expect(Object.keys(ERROR_CLASSES).sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('maps codes to the documented classes', () => {
    expect(classFor('validation_error', 400)).toBe(ValidationError);
    expect(classFor('mode_not_available', 400)).toBe(ValidationError);
    expect(classFor('unauthorized', 401)).toBe(AuthError);
    expect(classFor('forbidden', 403)).toBe(AuthError);
    expect(classFor('not_found', 404)).toBe(NotFoundError);
    expect(classFor('image_not_found', 404)).toBe(NotFoundError);
    expect(classFor('conflict', 409)).toBe(ConflictError);
    expect(classFor('rate_limited', 429)).toBe(QuotaError);
    expect(classFor('engine_unavailable', 503)).toBe(EngineUnavailableError);
    expect(classFor('internal_error', 500)).toBe(FaasError);
  });

  it('falls back to the status (from ERROR_CODES) for codes it does not know', () => {
    expect(classFor('brand_new_code', 404)).toBe(NotFoundError);
    expect(classFor(undefined, 409)).toBe(ConflictError);
    expect(classFor(undefined, 429)).toBe(QuotaError);
    expect(classFor(undefined, 503)).toBe(EngineUnavailableError);
    expect(classFor(undefined, 418)).toBe(FaasError);
  });

  it('builds a typed error from an error body', () => {
    const err = errorFromWire(400, { error: 'validation_error', message: 'timeout_ms: too big', field: 'timeout_ms' });
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ValidationError');
    expect(err.status).toBe(400);
    expect(err.code).toBe('validation_error');
    expect(err.field).toBe('timeout_ms');
    expect(err.message).toBe('timeout_ms: too big');
    const quota = errorFromWire(429, { error: 'rate_limited', message: 'slow down' }, 7);
    expect(quota).toBeInstanceOf(QuotaError);
    expect((quota as QuotaError).retryAfterS).toBe(7);
    const bare = errorFromWire(502, undefined);
    expect(bare.code).toBe('http_502');
    expect(bare.message).toContain('502');
  });
});
