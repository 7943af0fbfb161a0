"""leads-gateway: a GraphQL gateway in front of the page-numbered ``/user/leads`` REST API."""

__version__ = "0.1.0"
