"""A throwaway TLS identity so the simulator can also serve ``https://``.

Some clients only treat ``https:`` URLs as real outputs (replicate-python wraps an output
in ``FileOutput`` only if it starts with ``https:`` or ``data:``), and a gateway may
refuse plain-HTTP upstreams. The certificate is self-signed for ``127.0.0.1`` and
``localhost``, made once per process; clients trust it via ``client_context()`` or the
PEM file at ``ca_file()``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _identity() -> tuple[Path, Path, tempfile.TemporaryDirectory[str]]:
    """Write a fresh key and self-signed certificate to a private temp dir."""
    from cryptography import x509  # only needed when TLS is asked for
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mediagate sandbox")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    holder = tempfile.TemporaryDirectory(prefix="mediagate-sandbox-tls-")
    cert_path, key_path = Path(holder.name, "cert.pem"), Path(holder.name, "key.pem")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, holder


def server_context() -> ssl.SSLContext:
    """The server side: present the self-signed certificate."""
    cert_path, key_path, _ = _identity()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def client_context() -> ssl.SSLContext:
    """A client context that trusts (only) the simulator's certificate."""
    return ssl.create_default_context(cafile=str(ca_file()))


def ca_file() -> Path:
    """PEM file of the certificate, for clients configured by path (``SSL_CERT_FILE``, ``verify=``)."""
    return _identity()[0]
