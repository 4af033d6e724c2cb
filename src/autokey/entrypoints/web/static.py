"""Headers for the static pages autokey serves (console, API docs): nothing inline, no origin
but ours, not framable."""

from __future__ import annotations


def page_headers(*, inline_styles: bool = False) -> dict[str, str]:
    """Security headers for a packaged page; `inline_styles` only where a bundled library
    needs style attributes (Swagger UI)."""
    policy = "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        # Small files that change with each release: always revalidate, never a stale script.
        "Cache-Control": "no-cache",
    }
