// Apollo Client 3 (the real package, in Node 20: InMemoryCache + HttpLink over the global fetch, no
// React) against the gateway, configured the way the README tells frontend developers to:
//   typePolicies: { Query: { fields: { leads: relayStylePagination(["filter"]) } } }
//
// usage: node apollo-client.mjs <gateway /graphql url> <bearer token>
//
// It pages, refetches and reads the cache, and prints ONE JSON object on stdout with what it saw;
// every check is made by the pytest side (tests/e2e/test_frontend_clients.py), not here.
import { ApolloError, gql } from '@apollo/client/core/index.js';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev/index.js';

import { makeClient, possibleTypes, requests, watch } from './apollo-setup.mjs';

loadDevMessages(); // Apollo's warnings in words (on stderr), not as go.apollo.dev links
loadErrorMessages();

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node apollo-client.mjs <url> <token>');
  process.exit(2);
}

const LEADS = gql`
  query LeadsList($first: Int, $after: String, $last: Int, $before: String, $filter: LeadFilter) {
    leads(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
      totalCount
      edges { cursor node { id databaseId customerName status } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
`;
const LEAD_BY_DATABASE_ID = gql`
  query LeadByDatabaseId($databaseId: Int!) {
    lead(databaseId: $databaseId) { id databaseId phoneNumber email campaign { id databaseId name } }
  }
`;
const NODE_BY_ID = gql`
  query NodeById($id: ID!) { node(id: $id) { id ... on Lead { createdAt updatedAt } } }
`;
const MERGED_LEAD = gql`
  fragment MergedLead on Lead {
    id databaseId customerName status phoneNumber email createdAt updatedAt campaign { databaseId name }
  }
`;

const client = makeClient(url, token);

// What a component sees: the merged list the cache reads back through relayStylePagination.
function snapshot(observable) {
  const { leads } = observable.getCurrentResult().data;
  return {
    ids: leads.edges.map((e) => e.node.databaseId),
    totalCount: leads.totalCount,
    pageInfo: { ...leads.pageInfo, __typename: undefined },
  };
}

// Forward: first 25, then fetchMore({ after: endCursor }) until hasNextPage is false.
async function pageForward(variables) {
  const { observable, subscription } = await watch(client, LEADS, variables);
  let fetchMores = 0;
  let { pageInfo } = observable.getCurrentResult().data.leads;
  while (pageInfo.hasNextPage) {
    await observable.fetchMore({ variables: { after: pageInfo.endCursor } });
    fetchMores += 1;
    pageInfo = observable.getCurrentResult().data.leads.pageInfo;
  }
  return { observable, subscription, fetchMores };
}

const out = { possibleTypes };

const all = await pageForward({ first: 25 });
out.forward = { ...snapshot(all.observable), fetchMores: all.fetchMores };

const completed = await pageForward({ first: 25, filter: { status: 'COMPLETED' } });
out.filtered = { filter: { status: 'COMPLETED' }, ...snapshot(completed.observable), fetchMores: completed.fetchMores };

// Backward, under a third filter: the last 10, then fetchMore({ last: 10, before: startCursor }) once.
const backward = await watch(client, LEADS, { last: 10, filter: { status: 'SCHEDULED' } });
const lastPage = snapshot(backward.observable);
await backward.observable.fetchMore({ variables: { before: lastPage.pageInfo.startCursor } });
out.backward = { filter: { status: 'SCHEDULED' }, lastPage, afterBefore: snapshot(backward.observable) };

// The three lists live side by side: the unfiltered one is still whole.
out.forwardAfterOtherLists = snapshot(all.observable);

// Normalisation: a lead already in the cache (from the list, on the second page), fetched again by
// lead(databaseId) and by node(id) with other fields, lands on the same cache object.
const picked = all.observable.getCurrentResult().data.leads.edges[30].node;
const byDatabaseId = await client.query({ query: LEAD_BY_DATABASE_ID, variables: { databaseId: picked.databaseId } });
const byNode = await client.query({ query: NODE_BY_ID, variables: { id: picked.id } });
const cacheId = client.cache.identify({ __typename: 'Lead', id: picked.id });
const extract = client.cache.extract();
const leadKeys = Object.keys(extract).filter((k) => k.startsWith('Lead:'));
out.normalisation = {
  picked: { id: picked.id, databaseId: picked.databaseId },
  cacheId,
  entriesForPicked: leadKeys.filter((k) => extract[k].databaseId === picked.databaseId),
  entry: extract[cacheId],
  leadEntries: leadKeys.length,
  campaignEntries: Object.keys(extract).filter((k) => k.startsWith('Campaign:')).length,
  rootQueryKeys: Object.keys(extract.ROOT_QUERY).sort(),
  rootLead: extract.ROOT_QUERY[`lead({"databaseId":${picked.databaseId}})`],
  rootNode: extract.ROOT_QUERY[`node({"id":"${picked.id}"})`],
  queried: { byDatabaseId: byDatabaseId.data.lead, byNode: byNode.data.node },
  fragment: client.readFragment({ id: cacheId, fragment: MERGED_LEAD }),
};

// How errors reach an Apollo app (network-only: relayStylePagination would otherwise answer a
// `leads` query from the cached list, whatever its `after`).
async function failure(run) {
  try {
    await run();
    return { thrown: false };
  } catch (error) {
    const network = error.networkError;
    return {
      thrown: true,
      apolloError: error instanceof ApolloError,
      graphQLErrors: (error.graphQLErrors || []).map((e) => ({ message: e.message, extensions: e.extensions })),
      networkStatus: network?.statusCode ?? null,
      networkErrorCodes: (network?.result?.errors || []).map((e) => e.extensions?.code),
    };
  }
}
out.errors = {
  badCursor: await failure(() => client.query({ query: LEADS, variables: { first: 5, after: 'not-a-cursor' },
    fetchPolicy: 'network-only' })),
  noToken: await failure(() => makeClient(url, null).query({ query: LEADS, variables: { first: 5 }, fetchPolicy: 'network-only' })),
  invalidDocument: await failure(() => client.query({ query: gql`query Invalid { leads(first: 1) { nope } }`,
    fetchPolicy: 'network-only' })),
};

out.requests = requests;
for (const o of [all, completed, backward]) o.subscription.unsubscribe();
client.stop();
process.stdout.write(`${JSON.stringify(out)}\n`);
