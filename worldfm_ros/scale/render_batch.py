"""Rendering many trajectories in many scenes, in this process or as Ray tasks over a cluster.

A task is one trajectory in one scene, rendered by ``render-trajectory``'s own code path
(``sim.trajectory.render_trajectory``) into ``<output>/<scene>/<trajectory>/``. A task renders into
a temporary sibling folder (``.<name>.tmp-<random>``) and renames it into place when it is
complete, so an output folder is either whole or absent: a job run again skips what is there, a
task whose worker dies is run again by Ray (``retries`` times) from the start, and two attempts
of one task can never both land. Every task is a pure function of its inputs (pose i is rendered
with backend seed i), so the outputs do not depend on how many workers made them or in which
order. A task that fails (a corrupt trajectory file, a scene that does not load) is reported with
its name; the others go on.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldfm_ros.errors import WorldFMError
from worldfm_ros.sim.config import SimConfig

#: status of a finished task
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass(frozen=True)
class RenderTask:
    """One trajectory file in one scene.

    name: '<scene>/<trajectory>', the task's label and its output folder under the job's output.
    config: the simulator configuration, its ``scene`` the scene to render in. kind, world, rate_hz:
    as ``sim.trajectory.load_trajectory``; options: ``render_trajectory`` keywords (png, video, ...).
    """

    name: str
    trajectory: str
    output: str
    config: SimConfig
    kind: str = "optical"
    world: str = "map"
    rate_hz: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """status: DONE, SKIPPED (its output was already there) or FAILED (error says why); frames
    rendered and seconds spent (0 unless DONE)."""

    name: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: str = ""


def plan_tasks(trajectories: list[str], scenes: list[str], output: str | Path, config: SimConfig,
               **task_fields: Any) -> list[RenderTask]:
    """Every trajectory in every scene ('' = the bundled room), in that order; WorldFMError when
    two tasks would share an output folder (trajectories or scenes with the same name)."""
    tasks, seen = [], {}
    for scene in scenes:
        path = Path(scene)
        scene_name = ("default" if not scene else path.parent.name if path.suffix.lower() in (".yaml", ".yml")
                      else path.stem)  # a scene folder or its scene.yaml: the folder's name
        for trajectory in trajectories:
            name = f"{scene_name}/{Path(trajectory).stem}"
            if name in seen:
                raise WorldFMError(f"{trajectory} in scene {scene or 'default'}: output {name} is also that of "
                                   f"{seen[name]}; give the files different names")
            seen[name] = trajectory
            tasks.append(RenderTask(name, str(trajectory), str(Path(output) / name),
                                    dataclasses.replace(config, scene=scene), **task_fields))
    return tasks


_simulators: dict[str, Any] = {}


def _simulator(config: SimConfig):
    """This process's Simulator of ``config`` (one per configuration: a worker loads each scene
    and backend once for all its tasks; ``render_trajectory`` uses no robot state)."""
    key = repr(config)
    if key not in _simulators:
        from worldfm_ros.sim.cli_render_trajectory import open_simulator

        _simulators.clear()  # one scene in memory at a time
        _simulators[key] = open_simulator(config)
    return _simulators[key]


def render_task(task: RenderTask) -> TaskResult:
    """Render one task into its output folder, atomically (module docstring); never raises for a
    fault of the task's inputs: the result says FAILED and why."""
    from worldfm_ros.sim.trajectory import load_trajectory, render_trajectory

    final = Path(task.output)
    if final.exists():
        return TaskResult(task.name, SKIPPED)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:12]}"
    start = time.perf_counter()
    try:
        trajectory = load_trajectory(task.trajectory, task.kind, task.world, task.rate_hz)
        summary = render_trajectory(_simulator(task.config), trajectory, tmp, **task.options)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another attempt finished first
            return TaskResult(task.name, SKIPPED)
    except Exception as exc:  # noqa: BLE001 - the task fails, the job goes on
        shutil.rmtree(tmp, ignore_errors=True)
        return TaskResult(task.name, FAILED, error=f"{task.name}: {type(exc).__name__}: {exc}")
    return TaskResult(task.name, DONE, summary.frames, time.perf_counter() - start)


