"""The allowances that bound how fast one caller may act."""

from __future__ import annotations

import enum


class Limit(enum.StrEnum):
    """Each is counted per principal, except AUTH_FAILURES, counted per client address."""

    UPLOADS = "uploads"
    ORDERS = "orders"
    WRITES = "writes"
    """Every token-authenticated POST, PATCH or DELETE."""
    AUTH_FAILURES = "auth_failures"
