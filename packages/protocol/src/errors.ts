/**
 * Every error code the gateway answers with, its HTTP status and when it is used. The gateway creates errors only
 * from this table and the SDK maps codes back to error classes from it, so the two cannot drift.
 */
export const ERROR_CODES = {
  validation_error: { status: 400, when: 'The request body, query or a WebSocket command is malformed; `field` names the culprit.' },
  invalid_json: { status: 400, when: 'The body is not valid JSON.' },
  mode_not_available: { status: 400, when: 'The execution mode exists in the specification but is not served by this gateway yet.' },
  unauthorized: { status: 401, when: 'No valid API key was sent.' },
  forbidden: { status: 403, when: 'The key is valid but may not do this.' },
  not_found: { status: 404, when: 'No such sandbox, execution, file or route.' },
  image_not_found: { status: 404, when: 'The image is not present in the engine and could not be pulled.' },
  conflict: { status: 409, when: 'The sandbox is not in a state that allows this (e.g. exec on a stopped sandbox), or a path is not what the call needs (a directory read as a file).' },
  gone: { status: 410, when: 'The execution existed but its state is no longer kept (past the fork retention window).' },
  payload_too_large: { status: 413, when: 'The body is larger than the gateway accepts.' },
  unsupported_media_type: { status: 415, when: 'The body is not application/json.' },
  rate_limited: { status: 429, when: 'A quota or rate limit was reached; retry after `Retry-After` seconds.' },
  internal_error: { status: 500, when: 'A bug: the gateway failed in a way it did not expect. The log has the details.' },
  engine_unavailable: { status: 503, when: 'The container engine cannot be reached; retry when it is back.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
