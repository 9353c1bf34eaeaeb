"""Every layer's errors join one tree: a caller catching LabelcastError catches every failure labelcast reports."""

from __future__ import annotations

import pytest

from labelcast.errors import LabelcastError


def test_every_layer_raises_labelcast_errors_with_an_exit_code():
    from labelcast.codec import errors as codec_errors
    from labelcast.profiles import ProfileError
    from labelcast.receiver import errors as receiver_errors
    from labelcast.sender.engines import EngineError

    assert codec_errors.LabelcastError is LabelcastError
    layer_errors = [ProfileError, EngineError, *(getattr(receiver_errors, n) for n in receiver_errors.__all__)]
    for cls in layer_errors:
        assert issubclass(cls, LabelcastError) and cls.__doc__ and isinstance(cls.exit_code, int), cls
    assert ProfileError.exit_code == 2 and issubclass(ProfileError, ValueError)  # callers catching ValueError still do


def test_an_unknown_profile_is_a_labelcast_error():
    from labelcast.profiles import load_device, load_link

    with pytest.raises(LabelcastError, match="no-such-link"):
        load_link("no-such-link")
    with pytest.raises(LabelcastError, match="no-such-device"):
        load_device("no-such-device")
