/**
 * One place where anything thrown while serving a request becomes the JSON error body `{error, message, field?}`
 * with the status fixed by the protocol's error table.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import type { ErrorBody } from '@faas/protocol';
import type { z } from 'zod';
import { FaasError } from '../errors.js';

/** Validates a request part with a shared schema; the first issue names the field. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, where = 'body'): z.infer<S> {
  const result = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (result.success) return result.data;
  throw validationError(result.error, where);
}

export function validationError(error: z.ZodError, where = 'body'): FaasError {
  const issue = error.issues[0];
  if (!issue) return new FaasError('validation_error', `invalid ${where}`);
  const field = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.join('", "');
    return new FaasError('validation_error', `unknown field${issue.keys.length > 1 ? 's' : ''} "${keys}" in ${where}`, issue.keys[0]);
  }
  if (issue.code === 'invalid_type' && field === '' && where === 'body') {
    return new FaasError('validation_error', 'the body must be a JSON object');
  }
  const subject = field ? `${field}: ` : '';
  return new FaasError('validation_error', `${subject}${issue.message}`, field || undefined);
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${+(n / 1024 / 1024).toFixed(1)} MiB` : `${+(n / 1024).toFixed(1)} KiB`;
}

function bodyOf(err: FaasError): ErrorBody {
  return { error: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
}

/** Fastify's own errors (bad JSON, wrong content type, body too large) in our vocabulary. */
function fromFastify(err: FastifyError, bodyLimit: number | undefined): FaasError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new FaasError('unsupported_media_type', `${err.message}; send JSON with Content-Type: application/json`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new FaasError('invalid_json', 'the body is empty; send a JSON object');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new FaasError(
        'payload_too_large',
        bodyLimit ? `the body is larger than the ${formatBytes(bodyLimit)} this route accepts; send less (large files go in through a sandbox, not the request)` : `the body is larger than the gateway accepts (${err.message})`,
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new FaasError('invalid_json', `the body is not valid JSON: ${err.message}`);
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message))) {
    return new FaasError('invalid_json', `the body is not valid JSON: ${err.message}`);
  }
  return null;
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const known = err instanceof FaasError ? err : fromFastify(err, request.routeOptions?.bodyLimit);
    if (known) {
      if (known.retryAfterS !== undefined) void reply.header('retry-after', String(known.retryAfterS));
      if (known.status >= 500) request.log.error({ err }, known.message);
      return reply.status(known.status).send(bodyOf(known));
    }
    request.log.error({ err }, 'unexpected error');
    return reply
      .status(500)
      .send(bodyOf(new FaasError('internal_error', `the gateway failed unexpectedly (request ${request.id}): ${err.message}; see the gateway log`)));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(bodyOf(new FaasError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`))),
  );
}
