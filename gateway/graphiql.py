"""GraphiQL page: strawberry's, opening on an example query and showing how to pass ``Authorization``."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

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


@lru_cache(maxsize=2)
def graphiql_html(demo: bool) -> str:
    """The page; in demo mode no token is needed, otherwise the headers editor shows where it goes."""
    html = resources.files("strawberry").joinpath("static/graphiql.html").read_text()
    headers = {} if demo else {"Authorization": "Bearer YOUR_API_TOKEN"}
    example = EXAMPLE_QUERY.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
    html, n = re.subn(r"const EXAMPLE_QUERY = `.*?`;", lambda _: f"const EXAMPLE_QUERY = `{example}`;", html,
                      count=1, flags=re.S)
    html = html.replace("<title>Strawberry GraphiQL</title>", "<title>leads-gateway · GraphiQL</title>")
    html = html.replace("React.useState(parameters.headers)",
                        f"React.useState(parameters.headers || {json.dumps(json.dumps(headers, indent=2))})")
    if n != 1:
        raise RuntimeError("strawberry's GraphiQL template changed; update gateway/graphiql.py")
    return html
