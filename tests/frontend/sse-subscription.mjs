// graphql-sse's client subscribed to the gateway over GraphQL over Server-Sent Events, distinct connections
// mode (`singleConnection: false`: each subscription is one POST with Accept: text/event-stream, the token
// in its Authorization header), as an app without WebSockets would.
//
// 1. `leads(first)`: the first event; a quiet while (nothing should arrive); a lead changed through the demo
//    upstream's control call and the next event; another quiet while; then the subscription disposed of
//    (its request aborted), another lead changed, and a last quiet while.
// 2. `lead(databaseId)`: the first event; the lead removed through the control call (DELETE); the next event
//    (null: it is gone).
//
// usage: node sse-subscription.mjs <gateway /graphql url> <demo upstream url> <token> <plan JSON>
//   plan: as apollo-subscription.mjs's, plus "remove": <databaseId> for step 2
//
// Prints progress lines ({"phase": ...}) and, last, ONE JSON object with what it saw; every check is made
// by the pytest side (tests/e2e/test_live_clients.py).
import { createClient } from 'graphql-sse';
import { liveHarness } from './live-harness.mjs';

const [url, demoUrl, token, planJson] = process.argv.slice(2);
if (!url || !demoUrl || !token || !planJson) {
  console.error('usage: node sse-subscription.mjs <url> <demo url> <token> <plan JSON>');
  process.exit(2);
}
const { plan, elapsed, sleep, phase, waitFor, control, firstQuietChange } = liveHarness(demoUrl, token, planJson);

// Every request the client makes, and how the gateway answered (the stream's content type).
const http = [];
const requests = [];
const recordingFetch = async (input, init = {}) => {
  const headers = new Headers(init.headers);
  const entry = { method: init.method ?? 'GET', accept: headers.get('accept'),
    authorization: headers.get('authorization'), t: elapsed() };
  http.push(entry);
  if (init.signal) init.signal.addEventListener('abort', () => { entry.abortedAt = elapsed(); });
  const response = await fetch(input, init);
  entry.status = response.status;
  entry.contentType = response.headers.get('content-type');
  return response;
};

const client = createClient({
  url,
  singleConnection: false,
  headers: { Authorization: `Bearer ${token}` },
  fetchFn: recordingFetch,
  retryAttempts: 0,
});

function subscribe(query, variables, events, ended) {
  requests.push({ query, variables });
  return client.subscribe({ query, variables }, {
    next: (result) => events.push({ t: elapsed(), data: result.data ?? null, errors: result.errors ?? null }),
    error: (error) => { ended.error = { message: String(error?.message ?? error), t: elapsed() }; },
    complete: () => { ended.completed = true; ended.completedAt = elapsed(); },
  });
}

const LIVE_LEADS = `subscription LiveLeads($first: Int) {
  leads(first: $first) {
    totalCount
    edges { cursor node { id databaseId customerName status } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const LIVE_LEAD = `subscription LiveLead($databaseId: Int!) {
  lead(databaseId: $databaseId) { id databaseId status }
}`;

const out = { leads: {}, lead: {} };

// 1. leads(first)
{
  const o = out.leads;
  const events = [];
  const ended = { completed: false, error: null };
  phase('subscribing');
  const dispose = subscribe(LIVE_LEADS, { first: plan.first }, events, ended);
  try {
    await firstQuietChange(events, ended, o);

    const afterChange = events.length;
    await sleep(plan.quietMs);
    o.quietAfterChangeEvents = events.slice(afterChange);

    const atDispose = events.length;
    phase('unsubscribing');
    dispose();
    phase('unsubscribed');
    o.afterUnsubscribeChange = await control('POST', plan.afterUnsubscribe.id, plan.afterUnsubscribe.body);
    await sleep(plan.quietAfterUnsubscribeMs ?? plan.quietMs);
    o.eventsAfterUnsubscribe = events.slice(atDispose);
    phase('quiet-after-unsubscribe');
  } finally {
    o.events = events;
    o.ended = ended;
  }
}

// 2. lead(databaseId), then the lead removed
if (plan.remove !== undefined) {
  const o = out.lead;
  const events = [];
  const ended = { completed: false, error: null };
  const dispose = subscribe(LIVE_LEAD, { databaseId: plan.remove }, events, ended);
  try {
    o.gotFirst = await waitFor(() => events.length >= 1 || ended.error);
    o.first = events[0] ?? null;
    const before = events.length;
    o.remove = await control('DELETE', plan.remove);
    o.gotRemoved = await waitFor(() => events.length > before || ended.error);
    o.removed = events[before] ?? null;
    await sleep(plan.quietMs);
    o.afterRemoved = events.slice(before + 1);
  } finally {
    o.events = events;
    o.ended = { ...ended };
    dispose();
  }
}

out.http = http;
out.requests = requests;
client.dispose();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
