"""`worldfm bench-sensors` times each camera effect through the simulator's frame path."""

from __future__ import annotations

import json

from worldfm_ros.cli import main


def test_bench_sensors_prints_and_writes_one_row_per_effect(tmp_path, capsys):
    out = tmp_path / "sensors.json"
    assert main(["bench-sensors", "--size", "96", "72", "--frames", "2", "--effects", "none",
                 "rolling shutter 30 ms", "lens plumb_bob", "--json", str(out)]) == 0
    rows = {r["effect"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"none", "rolling shutter 30 ms", "lens plumb_bob"}
    assert rows["none"]["sensor_ms"] == 0.0  # no effect, no sensor stage
    assert rows["rolling shutter 30 ms"]["sensor_ms"] > 0 and rows["lens plumb_bob"]["sensor_ms"] > 0
    assert "rolling shutter 30 ms" in capsys.readouterr().out
