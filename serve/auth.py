"""Bearer keys: ``HYBRID_API_KEY`` guards every /v1 route (the admin key opens them too).

Keys are compared in constant time. Without ``HYBRID_API_KEY`` the routes are open, which
``hybrid serve`` allows only on a loopback address unless ``--insecure`` is given.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from pydantic import SecretStr

from hybrid import Settings
from serve.deps import get_settings

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _matches(given: str, key: SecretStr | None) -> bool:
    return key is not None and hmac.compare_digest(given.encode(), key.get_secret_value().encode())


def require_query_key(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """401 unless the request carries the query key or the admin key (when keys are set)."""
    if settings.api_key is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(401, "missing key: send 'Authorization: Bearer <key>'", headers=_CHALLENGE)
    if not (_matches(given, settings.api_key) or _matches(given, settings.admin_key)):
        raise HTTPException(401, "wrong key", headers=_CHALLENGE)
