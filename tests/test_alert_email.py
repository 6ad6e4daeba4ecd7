"""E-mail alerts through a real SMTP server on loopback (aiosmtpd): STARTTLS with a self-signed
certificate the client is told to trust, AUTH over it, implicit TLS for ``smtps://``, and the
outcome of a wrong password, a refused recipient, a temporary refusal and no server at all."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from alert_samples import HOSTILE, bug_alert, deliver, digest
from conftest import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER, PASSWORD = "alerts@example.org", "p@ss:word/1"


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], EmailMessage]]
    refuse_data: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 queued as 42"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                 data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # (handled=True: no answer at all)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox([])
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            tls_context=server_tls(certificate), require_starttls=True,
                            authenticator=authenticate, auth_require_tls=True)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_starttls_and_login_then_a_plain_and_html_message(
        starttls_server: tuple[Mailbox, int], certificate: tuple[Path, Path]) -> None:
    mailbox, port = starttls_server
    url = (f"smtp://alerts%40example.org:p%40ss%3Aword%2F1@127.0.0.1:{port}/"
           "?to=ops@example.org&to=dev@example.org")
    alert = bug_alert(title=HOSTILE)
    outcome = deliver(url, alert, tls=client_tls(certificate),
                      public_url="https://shim.example.org")
    assert outcome.delivered, outcome
    assert outcome.detail == "2.0.0 queued as 42"
    [(sender, recipients, message)] = mailbox.messages
    assert (sender, recipients) == (USER, ["ops@example.org", "dev@example.org"])
    assert message["Subject"] == f"[shim] New bug BUG-00012: {HOSTILE}"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert HOSTILE in plain.get_content()
    assert "https://shim.example.org/bugs/BUG-00012" in plain.get_content()
    markup = html.get_content()
    assert "<script>" not in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "<th align='left'>Component</th><td>ocr-worker</td>" in markup


def test_a_wrong_password_fails_for_good(starttls_server: tuple[Mailbox, int],
                                         certificate: tuple[Path, Path]) -> None:
    _, port = starttls_server
    url = f"smtp://alerts%40example.org:wrong-password@127.0.0.1:{port}/?to=ops@example.org"
    outcome = deliver(url, bug_alert(), tls=client_tls(certificate))
    assert outcome.state == "failed", outcome
    assert outcome.detail.startswith("authentication refused: 535")
    assert "wrong-password" not in outcome.detail


def test_an_untrusted_certificate_fails_and_says_so(starttls_server: tuple[Mailbox, int]) -> None:
    _, port = starttls_server
    outcome = deliver(f"smtp://alerts%40example.org:x@127.0.0.1:{port}/?to=ops@example.org",
                      bug_alert())
    assert outcome.state == "failed" and outcome.detail.startswith("TLS: ")
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail


@pytest.fixture
def plain_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox([])
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_a_refused_recipient_fails_and_a_temporary_refusal_is_retried(
        plain_server: tuple[Mailbox, int]) -> None:
    mailbox, port = plain_server
    refused = deliver(f"smtp://127.0.0.1:{port}/?from=a@example.org&to=nobody@example.org",
                      bug_alert())
    assert refused.state == "failed" and "550" in refused.detail
    mailbox.refuse_data = "451 4.3.0 try again later"
    later = deliver(f"smtp://127.0.0.1:{port}/?from=a@example.org&to=ops@example.org",
                    digest(3))
    assert (later.state, later.status) == ("retry", 451)
    mailbox.refuse_data = None
    assert deliver(f"smtp://127.0.0.1:{port}/?from=a@example.org&to=ops@example.org",
                   digest(3)).delivered
    [(_, _, message)] = mailbox.messages
    assert message["Subject"] == "[shim] 3 alerts: 3 new bugs"


def test_smtps_speaks_tls_from_the_first_byte(certificate: tuple[Path, Path]) -> None:
    mailbox = Mailbox([])
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            ssl_context=server_tls(certificate))
    controller.start()
    try:
        outcome = deliver(f"smtps://127.0.0.1:{port}/?from=a@example.org&to=ops@example.org",
                          bug_alert(), tls=client_tls(certificate))
    finally:
        controller.stop()
    assert outcome.delivered, outcome
    assert len(mailbox.messages) == 1


def test_no_mail_server_is_retried() -> None:
    outcome = deliver(f"smtp://127.0.0.1:{free_port()}/?from=a@example.org&to=b@example.org",
                      bug_alert())
    assert outcome.state == "retry" and outcome.detail.startswith("could not deliver")
