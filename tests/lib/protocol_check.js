// protocol_check.js — validates NATS messages of the edge protocol against
// api/nats/*.schema.json (draft 2020-12, with Ajv) plus the rules a schema cannot
// express. Run by tests/lib/protocol.sh, which installs Ajv; one node process
// checks every file given.
//
//   node protocol_check.js SCHEMA_DIR schemas              compile every schema
//   node protocol_check.js SCHEMA_DIR schema NAME FILE...  each FILE against NAME
//                                                          (heartbeat, command, ...)
//   node protocol_check.js SCHEMA_DIR capture FILE...|-    captured messages:
//       FILE is DIR/<n>.<subject>.json as tests/tools/natscap writes it, its
//       headers (if any) in DIR/<n>.<subject>.hdr ("Name: value" lines); "-"
//       reads the list of files from stdin
//
// Environment: PROTOCOL_NODE_MODULES, the node_modules holding ajv and ajv-formats.
// Prints "# FILE: RULE: detail" for every failure (TAP diagnostics); exit 0 when
// everything passed, 1 when something failed, 2 when it could not check.
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const KINDS = { hb: 'heartbeat', cmd: 'command', ack: 'ack', snap: 'snapshot', evt: 'event' };
// Body size limits of docs/protocol.md (bytes); events have none.
const MAX_BYTES = { hb: 256 * 1024, cmd: 512 * 1024, ack: 16 * 1024, snap: 400 * 1024 - 1 };
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
// A snapshot's state: the schema's maxLength allows up to 2 bytes more.
const MAX_STATE = 256 * 1024;

function die(msg) {
	console.log(`# protocol_check: ${msg}`);
	process.exit(2);
}

const [schemaDir, mode, ...rest] = process.argv.slice(2);
if (!schemaDir || !mode) die('usage: protocol_check.js SCHEMA_DIR schemas|schema NAME FILE...|capture FILE...');
const modules = process.env.PROTOCOL_NODE_MODULES;
if (!modules) die('PROTOCOL_NODE_MODULES is not set (tests/lib/protocol.sh sets it)');
const req = createRequire(path.join(path.resolve(modules), 'x.js'));
const Ajv2020 = req('ajv/dist/2020').default;
const addFormats = req('ajv-formats').default;

// strict: an unknown keyword or a type-less applicator in a schema is an error,
// so a typo in a schema cannot make it accept everything.
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validators = {};
for (const name of Object.values(KINDS)) {
	const file = path.join(schemaDir, `${name}.schema.json`);
	let schema;
	try {
		schema = JSON.parse(fs.readFileSync(file, 'utf8'));
	} catch (e) {
		die(`${file}: ${e.message}`);
	}
	for (const k of ['$id', 'title', 'description'])
		if (typeof schema[k] !== 'string' || schema[k] === '') die(`${file}: no ${k}`);
	if (schema.$schema !== 'https://json-schema.org/draft/2020-12/schema')
		die(`${file}: $schema is not draft 2020-12`);
	try {
		validators[name] = ajv.compile(schema);
	} catch (e) {
		die(`${file}: ${e.message}`);
	}
}

let failed = 0;
function fail(file, rule, detail) {
	failed++;
	console.log(`# ${file}: ${rule}: ${detail}`);
}

function schemaCheck(file, name, body) {
	const v = validators[name];
	if (v(body)) return;
	for (const e of v.errors) {
		// The if/then wrapper's own error only repeats the one inside it.
		if (e.keyword === 'if') continue;
		const where = e.instancePath || '/';
		let detail = e.message;
		if (e.keyword === 'additionalProperties') detail += ` '${e.params.additionalProperty}'`;
		if (e.keyword === 'required') detail = `missing '${e.params.missingProperty}'`;
		fail(file, `schema ${where} ${e.keyword}`, `${detail} (${name}.schema.json ${e.schemaPath})`);
	}
}

function readJson(file) {
	let text;
	try {
		text = fs.readFileSync(file);
	} catch (e) {
		fail(file, 'read', e.message);
		return undefined;
	}
	try {
		return { body: JSON.parse(text.toString('utf8')), bytes: text.length };
	} catch (e) {
		fail(file, 'json', `not JSON: ${e.message}`);
		return undefined;
	}
}

// "Name: value" lines; a name may repeat.
function readHeaders(file) {
	const h = {};
	let text;
	try {
		text = fs.readFileSync(file, 'utf8');
	} catch (e) {
		if (e.code === 'ENOENT') return h;
		throw e;
	}
	for (const line of text.split('\n')) {
		const i = line.indexOf(':');
		if (i <= 0) continue;
		const k = line.slice(0, i);
		(h[k] = h[k] || []).push(line.slice(i + 1).trim());
	}
	return h;
}

