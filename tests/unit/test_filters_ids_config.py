"""ListFilter (validation, canonical params, fingerprint), global ids, and Settings.from_env."""

from __future__ import annotations

import base64
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import DEFAULT_UPSTREAM_URL, ConfigError, Settings
from gateway.errors import BadUserInput
from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.leads.ids import from_global_id, to_global_id

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
STATUSES = ["created", "scheduled", "processing", "completed", "rescheduled", "reached-max-retries", "blacklisted"]


# --- ListFilter ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", STATUSES)
def test_every_documented_status_is_accepted(status):
    assert ListFilter(status=status).params == (("status", status),)


@pytest.mark.parametrize("status", ["done", "Created", "reached_max_retries", ""])
def test_unknown_status_is_bad_user_input(status):
    with pytest.raises(BadUserInput) as err:
        ListFilter(status=status)
    assert err.value.extensions == {"code": "BAD_USER_INPUT", "field": "filter.status"}


def test_phone_length_limit_is_255():
    assert ListFilter(phone_number="1" * 255).phone_number == "1" * 255
    with pytest.raises(BadUserInput) as err:
        ListFilter(phone_number="1" * 256)
    assert err.value.extensions["field"] == "filter.phoneNumber"


def test_date_range_must_not_be_reversed():
    assert ListFilter(date_from=date(2025, 1, 1), date_to=date(2025, 1, 1)).params == (
        ("date_from", "2025-01-01"), ("date_to", "2025-01-01"))
    with pytest.raises(BadUserInput) as err:
        ListFilter(date_from=date(2025, 1, 2), date_to=date(2025, 1, 1))
    assert err.value.extensions["field"] == "filter.createdFrom"


def test_params_are_canonical_sorted_strings():
    q = ListFilter(status="scheduled", campaign_id=12, phone_number="+359 88", date_from=date(2024, 12, 31),
                  date_to=date(2025, 3, 4))
    assert q.params == (("campaign_id", "12"), ("date_from", "2024-12-31"), ("date_to", "2025-03-04"),
                        ("phone_number", "+359 88"), ("status", "scheduled"))
    assert ALL_LEADS.params == ()


@pytest.mark.parametrize("phone", ["", "   ", "\t\n"])
def test_empty_phone_means_no_filter(phone):
    q = ListFilter.build(phone_number=phone)
    assert q.phone_number is None and q == ALL_LEADS
    assert q.params == () and q.fingerprint == ALL_LEADS.fingerprint


def test_build_trims_the_phone_and_keeps_the_rest():
    q = ListFilter.build(status="created", phone_number="  +359  ", campaign_id=0)
    assert q == ListFilter(status="created", phone_number="+359", campaign_id=0)
    assert ("campaign_id", "0") in q.params  # 0 is a value, not "no filter"


def test_with_campaign():
    q = ListFilter(status="created")
    assert q.with_campaign(7) == ListFilter(status="created", campaign_id=7)
    assert ListFilter(campaign_id=7).with_campaign(7) == ListFilter(campaign_id=7)
    with pytest.raises(BadUserInput) as err:
        ListFilter(campaign_id=7).with_campaign(8)
    assert err.value.extensions["field"] == "filter.campaignId"


queries = st.builds(
    ListFilter,
    status=st.one_of(st.none(), st.sampled_from(STATUSES)),
    campaign_id=st.one_of(st.none(), st.integers(-5, 10**6)),
    phone_number=st.one_of(st.none(), st.text("0123456789+ &=#", min_size=1, max_size=12)),
    date_from=st.one_of(st.none(), st.dates(date(2020, 1, 1), date(2025, 1, 1))),
    date_to=st.one_of(st.none(), st.dates(date(2025, 1, 2), date(2030, 1, 1))),
)


@FAST
@given(a=queries, b=queries)
def test_fingerprint_is_equal_exactly_for_equal_filters(a, b):
    assert isinstance(a.fingerprint, str) and a.fingerprint
    assert all(c.isalnum() or c in "-_=" for c in a.fingerprint)  # URL-safe: it travels inside cursors
    if a.params == b.params:
        assert a.fingerprint == b.fingerprint
    else:
        assert a.fingerprint != b.fingerprint


def test_fingerprint_does_not_confuse_a_phone_containing_separators_with_another_filter():
    a = ListFilter(phone_number="1&status=completed")
    b = ListFilter(phone_number="1", status="completed")
    assert a.params != b.params
    assert a.fingerprint != b.fingerprint


# --- global ids --------------------------------------------------------------------------------------

type_names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,20}\Z")


@FAST
@given(type_name=type_names, database_id=st.integers(-(10**18) + 1, 10**18 - 1))
def test_global_id_round_trip(type_name, database_id):
    gid = to_global_id(type_name, database_id)
    assert "=" not in gid and gid.isascii()
    assert from_global_id(gid) == (type_name, database_id)


