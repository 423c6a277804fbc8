"""KMS: envelope encryption of cached tokens, so that reading the table yields no usable token.

A data key from `GenerateDataKey` seals tokens with AES-GCM for a bounded time per container.
The caller binds what the token must not be separated from (the table binds the cache key and
the item's times, type and scope) as associated data: a sealed token copied elsewhere, or given
other times, does not open. Decrypted data keys are kept by their ciphertext: after the first, a table hit costs no
KMS call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker import observability
from broker.bounded import BoundedMap

# The key policy and the function's role both require this context on every use of the key.
ENCRYPTION_CONTEXT = {"purpose": "token-broker-cache"}
DATA_KEY_SECONDS = 300.0
DATA_KEY_MAX_USES = 100_000  # far below AES-GCM's limit for random 96-bit nonces
OPENED_KEYS_MAX = 64
NONCE_BYTES = 12


class SealUnavailable(Exception):
    """KMS could not be reached or refused: the cache cannot be written this time."""


class CannotOpen(Exception):
    """A sealed token that does not decrypt here: tampered, copied, or another key's."""


@dataclass(frozen=True, slots=True)
class Sealed:
    sealed_token: bytes  # nonce then AES-GCM ciphertext and tag
    data_key: bytes  # the data key, encrypted under the KMS key


@dataclass(slots=True)
class _DataKey:
    """The data key this container seals with, and how long and how often it has."""

    blob: bytes  # encrypted under the KMS key, stored beside each token it seals
    cipher: AESGCM
    since: float
    uses: int = 0


class TokenSealer:
    def __init__(self, client: Any, key_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._key_id = key_id
        self._clock = clock
        self._current: _DataKey | None = None
        self._opened: BoundedMap[bytes, AESGCM] = BoundedMap(OPENED_KEYS_MAX)

    def seal(self, associated_data: bytes, token: str) -> Sealed:
        blob, cipher = self._data_key()
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(nonce + cipher.encrypt(nonce, token.encode(), associated_data), blob)

    def open(self, associated_data: bytes, sealed: Sealed) -> str:
        cipher = self._opened.get(sealed.data_key) or self._decrypt_data_key(sealed.data_key)
        nonce, ciphertext = sealed.sealed_token[:NONCE_BYTES], sealed.sealed_token[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, ciphertext, associated_data).decode()
        except (InvalidTag, ValueError):
            raise CannotOpen("the sealed token does not open with this associated data") from None

    def _data_key(self) -> tuple[bytes, AESGCM]:
        now = self._clock()
        current = self._current
        if current is None or now - current.since > DATA_KEY_SECONDS or current.uses >= DATA_KEY_MAX_USES:
            try:
                answer = self._client.generate_data_key(
                    KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=ENCRYPTION_CONTEXT
                )
            except (ClientError, BotoCoreError) as error:
                raise SealUnavailable(_failure(error)) from None
            current = self._current = _DataKey(answer["CiphertextBlob"], AESGCM(answer["Plaintext"]), now)
            self._opened.put(current.blob, current.cipher)
        current.uses += 1
        return current.blob, current.cipher

    def _decrypt_data_key(self, blob: bytes) -> AESGCM:
        try:
            answer = self._client.decrypt(CiphertextBlob=blob, KeyId=self._key_id, EncryptionContext=ENCRYPTION_CONTEXT)
        except ClientError as error:
            # InvalidCiphertextException and friends: this item cannot be opened, ever
            raise CannotOpen(_failure(error)) from None
        except BotoCoreError as error:
            raise SealUnavailable(_failure(error)) from None
        cipher = AESGCM(answer["Plaintext"])
        self._opened.put(blob, cipher)
        observability.logger.debug("data key decrypted")
        return cipher


def _failure(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__
