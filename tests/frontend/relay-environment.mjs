// What the Relay scripts share (relay-client.mjs, relay-mutation.mjs): the artifacts relay-compiler
// generated, and a relay-runtime Environment whose network POSTs to the gateway with the caller's token
// and records every request it sends.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import RelayRuntime from 'relay-runtime';

const { Environment, Network, RecordSource, Store, getSingularSelector } = RelayRuntime;

// The generated artifacts are CommonJS (eagerEsModules: false), one per operation and fragment, by name.
export function loadArtifacts(artifactDir) {
  const require = createRequire(import.meta.url);
  const artifacts = {};
  for (const file of readdirSync(artifactDir).filter((f) => f.endsWith('.graphql.js')).sort()) {
    artifacts[file.slice(0, -'.graphql.js'.length)] = require(path.resolve(artifactDir, file));
  }
  return artifacts;
}

// An Environment on the gateway at `url` for the holder of `token`; `requests` lists what it sent, and
// `readFragment` reads a fragment the way useFragment does: from a fragment reference, through the store.
// `body` makes the request's JSON from the operation (default: its text), `send` is the fetch it goes through.
export function relayEnvironment(url, token, { body = (params, variables) => ({ query: params.text, variables }),
                                               send = fetch } = {}) {
  const requests = [];
  const network = Network.create(async (params, variables) => {
    requests.push({ name: params.name, variables });
    const response = await send(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify(body(params, variables)),
    });
    return response.json();
  });
  const environment = new Environment({ network, store: new Store(new RecordSource()) });
  const readFragment = (fragment, ref) => environment.lookup(getSingularSelector(fragment, ref)).data;
  return { environment, requests, readFragment };
}
