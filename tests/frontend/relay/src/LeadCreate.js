// Creating a lead, as a Relay app writes the mutation: `@appendEdge` adds the payload's `leadEdge` to the
// end of the connections named in `$connections` (the store IDs of `@connection` records, from
// ConnectionHandler.getConnectionID), so the list shows the new lead without being fetched again.
// `leadEdge` is the lead's edge of the unfiltered `Query.leads` list: pass only that list's connection ID
// (its `filter` is null), not a filtered list's, which may not hold the new lead.
import { graphql } from 'relay-runtime';

export const LeadCreateMutation = graphql`
  mutation LeadCreateMutation($input: CreateLeadInput!, $connections: [ID!]!) {
    createLead(input: $input) {
      leadEdge @appendEdge(connections: $connections) {
        cursor
        node {
          id
          databaseId
          ...LeadDetails_lead
        }
      }
      userErrors {
        field
        message
        code
      }
    }
  }
`;
