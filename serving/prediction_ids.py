"""Signed prediction ids: feedback can only be tied to a prediction this service made.

An id is 32 hex digits of randomness followed by 24 hex digits of HMAC-SHA256 over them, with the key
from ``PREDICTION_ID_KEY``. ``PREDICTION_ID_KEY_PREVIOUS`` is also accepted when checking, so the key
rotates without downtime: set the new key as current and the old one as previous, and drop the previous
one once no client holds ids signed with it (feedback comes within minutes of a prediction).

Without a configured key each process makes a random one at start-up: ids still verify within that
process, which is enough locally, but not across instances or restarts, so a deployment sets the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping

KEY_SETTING = "PREDICTION_ID_KEY"
PREVIOUS_KEY_SETTING = "PREDICTION_ID_KEY_PREVIOUS"
NONCE_HEX = 32
TAG_HEX = 24
ID_LENGTH = NONCE_HEX + TAG_HEX
MIN_KEY_CHARS = 16

log = logging.getLogger(__name__)


def _resolved(value: str) -> str:
    """A Key Vault reference the platform could not resolve stays as its literal text, which anyone can
    read in the infrastructure code: treat it as unset, never as a key."""
    return "" if value.strip().startswith("@Microsoft.KeyVault(") else value


class PredictionIds:
    """Issues ids signed with the current key; checks them against the current and previous keys."""

    __slots__ = ("_keys",)

    def __init__(self, key: bytes, previous: bytes | None = None) -> None:
        self._keys = (key,) if previous is None else (key, previous)

    @classmethod
    def from_settings(cls, environ: Mapping[str, str] | None = None) -> PredictionIds:
        env = os.environ if environ is None else environ
        key, previous = (_resolved(env.get(name, "")) for name in (KEY_SETTING, PREVIOUS_KEY_SETTING))
        if len(key) < MIN_KEY_CHARS:
            log.warning(
                "%s is %s: prediction ids are signed with a key of this process only, so feedback sent "
                "to another instance or after a restart counts as unmatched",
                KEY_SETTING,
                "unset (or an unresolved Key Vault reference)"
                if not key
                else f"shorter than {MIN_KEY_CHARS} characters",
            )
            return cls(secrets.token_bytes(32))
        return cls(key.encode(), previous.encode() if len(previous) >= MIN_KEY_CHARS else None)

    def _tag(self, key: bytes, nonce: str) -> str:
        return hmac.new(key, nonce.encode("ascii"), hashlib.sha256).hexdigest()[:TAG_HEX]

    def issue(self) -> str:
        nonce = secrets.token_hex(NONCE_HEX // 2)
        return nonce + self._tag(self._keys[0], nonce)

    def issued(self, prediction_id: str | None) -> bool:
        """True when this service signed ``prediction_id`` (with the current or the previous key)."""
        if prediction_id is None or len(prediction_id) != ID_LENGTH or not prediction_id.isascii():
            return False
        nonce, tag = prediction_id[:NONCE_HEX], prediction_id[NONCE_HEX:]
        return any(hmac.compare_digest(self._tag(key, nonce), tag) for key in self._keys)
