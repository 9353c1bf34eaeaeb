"""Load link and device profiles.

A profile is a TOML file of known keys; unknown keys and wrong types are errors.
A name resolves to ``profiles/links/NAME.toml`` or ``profiles/devices/NAME.toml``;
a path to a ``.toml`` file works too, and may set ``base = "NAME"`` to override
only what differs from a built-in profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import LabelcastError

try:
    import tomllib
except ImportError:  # Python 3.10 (JetPack 6)
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "LinkProfile",
    "ReturnLink",
    "DeviceProfile",
    "ProfileError",
    "load_link",
    "load_device",
    "load_profile",
    "list_profiles",
]

_HERE = Path(__file__).parent


class ProfileError(LabelcastError, ValueError):
    """A profile name is unknown or a profile file is malformed."""

    exit_code = 2  # a bad --link / --device, as click reports a bad option


@dataclass(frozen=True)
class ReturnLink:
    """The link's return path (device to ground): what one receipt must fit and how often one may go."""

    message_bytes: int = 340  # bytes of one return message (a receipt fits one)
    bit_rate_bps: float = 2400.0
    delivery: str = "arq"  # arq | lossy, as for the forward link
    loss_rate: float = 0.05
    bytes_per_hour: int = 3400  # the device's cap on receipt bytes per hour (airtime, duty cycle or tariff)
    nak_after_s: float = 600.0  # a payload incomplete this long is reported as partial (a NAK)
    source: str = ""

    def units(self) -> dict[str, str]:
        return {
            "message_bytes": "B",
            "bit_rate_bps": "bit/s",
            "loss_rate": "fraction",
            "bytes_per_hour": "B/h",
            "nak_after_s": "s",
        }


