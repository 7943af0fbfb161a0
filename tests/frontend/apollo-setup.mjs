// What the Apollo scripts share (apollo-client.mjs, apollo-mutation.mjs): a client as an app would make
// it (HttpLink with the caller's token, InMemoryCache with relayStylePagination keyed by `filter` and the
// schema's possibleTypes), a record of every request it sends, and a watched query as useQuery keeps one.
import { readFileSync } from 'node:fs';
import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client/core/index.js';
import { relayStylePagination } from '@apollo/client/utilities/index.js';
import { buildSchema, isAbstractType } from 'graphql';

// possibleTypes (Node -> Lead, Campaign; _Entity -> ...) from the schema file, so that
// `... on Lead` inside `node(id)` matches without Apollo's heuristic fragment matching.
const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'),
  { assumeValidSDL: true });
export const possibleTypes = {};
for (const type of Object.values(schema.getTypeMap())) {
  if (isAbstractType(type)) possibleTypes[type.name] = schema.getPossibleTypes(type).map((t) => t.name);
}

// Every HTTP request the clients make, with its operation and variables.
export const requests = [];
const countingFetch = (input, init) => {
  const body = JSON.parse(init.body);
  requests.push({ operationName: body.operationName, variables: body.variables });
  return fetch(input, init);
};

export function makeClient(url, authToken) {
  return new ApolloClient({
    link: new HttpLink({
      uri: url,
      fetch: countingFetch,
      headers: authToken ? { Authorization: `Bearer ${authToken}` } : {},
    }),
    cache: new InMemoryCache({
      possibleTypes,
      typePolicies: { Query: { fields: { leads: relayStylePagination(['filter']) } } },
    }),
  });
}

// A watched query, as useQuery keeps one: resolves once the first page has arrived.
export function watch(client, query, variables) {
  const observable = client.watchQuery({ query, variables });
  return new Promise((resolve, reject) => {
    const watched = { observable };
    watched.subscription = observable.subscribe({
      next(result) {
        if (!result.loading) resolve(watched);
      },
      error: reject,
    });
  });
}
