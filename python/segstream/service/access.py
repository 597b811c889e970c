"""Who may use the worker's HTTP views, and which requests are well formed.

Profiles are personal data. With a token configured, every view but `/health` wants
`Authorization: Bearer <token>`; the comparison takes the same time whatever the guess.
Without one, the worker only starts when it listens on loopback (see settings).
"""

from __future__ import annotations

import hmac

#: Longest customer id a path may carry; longer is a malformed request, not a lookup.
MAX_CUSTOMER_ID_CHARS = 256


def bearer_allows(header: str | None, token: str | None) -> bool:
    """True when no token is required, or `header` is `Bearer <token>`."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def customer_id_problem(customer_id: str) -> str | None:
    """Why `customer_id` from a path cannot be an id, or None when it can."""
    if not customer_id:
        return "the customer id is empty"
    if len(customer_id) > MAX_CUSTOMER_ID_CHARS:
        return f"a customer id has at most {MAX_CUSTOMER_ID_CHARS} characters"
    if any(not ch.isprintable() for ch in customer_id):
        return "the customer id holds control characters"
    return None
