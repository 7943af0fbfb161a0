// Apollo Client 3 with persisted queries against the gateway, configured as Apollo's documentation tells an
// app to, over the operations of examples/*.graphql (the ones @apollo/generate-persisted-query-manifest put in
// the manifest) and two operations that are in no manifest:
//   apq      createPersistedQueryLink({ sha256 }): automatic persisted queries, POST
//   apqGet   createPersistedQueryLink({ sha256, useGETForHashedQueries: true })
//   manifest createPersistedQueryManifestVerificationLink + createPersistedQueryLink(
//              generatePersistedQueryIdsFromManifest({ loadManifest })) (@apollo/persisted-query-lists)
//   plain    HttpLink alone: the text of every operation
// Each scenario is a client of its own (its own link state and cache); every query is network-only.
//
// usage: node apollo-persisted.mjs <gateway /graphql url> <bearer token> <manifest json> <args json>
//   args: {"databaseId": <a lead of the tenant>, "nodeId": <its global id>}
//
// Prints ONE JSON object on stdout: per scenario, what each query returned and every request sent (see
// persisted-fetch.mjs); every check is made by the pytest side (tests/e2e/test_persisted_clients.py).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ApolloClient, ApolloError, HttpLink, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev/index.js';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries/index.js';
import {
  createPersistedQueryManifestVerificationLink,
  generatePersistedQueryIdsFromManifest,
} from '@apollo/persisted-query-lists';

import { possibleTypes } from './apollo-setup.mjs';
import { recordingFetch } from './persisted-fetch.mjs';

loadDevMessages();
loadErrorMessages();

const [url, token, manifestPath, argsJson] = process.argv.slice(2);
if (!url || !token || !manifestPath || !argsJson) {
  console.error('usage: node apollo-persisted.mjs <url> <token> <manifest json> <args json>');
  process.exit(2);
}
const args = JSON.parse(argsJson);
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));

// The app's documents: the example files, as an app imports .graphql files (graphql-tag/loader does this).
const example = (name) => gql(readFileSync(new URL(`../../examples/${name}.graphql`, import.meta.url), 'utf8'));
const LEADS_PAGE = example('leads-page');
const LEAD_BY_DATABASE_ID = example('lead-by-database-id');
const NODE_BY_ID = example('node-by-id');
// Written in the app but left out of the manifest.
const NOT_IN_MANIFEST = gql`
  query NotInManifest($first: Int!) { leads(first: $first) { totalCount nodes { id databaseId status } } }
`;
const NOT_IN_MANIFEST_GET = gql`
  query NotInManifestGet($databaseId: Int!) { lead(databaseId: $databaseId) { id databaseId phoneNumber } }
`;

// Apollo's documentation: `sha256` from crypto-hash; node:crypto computes the same hex digest.
const sha256 = (text) => createHash('sha256').update(text).digest('hex');

function makeClient(link) {
  return new ApolloClient({ link, cache: new InMemoryCache({ possibleTypes }) });
}

function httpLink(requests) {
  return new HttpLink({ uri: url, fetch: recordingFetch(requests), headers: { Authorization: `Bearer ${token}` } });
}

// One query as a component runs it: what it returned, or how the error reached the app.
async function run(client, name, query, variables) {
  try {
    const result = await client.query({ query, variables, fetchPolicy: 'network-only' });
    return { name, variables, thrown: false, data: result.data };
  } catch (error) {
    const network = error.networkError;
    return {
      name,
      variables,
      thrown: true,
      apolloError: error instanceof ApolloError,
      message: error.message,
      graphQLErrors: (error.graphQLErrors || []).map((e) => ({ message: e.message, code: e.extensions?.code ?? null })),
      networkStatus: network?.statusCode ?? null,
      networkErrorCodes: (network?.result?.errors || []).map((e) => e.extensions?.code ?? null),
    };
  }
}

const page = { first: 5 };
const byDatabaseId = { databaseId: args.databaseId };
const out = { scenarios: {} };

async function scenario(name, makeLink, steps) {
  const requests = [];
  const verificationFailures = [];
  const client = makeClient(makeLink(requests, verificationFailures));
  const results = [];
  for (const [opName, query, variables] of steps) results.push(await run(client, opName, query, variables));
  client.stop();
  out.scenarios[name] = { results, requests, verificationFailures };
}

await scenario('apq', (requests) => createPersistedQueryLink({ sha256 }).concat(httpLink(requests)), [
  ['LeadsPage', LEADS_PAGE, page],
  ['LeadsPage', LEADS_PAGE, page],
  ['NotInManifest', NOT_IN_MANIFEST, { first: 3 }],
  ['NotInManifest', NOT_IN_MANIFEST, { first: 3 }],
  ['LeadsPage', LEADS_PAGE, { first: 2 }],
]);

await scenario('apqGet', (requests) => createPersistedQueryLink({ sha256, useGETForHashedQueries: true })
  .concat(httpLink(requests)), [
  ['LeadByDatabaseId', LEAD_BY_DATABASE_ID, byDatabaseId],
  ['LeadByDatabaseId', LEAD_BY_DATABASE_ID, byDatabaseId],
  ['NotInManifestGet', NOT_IN_MANIFEST_GET, byDatabaseId],
  ['NotInManifestGet', NOT_IN_MANIFEST_GET, byDatabaseId],
]);

await scenario('manifest', (requests, failures) => createPersistedQueryManifestVerificationLink({
  loadManifest: () => manifest,
  onVerificationFailed: (details) => failures.push({ reason: details.reason, name: details.operation.operationName }),
}).concat(createPersistedQueryLink(generatePersistedQueryIdsFromManifest({ loadManifest: () => manifest })))
  .concat(httpLink(requests)), [
  ['LeadsPage', LEADS_PAGE, page],
  ['NodeById', NODE_BY_ID, { id: args.nodeId }],
  ['LeadByDatabaseId', LEAD_BY_DATABASE_ID, byDatabaseId],
  ['NotInManifest', NOT_IN_MANIFEST, { first: 3 }],
]);

await scenario('plain', (requests) => httpLink(requests), [
  ['LeadsPage', LEADS_PAGE, page],
  ['NotInManifest', NOT_IN_MANIFEST, { first: 3 }],
]);

process.stdout.write(`${JSON.stringify(out)}\n`);
