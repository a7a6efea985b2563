"""The password gate's bcrypt hashes (plugins/filter/opengram.py,
tasks/access.yml): a random salt per hash, a hash kept on the host reused while
it verifies the password, a new one for a changed password, a given
password_hash as is; and none of them ever shown by common_file."""

import base64
import grp
import hashlib
import hmac
import os
import pwd
from pathlib import Path

import bcrypt
import pytest
import role_modules

ROOT = Path(__file__).resolve().parents[2]
filters = role_modules.load(ROOT / "plugins/filter/opengram.py")
action = role_modules.load(ROOT / "plugins/action/common_file.py")

PASSWORD = "Qx7v9Lm2Rt8Wz-correct-horse"
OTHER = "Pq4Ks8Vn1Yc6Hb-another-one"
COST = 4  # bcrypt's minimum: the tests hash many times


def hashes(users, kept=None, cost=COST):
    return filters.opengram_access_hashes(users, kept, cost)


def one(password=PASSWORD, kept=None, name="alice", cost=COST):
    [user] = hashes([{"name": name, "password": password}], kept, cost)
    assert user["name"] == name
    return user["hash"]


def salt(hashed):
    """$2b$NN$ + the 22 characters of the salt."""
    return hashed[:29]


def test_a_new_hash_is_bcrypt_at_the_roles_cost_and_verifies_the_password():
    hashed = one(cost=filters.BCRYPT_COST)
    assert hashed.startswith("$2b$%02d$" % filters.BCRYPT_COST) and len(hashed) == 60
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    assert not bcrypt.checkpw(OTHER.encode(), hashed.encode())


def test_two_hashes_of_the_same_password_for_the_same_user_differ():
    first, second = one(), one()
    assert first != second and salt(first) != salt(second)
    assert bcrypt.checkpw(PASSWORD.encode(), first.encode()) and bcrypt.checkpw(PASSWORD.encode(), second.encode())


def test_the_salt_comes_from_bcrypt_gensalt(monkeypatch):
    """Whatever salt bcrypt.gensalt gives is the hash's: nothing of the password goes into it."""
    fixed = b"$2b$04$" + b"A" * 21 + b"O"  # a salt bcrypt takes (its last character holds 2 bits)
    calls = []

    def gensalt(rounds=12, prefix=b"2b"):
        calls.append(rounds)
        return fixed

    monkeypatch.setattr(bcrypt, "gensalt", gensalt)
    assert salt(one()) == fixed.decode()
    assert salt(one(OTHER)) == fixed.decode()
    assert calls == [COST, COST]


def old_derived_salt(password, host, name, cost):
    """The salt the role derived before (HMAC-SHA256 keyed with the password over host and name)."""
    digest = hmac.new(password.encode(), ("opengram-deploy|%s|%s" % (host, name)).encode(), hashlib.sha256).digest()
    std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    crypt = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    b64 = base64.b64encode(digest[:16]).decode().rstrip("=").translate(str.maketrans(std, crypt))
    return "$2b$%02d$" % cost + b64[:22]


def test_the_salt_is_not_derived_from_the_password_any_more():
    # The filter no longer takes a host to derive from; its salt is not the old derivation's.
    hashed = one(cost=filters.BCRYPT_COST)
    for host in ("app", "localhost", ""):
        assert salt(hashed) != old_derived_salt(PASSWORD, host, "alice", filters.BCRYPT_COST)
    source = (ROOT / "plugins/filter/opengram.py").read_text()
    assert "hmac" not in source and "gensalt" in source


def test_a_kept_hash_that_verifies_the_password_is_kept():
    kept = one()
    assert one(kept={"alice": kept}) == kept
    # As tasks/access.yml hands it over: the kept file's lines, name:hash.
    assert one(kept=["bob:" + one(name="bob"), "alice:" + kept, ""]) == kept
    # Kept at another cost: still verifies, still kept (as htpasswd does).
    assert one(kept=["alice:" + kept], cost=filters.BCRYPT_COST) == kept


