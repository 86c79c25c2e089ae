// api.js — reads from this replica's REST API (same origin, relative URLs only:
// the dashboard makes no request anywhere else).

export const PAGE = 50; // items per page; never more than 100 in one request

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

// GET path (with its query) -> parsed JSON; throws ApiError on any non-2xx with
// the server's {"error": {"code", "message"}} when it sent one.
export async function get(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `latticed did not answer (${e.message})`);
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: keep null */ }
  if (!res.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(res.status, err.code || 'http_error', err.message || `HTTP ${res.status}`);
  }
  return body;
}

// A query string from an object, leaving out empty values.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}

// One page of a list: {items, next}. limit is capped at 100 whatever the caller asks.
export function page(path, params, limit = PAGE) {
  return get(path + qs({ ...params, limit: Math.min(limit, 100) }));
}

export const enc = encodeURIComponent;
