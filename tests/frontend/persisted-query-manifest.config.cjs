// @apollo/generate-persisted-query-manifest: Apollo Client's persisted query manifest
// ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{id, body, name, type}]}) for the
// operations of examples/*.graphql, as Apollo Client sends them (`__typename` added; id = sha256 of body). The
// gateway loads it from GATEWAY_PERSISTED_DOCUMENTS.
//   cd tests/frontend && npx generate-persisted-query-manifest
// Paths are relative to this folder; tests/e2e/test_persisted_clients.py points PQ_MANIFEST_OUTPUT elsewhere.
module.exports = {
  documents: [process.env.PQ_MANIFEST_DOCUMENTS || '../../examples/*.graphql'],
  output: process.env.PQ_MANIFEST_OUTPUT || '__generated__/persisted-query-manifest.json',
};
