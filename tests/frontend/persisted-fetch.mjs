// What the persisted-document scripts share (apollo-persisted.mjs, relay-persisted.mjs, codegen-persisted.mjs):
// a fetch that records every request a client sends and what came back, so that the pytest side
// (tests/e2e/test_persisted_clients.py) can tell a request that carried the document's text from one that
// named it only (APQ hash, documentId, doc_id), which HTTP method it used, and the gateway's answer.

// A request as it went over the wire: POST body fields, or GET parameters (JSON ones decoded).
function sentPayload(url, init) {
  if ((init.method || 'GET').toUpperCase() === 'GET') {
    const params = {};
    for (const [key, value] of url.searchParams) {
      params[key] = ['variables', 'extensions'].includes(key) ? JSON.parse(value) : value;
    }
    return params;
  }
  return JSON.parse(init.body);
}

function header(headers, name) {
  if (!headers) return null;
  if (typeof headers.get === 'function') return headers.get(name);
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? null : headers[key];
}

// fetch(input, init) that appends one entry per request to `log`:
//   method, query (the text, or null when none was sent), documentId, doc_id, extensions, operationName,
//   variables, accept; then status, contentType, cacheControl, vary, codes (extensions.code of each error),
//   hasData (whether the answer had a `data` key).
export function recordingFetch(log) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === 'string' ? input : input.url);
    const sent = sentPayload(url, init);
    const entry = {
      method: (init.method || 'GET').toUpperCase(),
      query: sent.query ?? null,
      documentId: sent.documentId ?? null,
      doc_id: sent.doc_id ?? null,
      extensions: sent.extensions ?? null,
      operationName: sent.operationName ?? null,
      variables: sent.variables ?? null,
      accept: header(init.headers, 'accept'),
    };
    log.push(entry);
    const response = await fetch(input, init);
    const text = await response.clone().text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      entry.text = text.slice(0, 500);
    }
    Object.assign(entry, {
      status: response.status,
      contentType: response.headers.get('content-type'),
      cacheControl: response.headers.get('cache-control'),
      vary: response.headers.get('vary'),
      codes: (body?.errors || []).map((e) => e.extensions?.code ?? null),
      messages: (body?.errors || []).map((e) => e.message),
      hasData: body !== null && typeof body === 'object' && 'data' in body,
    });
    return response;
  };
}