def test_a_changed_password_gets_a_new_hash():
    old = one()
    new = one(OTHER, kept=["alice:" + old])
    assert new != old and salt(new) != salt(old)
    assert bcrypt.checkpw(OTHER.encode(), new.encode()) and not bcrypt.checkpw(PASSWORD.encode(), new.encode())


def test_a_hash_kept_for_another_user_is_not_taken():
    bobs = one(name="bob")
    hashed = one(kept=["bob:" + bobs])
    assert hashed != bobs and bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    # Nor a hash of the same password kept under another name.
    assert one(kept=["bob:" + one(name="bob")]) != one(kept=["bob:" + one(name="bob")])


@pytest.mark.parametrize("line", ["alice:", "alice:not-a-hash", "alice:$apr1$abc$0123456789abcdef",
                                  "alice:$2b$04$" + "*" * 53, "alice", ":$2b$04$" + "A" * 53])
def test_anything_kept_that_is_no_bcrypt_hash_is_ignored(line):
    hashed = one(kept=[line])
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    assert filters.opengram_access_kept([line]) == {}


def test_a_given_password_hash_is_used_as_is():
    given = bcrypt.hashpw(b"from htpasswd -nB carol", bcrypt.gensalt(rounds=COST)).decode().replace("$2b$", "$2y$")
    users = [{"name": "carol", "password_hash": given}, {"name": "alice", "password": PASSWORD}]
    kept = ["carol:" + one(name="carol")]
    result = hashes(users, kept)
    assert result[0] == {"name": "carol", "hash": given}
    assert bcrypt.checkpw(PASSWORD.encode(), result[1]["hash"].encode())


def test_no_users_no_hashes():
    assert hashes([], ["alice:" + one()]) == []
    assert hashes(None) == []


# ---- what the host keeps and what a run shows --------------------------------------


def access_read(path):
    """tasks/access.yml's no_log look: the kept file's content and its files entry."""
    return role_modules.run_module(ROOT / "plugins/modules/common_look.py", {"reads": [str(path)], "files": [str(path)]})


def test_the_access_read_gives_the_kept_lines_and_the_files_entry(tmp_path):
    kept = tmp_path / "access.htpasswd"
    alice, bob = one(), one(name="bob")
    content = "alice:%s\nbob:%s\n" % (alice, bob)
    kept.write_text(content)
    kept.chmod(0o600)
    answer = access_read(kept)
    kept_lines = answer["contents"][str(kept)].splitlines()
    assert kept_lines == ["alice:" + alice, "bob:" + bob]
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    assert action.is_known(answer["files"], str(kept), content, owner, group, "0600")
    # What tasks/access.yml makes of them: the same hashes again.
    assert hashes([{"name": "alice", "password": PASSWORD}], kept_lines)[0]["hash"] == alice
    missing = access_read(tmp_path / "missing")
    assert missing["contents"] == {} and missing["files"] == {}


def test_common_file_never_shows_a_bcrypt_hash():
    plain = one()
    given = plain.replace("$2b$", "$2y$")
    encoded = base64.b64encode(plain.encode()).decode()
    site = "example.test {\n\tbasicauth bcrypt {\n\t\talice %s\n\t}\n\treverse_proxy 127.0.0.1:3000\n}\n" % encoded
    result = {
        "changed": True,
        "diff": [{"before": site.replace(encoded, base64.b64encode(one().encode()).decode()), "after": site}],
        "invocation": {"module_args": {"content": site, "dest": "/etc/caddy/opengram-deploy/site.caddy"}},
        "msg": "users alice:%s carol:%s" % (plain, given),
        "rc": 0,
    }
    shown = action.redact(result)
    text = repr(shown)
    assert plain not in text and given not in text and encoded not in text and "JDJ" not in text
    assert "$2b$" not in text and "$2y$" not in text
    assert shown["diff"][0]["after"] == site.replace(encoded, action.HIDDEN)
    assert "reverse_proxy 127.0.0.1:3000" in shown["invocation"]["module_args"]["content"]
    assert shown["changed"] is True and shown["rc"] == 0
    # Text without a hash is handed back as it was.
    assert action.redact({"a": ["x $2 JDJ y", 1]}) == {"a": ["x $2 JDJ y", 1]}
