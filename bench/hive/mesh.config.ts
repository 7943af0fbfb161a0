// Composes the supergraph Hive Gateway serves: one subgraph ("Leads") generated from openapi.json.
//   LEADS_UPSTREAM_URL=http://127.0.0.1:PORT npx mesh-compose -o supergraph.graphql
// bench/hive.py's compose() runs exactly that.
import { defineConfig } from '@graphql-mesh/compose-cli';
import { loadOpenAPISubgraph } from '@omnigraph/openapi';

const upstream = process.env.LEADS_UPSTREAM_URL;
if (!upstream) {
  throw new Error('LEADS_UPSTREAM_URL (the upstream base URL, e.g. http://127.0.0.1:8080) is required');
}

export const composeConfig = defineConfig({
  subgraphs: [
    {
      sourceHandler: loadOpenAPISubgraph('Leads', {
        source: './openapi.json',
        // Overrides the document's placeholder server; baked into the supergraph (@transport directive).
        endpoint: upstream.replace(/\/+$/, ''),
        // Each tenant is its bearer token: forward the client's Authorization header to the upstream.
        operationHeaders: {
          Authorization: '{context.headers.authorization}',
        },
      }),
    },
  ],
});
