// Relay with persisted queries: relay-compiler compiled relay/src/ with `persistConfig` (its artifacts carry
// `params.id` and no text), and the network layer sends `{doc_id: params.id, variables}`, as Relay's
// documentation ("Persisted Queries") tells an app to. relay-runtime pages the `@connection` list and refetches
// a lead through the `@refetchable` query, then fetches an operation whose id the server does not know.
// Artifacts compiled without persistConfig (no id) are sent as text instead: `{query: params.text, variables}`.
//
// usage: node relay-persisted.mjs <artifact directory> <gateway /graphql url> <bearer token>
//
// Prints ONE JSON object on stdout: what the runtime saw and every request sent (see persisted-fetch.mjs);
// every check is made by the pytest side (tests/e2e/test_persisted_clients.py), not here.
import RelayRuntime from 'relay-runtime';

import { recordingFetch } from './persisted-fetch.mjs';
import { loadArtifacts, relayEnvironment } from './relay-environment.mjs';

const { createOperationDescriptor, fetchQuery } = RelayRuntime;

const [artifactDir, url, token] = process.argv.slice(2);
if (!artifactDir || !url || !token) {
  console.error('usage: node relay-persisted.mjs <artifact dir> <url> <token>');
  process.exit(2);
}

const artifacts = loadArtifacts(artifactDir);
const { LeadListQuery, LeadListPaginationQuery, LeadList_query, LeadDetails_lead, LeadDetailsRefetchQuery } = artifacts;

const requests = [];
const { environment, readFragment } = relayEnvironment(url, token, {
  send: recordingFetch(requests),
  // Persisted: the id alone (a compile without persistConfig would give params.text instead).
  body: (params, variables) => (params.id ? { doc_id: params.id, variables } : { query: params.text, variables }),
});

const out = {
  params: Object.fromEntries(Object.entries(artifacts).filter(([, a]) => a.params)
    .map(([name, artifact]) => [name, artifact.params])),
};

// The page's query, then the pagination query after endCursor until hasNextPage is false; then a lead of the
// list refetched through LeadDetailsRefetchQuery (node(id:)). An error here is printed, not thrown.
async function pageAndRefetch() {
  const variables = { count: 25, filter: null };
  const operation = createOperationDescriptor(LeadListQuery, variables);
  environment.retain(operation);
  await fetchQuery(environment, LeadListQuery, variables).toPromise();
  const readList = () => readFragment(LeadList_query, environment.lookup(operation.fragment).data).leads;
  let list = readList();
  let pages = 1;
  while (list.pageInfo.hasNextPage) {
    await fetchQuery(environment, LeadListPaginationQuery, { count: 25, cursor: list.pageInfo.endCursor, filter: null })
      .toPromise();
    pages += 1;
    list = readList();
  }
  out.forward = { ids: list.edges.map((e) => e.node.databaseId), totalCount: list.totalCount, pages };

  const pickedRef = list.edges[3].node;
  const refetchVariables = { id: pickedRef.id };
  const refetchOperation = createOperationDescriptor(LeadDetailsRefetchQuery, refetchVariables);
  environment.retain(refetchOperation);
  await fetchQuery(environment, LeadDetailsRefetchQuery, refetchVariables).toPromise();
  out.refetch = {
    picked: { id: pickedRef.id, databaseId: pickedRef.databaseId },
    lead: readFragment(LeadDetails_lead, environment.lookup(refetchOperation.fragment).data.node),
  };
}
try {
  await pageAndRefetch();
} catch (error) {
  out.error = error.message;
}

// An artifact whose id the server does not know (an app deployed before its persisted queries were): the
// same query under another id, fetched as the app would; how the error reaches it. (Artifacts compiled without
// persistConfig have no id: nothing to do.)
const { id } = LeadDetailsRefetchQuery.params;
if (id) {
  const unknownId = 'f'.repeat(id.length);
  const unknown = { ...LeadDetailsRefetchQuery, params: { ...LeadDetailsRefetchQuery.params, id: unknownId } };
  try {
    await fetchQuery(environment, unknown, { id: out.refetch?.picked.id ?? 'unknown' }).toPromise();
    out.unknown = { id: unknownId, thrown: false };
  } catch (error) {
    out.unknown = { id: unknownId, thrown: true, message: error.message };
  }
}

out.requests = requests;
process.stdout.write(`${JSON.stringify(out)}\n`);
