// A live list of leads, as a Relay app subscribes to it: the gateway sends the window at once and again
// each time it changes (see ../../relay-subscription.mjs: requestSubscription over graphql-ws). The leads are
// normalised into the store like a query's, so a component showing LeadDetails_lead re-renders with the
// new status without fetching it.
import { graphql } from 'relay-runtime';

export const LeadsLiveSubscription = graphql`
  subscription LeadsLiveSubscription($first: Int, $filter: LeadFilter) {
    leads(first: $first, filter: $filter) {
      totalCount
      edges {
        cursor
        node {
          id
          databaseId
          status
          ...LeadDetails_lead
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`;
