"""encrypt_to: public keys checked when the configuration is read; a bad one named by its index in one line,
a secret key refused without being repeated."""
from __future__ import annotations

import pytest

from backupd.config import ConfigError, load
from tests.configs import job, write_config

AGE = "age1xerltrfxfe9fdmqazct0eas8qhg0h0s2krtgtkrf9r2l6n44wa4sq5hks8"
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILaQiC4Rnjn6EmuZJyUi9ZTQnu6sq6DbHkgJjnGxpR7f"
RSA_2048 = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCsEooPR/SJPSgtu+bopPwbmc9weVkwXl9Yyt8V70OVl4dmddbqpSTK3SRjpGNP0rC"
            "zZfRlGiYRzSYaBaKSDhDk65LcR8ZU+z931adovfzNgMmU4YCV5gOuIw5T9zEuQMpuujM4bgE4YIfFY8I7SFTpC0bivvdp2MmVvqfzSOyW"
            "CuWXIMruGm12o7yKRU1fGfQD8djf0YWCDnKKNWddBvyouUUDnS7hp6xyODbyLkdmRJgtXOKii3gGVOhIC/c9LReFKyyz/C2Yz2qTAeXSOd"
            "8yMqvGkS7ei+cA/2wA4kU5JlhTTKhJONB/e7kHUdUk8xt7RZeb74Xe0DYNr5komF0z")
RSA_1024 = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC/Y0NKOR6myLFYNPJ8G8uh+e3bGJYa4XYi3gjYXvzlYqDeEnl5K/QzJww93HO5nYa"
            "xqdvNEXGAD5sV7qLzIrFJ+SOGGE004i5PlU1rw82fCBWUX+MJzTATXcFe/C7mQClD9i7lZ4s8kBT/MWYGW39tpR0a5mjqgjicz6xzP2kZzw==")
SECRET = "AGE-SECRET-KEY-1D5SG25JXAXAURKCGYMA2T8ZDHXV08W4CY4V4JCGAS0VLDQ96HYNSJTME0M"


def loaded(tmp_path, encrypt_to):
    return load(write_config(tmp_path, jobs={"main": job(["files"], encrypt_to=encrypt_to)}))


def only_error(tmp_path, encrypt_to) -> str:
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path, encrypt_to)
    errors = caught.value.errors
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


def test_the_three_kinds_of_recipient_are_read_and_normalised(tmp_path):
    config = loaded(tmp_path, [AGE, f"  {ED25519} alice@laptop ", f"{RSA_2048} backup-key"])
    assert config.jobs["main"].encrypt_to == (AGE, ED25519, RSA_2048)       # comments and spaces dropped


def test_without_encrypt_to_a_job_is_not_encrypted(tmp_path):
    assert load(write_config(tmp_path)).jobs["main"].encrypt_to == ()


@pytest.mark.parametrize("bad, expected", [
    (AGE[:-1] + ("q" if AGE[-1] != "q" else "p"), "[1] 'age1xerl"),
    (AGE[:-1] + ("q" if AGE[-1] != "q" else "p"), "has a wrong checksum"),
    (AGE.upper(), "is not an age public key (age1...), 'ssh-ed25519 AAAA...' or 'ssh-rsa AAAA...'"),
    ("age1yubikey1qqqqqqqqqqqqqqqq", "is an age plugin recipient"),
    ("ssh-ed25519 AAAA", "has a damaged key"),
    ("ssh-ed25519 not*base64", "is not base64"),
    ("ssh-ed25519 " + RSA_2048.split()[1], "holds a key of another type than 'ssh-ed25519'"),
    (RSA_1024, "is a 1024-bit RSA key; age needs at least 2048 bits"),
    ("ssh-dss AAAAB3NzaC1kc3M", "is not an age public key"),
    ("", "is not an age public key"),
])
def test_a_bad_recipient_is_named_by_its_index(tmp_path, bad, expected):
    message = only_error(tmp_path, [AGE, bad, ED25519])
    assert message.startswith("At 'jobs.main.encrypt_to': [1] ") and expected in message, message


@pytest.mark.parametrize("secret", [SECRET, f"# created: today\n{SECRET}\n",
                                    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n"
                                    "-----END OPENSSH PRIVATE KEY-----\n"])
def test_a_secret_key_is_refused_and_never_repeated(tmp_path, secret):
    message = only_error(tmp_path, [secret])
    assert message.startswith("At 'jobs.main.encrypt_to': [0] is a secret key, not a recipient")
    assert "identities never go into the configuration" in message
    assert SECRET not in message and "b3BlbnNz" not in message


def test_encrypt_to_must_be_a_list_of_strings(tmp_path):
    assert "must be a list of strings" in only_error(tmp_path, AGE)
