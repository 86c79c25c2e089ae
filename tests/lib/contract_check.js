// contract_check.js — checks recorded REST exchanges against api/openapi.yaml
// (tests/lib/contract.sh): each response's status must be documented for its
// operation, a JSON body must validate against the documented schema, and the
// documented required headers must be there.
//
//   node contract_check.js OPENAPI.yaml EXCHANGES.jsonl
//
// An exchange is one JSON line: {"method", "path" (query included), "status",
// "headers" (the raw response head, as curl -D wrote it), "body" (text)}. Prints one line
// "# METHOD PATH -> STATUS: what is wrong" per failure and a summary line;
// exits 1 when any exchange failed, 2 when it cannot check.
'use strict';
const fs = require('fs');
const path = require('path');
const mods = process.env.PROTOCOL_NODE_MODULES;
const need = (m) => require(mods ? path.join(mods, m) : m);
const yaml = need('js-yaml');
const Ajv2020 = need('ajv/dist/2020').default;
const addFormats = need('ajv-formats').default;

const [specFile, exFile] = process.argv.slice(2);
if (!specFile || !exFile) {
  console.error('usage: contract_check.js OPENAPI.yaml EXCHANGES.jsonl');
  process.exit(2);
}
const doc = yaml.load(fs.readFileSync(specFile, 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: true });
addFormats(ajv);
ajv.addSchema(doc, 'openapi');

// Path templates, most literal first, so /v1/nodes/{id}/failover-plan does
// not match /v1/nodes/{id}.
const templates = Object.keys(doc.paths).map((t) => {
  const parts = t.split('/');
  return { t, parts, literal: parts.filter((p) => !p.startsWith('{')).length };
}).sort((a, b) => b.literal - a.literal);

// parts: the request path's segments, each %XX-decoded as the server does
// (a decoded '/' stays inside its segment).
function findPath(parts) {
  for (const { t, parts: tp } of templates) {
    if (tp.length !== parts.length) continue;
    if (tp.every((x, i) => x.startsWith('{') || x === parts[i])) return t;
  }
  return null;
}

const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
function deref(obj, ptr) {
  let p = ptr;
  let o = obj;
  while (o && o.$ref) {
    p = o.$ref.replace(/^#/, '');
    o = p.split('/').slice(1).reduce((x, k) => x && x[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  }
  return [o, p];
}

const validators = new Map();
function validator(ptr) {
  if (!validators.has(ptr)) validators.set(ptr, ajv.compile({ $ref: 'openapi#' + ptr }));
  return validators.get(ptr);
}

let n = 0;
let bad = 0;
const lines = fs.readFileSync(exFile, 'utf8').split('\n').filter((l) => l.trim());
for (const line of lines) {
  const ex = JSON.parse(line);
  n++;
  ex.headers = {};
  for (const h of (ex.head || '').split(/\r?\n/).slice(1)) {
    const i = h.indexOf(':');
    if (i > 0) ex.headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const method = ex.method.toLowerCase();
  const p = ex.path.split('?')[0];
  const parts = p.split('/').map((x) => { try { return decodeURIComponent(x); } catch (e) { return x; } });
  const where = `${ex.method} ${ex.path} -> ${ex.status}`;
  const fail = (why) => { bad++; console.log(`# ${where}: ${why}`); };
  if (ex.status === 0 || ex.status === '000') continue; // no answer (the test's subject)
  const t = findPath(parts);
  // A path or method the spec does not have: the server's 404 / 405, which
  // must still be the documented error object.
  const op = t && doc.paths[t][method];
  if (!op) {
    if (!(ex.status === 404 && !t) && !(ex.status === 405 && t)) {
      fail(t ? `${ex.method} not documented for ${t}` : 'path not in api/openapi.yaml');
      continue;
    }
    let body;
    try { body = JSON.parse(ex.body); } catch (e) { fail(`error body is not JSON: ${e.message}`); continue; }
    const v = validator('/components/schemas/Error');
    if (!v(body)) fail(ajv.errorsText(v.errors, { dataVar: 'body' }).slice(0, 400));
    continue;
  }
  const st = String(ex.status);
  const key = op.responses[st] ? st : op.responses[st[0] + 'XX'] ? st[0] + 'XX' : op.responses.default ? 'default' : null;
  if (!key) { fail(`status ${st} not documented for ${ex.method} ${t} (documented: ${Object.keys(op.responses).join(', ')})`); continue; }
  const base = `/paths/${esc(t)}/${method}/responses/${key}`;
  const [resp, rptr] = deref(op.responses[key], base);
  for (const [h, spec] of Object.entries((resp && resp.headers) || {})) {
    const [hs] = deref(spec, '');
    if (hs && hs.required && !(h.toLowerCase() in (ex.headers || {}))) fail(`required header ${h} missing`);
  }
  const content = resp && resp.content;
  if (!content) continue;
  // The body is checked as the media type the server says it is, which must
  // be one the spec documents for this response.
  const ctype = (ex.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  const mt = Object.keys(content).find((k) => k.split(';')[0].trim().toLowerCase() === ctype);
  if (!mt) {
    fail(`Content-Type '${ctype}' not documented (documented: ${Object.keys(content).join(', ')})`);
    continue;
  }
  if (!/[/+]json$/.test(mt) || !content[mt].schema) continue;
  if (!ex.body) { fail('documented JSON body, got none'); continue; }
  let body;
  try { body = JSON.parse(ex.body); } catch (e) { fail(`body is not JSON: ${e.message}`); continue; }
  const v = validator(`${rptr}/content/${esc(mt)}/schema`);
  if (!v(body)) fail(ajv.errorsText(v.errors, { dataVar: 'body' }).slice(0, 400));
}
console.log(`# contract: ${n} exchange(s), ${bad} failure(s)`);
process.exit(bad ? 1 : 0);
