"""What `worldfm bench-node --cameras` counts as a lost IMU sample and a gap."""

from worldfm_ros.ros.bench_rig import IN_FLIGHT_S, imu_figures, stream_figures

PERIOD = 5_000_000  # 200 Hz, ns
START = 1_000 * PERIOD + 1_234  # the window opens between two IMU stamps
END = START + 2_000_000_000 + int(IN_FLIGHT_S * 1e9)  # 2 s of counted stamps


def grid(first_k: int, last_k: int) -> list[int]:
    return [k * PERIOD for k in range(first_k, last_k + 1)]


def test_every_grid_stamp_received_is_no_loss_and_the_largest_gap_is_one_period():
    stamps = grid(1_000, 1_500)
    r = imu_figures(stamps, stamps, START, END, 200.0)
    assert (r["expected"], r["received"], r["lost"]) == (400, 400, 0)
    assert r["max_gap_ms"] == 5.0


def test_missing_stamps_count_as_lost_and_widen_the_gap():
    stamps = [t for t in grid(1_000, 1_500) if not 1_100 <= t // PERIOD < 1_110]
    r = imu_figures(stamps, stamps, START, END, 200.0)
    assert (r["expected"], r["lost"]) == (400, 10)
    assert r["lost_pct"] == 2.5
    assert r["max_gap_ms"] == 55.0


def test_a_camera_stream_has_its_rate_and_largest_gap():
    stamps = [i * 100_000_000 for i in range(11) if i != 5]
    r = stream_figures(stamps, 0, 10**12)
    assert r["frames"] == 10 and abs(r["rate_hz"] - 9 / 1.0) < 1e-9 and r["max_gap_ms"] == 200.0
