// Relay without React, subscribed: an Environment whose Network has both functions an app gives it,
// `Network.create(fetchFn, subscribeFn)`, subscribeFn on a graphql-ws client (subprotocol
// graphql-transport-ws, the token in connection_init's payload), and requestSubscription with
// LeadsLiveSubscription (relay/src/LeadsLive.js, compiled by relay-compiler) as useSubscription runs it.
//
// It takes the first event, waits a quiet while (nothing should arrive), changes a lead through the demo
// upstream's control call, takes the next event and reads the lead back from the store through
// LeadDetails_lead (as a component would re-render), waits another quiet while, then disposes of the
// subscription (the socket stays open: lazy: false), changes another lead and waits again.
//
// usage: node relay-subscription.mjs <artifact dir> <gateway /graphql url> <demo upstream url> <token> <plan JSON>
//   plan: as apollo-subscription.mjs's
//
// Prints progress lines ({"phase": ...}) and, last, ONE JSON object with what it saw; every check is made
// by the pytest side (tests/e2e/test_live_clients.py).
import { createClient } from 'graphql-ws';
import RelayRuntime from 'relay-runtime';
import WebSocket from 'ws';

import { loadArtifacts } from './relay-environment.mjs';
import { liveHarness } from './live-harness.mjs';

const {
  Environment, Network, Observable, RecordSource, Store, getSingularSelector, requestSubscription,
} = RelayRuntime;

const [artifactDir, url, demoUrl, token, planJson] = process.argv.slice(2);
if (!artifactDir || !url || !demoUrl || !token || !planJson) {
  console.error('usage: node relay-subscription.mjs <artifact dir> <url> <demo url> <token> <plan JSON>');
  process.exit(2);
}
const { plan, elapsed, sleep, phase, control, firstQuietChange } = liveHarness(demoUrl, token, planJson);

const { LeadsLiveSubscription, LeadDetails_lead } = loadArtifacts(artifactDir);

const socket = { protocol: null, connected: 0, closed: [] };
const wsClient = createClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  lazy: false,
  retryAttempts: 0,
  onNonLazyError: () => {},
  on: {
    connected: (ws) => { socket.connected += 1; socket.protocol = ws.protocol; },
    closed: (event) => { socket.closed.push({ code: event.code, reason: event.reason, t: elapsed() }); },
  },
});

// What the network was asked for: queries over fetch (none here), subscriptions over the socket.
const sent = [];
function fetchFn(params, variables) {
  sent.push({ kind: 'fetch', name: params.name, variables });
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: params.text, variables }),
  }).then((r) => r.json());
}
function subscribeFn(params, variables) {
  sent.push({ kind: 'subscribe', name: params.name, operationKind: params.operationKind, variables,
    text: params.text });
  return Observable.create((sink) => wsClient.subscribe(
    { operationName: params.name, query: params.text, variables }, sink));
}

const environment = new Environment({
  network: Network.create(fetchFn, subscribeFn),
  store: new Store(new RecordSource()),
});
const readFragment = (fragment, ref) => environment.lookup(getSingularSelector(fragment, ref)).data;

const events = [];
const ended = { completed: false, error: null };
const view = (data) => ({
  t: elapsed(),
  leads: data?.leads && {
    totalCount: data.leads.totalCount,
    nodes: data.leads.edges.map((e) => ({ id: e.node.id, databaseId: e.node.databaseId, status: e.node.status })),
    cursors: data.leads.edges.map((e) => e.cursor),
    pageInfo: { ...data.leads.pageInfo },
  },
  // LeadDetails_lead of each node, read through the store as a component would.
  details: data?.leads?.edges.map((e) => readFragment(LeadDetails_lead, e.node)) ?? null,
});

const out = {};
phase('subscribing');
const disposable = requestSubscription(environment, {
  subscription: LeadsLiveSubscription,
  variables: { first: plan.first, filter: null },
  onNext: (data) => events.push(view(data)),
  onError: (error) => { ended.error = { message: String(error?.message ?? error), t: elapsed() }; },
  onCompleted: () => { ended.completed = true; },
});

try {
  await firstQuietChange(events, ended, out);

  const afterChange = events.length;
  await sleep(plan.quietMs);
  out.quietAfterChangeEvents = events.slice(afterChange);

  // The changed lead's record in the store (normalised by its `id`).
  const node = out.changed?.leads?.nodes.find((n) => n.databaseId === plan.change.id);
  const record = node ? environment.getStore().getSource().get(node.id) : null;
  out.storeRecord = record ? { id: record.id, databaseId: record.databaseId, status: record.status } : null;

  const atDispose = events.length;
  phase('unsubscribing');
  disposable.dispose();
  phase('unsubscribed');
  out.afterUnsubscribeChange = await control('POST', plan.afterUnsubscribe.id, plan.afterUnsubscribe.body);
  await sleep(plan.quietAfterUnsubscribeMs ?? plan.quietMs);
  out.eventsAfterUnsubscribe = events.slice(atDispose);
  phase('quiet-after-unsubscribe');
} finally {
  out.events = events;
  out.ended = ended;
  out.sent = sent;
  out.socket = { ...socket, closed: [...socket.closed] };
}

await wsClient.dispose();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
