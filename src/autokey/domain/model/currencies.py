"""The currencies autokey accepts, with their ISO 4217 minor units (digits after the point)."""

from __future__ import annotations

from collections.abc import Mapping

MINOR_UNITS: Mapping[str, int] = {
    **dict.fromkeys(("JPY", "KRW", "ISK", "CLP", "VND"), 0),
    **dict.fromkeys(
        (
            "EUR", "USD", "GBP", "PLN", "CHF", "CZK", "SEK", "NOK", "DKK", "HUF", "RON",
            "BGN", "CAD", "AUD", "NZD", "BRL", "MXN", "TRY", "INR", "CNY", "HKD", "SGD",
            "ZAR", "UAH", "ILS",
        ),
        2,
    ),
    **dict.fromkeys(("KWD", "BHD", "OMR", "JOD", "TND"), 3),
}  # fmt: skip
"""Currency code -> how many decimal places an amount in it may have."""
