"""What clients pass in: the lead status enum, the filter input and the connection arguments, the input of
``createLead``, and their translation into the domain's ``ListFilter`` and ``LeadInput`` (validated before
any upstream call)."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.leads.writes import ContactInput, LeadInput


@strawberry.enum(description="Upstream lead statuses (created, scheduled, processing, completed, "
                             "rescheduled, reached-max-retries, blacklisted).")
class LeadStatus(Enum):
    CREATED = strawberry.enum_value("created", description="Added, not yet scheduled for a call.")
    SCHEDULED = strawberry.enum_value("scheduled", description="A call is scheduled.")
    PROCESSING = strawberry.enum_value("processing", description="A call is in progress.")
    COMPLETED = strawberry.enum_value("completed", description="The lead was reached.")
    RESCHEDULED = strawberry.enum_value("rescheduled", description="A call is scheduled again after a miss.")
    REACHED_MAX_RETRIES = strawberry.enum_value("reached-max-retries",
                                                description="Calls stopped after the maximum number of retries.")
    BLACKLISTED = strawberry.enum_value("blacklisted", description="The lead must not be called.")


@strawberry.input(description="Maps 1:1 onto the upstream query parameters.")
class LeadFilter:
    status: LeadStatus | None = strawberry.field(default=None, description="Only leads with this status (`status`).")
    campaign_id: int | None = strawberry.field(default=None, description="Only leads of this campaign (`campaign_id`).")
    phone_number: str | None = strawberry.field(
        default=None, description="Phone number contains this text (`phone_number`, partial match upstream; "
                                  "an empty string means no filter).")
    created_from: date | None = strawberry.field(
        default=None, description="Created on or after this date, UTC (`date_from`).")
    created_to: date | None = strawberry.field(
        default=None, description="Created on or before this date, UTC (`date_to`).")


FirstArg = Annotated[int | None, strawberry.argument(description="Return the first n leads after `after` (0 to GATEWAY_MAX_PAGE_SIZE, which is 100 unless configured; 15 when neither `first` nor `last` is given).")]
AfterArg = Annotated[str | None, strawberry.argument(description="Start after this cursor (an edge's `cursor` or a `pageCursors` cursor).")]
LastArg = Annotated[int | None, strawberry.argument(description="Return the last n leads before `before`, or of the whole list when `before` is absent (0 to GATEWAY_MAX_PAGE_SIZE).")]
BeforeArg = Annotated[str | None, strawberry.argument(description="End before this cursor.")]
FilterArg = Annotated[LeadFilter | None, strawberry.argument(description="Narrow the list; cursors are bound to the filter they were issued for.")]


def to_filter(f: LeadFilter | None, campaign_id: int | None = None) -> ListFilter:
    """The GraphQL filter as the domain's validated filter, narrowed to ``campaign_id`` when given."""
    lead_filter = ALL_LEADS if f is None else ListFilter.build(
        status=f.status.value if f.status else None, campaign_id=f.campaign_id, phone_number=f.phone_number,
        date_from=f.created_from, date_to=f.created_to)
    return lead_filter if campaign_id is None else lead_filter.with_campaign(campaign_id)


@strawberry.input(description="A further phone number to try for the new lead (`secondary_contacts[]`).")
class SecondaryContactInput:
    phone_number: str = strawberry.field(description="E.164 phone number, e.g. +14155550100 (`phone_number`); "
                                                     "spaces, dashes, dots and parentheses are dropped.")
    customer_name: str | None = strawberry.field(default=None, description="`variables.customer_name`.")
    email: str | None = strawberry.field(default=None, description="`variables.email`.")
    variables: JSON | None = strawberry.field(
        default=None, description="Further variables: a JSON object (customerName/email win on conflict).")


@strawberry.input(description="A lead to create (`POST /user/lead`). Checked before any upstream call: E.164 "
                              "phone numbers, at most 255 characters per text, variables a JSON object of at "
                              "most 50 entries and 16 KiB, at most 10 secondary contacts.")
class CreateLeadInput:
    phone_number: str = strawberry.field(description="E.164 phone number, e.g. +14155550100 (`phone_number`); "
                                                     "spaces, dashes, dots and parentheses are dropped.")
    campaign_id: int = strawberry.field(description="The campaign the lead joins (`campaign_id`).")
    customer_name: str | None = strawberry.field(default=None, description="`variables.customer_name`.")
    email: str | None = strawberry.field(default=None, description="`variables.email`.")
    variables: JSON | None = strawberry.field(
        default=None, description="Further variables: a JSON object (customerName/email win on conflict).")
    allow_duplicate: bool | None = strawberry.field(
        default=None, description="Create it even when the campaign has a lead with this phone number "
                                  "(`allow_dupplicate`, the upstream's spelling); by default that is a "
                                  "`DUPLICATE` user error.")
    secondary_contacts: list[SecondaryContactInput] | None = strawberry.field(
        default=None, description="Further numbers to try (`secondary_contacts`).")
    idempotency_key: str | None = strawberry.field(
        default=None, description="Chosen by the client. The same key from the same caller within 24 h returns "
                                  "the first call's outcome and never creates a second lead, on any gateway "
                                  "instance.")


def to_lead_input(given: CreateLeadInput) -> LeadInput:
    """The GraphQL input as the domain's ``LeadInput`` (checked by ``leads.writes.new_lead``)."""
    contacts = None if given.secondary_contacts is None else tuple(
        ContactInput(c.phone_number, c.customer_name, c.email, c.variables) for c in given.secondary_contacts)
    return LeadInput(given.phone_number, given.campaign_id, given.customer_name, given.email, given.variables,
                     given.allow_duplicate, contacts, given.idempotency_key)
