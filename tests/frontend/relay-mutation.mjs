// Relay without React, writing: after paging the `@connection` list (LeadList_query) to its end, it
// commits LeadCreateMutation (relay/src/LeadCreate.js) with relay-runtime's commitMutation. The
// mutation's `@appendEdge(connections: $connections)` puts the payload's `leadEdge` at the end of the
// unfiltered list's connection record, whose ID comes from ConnectionHandler.getConnectionID; the list
// is then read back through its fragment, as a component would re-render it, without fetching it again.
// The same input is committed a second time (same idempotencyKey: the gateway answers with the same
// lead), and an invalid one (answered with userErrors and no edge).
//
// usage: node relay-mutation.mjs <artifact directory> <gateway /graphql url> <bearer token> <inputs JSON>
//   inputs: {"created": CreateLeadInput, "invalid": CreateLeadInput}
//
// Prints ONE JSON object on stdout with what it saw; every check is made by the pytest side
// (tests/e2e/test_frontend_clients.py), not here.
import RelayRuntime from 'relay-runtime';

import { loadArtifacts, relayEnvironment } from './relay-environment.mjs';

const { ConnectionHandler, ROOT_ID, commitMutation, createOperationDescriptor, fetchQuery } = RelayRuntime;

const [artifactDir, url, token, inputsJson] = process.argv.slice(2);
if (!artifactDir || !url || !token || !inputsJson) {
  console.error('usage: node relay-mutation.mjs <artifact dir> <url> <token> <inputs JSON>');
  process.exit(2);
}
const inputs = JSON.parse(inputsJson);

const artifacts = loadArtifacts(artifactDir);
const { LeadListQuery, LeadListPaginationQuery, LeadList_query, LeadDetails_lead, LeadCreateMutation } = artifacts;

const { environment, requests, readFragment } = relayEnvironment(url, token);

// The unfiltered list, paged to its end the way usePaginationFragment does.
const listVariables = { count: 25, filter: null };
const listOperation = createOperationDescriptor(LeadListQuery, listVariables);
environment.retain(listOperation); // a mounted component retains its query
const readList = () => readFragment(LeadList_query, environment.lookup(listOperation.fragment).data).leads;
function view(list) {
  return {
    ids: list.edges.map((e) => e.node.databaseId),
    cursors: list.edges.map((e) => e.cursor),
    totalCount: list.totalCount,
    pageInfo: { ...list.pageInfo },
  };
}

await fetchQuery(environment, LeadListQuery, listVariables).toPromise();
let list = readList();
let pages = 1;
while (list.pageInfo.hasNextPage) {
  await fetchQuery(environment, LeadListPaginationQuery,
    { count: 25, cursor: list.pageInfo.endCursor, filter: null }).toPromise();
  pages += 1;
  list = readList();
}

const out = { artifacts: { LeadCreateMutation }, loaded: { ...view(list), pages, requests: requests.length } };

// The store ID of the unfiltered list's connection record: the `@connection` key, and its `filters`
// (["filter"]) with their values in the list's query (null: Relay leaves null filters out of the ID).
const connectionID = ConnectionHandler.getConnectionID(ROOT_ID, 'LeadList_leads', { filter: null });
out.connectionID = connectionID;
out.connectionExists = environment.getStore().getSource().get(connectionID) != null;

// commitMutation, as useMutation's commit does; what onCompleted / onError got.
function commit(input) {
  const first = requests.length;
  return new Promise((resolve) => {
    commitMutation(environment, {
      mutation: LeadCreateMutation,
      variables: { input, connections: [connectionID] },
      onCompleted(response, errors) {
        const edge = response.createLead.leadEdge;
        resolve({
          completed: true,
          leadEdge: edge && { cursor: edge.cursor, id: edge.node.id, databaseId: edge.node.databaseId },
          userErrors: response.createLead.userErrors,
          errors: errors ?? null,
          requests: requests.slice(first),
        });
      },
      onError(error) {
        resolve({ completed: false, error: String(error), requests: requests.slice(first) });
      },
    });
  });
}

function listNow() {
  const now = readList();
  const last = now.edges[now.edges.length - 1];
  return { ...view(now), lastDetails: readFragment(LeadDetails_lead, last.node) };
}

out.created = await commit(inputs.created);
out.afterCreate = listNow();
out.replayed = await commit(inputs.created);
out.afterReplay = listNow();
out.invalid = await commit(inputs.invalid);
out.afterInvalid = listNow();

const source = environment.getStore().getSource();
const records = source.getRecordIDs().map((id) => ({ id, record: source.get(id) }));
const createdId = out.created.leadEdge?.databaseId;
out.store = {
  recordsForCreated: records.filter((r) => r.record.__typename === 'Lead' && r.record.databaseId === createdId)
    .map((r) => r.id),
  connectionRecords: records.filter((r) => r.record.__typename === 'LeadConnection').map((r) => r.id).sort(),
};
out.requests = requests;
process.stdout.write(`${JSON.stringify(out)}\n`);
