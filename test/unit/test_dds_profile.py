"""The node's Fast DDS camera profile: applied before rclpy.init unless the user or the machine
says otherwise, and a valid Fast DDS profile with a segment that holds a whole frame."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from worldfm_ros.ros import dds

NS = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv(dds.PROFILE_VARIABLE, raising=False)
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return monkeypatch


def test_the_profile_is_applied_for_fast_dds_when_the_user_names_none(env, tmp_path):
    assert dds.use_camera_profile() == ""
    import os

    assert os.environ[dds.PROFILE_VARIABLE] == str(dds.camera_profile_path())


def test_a_profile_the_user_names_is_kept(env):
    env.setenv(dds.PROFILE_VARIABLE, "/etc/my_profile.xml")
    assert "is set to /etc/my_profile.xml" in dds.use_camera_profile()
    import os

    assert os.environ[dds.PROFILE_VARIABLE] == "/etc/my_profile.xml"


def test_another_rmw_is_left_alone(env):
    env.setenv("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")
    assert dds.use_camera_profile() == "RMW_IMPLEMENTATION is rmw_cyclonedds_cpp"


def test_a_missing_shared_memory_directory_is_named(env, tmp_path):
    assert str(tmp_path / "none") in dds.use_camera_profile(shm_dir=str(tmp_path / "none"))


def test_the_bundled_profile_gives_the_default_participant_a_shared_memory_segment_of_16_mib():
    root = ET.parse(dds.camera_profile_path()).getroot()
    shm = [d for d in root.iterfind(".//f:transport_descriptor", NS) if d.findtext("f:type", namespaces=NS) == "SHM"]
    assert [int(d.findtext("f:segment_size", namespaces=NS)) for d in shm] == [dds.SEGMENT_BYTES]
    participant = root.find(".//f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.iterfind(".//f:userTransports/f:transport_id", NS)]
    assert shm[0].findtext("f:transport_id", namespaces=NS) in used and len(used) == 2  # SHM and UDPv4
