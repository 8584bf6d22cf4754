#!/usr/bin/env node
// Serves Ory Polis (npm `@boxyhq/saml-jackson`) directory sync as a SCIM 2.0 server, so that
// roster-bench can measure it. Used by bench/run-polis.sh.
//
// The SCIM work is all Polis's: this wrapper only does what Polis's own Next.js route
// `pages/api/scim/v2.0/[...directory].ts` (tag v26.2.0) does: split the path into
// directoryId / resourceType / resourceId, take the token after `Bearer`, parse the body the
// way Next.js + Polis's `bodyParser` do, parseInt count/startIndex, then
// `directorySyncController.requests.handle(request)` and write back `{status, data}`.
//
// Usage: node server.js [mem|postgres] [--port N]
//   POLIS_BENCH_DB           mem | postgres (default mem; argv wins)
//   POLIS_BENCH_DATABASE_URL postgres URL (default postgres://postgres@127.0.0.1:5432/test);
//                            Polis creates its tables (jackson_store, jackson_index,
//                            jackson_ttl) there, so give it a database of its own.
//   POLIS_BENCH_PORT         port (default 0: any free one; --port wins)
//   POLIS_BENCH_EVENTS       internal (default): Polis's own event callback, as the hosted
//                            app runs it (for each event it reads the directory, finds no
//                            webhook configured and logs "Webhook not configured ... Skipping");
//                            none: an embedded-mode no-op `dsync.callback`.
//   DB_PAGE_LIMIT, DB_ENCRYPTION_KEY: as in Polis's lib/env.ts (unset by default, so the page
//                            limit is Polis's default of 50 and values are stored unencrypted).
//
// Prints one JSON line on stdout once it listens:
//   {"port":N,"scim_path":"/api/scim/v2.0/<directoryId>","token":"...","directory_id":"...",
//    "polis_version":"26.2.0","db":"mem"}
// Polis's log goes to stderr.
'use strict';

const http = require('http');

const argv = process.argv.slice(2);
let dbKind = process.env.POLIS_BENCH_DB || 'mem';
let port = Number(process.env.POLIS_BENCH_PORT || 0);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port') port = Number(argv[++i]);
  else if (argv[i] === 'mem' || argv[i] === 'postgres' || argv[i] === 'sql') dbKind = argv[i];
  else fail(`unknown argument ${argv[i]}`);
}
if (dbKind === 'sql') dbKind = 'postgres';
if (dbKind !== 'mem' && dbKind !== 'postgres') fail(`unknown db ${dbKind} (mem or postgres)`);
const events = process.env.POLIS_BENCH_EVENTS || 'internal';
if (events !== 'internal' && events !== 'none') fail(`POLIS_BENCH_EVENTS: internal or none, not ${events}`);

const SCIM_PATH = '/api/scim/v2.0'; // Polis's default opts.scimPath
const TENANT = 'roster-bench';
const PRODUCT = 'roster-bench';
// Next.js API routes' default bodyParser sizeLimit.
const BODY_LIMIT = 1024 * 1024;

function fail(msg) {
  process.stderr.write(`polis server: ${msg}\n`);
  process.exit(1);
}

// Polis's lib/jackson.ts passes a logger of this shape (msg, err) to the library.
const log = (level) => (msg, err) =>
  process.stderr.write(`${new Date().toISOString()} ${level} ${msg}${err ? ` ${err.stack || err}` : ''}\n`);
const logger = { info: log('info'), warn: log('warn'), error: log('error') };

function jacksonOptions(externalUrl) {
  const db =
    dbKind === 'mem'
      ? { engine: 'mem' }
      : {
          engine: 'sql',
          type: 'postgres',
          url: process.env.POLIS_BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
        };
  if (process.env.DB_PAGE_LIMIT) db.pageLimit = Number(process.env.DB_PAGE_LIMIT);
  if (process.env.DB_ENCRYPTION_KEY) db.encryptionKey = process.env.DB_ENCRYPTION_KEY;
  const opts = {
    externalUrl,
    samlPath: '/api/oauth/saml', // required by the library; unused here
    scimPath: SCIM_PATH,
    db,
    noAnalytics: true, // no outbound traffic
    logger,
  };
  if (events === 'none') opts.dsync = { callback: async () => {} };
  return opts;
}

