"""A reference external signing service: the C2PA private key lives here, not in the gateway.

    python -m provenance.signing_service --key signer.key --listen 127.0.0.1:8701

It stands in for a KMS / HSM: the gateway (``provenance.external_signer``) sends the bytes that
c2pa wants signed (the COSE ``Sig_structure``, at most 1 MiB) and gets the raw signature back,
in the form COSE expects (ECDSA as ``r || s``, RSA as PSS with the hash's length of salt,
Ed25519 as is). The gateway holds only the certificate chain.

Protocol (HTTP/1.1 on a loopback address; plain HTTP is acceptable only on loopback, so other
addresses are refused):

- ``POST /sign`` with the bytes as the body → ``200`` and the signature
  (``application/octet-stream``); ``400`` for an empty or oversized body.
- ``GET /health`` → ``200`` and ``{"algorithm": "es256"}``: the gateway checks at start-up that
  the key's algorithm matches its certificate chain.

On start it prints one line, ``listening on http://HOST:PORT``, to stdout (``--listen
127.0.0.1:0`` picks a free port). A production deployment replaces this process by a KMS
client with the same two calls; nothing in the gateway changes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from provenance.errors import CredentialsError
from provenance.pem import algorithm_for_key, parse_private_key, read_pem_file

__all__ = ["MAX_SIGN_BYTES", "SigningServer", "key_signer", "main"]

MAX_SIGN_BYTES = 1024 * 1024  # c2pa-python never hands a callback more than this

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "es256": hashes.SHA256,
    "es384": hashes.SHA384,
    "es512": hashes.SHA512,
    "ps256": hashes.SHA256,
    "ps384": hashes.SHA384,
    "ps512": hashes.SHA512,
}


def key_signer(key: PrivateKeyTypes, algorithm: str) -> Callable[[bytes], bytes]:
    """A function that signs bytes with ``key`` as COSE ``algorithm`` expects."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign
    digest = _HASHES[algorithm]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        ec_key = key

        def sign_ec(data: bytes) -> bytes:
            r, s = decode_dss_signature(ec_key.sign(data, ec.ECDSA(digest())))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        return sign_ec
    if isinstance(key, rsa.RSAPrivateKey):
        rsa_key = key
        pss = padding.PSS(mgf=padding.MGF1(digest()), salt_length=digest().digest_size)
        return lambda data: rsa_key.sign(data, pss, digest())
    raise CredentialsError(f"{type(key).__name__} keys cannot sign C2PA claims")


class SigningServer(ThreadingHTTPServer):
    """Serves ``POST /sign`` and ``GET /health`` for one private key."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], key: PrivateKeyTypes, algorithm: str) -> None:
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise CredentialsError(
                f"the reference signing service listens on loopback only, not {address[0]}"
            )
        self.algorithm = algorithm
        self.sign = key_signer(key, algorithm)
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: SigningServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path != "/health":
            self._reply(404, b"not found\n", "text/plain")
            return
        body = json.dumps({"algorithm": self.server.algorithm}).encode()
        self._reply(200, body, "application/json")

    def do_POST(self) -> None:
        if self.path != "/sign":
            self._reply(404, b"not found\n", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_SIGN_BYTES:
            self.close_connection = True
            self._reply(400, f"body must be 1..{MAX_SIGN_BYTES} bytes\n".encode(), "text/plain")
            return
        data = self.rfile.read(length)
        self._reply(200, self.server.sign(data), "application/octet-stream")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """One line per request on stderr, never the signed bytes."""
        sys.stderr.write(f"signing_service: {format % args}\n")


def _listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provenance.signing_service",
        description="Reference external C2PA signer: holds the private key, signs over HTTP.",
    )
    parser.add_argument("--key", type=Path, required=True, help="PEM private key (unencrypted)")
    parser.add_argument(
        "--listen", type=_listen_address, default=("127.0.0.1", 8701), help="HOST:PORT (loopback)"
    )
    args = parser.parse_args(argv)
    try:
        key = parse_private_key(read_pem_file(args.key, "private key"), f"private key {args.key}")
        server = SigningServer(args.listen, key, algorithm_for_key(key, str(args.key)))
    except (CredentialsError, OSError) as exc:
        print(f"signing_service: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"listening on http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
