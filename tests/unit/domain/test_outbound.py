"""Rules of outbound webhooks: targets, retries with backoff, giving up, disabling."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from autokey.domain.model.errors import InvalidInput
from autokey.domain.model.outbound import (
    FIRST_RETRY,
    GIVE_UP_AFTER,
    LONGEST_WAIT,
    DeliveryStatus,
    EndpointStatus,
    SendOutcome,
    check_target,
    is_public,
)
from tests import builders as b


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "https_required"),
        ("ftp://hooks.example.com/x", "https_required"),
        ("https://user:pw@hooks.example.com/x", "credentials_in_url"),
        ("https://127.0.0.1/x", "private_target"),
        ("https://10.1.2.3/x", "private_target"),
        ("https://169.254.169.254/latest", "private_target"),
        ("https://[::1]/x", "private_target"),
        ("https://[::ffff:127.0.0.1]/x", "private_target"),
        ("https://localhost/x", "private_target"),
        ("https://" + "a" * 2050 + ".com/", "invalid_length"),
        ("https://hooks.example.com/\x00", "control_character"),
        ("https://[::1/x", "not_a_url"),
        ("https://hooks.example.com:99999/x", "not_a_url"),
    ],
)
def test_targets_a_seller_may_not_register(url: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_target(url, require_https=True, allow_private=False)
    assert refused.value.problems[0].code == code


def test_public_https_targets_pass_and_private_ones_only_when_allowed() -> None:
    assert check_target("https://hooks.example.com/a", require_https=True, allow_private=False)
    assert check_target("http://127.0.0.1:9/a", require_https=False, allow_private=True)
    with pytest.raises(InvalidInput):
        check_target("http://127.0.0.1:9/a", require_https=False, allow_private=False)


def test_mapped_and_reserved_addresses_are_not_public() -> None:
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    for text in ("::ffff:10.0.0.1", "100.64.0.1", "224.0.0.1", "0.0.0.0", "fe80::1"):  # noqa: S104
        assert not is_public(ipaddress.ip_address(text)), text


def test_failures_back_off_exponentially_with_full_jitter_up_to_a_cap() -> None:
    d = b.delivery(b.endpoint())
    waits = []
    for _ in range(20):
        d.record(SendOutcome(status_code=500), b.endpoint(), b.T0, b.FixedRandom(1.0))
        waits.append(d.next_attempt_at - b.T0)
    assert waits[:3] == [FIRST_RETRY, FIRST_RETRY * 2, FIRST_RETRY * 4]
    assert max(waits) == LONGEST_WAIT
    d.record(SendOutcome(error="timeout"), b.endpoint(), b.T0, b.FixedRandom(0.25))
    assert d.next_attempt_at - b.T0 == LONGEST_WAIT * 0.25
    assert (d.status, d.last_error, d.last_status_code) == (DeliveryStatus.PENDING, "timeout", None)


def test_an_endpoint_failing_for_three_days_is_disabled_and_its_delivery_ends() -> None:
    e = b.endpoint()
    d = b.delivery(e)
    assert d.record(SendOutcome(status_code=503), e, b.T0, b.FixedRandom(0.5)) is False
    almost = b.T0 + GIVE_UP_AFTER - timedelta(seconds=1)
    assert d.record(SendOutcome(status_code=503), e, almost, b.FixedRandom(0.5)) is False
    assert e.status is EndpointStatus.ACTIVE
    assert d.record(SendOutcome(status_code=503), e, b.T0 + GIVE_UP_AFTER, b.FixedRandom(0.5))
    assert (e.status, e.disabled_reason) == (EndpointStatus.DISABLED, "failing_for_3_days")
    assert d.status is DeliveryStatus.FAILED
    later = b.delivery(e)
    assert later.record(SendOutcome(error="endpoint_disabled"), e, b.T0, b.FixedRandom(0)) is False
    assert later.status is DeliveryStatus.FAILED


def test_a_success_clears_the_failure_clock_and_replay_resends() -> None:
    e = b.endpoint()
    d = b.delivery(e)
    d.record(SendOutcome(status_code=500), e, b.T0, b.FixedRandom(0.5))
    d.record(SendOutcome(status_code=204), e, b.T0 + timedelta(days=2), b.FixedRandom(0.5))
    assert (d.status, d.attempts, e.failing_since) == (DeliveryStatus.DELIVERED, 2, None)
    d.replay(b.T0 + timedelta(days=4))
    assert (d.status, d.next_attempt_at) == (DeliveryStatus.PENDING, b.T0 + timedelta(days=4))
