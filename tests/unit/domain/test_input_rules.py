"""The model's rules for hostile input: free text (one rule for every display field) and
money (ASCII decimals within bounds and the currency's minor units; exact arithmetic)."""

from __future__ import annotations

from decimal import Decimal, getcontext

import attrs
import pytest

from autokey.adapters.crypto import Sha256SecretHasher
from autokey.adapters.memory.store import MemoryStore
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.auth import Role
from autokey.domain.model.errors import InvalidInput, WebhookRejected
from autokey.domain.model.offers import MAX_AMOUNT_DIGITS, DeliveryType, Money
from autokey.domain.model.text import TextProblem, text_problem
from autokey.domain.model.webhooks import WebhookEventType
from autokey.domain.services.auth import AuthService
from autokey.domain.services.webhooks import ParsedEvent
from tests import builders as b
from tests.conftest import FakeClock

HOSTILE = [
    ("a\x00b", TextProblem.CONTROL_CHARACTER),
    ("bell\x07", TextProblem.CONTROL_CHARACTER),
    ("esc\x1b[31mred", TextProblem.CONTROL_CHARACTER),
    ("new\nline", TextProblem.CONTROL_CHARACTER),
    ("del\x7f", TextProblem.CONTROL_CHARACTER),
    ("c1\x85", TextProblem.CONTROL_CHARACTER),
    ("line\u2028sep", TextProblem.CONTROL_CHARACTER),
    ("lone \ud800", TextProblem.UNPAIRED_SURROGATE),
    ("low \udcff", TextProblem.UNPAIRED_SURROGATE),
    ("exe.\u202etxt", TextProblem.BIDI_CONTROL),
    ("left\u202a", TextProblem.BIDI_CONTROL),
    ("iso\u2066late\u2069", TextProblem.BIDI_CONTROL),
    ("mark\u200f", TextProblem.BIDI_CONTROL),
    ("arabic\u061c", TextProblem.BIDI_CONTROL),
]


@pytest.mark.parametrize(("text", "problem"), HOSTILE)
def test_hostile_text_is_refused_with_its_reason(text: str, problem: TextProblem) -> None:
    assert text_problem(text, max_length=100) is problem


@pytest.mark.parametrize(
    "text",
    ["Café \u2013 Omega 2", "игра", "ゲーム", "משחק", "لعبة", "👩\u200d💻 dev kit", "tab-free"],
)
def test_ordinary_text_in_any_script_is_accepted(text: str) -> None:
    assert text_problem(text, max_length=100) is None


def test_length_counts_trimmed_code_points() -> None:
    assert text_problem("   ", max_length=5) is TextProblem.INVALID_LENGTH
    assert text_problem("x" * 6, max_length=5) is TextProblem.INVALID_LENGTH
    assert text_problem("", max_length=5, min_length=0) is None


def _code(caught: pytest.ExceptionInfo[InvalidInput]) -> tuple[str, str]:
    problem = caught.value.problems[0]
    return problem.field, problem.code


@pytest.mark.parametrize(("text", "problem"), HOSTILE)
def test_every_free_text_field_of_the_model_applies_the_rule(
    text: str, problem: TextProblem
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    with pytest.raises(InvalidInput) as caught:
        b.pool(owner, name=text)
    assert _code(caught) == ("name", problem.value)
    with pytest.raises(InvalidInput) as caught:
        attrs.evolve(offer, title=text)
    assert _code(caught) == ("title", problem.value)
    with pytest.raises(InvalidInput) as caught:
        attrs.evolve(
            offer, delivery_type=DeliveryType.G2A, g2a_product_id=text, max_price=offer.price
        )
    assert _code(caught) == ("g2a_product_id", problem.value)
    for ids in ({"event_id": text}, {"upstream_order_id": text}):
        fields = {"event_id": "evt-1", "upstream_order_id": "G2A-1", **ids}
        with pytest.raises(WebhookRejected):
            ParsedEvent(type=WebhookEventType.ORDER_PAID, occurred_at=None, **fields)


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("1_000", "EUR", "not_a_decimal"),
        ("\u0661\u0660\u0660", "EUR", "not_a_decimal"),  # Arabic-Indic 100
        ("\uff11", "EUR", "not_a_decimal"),  # fullwidth 1
        ("1e100000", "EUR", "not_a_decimal"),
        ("1e1000000", "EUR", "not_a_decimal"),
        ("1E2", "EUR", "not_a_decimal"),
        ("Infinity", "EUR", "not_a_decimal"),
        ("+1", "EUR", "not_a_decimal"),
        (" 1", "EUR", "not_a_decimal"),
        ("1.", "EUR", "not_a_decimal"),
        (".5", "EUR", "not_a_decimal"),
        ("", "EUR", "not_a_decimal"),
        ("1" * (MAX_AMOUNT_DIGITS + 1), "EUR", "too_large"),
        ("9" * 100_001, "EUR", "too_large"),
        ("1.001", "EUR", "too_many_decimals"),
        ("1.5", "JPY", "too_many_decimals"),
        ("1.0", "JPY", "too_many_decimals"),
        ("1.2345", "KWD", "too_many_decimals"),
        ("1", "XXX", "invalid_currency"),
        ("1", "eur", "invalid_currency"),
        ("1", "EUR\x00", "invalid_currency"),
    ],
)
def test_prices_outside_the_rules_are_refused(amount: str, currency: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse(amount, currency)
    assert caught.value.problems[0].code == code


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("1500", "JPY"),
        ("1.234", "KWD"),
        ("0.100", "BHD"),
        ("19.9", "EUR"),
        ("9" * MAX_AMOUNT_DIGITS + ".99", "USD"),
        ("000000000000000000001.50", "EUR"),  # leading zeros are not magnitude
    ],
)
def test_prices_within_the_rules_are_kept_exactly(amount: str, currency: str) -> None:
    assert Money.parse(amount, currency) == Money(amount=Decimal(amount), currency=currency)


def test_totals_are_exact_beyond_the_default_decimal_precision() -> None:
    assert getcontext().prec == 28  # the default that used to round this total
    unit = Money(amount=Decimal("12345678901234567890123456.7891"), currency="EUR")
    assert unit.times(3).amount == Decimal("37037036703703703670370370.3673")
    digits = "9" * 60 + "9999"  # 64 significant digits, 4 of them after the point
    huge = Money(amount=Decimal(digits[:-4] + "." + digits[-4:]), currency="EUR")
    product = str(int(digits) * 999)  # integer arithmetic: exact by construction
    assert huge.times(999).amount == Decimal(product[:-4] + "." + product[-4:])


@pytest.mark.parametrize(("text", "problem"), HOSTILE)
async def test_token_names_follow_the_rule_when_issued(text: str, problem: TextProblem) -> None:
    store = MemoryStore()
    auth = AuthService(store, Sha256SecretHasher(), FakeClock(), Uuid7Ids())
    with pytest.raises(InvalidInput) as caught:
        await auth.issue_token(Role.SELLER, name=text)
    assert _code(caught) == ("name", problem.value)
    secret, token = await auth.issue_token(Role.SELLER, name="ci deploy")
    assert (await auth.authenticate(secret)).token_id == token.id
