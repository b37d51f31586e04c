"""PPO from RLlib on worldfm_ros: env runners (Ray actors), each stepping its robots as one batched env.

    python examples/rllib_ppo.py --env-runners 2 --envs-per-runner 8 --iterations 20

Prints one line per training iteration: env steps sampled and trained, the mean episode return
of the episodes finished so far, and the iteration's wall time.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="", help="scene folder or file ('' = the bundled room)")
    parser.add_argument("--width", type=int, default=64, help="camera width, pixels")
    parser.add_argument("--height", type=int, default=48, help="camera height, pixels")
    parser.add_argument("--env-runners", type=int, default=1, help="Ray actors that sample")
    parser.add_argument("--envs-per-runner", type=int, default=4, help="robots in each runner's batched env")
    parser.add_argument("--max-episode-steps", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--train-batch", type=int, default=2000, help="env steps per iteration")
    parser.add_argument("--minibatch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    args = parser.parse_args(argv)

    import ray

    from worldfm_ros.scale.rllib import ppo_config

    env_config = {"config": {"camera": {"width": args.width, "height": args.height}, "backend": {"name": "anchor"}},
                  "scene": args.scene, "max_episode_steps": args.max_episode_steps}
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING")
    config = ppo_config(env_config, num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner,
                        train_batch_size=args.train_batch, minibatch_size=args.minibatch, num_epochs=args.epochs)
    algo = config.build_algo()
    for _ in range(args.iterations):
        start = time.perf_counter()
        result = algo.train()
        runners, learner = result["env_runners"], result["learners"]["default_policy"]
        print(f"iteration {result['training_iteration']}: {int(runners['num_env_steps_sampled'])} env steps sampled, "
              f"{int(learner['num_module_steps_trained'])} trained, "
              f"episode return mean {runners.get('episode_return_mean', float('nan')):.3f}, "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
