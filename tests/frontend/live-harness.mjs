// What the live-data scripts (*-subscription.mjs) share: their plan, a clock, progress lines on stdout,
// bounded waits, and the demo upstream's control call that changes (POST) or removes (DELETE) a lead of the
// script's tenant.
export function liveHarness(demoUrl, token, planJson) {
  const plan = JSON.parse(planJson);
  const timeoutMs = plan.timeoutMs ?? 20000;
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
  const phase = (name, extra = {}) =>
    process.stdout.write(`${JSON.stringify({ phase: name, t: elapsed(), ...extra })}\n`);

  async function waitFor(predicate, ms = timeoutMs) {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
    return true;
  }

  async function control(method, id, body) {
    const response = await fetch(`${demoUrl}/_demo/leads/${id}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { method, id, body: body ?? null, status: response.status, t: elapsed() };
  }

  // The steps every script takes first: the first event, a quiet while (nothing should arrive), then one lead
  // changed through the control call and the next event (which should show it); recorded into `out`.
  async function firstQuietChange(events, ended, out) {
    out.gotFirst = await waitFor(() => events.length >= 1 || ended.error);
    out.first = events[0] ?? null;
    phase('first');
    await sleep(plan.quietMs);
    out.quietEvents = events.slice(1);
    const before = events.length;
    out.change = await control('POST', plan.change.id, plan.change.body);
    out.gotChanged = await waitFor(() => events.length > before || ended.error);
    out.changed = events[before] ?? null;
  }

  return { plan, timeoutMs, elapsed, sleep, phase, waitFor, control, firstQuietChange };
}
