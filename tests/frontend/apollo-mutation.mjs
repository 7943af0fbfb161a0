// Apollo Client 3 writing through the gateway: the `createLead` mutation run with `client.mutate`,
// and the new lead brought into a list that relayStylePagination merged from many pages, in the two
// ways an Apollo app does it:
//
// - `update` + `cache.modify`: the mutation's `leadEdge` appended to the cached `leads` field (and
//   totalCount bumped), with no request but the mutation's;
// - `refetchQueries` (awaitRefetchQueries): the active list query fetched again.
//
// and a mutation answered with `userErrors`, which Apollo hands over as data.
//
// usage: node apollo-mutation.mjs <gateway /graphql url> <bearer token> <inputs JSON>
//   inputs: {"appended": CreateLeadInput, "refetched": CreateLeadInput, "invalid": CreateLeadInput}
//
// Prints ONE JSON object on stdout with what it saw; every check is made by the pytest side
// (tests/e2e/test_frontend_clients.py), not here.
import { gql } from '@apollo/client/core/index.js';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev/index.js';

import { makeClient, requests, watch } from './apollo-setup.mjs';

loadDevMessages(); // Apollo's warnings in words (on stderr), not as go.apollo.dev links
loadErrorMessages();

const [url, token, inputsJson] = process.argv.slice(2);
if (!url || !token || !inputsJson) {
  console.error('usage: node apollo-mutation.mjs <url> <token> <inputs JSON>');
  process.exit(2);
}
const inputs = JSON.parse(inputsJson);

const client = makeClient(url, token);

const LEADS = gql`
  query LeadsList($first: Int, $after: String, $filter: LeadFilter) {
    leads(first: $first, after: $after, filter: $filter) {
      totalCount
      edges { cursor node { id databaseId customerName status } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
`;
// The edge's node selects what the list selects, so that the appended edge can be read back with it.
const CREATE_LEAD = gql`
  mutation CreateLead($input: CreateLeadInput!) {
    createLead(input: $input) {
      lead { id databaseId customerName status phoneNumber email createdAt campaign { id databaseId name } }
      leadEdge { cursor node { id databaseId customerName status } }
      userErrors { field message code }
    }
  }
`;

// The unfiltered list, where every new lead lands (last: ids ascend). A filtered list may or may not
// hold the lead, so the update leaves those alone.
const UNFILTERED = 'leads:{}';

// `update`: what the docs' "Updating the cache directly" does for a paginated list.
function appendEdge(cache, { data }) {
  const edge = data?.createLead?.leadEdge;
  if (!edge) return; // userErrors: nothing was created
  cache.modify({
    fields: {
      leads(existing, { storeFieldName, toReference }) {
        if (storeFieldName !== UNFILTERED || !existing) return existing;
        const node = toReference(edge.node); // the Lead entry the mutation's result was written to
        if (existing.edges.some((e) => e.node.__ref === node.__ref)) return existing;
        return {
          ...existing,
          totalCount: existing.totalCount + 1,
          edges: [...existing.edges, { __typename: edge.__typename, cursor: edge.cursor, node }],
          // relayStylePagination reads endCursor from here; a later fetchMore continues after the new lead.
          pageInfo: { ...existing.pageInfo, endCursor: edge.cursor },
        };
      },
    },
  });
}

// The list as a component's useQuery sees it.
function snapshot(leads) {
  return {
    ids: leads.edges.map((e) => e.node.databaseId),
    cursors: leads.edges.map((e) => e.cursor),
    totalCount: leads.totalCount,
    pageInfo: { ...leads.pageInfo, __typename: undefined },
  };
}
const watchedList = (observable) => snapshot(observable.getCurrentResult().data.leads);
// The list from the cache alone (keyArgs: only `filter`, so `first` does not matter here).
const cachedList = () => snapshot(client.readQuery({ query: LEADS, variables: { first: 25 } }).leads);

// fetchMore({ after: endCursor }) until hasNextPage is false.
async function pageOn(observable) {
  let fetchMores = 0;
  let { pageInfo } = observable.getCurrentResult().data.leads;
  while (pageInfo.hasNextPage) {
    await observable.fetchMore({ variables: { after: pageInfo.endCursor } });
    fetchMores += 1;
    pageInfo = observable.getCurrentResult().data.leads.pageInfo;
  }
  return fetchMores;
}

// What client.mutate resolved to (or threw), and the requests it made.
async function mutate(options) {
  const first = requests.length;
  try {
    const result = await client.mutate({ mutation: CREATE_LEAD, ...options });
    return { thrown: false, data: result.data, errors: result.errors ?? null, requests: requests.slice(first) };
  } catch (error) {
    return {
      thrown: true,
      name: error.name,
      message: error.message,
      graphQLErrors: (error.graphQLErrors || []).map((e) => ({ message: e.message, extensions: e.extensions })),
      requests: requests.slice(first),
    };
  }
}

// The cache entry of the created lead, and how often the list's stored edges point at it.
function entryOf(lead) {
  const cacheId = client.cache.identify({ __typename: 'Lead', id: lead.id });
  const extract = client.cache.extract();
  return {
    cacheId,
    entry: extract[cacheId] ?? null,
    listRefs: extract.ROOT_QUERY[UNFILTERED].edges.filter((e) => e.node.__ref === cacheId).length,
  };
}

const out = {};

// The whole unfiltered list, page by page.
const all = await watch(client, LEADS, { first: 25 });
const loadFetchMores = await pageOn(all.observable);
out.loaded = { ...cachedList(), fetchMores: loadFetchMores, requests: requests.length };

// 1. update + cache.modify: the new edge appended in the cache; the list is not fetched again.
const appended = await mutate({ variables: { input: inputs.appended }, update: appendEdge });
out.appended = {
  ...appended,
  list: cachedList(),
  watched: watchedList(all.observable),
  ...(appended.data?.createLead?.lead ? entryOf(appended.data.createLead.lead) : {}),
  requestsAfterRead: requests.length - out.loaded.requests - appended.requests.length,
};

// 2. refetchQueries: the active LeadsList query fetched again once the mutation is done. It runs with
// the watched query's own variables (first: 25, no `after`), so relayStylePagination replaces the
// merged list with that first page; paging on brings the rest back.
const refetched = await mutate({
  variables: { input: inputs.refetched },
  refetchQueries: ['LeadsList'],
  awaitRefetchQueries: true,
});
const afterRefetch = cachedList();
const repageStart = requests.length;
const repageFetchMores = await pageOn(all.observable);
out.refetched = {
  ...refetched, // its requests: the mutation's, then the refetch (awaited before mutate resolved)
  afterRefetch,
  paged: { ...cachedList(), fetchMores: repageFetchMores, requests: requests.slice(repageStart) },
  watched: watchedList(all.observable),
  ...(refetched.data?.createLead?.lead ? entryOf(refetched.data.createLead.lead) : {}),
};

// 3. userErrors: a result like any other, with the same `update` (which finds no edge to append).
const listBefore = cachedList();
const invalid = await mutate({ variables: { input: inputs.invalid }, update: appendEdge });
out.invalid = { ...invalid, listUnchanged: JSON.stringify(cachedList()) === JSON.stringify(listBefore) };

out.requests = requests;
all.subscription.unsubscribe();
client.stop();
process.stdout.write(`${JSON.stringify(out)}\n`);