@dataclass(frozen=True)
class LinkProfile:
    name: str
    description: str = ""
    frame_bytes: int = 270  # application bytes per frame/message (the frame we build must fit)
    frame_overhead_bytes: int = 0  # link-layer bytes per frame on air, beyond frame_bytes
    bit_rate_bps: float = 2400.0  # raw bit rate while transmitting
    frame_latency_s: float = 0.0  # fixed per-message cost (session set-up, turn-around)
    duty_cycle: float = 1.0  # fraction of time the transmitter may be on (regulatory)
    pass_bytes: int = 0  # bytes per contact pass; 0 = continuous link
    passes_per_day: float = 0.0  # contact passes per day (when pass_bytes > 0)
    # Delivery model. "arq": the link retransmits (a lost message is retried or waits at the
    # gateway), so every frame arrives in the end and parity buys nothing; "lossy": a lost frame is
    # gone (one-way links), so the sender adds parity for a delivery target (send --delivery).
    delivery: str = "lossy"  # arq | lossy
    loss_rate: float = 0.05  # fraction of frames lost (lossy) or of sessions failed and retried (arq)
    cut_rate: float = 0.0  # lossy only: probability a transmission ends early (a pass cut short)
    cut_max: float = 0.0  # an early end loses the last u of the frames, u uniform in [0, cut_max]
    source: str = ""  # where the numbers come from
    return_link: ReturnLink = ReturnLink()  # the [return] section: receipts, NAKs (docs/receipts.md)

    @property
    def retransmits(self) -> bool:
        return self.delivery == "arq"

    def transmissions_for(self, frames: int) -> float:
        """Expected frame transmissions: on an ARQ link each lost session is retried."""
        return frames / (1.0 - self.loss_rate) if self.retransmits else float(frames)

    def seconds_for(self, frames: float) -> float:
        """Time on the link for ``frames`` frame transmissions, duty cycle and passes included."""
        on_air = frames * (
            (self.frame_bytes + self.frame_overhead_bytes) * 8 / self.bit_rate_bps + self.frame_latency_s
        )
        t = on_air / self.duty_cycle
        if self.pass_bytes > 0 and self.passes_per_day > 0:
            passes = self.passes_for(frames)
            t = max(t, (passes - 1) * 86400.0 / self.passes_per_day + on_air / max(passes, 1))
        return t

    def passes_for(self, frames: int) -> int:
        if self.pass_bytes <= 0:
            return 1
        per_pass = max(1, self.pass_bytes // (self.frame_bytes + self.frame_overhead_bytes))
        return max(1, math.ceil(frames / per_pass))

    def units(self) -> dict[str, str]:
        """The unit of each numeric field, for people reading a profile."""
        return {
            "frame_bytes": "B",
            "frame_overhead_bytes": "B",
            "bit_rate_bps": "bit/s",
            "frame_latency_s": "s",
            "duty_cycle": "fraction",
            "pass_bytes": "B",
            "passes_per_day": "1/day",
            "loss_rate": "fraction",
            "cut_rate": "probability",
            "cut_max": "fraction",
        }


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str = ""
    memory_mb: int = 4096  # total memory (shared CPU/GPU on Jetson)
    usable_fraction: float = 0.5  # fraction of memory training may use
    precision: str = "fp32"  # preferred training/inference precision: fp32 | fp16 | int8
    backend: str = "onnxruntime"  # preferred inference backend: onnxruntime | tensorrt
    cuda: bool = False  # has a CUDA GPU
    cpu_cores: int = 2  # cores for data loading and CPU training
    max_batch: int = 256  # upper bound on the training batch size
    workspace_mb: int = 512  # TensorRT builder workspace limit
    source: str = ""

    @property
    def budget_bytes(self) -> int:
        return int(self.memory_mb * self.usable_fraction * (1 << 20))

    def units(self) -> dict[str, str]:
        return {
            "memory_mb": "MiB",
            "usable_fraction": "fraction",
            "cpu_cores": "cores",
            "max_batch": "images",
            "workspace_mb": "MiB",
        }


_RETIRED = {
    "fec_overhead_percent": "parity now follows the link's delivery model (delivery, loss_rate, cut_rate) and "
    "`send --delivery P`; remove the key, or pass `send --overhead N` for a fixed parity",
}


def _load(kind: str, cls, name_or_path: str):
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = _HERE / kind / f"{name_or_path}.toml"
    if not p.exists():
        known = ", ".join(list_profiles(kind))
        raise ProfileError(f"unknown {kind[:-1]} profile {name_or_path!r}; known: {known}")
    try:
        data = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProfileError(f"{p}: {e}") from e
    base = data.pop("base", None)
    ret = data.pop("return", None) if cls is LinkProfile else None
    parent = _load(kind, cls, base) if base else None
    values = {f.name: getattr(parent, f.name) for f in fields(cls)} if parent else {}
    if ret is not None:
        if not isinstance(ret, dict):
            raise ProfileError(f"{p}: [return] must be a table")
        values["return_link"] = ReturnLink(**_checked(p, ReturnLink, ret))
    values.update(_checked(p, cls, data))
    values.setdefault("name", p.stem)
    if base:
        values["name"] = data.get("name", p.stem)
    return cls(**values)


def _checked(p: Path, cls, data: dict) -> dict:
    """The keys of ``data`` as ``cls``'s fields, each of its declared type; unknown or retired keys refused."""
    names = {f.name: f for f in fields(cls) if f.type in ("int", "float", "str", "bool")}
    values = {}
    for k, v in data.items():
        if k in _RETIRED:
            raise ProfileError(f"{p}: key {k!r} is no longer used: {_RETIRED[k]}")
        if k not in names:
            raise ProfileError(f"{p}: unknown key {k!r}; allowed: {', '.join(names)}")
        typ = names[k].type
        want = {"int": int, "float": (int, float), "str": str, "bool": bool}[typ]
        if isinstance(v, bool) and typ != "bool" or not isinstance(v, want):
            raise ProfileError(f"{p}: {k} must be {typ}, got {type(v).__name__}")
        values[k] = float(v) if typ == "float" else v
    return values


def load_link(name: str) -> LinkProfile:
    prof = _load("links", LinkProfile, name)
    if prof.frame_bytes < 24 or prof.bit_rate_bps <= 0 or not 0 < prof.duty_cycle <= 1 or not 0 <= prof.loss_rate < 1:
        raise ProfileError(f"link profile {prof.name}: values out of range")
    if prof.delivery not in ("arq", "lossy") or not 0 <= prof.cut_rate < 1 or not 0 <= prof.cut_max < 1:
        raise ProfileError(f"link profile {prof.name}: delivery must be arq or lossy, cut_rate and cut_max in [0, 1)")
    r = prof.return_link
    if r.message_bytes < 24 or r.bit_rate_bps <= 0 or r.delivery not in ("arq", "lossy") or not 0 <= r.loss_rate < 1:
        raise ProfileError(f"link profile {prof.name}: [return] values out of range")
    if r.bytes_per_hour < r.message_bytes or r.nak_after_s < 0:
        raise ProfileError(f"link profile {prof.name}: [return] bytes_per_hour must hold one message, nak_after_s ≥ 0")
    return prof


def load_device(name: str) -> DeviceProfile:
    prof = _load("devices", DeviceProfile, name)
    if prof.memory_mb <= 0 or not 0 < prof.usable_fraction <= 1 or prof.precision not in ("fp32", "fp16", "int8"):
        raise ProfileError(f"device profile {prof.name}: values out of range")
    return prof


def list_profiles(kind: str) -> list[str]:
    return sorted(p.stem for p in (_HERE / kind).glob("*.toml"))


def _kind_of_file(p: Path) -> str:
    """links or devices, told by a profile file's ``base`` or its keys."""
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise ProfileError(f"cannot read profile {p}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{p}: {e}") from e
    base = data.get("base")
    if isinstance(base, str):
        return "devices" if base in list_profiles("devices") else "links"
    link_keys = {f.name for f in fields(LinkProfile)}
    device_keys = {f.name for f in fields(DeviceProfile)}
    keys = set(data)
    return "devices" if len(keys & (device_keys - link_keys)) > len(keys & (link_keys - device_keys)) else "links"


def load_profile(name: str) -> LinkProfile | DeviceProfile:
    """A link or a device profile by NAME or .toml path, with the one loader's messages."""
    p = Path(name)
    if p.suffix == ".toml":
        return load_device(name) if _kind_of_file(p) == "devices" else load_link(name)
    if name in list_profiles("links"):
        return load_link(name)
    if name in list_profiles("devices"):
        return load_device(name)
    raise ProfileError(
        f"unknown profile {name!r}; links: {', '.join(list_profiles('links'))}; "
        f"devices: {', '.join(list_profiles('devices'))}"
    )