function msgIdCheck(file, headers, want) {
	const ids = headers['Nats-Msg-Id'] || [];
	if (ids.length !== 1) fail(file, 'msg-id', `want one Nats-Msg-Id header '${want}', got ${ids.length}`);
	else if (ids[0] !== want) fail(file, 'msg-id', `Nats-Msg-Id is '${ids[0]}', must be '${want}'`);
}

function stateCheck(file, where, b64) {
	const n = Buffer.from(b64, 'base64').length;
	if (n > MAX_STATE) fail(file, 'data-size', `${where} decodes to ${n} bytes, more than ${MAX_STATE}`);
}

function captureCheck(file) {
	const base = path.basename(file);
	const m = /^[0-9]+\.(.*)\.json$/.exec(base);
	if (!m) return fail(file, 'name', 'not <n>.<subject>.json');
	const subject = m[1];
	const t = subject.split('.');
	if (t.length !== 4 || t[0] !== 'lattice' || !TOKEN.test(t[1]) || !(t[2] in KINDS) || !TOKEN.test(t[3]))
		return fail(file, 'subject', `'${subject}' is not lattice.<L>.<hb|cmd|ack|snap|evt>.<token> (tokens: 1-64 of A-Za-z0-9_-)`);
	const [, , kind, last] = t;
	const r = readJson(file);
	if (r === undefined) return;
	const { body, bytes } = r;
	if (MAX_BYTES[kind] !== undefined && bytes > MAX_BYTES[kind])
		fail(file, 'size', `${bytes} bytes, more than the ${MAX_BYTES[kind]} a ${kind} may have`);
	const before = failed;
	schemaCheck(file, KINDS[kind], body);
	if (failed !== before) return; // the cross checks assume a well-formed body
	const headers = readHeaders(file.replace(/\.json$/, '.hdr'));
	switch (kind) {
	case 'hb':
	case 'ack':
	case 'snap':
		if (kind === 'snap') stateCheck(file, '/data', body.data);
		if (body.node_id !== last) fail(file, 'subject-node', `body node_id '${body.node_id}' is not the subject's node '${last}'`);
		if (kind === 'ack') msgIdCheck(file, headers, `ack-${body.command_id}`);
		if (kind === 'snap') msgIdCheck(file, headers, `snap-${body.actor_id}-${body.state_version}`);
		break;
	case 'cmd':
		if (body.target_node !== last)
			fail(file, 'subject-node', `target_node '${body.target_node}' is not the subject's node '${last}'`);
		msgIdCheck(file, headers, body.command_id);
		if (body.command_type === 'actor_start' && body.payload.snapshot)
			stateCheck(file, '/payload/snapshot/data', body.payload.snapshot.data);
		if ((body.command_type === 'actor_start' || body.command_type === 'config_update') &&
		    body.config_version !== body.generation)
			fail(file, 'config-version', `${body.command_type}: config_version ${body.config_version} is not the actor's generation ${body.generation}`);
		if (body.command_type === 'security_policy' && body.config_version !== body.payload.version)
			fail(file, 'config-version', `security_policy: config_version ${body.config_version} is not payload.version ${body.payload.version}`);
		break;
	case 'evt': {
		const want = body.kind.replace(/\./g, '_');
		if (want !== last) fail(file, 'subject-kind', `subject ends in '${last}', kind '${body.kind}' wants '${want}'`);
		break;
	}
	}
}

let n = 0;
if (mode === 'schemas') {
	console.log(`# protocol_check: ${Object.keys(validators).length} schemas compiled`);
} else if (mode === 'schema') {
	const [name, ...files] = rest;
	if (!validators[name]) die(`no schema '${name}' (${Object.values(KINDS).join(', ')})`);
	for (const f of files) {
		n++;
		const r = readJson(f);
		if (r !== undefined) schemaCheck(f, name, r.body);
	}
} else if (mode === 'capture') {
	// "-": the list comes on stdin, one per line (no limit on its length).
	const files = rest.length === 1 && rest[0] === '-' ?
		fs.readFileSync(0, 'utf8').split('\n').filter((l) => l !== '') : rest;
	for (const f of files) {
		n++;
		captureCheck(f);
	}
} else {
	die(`unknown mode '${mode}'`);
}
if (mode === 'capture' || failed) console.log(`# protocol_check: ${n} file(s), ${failed} failure(s)`);
process.exit(failed ? 1 : 0);
