"""Test PKI: a CA, a CA-signed server certificate (127.0.0.1 + localhost) and a self-signed
token-signing certificate, written as PEM files (:func:`make_pki` -> :class:`PKI`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class PKI:
    """Test PKI (PEM files in ``dir``). ``ca_cert`` is what clients trust (``verify=str(pki.ca_cert)``);
    ``certs_dir`` holds only ``ca.crt`` for containers/image tools' ``--cert-dir``."""

    __test__ = False  # never collected by pytest

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    token_cert: Path
    token_key: Path
    certs_dir: Path


TestPKI = PKI


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path) -> PKI:
    """Generate a CA, a CA-signed server cert (SAN IP:127.0.0.1, DNS:localhost; EKU serverAuth) and a
    self-signed token-signing cert, all RSA 2048, valid from yesterday for 30 days."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=30)

    ca_key = _new_key()
    ca_name = _name("ocibuild-test-ca")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(not_before).not_valid_after(not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))

    srv_key = _new_key()
    srv = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_name)
           .public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(not_before).not_valid_after(not_after)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                        data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                        crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                       x509.DNSName("localhost")]), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
           .sign(ca_key, hashes.SHA256()))

    # token signer: self-signed, no EKU (Go's chain verification defaults to ServerAuth when EKU present)
    tok_key = _new_key()
    tok_name = _name("ocibuild-token-signer")
    tok = (x509.CertificateBuilder().subject_name(tok_name).issuer_name(tok_name)
           .public_key(tok_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(not_before).not_valid_after(not_after)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(tok_key, hashes.SHA256()))

    pki = PKI(dir=d, ca_cert=d / "ca.crt", ca_key=d / "ca.key", server_cert=d / "server.crt",
              server_key=d / "server.key", token_cert=d / "token.crt", token_key=d / "token.key",
              certs_dir=d / "certs")
    _write_cert(pki.ca_cert, ca)
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.server_cert, srv)
    _write_key(pki.server_key, srv_key)
    _write_cert(pki.token_cert, tok)
    _write_key(pki.token_key, tok_key)
    pki.certs_dir.mkdir(exist_ok=True)
    shutil.copyfile(pki.ca_cert, pki.certs_dir / "ca.crt")
    return pki


def server_ssl_context(pki: PKI) -> ssl.SSLContext:
    """TLS server context presenting the PKI's server certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    return ctx
