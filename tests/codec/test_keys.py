import os

import pytest

from labelcast.codec.errors import KeyFileError
from labelcast.codec.keys import generate_keypair, load_private_key


def test_private_key_written_0600(tmp_path):
    priv, _ = generate_keypair(tmp_path)
    assert os.stat(priv).st_mode & 0o777 == 0o600


def test_private_key_with_loose_permissions_refused(tmp_path):
    priv, _ = generate_keypair(tmp_path)
    os.chmod(priv, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(priv)


def test_keygen_does_not_overwrite(tmp_path):
    generate_keypair(tmp_path)
    with pytest.raises(KeyFileError):
        generate_keypair(tmp_path)
