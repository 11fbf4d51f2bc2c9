/**
 * How the HTTP endpoints that speak JSON (`GET /events` before its stream starts, `POST /channels/C/messages`)
 * answer: a refusal is `{"code","message"}` (plus `channel` and `issues` where a pgws.v1 `error` frame would
 * carry them) with the status of its code, and every answer to a page on an allowed origin carries CORS headers,
 * so `EventSource` and `fetch` work from other origins too. Pure: Web `Response`s only.
 */
import { ErrorCode, ErrorStatus } from '../base/codes.ts';
import { type RefusalLabel, Refusals, refusalHeaders } from '../base/refusals.ts';

/** A refusal's body, as a client reads it. */
export interface RefusalBody {
  readonly code: ErrorCode | RefusalLabel;
  readonly message: string;
  readonly channel?: string | undefined;
  readonly issues?: readonly unknown[] | undefined;
}

/**
 * The CORS headers for `request`: its `Origin` echoed, which `allowed_origins` has already let through (a request
 * without one is not a cross-origin browser request and gets none).
 */
export function corsHeaders(request: Request): Record<string, string> {
  const origin = request.headers.get('origin');
  if (origin === null) return {};
  return { 'access-control-allow-origin': origin, vary: 'origin', 'access-control-expose-headers': 'retry-after' };
}

/** The answer to a CORS preflight (`OPTIONS`): what a page on an allowed origin may send. */
export function preflight(request: Request): Response {
  return new Response(null, {
    status: 204,
    headers: {
      ...corsHeaders(request),
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'authorization, content-type, last-event-id, accept',
      'access-control-max-age': '600',
    },
  });
}

const isErrorCode = (code: string): code is ErrorCode => Object.hasOwn(ErrorCode, code);

/**
 * A JSON refusal: the status is the code's (`ErrorStatus` for a pgws.v1 error code, `Refusals` for a refusal
 * label). A 503 says `Retry-After: 1`, as refused upgrades do; `retryAfter` sets it for a 429.
 */
export function refusal(request: Request, body: RefusalBody, retryAfter?: number): Response {
  const { code } = body;
  const status = isErrorCode(code) ? ErrorStatus[code] : Refusals[code].status;
  const headers: Record<string, string> = {
    // A page the allow-list refused is not told it may read the answer.
    ...(code === 'origin_not_allowed' ? {} : corsHeaders(request)),
    ...(isErrorCode(code) ? {} : refusalHeaders(code)),
    ...(status === 503 ? { 'retry-after': '1' } : {}),
    ...(retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) }),
    'cache-control': 'no-store',
  };
  return Response.json(body, { status, headers });
}
