// GraphQL Code Generator's client preset with `persistedDocuments` (codegen-persisted.yml): the typed documents
// it generated (graphql.ts, each with `__meta__.hash`) run against the gateway by their hash alone, with the
// executors the client preset's documentation shows: `documentId` in a POST body or a GET parameter (GraphQL
// over HTTP, "Persisted Documents"), and the hash as Apollo's `extensions.persistedQuery.sha256Hash`.
//
// usage: node codegen-persisted.mjs <generated directory> <gateway /graphql url> <bearer token> <args json>
//   args: {"databaseId": <a lead of the tenant>, "writeToken": <a tenant of its own>, "createLead": <input>}
//
// graphql.ts is TypeScript: it is transpiled (typescript's transpileModule, types stripped) to graphql.mjs in
// the generated directory and imported from there. Prints ONE JSON object on stdout: every answer and every
// request sent (see persisted-fetch.mjs); every check is made by the pytest side
// (tests/e2e/test_persisted_clients.py), not here.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

import { recordingFetch } from './persisted-fetch.mjs';

const [generatedDir, url, token, argsJson] = process.argv.slice(2);
if (!generatedDir || !url || !token || !argsJson) {
  console.error('usage: node codegen-persisted.mjs <generated dir> <url> <token> <args json>');
  process.exit(2);
}
const args = JSON.parse(argsJson);

const source = readFileSync(path.join(generatedDir, 'graphql.ts'), 'utf8');
const { outputText } = ts.transpileModule(source, {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
});
writeFileSync(path.join(generatedDir, 'graphql.mjs'), outputText);
const generated = await import(pathToFileURL(path.join(generatedDir, 'graphql.mjs')).href);
const { CreateLeadDocument, LeadByDatabaseIdDocument, LeadsNextPageDocument, LeadsPageDocument } = generated;

const requests = [];
const send = recordingFetch(requests);

// The executor an app writes for persisted documents: the document's hash, never its text.
async function execute(document, variables, { mode = 'post', authToken = token } = {}) {
  const hash = document.__meta__.hash;
  const headers = {
    accept: 'application/graphql-response+json',
    authorization: `Bearer ${authToken}`,
  };
  let response;
  if (mode === 'get') {
    const params = new URLSearchParams({ documentId: hash, variables: JSON.stringify(variables) });
    response = await send(`${url}?${params}`, { method: 'GET', headers });
  } else {
    const body = mode === 'apq'
      ? { extensions: { persistedQuery: { version: 1, sha256Hash: hash.replace(/^sha256:/, '') } }, variables }
      : { documentId: hash, variables };
    response = await send(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }
  return { status: response.status, body: await response.json() };
}

const out = {
  hashes: Object.fromEntries(Object.entries(generated).filter(([, v]) => v?.__meta__)
    .map(([name, document]) => [name, document.__meta__.hash])),
  results: {},
};

out.results.page = await execute(LeadsPageDocument, { first: 5 });
const endCursor = out.results.page.body?.data?.leads?.pageInfo?.endCursor ?? 'none';
out.results.nextPage = await execute(LeadsNextPageDocument, { first: 5, after: endCursor }, { mode: 'get' });
out.results.lead = await execute(LeadByDatabaseIdDocument, { databaseId: args.databaseId }, { mode: 'apq' });
out.results.created = await execute(CreateLeadDocument, { input: args.createLead }, { authToken: args.writeToken });

// A document the app has but persisted-documents.json does not (e.g. generated after the list was deployed).
const text = 'query NotPersisted { leads(first: 1) { totalCount } }';
const notPersisted = { __meta__: { hash: `sha256:${createHash('sha256').update(text).digest('hex')}` } };
out.results.unknown = await execute(notPersisted, {});
out.results.unknownGet = await execute(notPersisted, {}, { mode: 'get' });

out.requests = requests;
process.stdout.write(`${JSON.stringify(out)}\n`);