// --- the translation done by Polis's Next.js route -------------------------------------

// Polis lib/utils.ts
const IsJsonString = (body) => {
  try {
    const json = JSON.parse(body);
    return typeof json === 'object';
  } catch (e) {
    return false;
  }
};
const bodyParser = (body) => (IsJsonString(body) ? JSON.parse(body) : body);

// Polis lib/auth.ts
const extractAuthToken = (req) => {
  const authHeader = req.headers.authorization || '';
  const parts = authHeader.split(' ');
  return parts.length > 1 ? parts[1] : null;
};

// Next.js API bodyParser: JSON for application/json and application/ld+json, a string for
// any other type (application/scim+json included, which Polis's bodyParser then parses).
function nextBody(req, raw) {
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  const text = raw.toString('utf8');
  if (type === 'application/json' || type === 'application/ld+json') {
    if (text.length === 0) return {};
    return JSON.parse(text); // Next answers 400 "Invalid JSON" on failure
  }
  return text;
}

// Next.js query object: a string per key, an array for a repeated key.
function nextQuery(searchParams) {
  const query = {};
  for (const [k, v] of searchParams) {
    if (k in query) query[k] = [].concat(query[k], v);
    else query[k] = v;
  }
  return query;
}

function send(res, status, data) {
  const body = data === undefined ? '' : JSON.stringify(data);
  res.writeHead(status, {
    'Content-Type': 'application/scim+json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function sendText(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(directorySyncController, req, res, raw) {
  const url = new URL(req.url, 'http://localhost');
  if (!url.pathname.startsWith(SCIM_PATH + '/')) return sendText(res, 404, 'Not Found');
  // [...directory]: the decoded path segments after the route's prefix.
  const segments = url.pathname
    .slice(SCIM_PATH.length + 1)
    .split('/')
    .filter((s) => s.length > 0)
    .map(decodeURIComponent);
  if (segments.length === 0) return sendText(res, 404, 'Not Found');
  const query = nextQuery(url.searchParams);
  const [directoryId, path, resourceId] = segments;

  let parsed;
  try {
    parsed = nextBody(req, raw);
  } catch (e) {
    return sendText(res, 400, 'Invalid JSON');
  }
  const request = {
    body: bodyParser(parsed),
    method: req.method,
    directoryId,
    resourceId,
    resourceType: path,
    apiSecret: extractAuthToken(req),
    query: {
      count: query.count ? parseInt(query.count) : undefined,
      startIndex: query.startIndex ? parseInt(query.startIndex) : undefined,
      filter: query.filter,
    },
  };
  const { status, data } = await directorySyncController.requests.handle(request);
  send(res, status, data);
}

async function main() {
  const version = require('@boxyhq/saml-jackson/package.json').version;
  const server = http.createServer();
  // Long keep-alive so that idle gaps between roster-bench's phases close no connection.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actualPort = server.address().port;

  const { controllers } = require('@boxyhq/saml-jackson');
  const jackson = await controllers(jacksonOptions(`http://127.0.0.1:${actualPort}`));
  const { directorySyncController } = jackson;
  const { data: directory, error } = await directorySyncController.directories.create({
    name: 'roster-bench',
    tenant: TENANT,
    product: PRODUCT,
    type: 'generic-scim-v2',
  });
  if (error) fail(`directories.create: ${error.message}`);

  server.on('request', (req, res) => {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > BODY_LIMIT) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return sendText(res, 413, 'Body exceeded 1mb limit');
      handle(directorySyncController, req, res, Buffer.concat(chunks)).catch((err) => {
        logger.error(`unhandled error on ${req.method} ${req.url}`, err);
        if (!res.headersSent) sendText(res, 500, 'Internal Server Error');
        else res.destroy();
      });
    });
  });

  const shutdown = async () => {
    server.close();
    server.closeAllConnections();
    try {
      await jackson.close();
    } catch (e) {
      // exiting anyway
    }
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  process.stdout.write(
    JSON.stringify({
      port: actualPort,
      scim_path: directory.scim.path,
      token: directory.scim.secret,
      directory_id: directory.id,
      polis_version: version,
      db: dbKind,
    }) + '\n',
  );
}

main().catch((err) => {
  logger.error('start failed', err);
  process.exit(1);
});
