// Relay without React: loads the artifacts relay-compiler generated from relay/src/ and runs them
// with relay-runtime (Environment, Network, Store, the connection handler) against the gateway,
// paging the `@connection` list the way usePaginationFragment does and refetching a lead through
// the `@refetchable` query.
//
// usage: node relay-client.mjs <artifact directory> <gateway /graphql url> <bearer token>
//
// Prints ONE JSON object on stdout: the artifacts themselves and what the runtime saw; every check
// is made by the pytest side (tests/e2e/test_frontend_clients.py), not here.
import RelayRuntime from 'relay-runtime';

import { loadArtifacts, relayEnvironment } from './relay-environment.mjs';

const { createOperationDescriptor, fetchQuery } = RelayRuntime;

const [artifactDir, url, token] = process.argv.slice(2);
if (!artifactDir || !url || !token) {
  console.error('usage: node relay-client.mjs <artifact dir> <url> <token>');
  process.exit(2);
}

const artifacts = loadArtifacts(artifactDir);
const { LeadListQuery, LeadListPaginationQuery, LeadList_query, LeadDetails_lead, LeadDetailsRefetchQuery } = artifacts;

const { environment, requests, readFragment } = relayEnvironment(url, token);

// The list as a component would render it: LeadList_query read from the page query's root.
function readList(operation) {
  return readFragment(LeadList_query, environment.lookup(operation.fragment).data).leads;
}

// Load the first page, then fetch LeadListPaginationQuery after the connection's endCursor until
// hasNextPage is false; Relay's connection handler appends each page to the same store record.
async function pageThrough(filter) {
  const variables = { count: 25, filter };
  const operation = createOperationDescriptor(LeadListQuery, variables);
  environment.retain(operation); // a mounted component retains its query
  await fetchQuery(environment, LeadListQuery, variables).toPromise();
  let list = readList(operation);
  let pages = 1;
  while (list.pageInfo.hasNextPage) {
    await fetchQuery(environment, LeadListPaginationQuery,
      { count: 25, cursor: list.pageInfo.endCursor, filter }).toPromise();
    pages += 1;
    list = readList(operation);
  }
  return { list, pages };
}

const out = { artifacts };

const all = await pageThrough(null);
out.forward = { ids: all.list.edges.map((e) => e.node.databaseId), totalCount: all.list.totalCount, pages: all.pages };
const completed = await pageThrough({ status: 'COMPLETED' });
out.filtered = {
  filter: { status: 'COMPLETED' },
  ids: completed.list.edges.map((e) => e.node.databaseId),
  totalCount: completed.list.totalCount,
  pages: completed.pages,
};
out.forwardAfterFilter = readList(createOperationDescriptor(LeadListQuery, { count: 25, filter: null }))
  .edges.map((e) => e.node.databaseId);

// A lead of the list (second page), read through its fragment, then refetched with the generated
// @refetchable query (node(id: $id)), and read again.
const pickedRef = all.list.edges[30].node;
const beforeRefetch = readFragment(LeadDetails_lead, pickedRef);
const refetchVariables = { id: pickedRef.id };
const refetchOperation = createOperationDescriptor(LeadDetailsRefetchQuery, refetchVariables);
environment.retain(refetchOperation);
await fetchQuery(environment, LeadDetailsRefetchQuery, refetchVariables).toPromise();
const refetchedNode = environment.lookup(refetchOperation.fragment).data.node;
out.refetch = {
  picked: { id: pickedRef.id, databaseId: pickedRef.databaseId },
  beforeRefetch,
  afterRefetch: readFragment(LeadDetails_lead, refetchedNode),
  refetchedNodeDataId: refetchedNode.__id,
};

// The normalised store: one record per lead, keyed by its `id`, and one connection record per filter.
const source = environment.getStore().getSource();
const records = source.getRecordIDs().map((id) => ({ id, record: source.get(id) }));
out.store = {
  leadRecords: records.filter((r) => r.record.__typename === 'Lead').length,
  recordsForPicked: records.filter((r) => r.record.__typename === 'Lead' && r.record.databaseId === pickedRef.databaseId)
    .map((r) => r.id),
  connectionRecords: records.filter((r) => r.record.__typename === 'LeadConnection').map((r) => r.id).sort(),
};
out.requests = requests;
process.stdout.write(`${JSON.stringify(out)}\n`);
