"""Work beyond one process, on one two-node Ray cluster (module-scoped: Ray starts slowly):
``worldfm render-batch`` (resumable; a worker killed mid-job loses and duplicates nothing) and the
vector env whose robots live in Ray actors."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from worldfm_ros.cli import main as worldfm

ARGS = ["--backend", "anchor", "--size", "48", "36", "--kind", "base", "--no-video", "--no-progress"]


def write_trajectories(folder: Path, count: int, poses: int = 12) -> list[str]:
    """``count`` TUM files of ``poses`` base poses each, slow arcs through the bundled room."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        lines = [f"{k * 0.1:.1f} {3.0 + 0.04 * k + 0.1 * i:.3f} {2.5 + 0.02 * k:.3f} 1.0 0 0 "
                 f"{math.sin(0.04 * k + 0.3 * i):.5f} {math.cos(0.04 * k + 0.3 * i):.5f}" for k in range(poses)]
        path = folder / f"traj{i}.txt"
        path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
    return paths


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_corrupt_trajectory_fails_with_its_name_while_the_others_finish_and_a_rerun_skips_them(tmp_path, capsys):
    trajectories = write_trajectories(tmp_path / "in", 2)
    corrupt = tmp_path / "in" / "broken.txt"
    corrupt.write_text("0.0 1 2 3\n")
    out = tmp_path / "out"
    assert worldfm(["render-batch", *trajectories, str(corrupt), "-o", str(out), *ARGS]) == 1
    text = capsys.readouterr().out
    assert "2 rendered" in text and "1 failed" in text and "failed: default/broken:" in text
    assert sorted(p.name for p in (out / "default").iterdir()) == ["traj0", "traj1"]  # no partial folder
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert worldfm(["render-batch", *trajectories, "-o", str(out), *ARGS]) == 0
    assert "0 rendered, 2 already there" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


@pytest.mark.parametrize("address, why", [("127.0.0.1:9", "no Ray head answers there within 2 s"),  # refused
                                          ("10.255.255.1:6379", "within 2 s")])  # silent, or not a Ray head
def test_a_ray_address_that_does_not_answer_is_refused_within_the_timeout(tmp_path, capsys, address, why):
    pytest.importorskip("ray")
    trajectories = write_trajectories(tmp_path / "in", 1)
    start = time.monotonic()
    code = worldfm(["render-batch", *trajectories, "-o", str(tmp_path / "out"), *ARGS, "--ray", address,
                    "--connect-timeout", "2"])
    assert code == 2 and time.monotonic() - start < 15
    err = capsys.readouterr().err
    assert f"--ray {address}: " in err and why in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def running_task_workers() -> list:
    """This test's Ray worker processes that are rendering a task now (Ray titles them by the method running)."""
    import psutil

    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.cmdline()[:1] == ["ray::RenderWorker.render"]:
                out.append(proc)
        except psutil.Error:
            pass
    return out


def test_a_worker_killed_mid_job_on_a_two_node_cluster_loses_and_duplicates_nothing(cluster, tmp_path):
    import psutil
    import ray

    from worldfm_ros.scale.ray_runtime import connect

    connect(cluster.address)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    trajectories = write_trajectories(tmp_path / "in", 6, poses=30)
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert worldfm(["render-batch", *trajectories, "-o", str(reference), *ARGS]) == 0
    codes = []
    job = threading.Thread(target=lambda: codes.append(
        worldfm(["render-batch", *trajectories, "-o", str(out), *ARGS, "--ray", cluster.address])))
    job.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        in_progress = list(out.glob("default/.traj*.tmp-*"))
        workers = running_task_workers()
        if in_progress and workers:
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    job.join(timeout=180)
    assert killed is not None and (not psutil.pid_exists(killed) or psutil.Process(killed).status() == "zombie")
    assert codes == [0]
    assert sorted(p.name for p in (out / "default").iterdir()) == [f"traj{i}" for i in range(6)]  # once each, no tmp
    assert files(out) == files(reference)


def test_robots_in_ray_actors_see_what_one_batched_env_of_all_of_them_sees(cluster):
    import numpy as np

    from worldfm_ros.envs.batched import BatchedWorldFMEnv
    from worldfm_ros.scale.ray_runtime import connect
    from worldfm_ros.scale.ray_vector import RayVectorEnv

    connect(cluster.address)
    kwargs = dict(config={"camera": {"width": 24, "height": 18}, "backend": {"name": "anchor"}},
                  max_episode_steps=4, observation="rgbd")
    spread = RayVectorEnv(5, num_actors=2, **kwargs)
    local = BatchedWorldFMEnv(5, **kwargs)
    assert spread.observation_space == local.observation_space
    assert np.array_equal(spread.reset(seed=3)[0], local.reset(seed=3)[0])
    rng = np.random.default_rng(0)
    for _ in range(6):  # past the time limit: next-step autoresets inside each actor
        actions = rng.uniform(-1, 1, (5, 2)).astype(np.float32)
        got, want = spread.step(actions), local.step(actions)
        for g, w in zip(got[:4], want[:4]):
            assert np.array_equal(g, w)
        assert np.array_equal(got[4]["map_T_base"], want[4]["map_T_base"])
    spread.close()
    local.close()
