"""GraphiQL page: opens on an example query and shows how to pass ``Authorization``.

In demo mode (``serve --demo``) a second tab holds an example ``createLead`` mutation, with variables that
work against the demo tenant (one of its campaigns, a phone number its dataset does not have, an
idempotency key so that running it again returns the same lead). It is a GraphiQL default tab: a
first visit shows it; tabs kept in the browser's storage from an earlier visit, or a ``?q=`` link,
win. Not outside demo mode: the page would offer a write against the real API.

The page is strawberry's GraphiQL 3 page (React 18 UMD, graphiql, the explorer plugin), without its
Django-only parts (the CSRF cookie). Subscriptions run over WebSocket (``graphql-transport-ws``) at the same
URL, with the headers editor's ``Authorization`` (or, in demo mode, the demo tenant's token) as the
``connection_init`` payload. Its scripts and styles are the
gateway's own copies (``gateway/http/graphiql/assets.py``, served at ``/graphql/assets/...``) when they are
built, so it works with no internet; otherwise the same pinned files from unpkg, with subresource
integrity.
"""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from pathlib import Path

from gateway.http.graphiql import assets as graphiql_assets
from gateway.http.graphiql.assets import ASSETS, Asset

EXAMPLE_QUERY = """\
# leads-gateway: your leads as a Relay connection over the upstream's pages.
# Run it with the play button; then copy pageInfo.endCursor into `after` to page on.
query Leads($after: String) {
  leads(first: 5, after: $after, filter: {status: COMPLETED}) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    pageCursors { pageCount currentPage around { page cursor } }
    nodes {
      id
      databaseId
      customerName
      phoneNumber
      status
      createdAt
      campaign { databaseId name }
      secondaryContacts { phoneNumber status }
    }
  }
}
"""

EXAMPLE_MUTATION = """\
# Creates a lead in the demo tenant (POST /user/lead).
# It lands at the end of the unfiltered `leads` list.
# Run again with the same idempotencyKey: the same lead.
# Another key and phone number: another lead.
# Mistakes come back as userErrors, e.g. phoneNumber "12".
mutation CreateLead($input: CreateLeadInput!) {
  createLead(input: $input) {
    lead {
      id
      databaseId
      customerName
      phoneNumber
      email
      status
      createdAt
      campaign { databaseId name }
    }
    leadEdge { cursor }
    userErrors { field message code }
  }
}
"""

EXAMPLE_SUBSCRIPTION = """\
# Live data: the window at once, then again whenever it changes.
# The demo upstream moves a lead one status on every few seconds:
# leads enter and leave SCHEDULED, and totalCount follows.
# Press stop (or close the tab) to end it.
subscription LiveLeads {
  leads(first: 5, filter: {status: SCHEDULED}) {
    totalCount
    edges {
      node { databaseId customerName status updatedAt }
    }
  }
}
"""

#: A number of the fictional 555-01xx range that the "demo" tenant's dataset does not have (its test checks).
EXAMPLE_PHONE_NUMBER = "+14155550142"


def example_mutation_variables(token: str | None = None) -> dict:
    """The example mutation's variables, for ``token``'s demo tenant (``"demo"`` by default, the one
    ``serve --demo`` answers for callers without a token): its first campaign.

    No ``variables`` (the JSON scalar): GraphiQL's variables editor marks any object given for a custom
    scalar as an error ("Expected value of type JSON"), although the gateway accepts it."""
    from gateway.demo.data import DEMO_TOKEN, campaigns_for_token  # demo mode only

    return {
        "input": {
            "phoneNumber": EXAMPLE_PHONE_NUMBER,
            "campaignId": campaigns_for_token(token or DEMO_TOKEN)[0]["id"],
            "customerName": "Ada Lovelace",
            "email": "ada@example.com",
            "idempotencyKey": "graphiql-example-1",
        }
    }


def _demo_token() -> str:
    from gateway.demo.data import DEMO_TOKEN  # demo mode only

    return DEMO_TOKEN


_TEMPLATE = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>leads-gateway · GraphiQL</title>
    <link rel="icon" href="data:," />
    <style>
      body { height: 100%; margin: 0; width: 100%; overflow: hidden; }
      #graphiql { height: 100vh; display: flex; }
      .docExplorerHide { display: none; }
      .doc-explorer-contents { overflow-y: hidden !important; }
      .docExplorerWrap { width: unset !important; min-width: unset !important; }
      .graphiql-explorer-actions select { margin-left: 4px; }
    </style>
__HEAD__
  </head>
  <body>
    <div id="graphiql" class="graphiql-container">Loading…</div>
