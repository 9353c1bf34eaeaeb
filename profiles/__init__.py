"""Link and device profiles: TOML data files and a small, strict loader (stdlib only)."""

from .loader import (
    DeviceProfile,
    LinkProfile,
    ProfileError,
    ReturnLink,
    list_profiles,
    load_device,
    load_link,
    load_profile,
)

__all__ = [
    "DeviceProfile",
    "LinkProfile",
    "ReturnLink",
    "ProfileError",
    "list_profiles",
    "load_device",
    "load_link",
    "load_profile",
]
