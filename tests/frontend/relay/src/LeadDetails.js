// One lead's details. `@refetchable` on a fragment of a `Node` type makes relay-compiler generate
// LeadDetailsRefetchQuery: `node(id: $id) { ...LeadDetails_lead }` (the reason the schema needs
// the `Node` interface and `Query.node`).
import { graphql } from 'relay-runtime';

export const LeadDetailsFragment = graphql`
  fragment LeadDetails_lead on Lead @refetchable(queryName: "LeadDetailsRefetchQuery") {
    id
    databaseId
    customerName
    phoneNumber
    status
    createdAt
    campaign {
      id
      databaseId
      name
    }
    secondaryContacts {
      id
      phoneNumber
      status
    }
  }
`;
