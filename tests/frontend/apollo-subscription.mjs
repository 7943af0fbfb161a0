// Apollo Client 3 subscribed to the gateway's live `leads` window, over either transport an Apollo app uses:
//
// - `ws`: GraphQLWsLink (@apollo/client/link/subscriptions) on a graphql-ws client (subprotocol
//   graphql-transport-ws, the token in connection_init's payload; `ws` as Node's WebSocket);
// - `multipart`: HttpLink, whose subscriptions are Apollo's multipart HTTP subscriptions
//   (Accept: multipart/mixed;subscriptionSpec=1.0), read from Node's streaming fetch.
//
// It subscribes to `leads(first)` with client.subscribe, takes the first event, waits a quiet while
// (nothing changes: nothing should arrive), changes a lead through the demo upstream's control call and takes
// the next event, waits another quiet while, then unsubscribes, changes another lead and waits again (nothing
// should arrive). In `ws` mode the socket is kept open past the unsubscribe (lazy: false), so what stops is
// the subscription, not the connection; a second client without a token records how its socket closes.
//
// usage: node apollo-subscription.mjs <ws|multipart> <gateway /graphql url> <demo upstream url> <token> <plan JSON>
//   plan: {"first": 5, "quietMs": 2500, "timeoutMs": 20000,
//          "change": {"id": 12, "body": {"status": "completed"}}, "afterUnsubscribe": {"id": 13, "body": {}}}
//
// Prints progress lines ({"phase": ...}: the pytest side counts upstream calls between them) and, last, ONE
// JSON object with what it saw; every check is made by the pytest side (tests/e2e/test_live_clients.py).
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { liveHarness } from './live-harness.mjs';

loadDevMessages();
loadErrorMessages();

const [mode, url, demoUrl, token, planJson] = process.argv.slice(2);
if (!['ws', 'multipart'].includes(mode) || !url || !demoUrl || !token || !planJson) {
  console.error('usage: node apollo-subscription.mjs <ws|multipart> <url> <demo url> <token> <plan JSON>');
  process.exit(2);
}
const {
  plan, timeoutMs, elapsed, sleep, phase, control, firstQuietChange,
} = liveHarness(demoUrl, token, planJson);

const LIVE_LEADS = gql`
  subscription LiveLeads($first: Int) {
    leads(first: $first) {
      totalCount
      edges { cursor node { id databaseId customerName status } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

// What went over HTTP (multipart mode): the Accept header sent and the content type answered.
const http = [];
const recordingFetch = async (input, init) => {
  const response = await fetch(input, init);
  http.push({ accept: new Headers(init.headers).get('accept'), status: response.status,
    contentType: response.headers.get('content-type') });
  return response;
};

let wsClient = null;
const socket = { protocol: null, connected: 0, closed: [] };
function makeLink() {
  if (mode === 'multipart') {
    return new HttpLink({ uri: url, fetch: recordingFetch, headers: { Authorization: `Bearer ${token}` } });
  }
  wsClient = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    lazy: false, // one socket for the whole run: an unsubscribe ends the subscription, not the connection
    retryAttempts: 0,
    onNonLazyError: () => {},
    on: {
      connected: (ws) => { socket.connected += 1; socket.protocol = ws.protocol; },
      closed: (event) => { socket.closed.push({ code: event.code, reason: event.reason, t: elapsed() }); },
    },
  });
  return new GraphQLWsLink(wsClient);
}

const client = new ApolloClient({ link: makeLink(), cache: new InMemoryCache() });

const events = [];
const ended = { completed: false, error: null };
const view = (result) => ({
  t: elapsed(),
  errors: result.errors ?? null,
  leads: result.data?.leads && {
    totalCount: result.data.leads.totalCount,
    nodes: result.data.leads.edges.map((e) => ({ id: e.node.id, databaseId: e.node.databaseId,
      customerName: e.node.customerName, status: e.node.status })),
    cursors: result.data.leads.edges.map((e) => e.cursor),
    pageInfo: { hasNextPage: result.data.leads.pageInfo.hasNextPage, endCursor: result.data.leads.pageInfo.endCursor },
  },
});

const out = { mode };
phase('subscribing');
const subscription = client.subscribe({ query: LIVE_LEADS, variables: { first: plan.first } }).subscribe({
  next: (result) => events.push(view(result)),
  error: (error) => { ended.error = { message: String(error?.message ?? error), t: elapsed() }; },
  complete: () => { ended.completed = true; },
});

try {
  await firstQuietChange(events, ended, out);
  out.changeLatencyMs = out.changed ? out.changed.t - out.change.t : null;

  // Quiet again: the change is sent once.
  const afterChange = events.length;
  await sleep(plan.quietMs);
  out.quietAfterChangeEvents = events.slice(afterChange);

  // The cache holds the lead as the last event had it (client.subscribe writes results to the cache).
  const changedNode = out.changed?.leads?.nodes.find((n) => n.databaseId === plan.change.id);
  out.cachedChangedLead = changedNode ? client.cache.extract()[`Lead:${changedNode.id}`] ?? null : null;

  // Unsubscribe; then change another lead: nothing should arrive, and the gateway should stop polling.
  const atUnsubscribe = events.length;
  phase('unsubscribing');
  subscription.unsubscribe();
  out.closedAfterUnsubscribe = subscription.closed;
  phase('unsubscribed');
  out.afterUnsubscribeChange = await control('POST', plan.afterUnsubscribe.id, plan.afterUnsubscribe.body);
  await sleep(plan.quietAfterUnsubscribeMs ?? plan.quietMs);
  out.eventsAfterUnsubscribe = events.slice(atUnsubscribe);
  phase('quiet-after-unsubscribe');
} finally {
  out.events = events;
  out.ended = ended;
}

// ws mode: the socket stayed open through the unsubscribe; then a client without a token.
if (mode === 'ws') {
  out.socket = { ...socket, closed: [...socket.closed] };
  await wsClient.dispose();
  // Without a token: connection_init with no payload at all, and with an empty one.
  async function withoutToken(connectionParams) {
    const seen = { closed: null, error: null, next: [] };
    const anonymous = createClient({
      url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams,
      on: { closed: (event) => { seen.closed ??= { code: event.code, reason: event.reason }; } },
    });
    await new Promise((resolve) => {
      anonymous.subscribe({ query: 'subscription { leads(first: 1) { totalCount } }' }, {
        next: (value) => seen.next.push(value),
        // A CloseEvent (code, reason), or the GraphQL errors of an `error` message.
        error: (error) => {
          seen.error = Array.isArray(error) ? { graphQLErrors: error }
            : { code: error?.code ?? null, reason: error?.reason ?? null, message: error?.message ?? null };
          resolve();
        },
        complete: resolve,
      });
      setTimeout(resolve, timeoutMs);
    });
    await anonymous.dispose();
    return seen;
  }
  out.noToken = await withoutToken(undefined);
  out.emptyPayload = await withoutToken({});
} else {
  out.http = http;
}

client.stop();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