__BODY__
    <script>
      const EXAMPLE_QUERY = __EXAMPLE_QUERY__;
      const DEFAULT_HEADERS = __DEFAULT_HEADERS__;
      const EXAMPLE_MUTATION = __EXAMPLE_MUTATION__;
      const EXAMPLE_MUTATION_VARIABLES = __EXAMPLE_MUTATION_VARIABLES__;
      const EXAMPLE_SUBSCRIPTION = __EXAMPLE_SUBSCRIPTION__;
      const WS_CONNECTION_PARAMS = __WS_CONNECTION_PARAMS__;

      // URL parameters, for sharing queries (?q=...&variables=...&headers=...)
      const parameters = {};
      for (const entry of window.location.search.slice(1).split("&")) {
        const eq = entry.indexOf("=");
        if (eq >= 0) {
          parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(entry.slice(eq + 1));
        }
      }

      function updateURL(data) {
        Object.assign(parameters, data);
        const search = Object.keys(parameters)
          .filter((key) => Boolean(parameters[key]))
          .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
          .join("&");
        history.replaceState(null, null, "?" + search);
      }

      // Queries and mutations over HTTP; subscriptions over WebSocket (graphql-transport-ws) at the same
      // path. The token goes in connection_init's payload: the headers editor's (its `Authorization`),
      // which GraphiQL adds to `wsConnectionParams`, or in demo mode the demo tenant's.
      const graphqlUrl = window.location.href.split("?")[0];
      const subscriptionUrl = new URL(graphqlUrl);
      subscriptionUrl.protocol = subscriptionUrl.protocol.replace("http", "ws");  // wss behind TLS
      const fetcher = GraphiQL.createFetcher({
        url: graphqlUrl,
        subscriptionUrl: subscriptionUrl.href,
        wsConnectionParams: WS_CONNECTION_PARAMS,
      });

      // A first visit's tabs: the example query, then (demo mode) the example mutation and subscription.
      // GraphiQL uses them only when its storage holds no tabs yet; a shared ?q= link opens on that query alone.
      const tabHeaders = parameters.headers || DEFAULT_HEADERS;
      const defaultTabs = parameters.q || !EXAMPLE_MUTATION ? undefined : [
        { query: EXAMPLE_QUERY, variables: parameters.variables, headers: tabHeaders },
        { query: EXAMPLE_MUTATION, variables: EXAMPLE_MUTATION_VARIABLES, headers: tabHeaders },
        { query: EXAMPLE_SUBSCRIPTION, headers: tabHeaders },
      ];

      function GraphiQLWithExplorer() {
        const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
        const [variables, setVariables] = React.useState(parameters.variables);
        const [headers, setHeaders] = React.useState(parameters.headers || DEFAULT_HEADERS);
        const explorerPlugin = React.useMemo(() => GraphiQLPluginExplorer.explorerPlugin(), []);

        return React.createElement(GraphiQL, {
          fetcher: fetcher,
          defaultTabs: defaultTabs,
          defaultEditorToolsVisibility: true,
          plugins: [explorerPlugin],
          query: query,
          variables: variables,
          headers: headers,
          onEditQuery: (q) => { setQuery(q); updateURL({ q: q }); },
          onEditVariables: (v) => { setVariables(v); updateURL({ variables: v }); },
          onEditHeaders: (h) => setHeaders(h),
          inputValueDeprecation: true,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: true,
        });
      }

      ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(GraphiQLWithExplorer));
    </script>
  </body>
</html>
"""


def _tag(asset: Asset, local: bool) -> str:
    """A <link>/<script> for one bundle; the CDN copy needs ``crossorigin`` for its integrity check."""
    url = escape(asset.local_url if local else asset.cdn_url)
    attrs = f'integrity="{escape(asset.integrity)}"' + ("" if local else " crossorigin")
    if asset.kind == "style":
        return f'    <link rel="stylesheet" href="{url}" {attrs} />'
    return f'    <script src="{url}" {attrs}></script>'


def _script_literal(value: str) -> str:
    """A JS string literal safe inside <script> (no ``</script>``, no ``<!--``)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def graphiql_html(demo: bool, assets_dir: Path | None = None) -> str:
    """The page; in demo mode no token is needed, otherwise the headers editor shows where it goes.

    Local bundles are used when all of them are built and intact (checked on each call, cheaply:
    hashes are cached per file size and mtime), so building them while the gateway runs takes effect."""
    local = graphiql_assets.local_assets_available(assets_dir)
    return _render(demo, local)


@lru_cache(maxsize=4)
def _render(demo: bool, local: bool) -> str:
    headers = {} if demo else {"Authorization": "Bearer YOUR_API_TOKEN"}
    mutation = _script_literal(EXAMPLE_MUTATION) if demo else "null"
    variables = _script_literal(json.dumps(example_mutation_variables(), indent=2)) if demo else "null"
    ws_params = {"Authorization": f"Bearer {_demo_token()}"} if demo else {}
    styles = [_tag(a, local) for a in ASSETS if a.kind == "style"]
    react = [_tag(a, local) for a in ASSETS if a.kind == "script" and a.package.startswith("react")]
    rest = [_tag(a, local) for a in ASSETS if a.kind == "script" and not a.package.startswith("react")]
    return (_TEMPLATE.replace("__HEAD__", "\n".join(styles + react))
            .replace("__BODY__", "\n".join(rest))
            .replace("__EXAMPLE_QUERY__", _script_literal(EXAMPLE_QUERY))
            .replace("__EXAMPLE_MUTATION__", mutation)
            .replace("__EXAMPLE_MUTATION_VARIABLES__", variables)
            .replace("__EXAMPLE_SUBSCRIPTION__", _script_literal(EXAMPLE_SUBSCRIPTION) if demo else "null")
            .replace("__WS_CONNECTION_PARAMS__", json.dumps(ws_params).replace("<", "\\u003c"))
            .replace("__DEFAULT_HEADERS__", _script_literal(json.dumps(headers, indent=2))))
