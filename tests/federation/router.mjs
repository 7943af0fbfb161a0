// A real Apollo Federation 2 router for the end-to-end test.
// usage: node router.mjs <leads subgraph url> <notes subgraph url>
// Composes the two subgraphs' SDL (fetched from their `_service { sdl }`) with @apollo/composition,
// serves the supergraph with Apollo Gateway + Apollo Server on a free loopback port, and prints
// {"url": ...} on stdout once it listens. The client's Authorization header is forwarded to every
// subgraph (the configuration the README documents).
import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { parse } from 'graphql';

const [leadsUrl, notesUrl] = process.argv.slice(2);

async function sdlOf(url) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ _service { sdl } }' }),
  });
  const body = await response.json();
  if (!body.data) throw new Error(`no SDL from ${url}: ${JSON.stringify(body)}`);
  return body.data._service.sdl;
}

const services = [
  { name: 'leads', url: leadsUrl, typeDefs: parse(await sdlOf(leadsUrl)) },
  { name: 'notes', url: notesUrl, typeDefs: parse(await sdlOf(notesUrl)) },
];
const composed = composeServices(services);
if (composed.errors && composed.errors.length) {
  console.error(composed.errors.map((e) => e.message).join('\n'));
  process.exit(3);
}

class ForwardAuthorization extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    if (context.authorization) request.http.headers.set('authorization', context.authorization);
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: composed.supergraphSdl,
  buildService: ({ url }) => new ForwardAuthorization({ url }),
});
const server = new ApolloServer({ gateway, includeStacktraceInErrorResponses: false });
const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port: 0 },
  context: async ({ req }) => ({ authorization: req.headers.authorization }),
});
console.log(JSON.stringify({ url }));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, async () => { await server.stop(); process.exit(0); });
