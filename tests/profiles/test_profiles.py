import pytest

from labelcast.profiles import ProfileError, list_profiles, load_device, load_link

LINKS = {
    "iridium-sbd-mt",
    "iridium-sbd-mo",
    "iridium-sbd-1890",
    "iridium-certus-100",
    "lora-eu868-dr0",
    "lora-eu868-dr5",
    "acoustic-80bps",
    "acoustic-5kbps",
    "mars-relay-uhf",
    "mars-dte-xband",
}
DEVICES = {
    "cpu-small",
    "jetson-nano-4gb",
    "jetson-xavier-nx-8gb",
    "jetson-orin-nano-4gb",
    "jetson-orin-nano-8gb",
    "jetson-orin-nx-16gb",
    "jetson-agx-orin-64gb",
}


def test_all_named_profiles_exist_and_load():
    assert LINKS <= set(list_profiles("links"))
    assert DEVICES <= set(list_profiles("devices"))
    for n in LINKS:
        assert load_link(n).frame_bytes > 0
    for n in DEVICES:
        assert load_device(n).budget_bytes > 0


def test_known_link_facts():
    assert load_link("iridium-sbd-mt").frame_bytes == 270
    assert load_link("iridium-sbd-mo").frame_bytes == 340
    assert load_link("iridium-sbd-1890").frame_bytes == 1890
    dr0 = load_link("lora-eu868-dr0")
    assert (dr0.frame_bytes, dr0.bit_rate_bps, dr0.duty_cycle) == (51, 250.0, 0.01)


def test_duty_cycle_stretches_time():
    dr0 = load_link("lora-eu868-dr0")
    assert dr0.seconds_for(10) == pytest.approx(10 * 64 * 8 / 250 / 0.01)


def test_unknown_keys_and_types_are_errors(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('base = "iridium-sbd-mt"\nframe_bytes = 100\nbogus = 1\n')
    with pytest.raises(ProfileError, match="unknown key"):
        load_link(str(p))
    p.write_text('base = "iridium-sbd-mt"\nframe_bytes = "big"\n')
    with pytest.raises(ProfileError, match="must be int"):
        load_link(str(p))
    p.write_text('base = "iridium-sbd-mt"\nframe_bytes = 100\n')
    assert load_link(str(p)).frame_bytes == 100 and load_link(str(p)).bit_rate_bps == 2400.0


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ProfileError, match="iridium-sbd-mt"):
        load_link("no-such-link")
