"""A small RFC 3161 time-stamp authority for tests: its own CA, an ECDSA P-256 TSA certificate
(EKU timeStamping, critical), and an HTTP responder on a free loopback port.

``TimeStampAuthority.start()`` serves ``POST /`` (``application/timestamp-query`` in,
``application/timestamp-reply`` out): it parses the TimeStampReq, answers ``granted`` with a
CMS SignedData over a TSTInfo (the request's message imprint and nonce, a serial number, the
current time, accuracy 1 s), signed attributes content-type, message-digest, signing-time and
signingCertificateV2 (RFC 5035, as RFC 3161 §2.4.1 requires), and the TSA certificate when the
request asks for it. A request that is not a TimeStampReq gets HTTP 400. Every request is
recorded in ``requests`` (message imprint algorithm and nonce) so a test can see that c2pa
called it.
"""

from __future__ import annotations

import datetime
import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY_OID = "1.3.6.1.4.1.99999.3161.1"  # a private-arc test policy


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GenGuard test TSA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificates() -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed test root, and a TSA leaf it issues (with the leaf's key)."""
    now = datetime.datetime.now(datetime.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("GenGuard test TSA root"))
        .issuer_name(_name("GenGuard test TSA root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("GenGuard test TSA"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    return root, leaf, leaf_key


@dataclass
class TimeStampAuthority:
    root: x509.Certificate
    leaf: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    requests: list[dict[str, Any]] = field(default_factory=list)
    _serial: int = 0
    _server: ThreadingHTTPServer | None = None

    @classmethod
    def create(cls) -> TimeStampAuthority:
        root, leaf, key = _certificates()
        return cls(root, leaf, key)

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def respond(self, body: bytes) -> bytes | None:
        """The DER TimeStampResp for a DER TimeStampReq, ``None`` for anything else."""
        try:
            request = tsp.TimeStampReq.load(body)
            imprint = request["message_imprint"]
            nonce = request["nonce"].native
            wants_certificate = bool(request["cert_req"].native)
            self.requests.append(
                {"hash_algorithm": imprint["hash_algorithm"]["algorithm"].native, "nonce": nonce}
            )
        except (ValueError, TypeError, KeyError):
            return None
        self._serial += 1
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        info: dict[str, Any] = {
            "version": "v1",
            "policy": POLICY_OID,
            "message_imprint": imprint,
            "serial_number": self._serial,
            "gen_time": now,
            "accuracy": {"seconds": 1},
        }
        if nonce is not None:
            info["nonce"] = nonce
        tst_info = tsp.TSTInfo(info)
        content = tst_info.dump()
        leaf = asn1_x509.Certificate.load(self.leaf.public_bytes(serialization.Encoding.DER))
        attributes = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
                {"type": "signing_time", "values": [cms.Time({"utc_time": now})]},
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(leaf.dump()).digest()}]}],
                },
            ]
        )
        signature = self.key.sign(attributes.dump(), ec.ECDSA(hashes.SHA256()))
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": leaf.issuer,
                            "serial_number": leaf.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": attributes,
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                "signature": signature,
            }
        )
        signed_data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(content),
            },
            "signer_infos": [signer],
        }
        if wants_certificate:
            signed_data["certificates"] = [leaf]
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        return tsp.TimeStampResp(
            {"status": {"status": "granted"}, "time_stamp_token": token}
        ).dump()

    def start(self) -> TimeStampAuthority:
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                reply = authority.respond(self.rfile.read(length))
                if reply is None:
                    self.send_error(400, "not a TimeStampReq")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
