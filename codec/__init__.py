"""The contract both ends agree on bit for bit: payload, coders, keys, frames, manifest."""

from .delta import LabelledSet, apply_delta, set_digest
from .errors import *  # noqa: F403
from .errors import __all__ as _errors
from .exemplars import Exemplars
from .framing import Reassembler, make_frames
from .indexset import decode_indices, encode_indices, log2_binomial, prefix_select, segments_from_groups
from .keys import TrustSet, generate_keypair, key_id, load_private_key, load_public_key
from .labels import decode_labels, encode_labels
from .manifest import Manifest, ReferenceStore, merkle_root
from .payload import (
    Header,
    Payload,
    Verified,
    build_payload,
    decode_payload,
    open_payload,
    peek,
    peek_header,
    verify_payload,
)
from .softlabels import SoftLabels, soft_from_probs
from .storage import atomic_write

__all__ = [
    *_errors,
    "Reassembler",
    "make_frames",
    "encode_indices",
    "decode_indices",
    "prefix_select",
    "log2_binomial",
    "segments_from_groups",
    "encode_labels",
    "decode_labels",
    "TrustSet",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "Manifest",
    "ReferenceStore",
    "merkle_root",
    "Header",
    "Payload",
    "Verified",
    "build_payload",
    "verify_payload",
    "decode_payload",
    "open_payload",
    "peek",
    "peek_header",
    "SoftLabels",
    "soft_from_probs",
    "Exemplars",
    "LabelledSet",
    "apply_delta",
    "set_digest",
    "atomic_write",
]