def test_global_id_is_base64url_of_type_colon_id():
    assert to_global_id("Lead", 123) == "TGVhZDoxMjM"
    assert base64.urlsafe_b64decode("TGVhZDoxMjM=") == b"Lead:123"
    assert from_global_id("TGVhZDoxMjM") == ("Lead", 123)
    assert from_global_id("TGVhZDoxMjM=") == ("Lead", 123)  # padded form accepted too


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize("gid", ["", "!!!", "Lead:1", _b64("Lead"), _b64("Lead:"), _b64(":1"), _b64("Lead:abc"),
                                 _b64("1Lead:1"), _b64("Lead:1:2"), _b64("Le ad:1"), _b64("Lead:" + "9" * 19),
                                 "\u00e9\u00e9\u00e9\u00e9", base64.urlsafe_b64encode(b"\xff\xfe:1").decode()])
def test_malformed_global_ids_are_bad_user_input(gid):
    with pytest.raises(BadUserInput) as err:
        from_global_id(gid)
    assert err.value.extensions == {"code": "BAD_USER_INPUT", "argument": "id"}


@FAST
@given(gid=st.text(max_size=40))
def test_garbage_global_ids_are_bad_user_input_or_well_formed(gid):
    try:
        type_name, database_id = from_global_id(gid)
    except BadUserInput:
        return
    assert isinstance(type_name, str) and type_name and isinstance(database_id, int)


def test_global_id_with_a_trailing_newline_is_refused():
    with pytest.raises(BadUserInput):
        from_global_id(_b64("Lead:1\n"))


# --- Settings.from_env -------------------------------------------------------------------------------

def test_defaults_from_an_empty_environment():
    s = Settings.from_env({})
    assert s.upstream_url == DEFAULT_UPSTREAM_URL == "https://call.aiployees.com/api"
    assert (s.cache_url, s.cache_secret, s.cache_ttl, s.max_page_size, s.upstream_timeout) == (
        "memory://", None, 30.0, 100, 10.0)


def test_every_contract_variable_is_read():
    s = Settings.from_env({
        "GATEWAY_UPSTREAM_URL": "http://localhost:8081/api/",
        "GATEWAY_CACHE_URL": "memory://",
        "GATEWAY_CACHE_SECRET": "s3cret",
        "GATEWAY_CACHE_TTL": "0",
        "GATEWAY_MAX_PAGE_SIZE": "50",
        "GATEWAY_UPSTREAM_TIMEOUT": "2.5",
    })
    assert s.upstream_url == "http://localhost:8081/api"  # trailing slash dropped: {base}/user/leads
    assert (s.cache_secret, s.cache_ttl, s.max_page_size, s.upstream_timeout) == ("s3cret", 0.0, 50, 2.5)


def test_from_env_reads_only_the_given_mapping(monkeypatch):
    monkeypatch.setenv("GATEWAY_MAX_PAGE_SIZE", "7")
    assert Settings.from_env({}).max_page_size == 100
    assert Settings.from_env().max_page_size == 7


@pytest.mark.parametrize("name", ["GATEWAY_CACHE_TTL", "GATEWAY_MAX_PAGE_SIZE", "GATEWAY_UPSTREAM_TIMEOUT",
                                  "GATEWAY_CACHE_SECRET"])
def test_empty_values_mean_the_default(name):
    assert Settings.from_env({name: ""}) == Settings.from_env({})


@pytest.mark.parametrize("name", ["GATEWAY_UPSTREAM_URL", "GATEWAY_CACHE_URL"])
def test_empty_urls_are_the_default_or_a_config_error_never_an_empty_setting(name):
    try:
        s = Settings.from_env({name: ""})
    except ConfigError as err:
        assert name in str(err)
    else:
        assert s == Settings.from_env({})


@pytest.mark.parametrize("env", [
    {"GATEWAY_CACHE_TTL": "-1"},
    {"GATEWAY_CACHE_TTL": "thirty"},
    {"GATEWAY_MAX_PAGE_SIZE": "0"},
    {"GATEWAY_MAX_PAGE_SIZE": "12.5"},
    {"GATEWAY_MAX_PAGE_SIZE": "ten"},
    {"GATEWAY_UPSTREAM_TIMEOUT": "0"},
    {"GATEWAY_UPSTREAM_TIMEOUT": "-3"},
    {"GATEWAY_UPSTREAM_URL": "call.aiployees.com/api"},
    {"GATEWAY_UPSTREAM_URL": "ftp://call.aiployees.com/api"},
    {"GATEWAY_CACHE_URL": "memcached://x"},
])
def test_unusable_values_are_config_errors_naming_the_variable(env):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert next(iter(env)) in str(err.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("name", ["GATEWAY_CACHE_TTL", "GATEWAY_UPSTREAM_TIMEOUT"])
def test_nan_is_a_config_error(name):
    with pytest.raises(ConfigError):
        Settings.from_env({name: "nan"})


def test_settings_are_immutable():
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.max_page_size = 5  # type: ignore[misc]
    assert s.with_(max_page_size=5).max_page_size == 5 and s.max_page_size == 100
