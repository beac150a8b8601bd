"""The gateway's side of external signing: the private key stays in a separate process.

``HttpExternalSigner`` sends the bytes c2pa wants signed to a signing service (the reference one
is ``provenance.signing_service``; a KMS / HSM front end speaks the same two calls) and returns
its signature. ``C2paSigner`` uses it as the c2pa callback when the credentials carry no private
key. Every failure — service down, timeout, an HTTP error, an empty answer — raises
``SigningFailed``: nothing is ever delivered unsigned (fail closed).
"""

from __future__ import annotations

from typing import Protocol

import httpx

from provenance.errors import CredentialsError, SigningFailed

__all__ = ["ExternalSigner", "HttpExternalSigner"]


class ExternalSigner(Protocol):
    """Signs bytes with a key the gateway never sees.

    ``sign`` is synchronous (called by c2pa from inside a worker-pool thread) and returns the
    raw COSE signature for the certificate's algorithm, or raises ``SigningFailed``.
    """

    def sign(self, data: bytes) -> bytes: ...


class HttpExternalSigner:
    """A signing service at ``url`` (``POST {url}/sign``, ``GET {url}/health``)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = httpx.Timeout(timeout_s)

    def __repr__(self) -> str:
        return f"HttpExternalSigner({self.url!r})"

    def sign(self, data: bytes) -> bytes:
        try:
            response = httpx.post(
                f"{self.url}/sign",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise SigningFailed(f"external signer {self.url} unreachable: {exc}") from exc
        if response.status_code != 200 or not response.content:
            raise SigningFailed(
                f"external signer {self.url} answered {response.status_code}: "
                f"{response.text[:200]!r}"
            )
        return response.content

    def check_algorithm(self, expected: str) -> None:
        """At start-up: the service is up and signs with the certificate chain's algorithm."""
        try:
            response = httpx.get(f"{self.url}/health", timeout=self._timeout)
            response.raise_for_status()
            algorithm = response.json().get("algorithm")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise CredentialsError(f"external signer {self.url} is not usable: {exc}") from exc
        if algorithm != expected:
            raise CredentialsError(
                f"external signer {self.url} signs with {algorithm!r} but the certificate "
                f"chain needs {expected!r}"
            )
