// Hive Gateway's configuration for the benchmark peer. bench/hive.py starts it as
//   node .../@graphql-hive/gateway/dist/bin.js supergraph SUPERGRAPH --config-path gateway.config.ts \
//        --fork 1 --host 127.0.0.1 --port P
// One process: with --fork 1 (also the CLI's default) the CLI never calls cluster.fork() (it does only
// for fork > 1) and the process it started serves; bench/hive.py also drops FORK from the environment,
// since a CLI flag or FORK would override a `fork` set here.
// Env: HIVE_RESPONSE_CACHE=1|0 (default 0), HIVE_RESPONSE_CACHE_TTL_MS (default 300000 = 300 s).
import { defineConfig } from '@graphql-hive/gateway';

const cacheOn = process.env.HIVE_RESPONSE_CACHE === '1';
const ttl = Number(process.env.HIVE_RESPONSE_CACHE_TTL_MS ?? 300_000);

export const gatewayConfig = defineConfig({
  graphqlEndpoint: '/graphql',
  healthCheckEndpoint: '/healthcheck',
  readinessCheckEndpoint: '/readiness', // 200 once the supergraph is loaded
  // Nothing that loads from or reports to the internet: no GraphiQL/Laboratory (CDN assets), no
  // landing page; usage reporting and OpenTelemetry stay off (no `reporting`, no --opentelemetry).
  graphiql: false,
  landingPage: false,
  // Per-tenant response cache: the key includes the Authorization header, so one tenant never gets
  // another's leads. No extension metadata, so a cached answer is byte-for-byte the uncached one.
  responseCaching: cacheOn
    ? {
        session: (request: Request) => request.headers.get('authorization'),
        ttl, // milliseconds
        includeExtensionMetadata: false,
      }
    : undefined,
});
