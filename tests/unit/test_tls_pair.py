"""The preflight's check of a bring-your-own certificate and key (filter opengram_tls_pair_problems)."""

import datetime
import importlib.util
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

spec = importlib.util.spec_from_file_location(
    "opengram_filters", Path(__file__).resolve().parents[2] / "plugins/filter/opengram.py")
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)
problems = filters.opengram_tls_pair_problems


def make_pair(names, days=30, start_days_ago=1, passphrase=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=start_days_ago))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@pytest.fixture(scope="module")
def site_pair():
    return make_pair(["chat.example.com"])


def test_a_matching_pair_for_the_domain_passes(site_pair):
    assert problems(*site_pair, "chat.example.com") == []


def test_a_wildcard_covers_one_label():
    cert, key = make_pair(["*.example.com"])
    assert problems(cert, key, "chat.example.com") == []
    assert "does not cover opengram_domain='a.b.example.com'" in problems(cert, key, "a.b.example.com")[0]


def test_the_aliases_must_be_covered_too(site_pair):
    found = problems(*site_pair, "chat.example.com", aliases=["www.chat.example.com"])
    assert len(found) == 1 and "does not cover opengram_domain_aliases ['www.chat.example.com']" in found[0]
    cert, key = make_pair(["chat.example.com", "www.chat.example.com"])
    assert problems(cert, key, "chat.example.com", aliases=["www.chat.example.com"]) == []
    # Not a list: its type check reports it, not this one.
    assert problems(*site_pair, "chat.example.com", aliases="www.chat.example.com") == []


def test_a_key_of_another_certificate_is_named_without_key_material(site_pair):
    _, other_key = make_pair(["chat.example.com"])
    found = problems(site_pair[0], other_key, "chat.example.com")
    assert len(found) == 1 and "do not match" in found[0]
    assert "subject CN=chat.example.com" in found[0]
    assert "PRIVATE KEY" not in found[0] and other_key.splitlines()[1] not in found[0]


def test_garbage_and_encrypted_keys(site_pair):
    assert "is not a PEM certificate" in problems("junk", site_pair[1], "chat.example.com")[0]
    assert "is not a PEM private key (value not shown)" in problems(site_pair[0], "junk", "chat.example.com")[0]
    cert, key = make_pair(["chat.example.com"], passphrase=b"secret")
    assert "is an encrypted private key" in problems(cert, key, "chat.example.com")[0]


def test_an_expired_certificate():
    cert, key = make_pair(["chat.example.com"], days=-1, start_days_ago=10)
    assert "expired on" in problems(cert, key, "chat.example.com")[0]


def test_variable_names_are_the_callers():
    cert, key = make_pair(["other.example"])
    found = problems(cert, key, "chat.example.com", "opengram_tls_certificate_path='/etc/x.crt'", "k")
    assert found[0].startswith("opengram_tls_certificate_path='/etc/x.crt' (subject CN=other.example")
