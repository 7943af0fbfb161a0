// A paginated list of leads, as a Relay app writes it (here without React: the test compiles these
// documents with relay-compiler and runs the artifacts with relay-runtime, see ../../relay-client.mjs).
import { graphql } from 'relay-runtime';

// The page's query: it only spreads the list fragment.
export const LeadListQuery = graphql`
  query LeadListQuery($count: Int!, $filter: LeadFilter) {
    ...LeadList_query @arguments(count: $count, filter: $filter)
  }
`;

// `@connection` makes Relay merge the pages into one list in its store, one list per `filter`
// (`filters`); `@refetchable` generates LeadListPaginationQuery, the query that fetches the next page.
export const LeadListFragment = graphql`
  fragment LeadList_query on Query
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 25 }
    cursor: { type: "String" }
    filter: { type: "LeadFilter" }
  )
  @refetchable(queryName: "LeadListPaginationQuery") {
    leads(first: $count, after: $cursor, filter: $filter)
      @connection(key: "LeadList_leads", filters: ["filter"]) {
      totalCount
      edges {
        node {
          id
          databaseId
          ...LeadDetails_lead
        }
      }
    }
  }
`;