class RenderWorker:
    """A Ray actor of one CPU that renders tasks; made warm: OpenCV kept to one thread (as torch
    is, so that workers do not crowd each other's cores), the rendering modules imported, and the
    scene and backend of ``config`` loaded and one view rendered (numba's kernels loaded), before
    its first task."""

    def __init__(self, config: SimConfig) -> None:
        import cv2

        from worldfm_ros.sim import trajectory  # noqa: F401 - imported here, not in the first task

        cv2.setNumThreads(1)
        try:
            sim = _simulator(config)
            sim.render(sim.map_T_base, 0)
        except Exception:  # noqa: BLE001 - a scene that does not load fails its own tasks, with its name
            pass

    def ready(self) -> bool:
        return True

    def render(self, task: RenderTask) -> TaskResult:
        return render_task(task)


def remove_partial_outputs(tasks: list[RenderTask]) -> None:
    """Delete the temporary folders attempts of ``tasks`` left behind (a worker killed mid-task)."""
    for task in tasks:
        final = Path(task.output)
        for stale in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def todo_count(tasks: list[RenderTask]) -> int:
    """How many of ``tasks`` have no output yet."""
    return sum(not Path(t.output).exists() for t in tasks)


def start_workers(tasks: list[RenderTask], address: str, workers: int = 1, retries: int = 3,
                  timeout_s: float = 30.0) -> list:
    """Join or start Ray (``ray_runtime.connect``) and start one ``RenderWorker`` per CPU of the
    cluster (``workers`` with 'local'), at most one per task without an output, each warmed on the
    first such task's configuration; returns them once all are warm. A worker that dies is
    restarted, and its task run again, ``retries`` times."""
    from worldfm_ros.scale.ray_runtime import connect

    ray = connect(address, num_cpus=workers, timeout_s=timeout_s)
    todo = [t for t in tasks if not Path(t.output).exists()]
    count = min(len(todo), max(1, int(ray.cluster_resources().get("CPU", 1))))
    actor = ray.remote(num_cpus=1, max_restarts=retries, max_task_retries=retries)(RenderWorker)
    pool = [actor.remote(todo[0].config) for _ in range(count)] if todo else []
    ray.get([w.ready.remote() for w in pool])
    return pool


def run_batch(tasks: list[RenderTask], ray: str | None = None, workers: int = 1, retries: int = 3,
              timeout_s: float = 30.0, progress: bool = True, pool: list | None = None) -> list[TaskResult]:
    """Run ``tasks``, in the order given, and return their results in that order.

    ray: None (one after the other in this process), 'local' (a Ray instance started here with
    ``workers`` worker slots), 'auto' or 'HOST:PORT' (a running cluster: every free CPU takes a
    task); retries: how often Ray runs again a task whose worker died; timeout_s: seconds to wait
    for the cluster to answer; pool: the warm workers of ``start_workers`` (started here when
    None). Tasks whose output exists are skipped without starting a worker. progress: a progress
    bar on stderr.
    """
    from tqdm import tqdm

    results: dict[int, TaskResult] = {}
    todo = []
    for i, task in enumerate(tasks):
        if Path(task.output).exists():
            results[i] = TaskResult(task.name, SKIPPED)
        else:
            todo.append(i)
    bar = tqdm(total=len(tasks), initial=len(results), desc="render-batch", unit="task", file=sys.stderr,
               disable=not progress)
    try:
        if ray is None:
            for i in todo:
                results[i] = render_task(tasks[i])
                bar.update()
        elif todo:
            if pool is None:
                pool = start_workers(tasks, ray, workers, retries, timeout_s)
            _run_on_workers(tasks, todo, results, bar, pool)
    finally:
        bar.close()
        remove_partial_outputs(tasks)
    return [results[i] for i in range(len(tasks))]


def _run_on_workers(tasks: list[RenderTask], todo: list[int], results: dict[int, TaskResult], bar, pool: list) -> None:
    """Hand ``todo`` to the workers of ``pool``, the next task to whichever finishes first, and
    collect the results; a worker that died more often than its restarts takes no more tasks."""
    import ray

    queue, pending = list(reversed(todo)), {}

    def hand(worker) -> None:
        i = queue.pop()
        pending[worker.render.remote(tasks[i])] = (i, worker)

    for worker in pool[:len(queue)]:
        hand(worker)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            i, worker = pending.pop(ref)
            alive = True
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayError as exc:  # its worker died more often than retries
                alive = not isinstance(exc, ray.exceptions.RayActorError)
                results[i] = TaskResult(tasks[i].name, FAILED, error=f"{tasks[i].name}: {type(exc).__name__}: "
                                                                     f"{str(exc).splitlines()[0]}")
            bar.update()
            if queue and alive:
                hand(worker)
    for i in reversed(queue):  # every worker died
        results[i] = TaskResult(tasks[i].name, FAILED, error=f"{tasks[i].name}: no Ray worker left to run it")
