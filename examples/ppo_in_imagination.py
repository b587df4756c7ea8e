"""PPO trained only inside a learned world, then evaluated in the real game (RL transfer).

The agent never sees the real Explorer while it learns: every frame, reward and termination of
its training comes from the neural world (`worldsim/NeuralExplorer-v0`, batched on the device).
Afterwards it plays episodes of the real `worldsim/Explorer-v0`. Two baselines give the number a
meaning: a uniformly random policy, and the same PPO trained in the real Explorer for the same
number of env steps. `--event` sets the task: every episode, real or imagined, starts under that
event ("coins rain from the sky" gives a coin-collecting task where PPO learns within 262 144 steps).
Before training, the world's rewards and episode ends are checked on its own frames against the
real game's on the same episodes (`reward_calibration`: precision and recall). `--start-maps N`
starts imagined episodes from the first frames of N real maps (reset, never stepped) and
`--imagination-horizon H` keeps them H steps long, the critic's value standing in for the rest:
short imagination from real frames stays where the world matches the game.

The script prints a table and writes a JSON: `random_return`, `real_trained_return` and
`imagination_trained_return` (mean real return and its standard error), `gain_ratio` (the share of
the real-trained PPO's gain over random that the imagination-trained PPO keeps: (imagination -
random) / (real - random)) with its standard error (`gain_ratio_stderr`), `steps`, each run's returns and wall times, and the machine.

    python examples/ppo_in_imagination.py --event "coins rain from the sky" --max-episode-steps 128 \
        --total-steps 262144 --eval-episodes 128 --start-maps 1024 --imagination-horizon 16
    python examples/ppo_in_imagination.py --help

A CleanRL-style single file: hyper-parameters in `Args`, one function per stage.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import worldsim  # noqa: F401  (registers the worldsim/ environments)
from worldsim.data.machine import describe_machine
from worldsim.data.atomic import atomic_write_json
from worldsim.eval.metrics import precision_recall
from worldsim.eval.report import json_ready
from worldsim.hub import load_tensors, save_tensors
from worldsim.model.frames import to_pixels
from worldsim.model.reward import advance_window, predict_outcomes, start_window


@dataclass
class Args:
    checkpoint: str | None = None  # the neural world: bundled name, folder or Hub repo id (None: default)
    device: str = "cpu"  # where the world model and the agent run
    seed: int = 0
    total_steps: int = 100_000  # env steps of PPO training, in the neural world and in the real baseline
    num_envs: int = 32  # envs stepped together
    rollout_steps: int = 64  # steps per env between two PPO updates
    max_episode_steps: int = 500  # truncation, in training and in evaluation
    event: str = ""  # the task: every episode, real or imagined, starts under this event ("" = none)
    start_maps: int = 0  # imagined episodes start from the first frames of this many real maps (0: the world's own)
    imagination_horizon: int = 0  # imagined episodes end after this many steps, value bootstrapped (0: max_episode_steps)
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.1
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    eval_episodes: int = 16  # episodes of the real Explorer per policy
    calibration_episodes: int = 256  # real episodes the world's rewards are checked against (0: skip)
    calibration_steps: int = 32  # steps of each, random actions, the world driven by the same ones
    real_baseline: bool = True  # also train the same PPO in the real Explorer
    imagination: bool = True  # train in the neural world (off: only the baselines, e.g. to size a budget)
    out: str = "runs/ppo_in_imagination.json"
    save_agents: str = ""  # a folder: each trained agent's weights as <name>.safetensors (imagination_ppo, real_ppo)


class Agent(nn.Module):
    """A small CNN actor-critic on uint8 frames [B, H, W, 3]."""

    def __init__(self, frame_shape: tuple[int, ...], num_actions: int) -> None:
        super().__init__()
        self.torso = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            features = self.torso(torch.zeros(1, 3, *frame_shape[:2])).shape[1]
        self.torso.append(nn.Linear(features, 256))
        self.torso.append(nn.ReLU())
        self.actor = nn.Linear(256, num_actions)
        self.critic = nn.Linear(256, 1)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(action logits [B, A], values [B])"""
        hidden = self.torso(frames.permute(0, 3, 1, 2).float() / 255.0)
        return self.actor(hidden), self.critic(hidden).squeeze(-1)

    def act(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions [B] sampled from the policy; from `generator` when given (reproducible draws)."""
        logits, _ = self(frames)
        if generator is None:
            return torch.distributions.Categorical(logits=logits).sample()
        return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates [T, B]; dones[t] = the episode ended at step t."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * alive - values[t]
        last = delta + gamma * lam * alive * last
        advantages[t] = last
    return advantages


def ppo_loss(agent: Agent, batch: dict[str, torch.Tensor], args: Args) -> torch.Tensor:
    """Clipped PPO objective + value loss - entropy bonus on one minibatch."""
    logits, values = agent(batch["obs"])
    dist = torch.distributions.Categorical(logits=logits)
    ratio = (dist.log_prob(batch["actions"]) - batch["logprobs"]).exp()
    advantages = batch["advantages"]
    clipped_ratio = ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
    policy_loss = torch.max(-advantages * ratio, -advantages * clipped_ratio).mean()
    value_loss = 0.5 * (values - batch["returns"]).pow(2).mean()
    return policy_loss + args.vf_coef * value_loss - args.ent_coef * dist.entropy().mean()


def train_ppo(envs: gym.vector.VectorEnv, args: Args) -> tuple[Agent, dict[str, Any]]:
    """PPO on a NEXT_STEP-autoreset vector env; observations may be numpy arrays or torch tensors."""
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    agent = Agent(envs.single_observation_space.shape, envs.single_action_space.n).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    T, B = args.rollout_steps, envs.num_envs
    num_updates = max(1, args.total_steps // (T * B))
    buffers = {name: torch.zeros((T, B), device=device) for name in ("rewards", "dones", "values", "logprobs", "valid")}
    obs_buffer = torch.zeros((T, B, *envs.single_observation_space.shape), dtype=torch.uint8, device=device)
    action_buffer = torch.zeros((T, B), dtype=torch.long, device=device)

    start = time.perf_counter()
    obs, _ = envs.reset(seed=args.seed)
    obs = torch.as_tensor(obs, device=device)
    # NEXT_STEP autoreset: the step after an episode ends only resets; it is no transition to learn from.
    restarting = torch.zeros(B, dtype=torch.bool, device=device)
    episode_returns, running_return = [], torch.zeros(B, device=device)
    for update in range(num_updates):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1 - update / num_updates)
        for t in range(T):
            with torch.no_grad():
                logits, values = agent(obs)
                dist = torch.distributions.Categorical(logits=logits)
                actions = dist.sample()
            obs_buffer[t], action_buffer[t] = obs, actions
            buffers["values"][t], buffers["logprobs"][t] = values, dist.log_prob(actions)
            buffers["valid"][t] = (~restarting).float()
            next_obs, rewards, terminated, truncated, _ = envs.step(actions.cpu().numpy())
            next_obs = torch.as_tensor(next_obs, device=device)
            rewards = torch.as_tensor(rewards, device=device, dtype=torch.float32) * (~restarting)
            terminated = torch.as_tensor(terminated, device=device)
            done = terminated | torch.as_tensor(truncated, device=device)
            running_return += rewards
            episode_returns += running_return[done].tolist()
            running_return[done] = 0.0
            # A time limit is not the end of the task: the value of the last frame stands for the rest.
            buffers["rewards"][t] = rewards + args.gamma * truncation_values(agent, next_obs, done & ~terminated)
            buffers["dones"][t] = done.float()
            obs, restarting = next_obs, done
        with torch.no_grad():
            _, next_value = agent(obs)
        advantages = gae(buffers["rewards"], buffers["values"], buffers["dones"], next_value,
                         args.gamma, args.gae_lambda)
        batch = {
            "obs": obs_buffer.flatten(0, 1), "actions": action_buffer.flatten(),
            "logprobs": buffers["logprobs"].flatten(), "advantages": advantages.flatten(),
            "returns": (advantages + buffers["values"]).flatten(),
        }
        valid = buffers["valid"].flatten().bool()
        batch = {name: value[valid] for name, value in batch.items()}
        update_policy(agent, optimizer, batch, args)
    wall = time.perf_counter() - start
    stats = {"train_steps": num_updates * T * B, "train_wall_s": round(wall, 2),
             "train_episodes": len(episode_returns),
             "train_return_mean": float(np.mean(episode_returns)) if episode_returns else None}
    return agent, stats


def truncation_values(agent: Agent, final_obs: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """The critic's value of each truncated episode's last frame (NEXT_STEP autoreset returns it), else 0."""
    values = torch.zeros(truncated.shape, device=final_obs.device)
    if truncated.any():
        with torch.no_grad():
            values[truncated] = agent(final_obs[truncated])[1]
    return values


def update_policy(agent: Agent, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], args: Args) -> None:
    size = batch["actions"].shape[0]
    # Normalised over the whole batch: a small last minibatch would make its own statistics noisy.
    advantages = batch["advantages"]
    batch = {**batch, "advantages": (advantages - advantages.mean()) / (advantages.std(unbiased=False) + 1e-8)}
    minibatch = max(1, size // args.num_minibatches)
    for _ in range(args.update_epochs):
        order = torch.randperm(size, device=batch["actions"].device)
        for begin in range(0, size, minibatch):
            indices = order[begin:begin + minibatch]
            loss = ppo_loss(agent, {name: value[indices] for name, value in batch.items()}, args)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()


def real_explorer(num_envs: int, args: Args) -> gym.vector.VectorEnv:
    """The real game, all envs stepped as one numpy batch (the Explorer's own vector env)."""
    return gym.make_vec("worldsim/Explorer-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        max_episode_steps=args.max_episode_steps, event=args.event)


def real_first_frames(args: Args) -> np.ndarray:
    """The first frames of `args.start_maps` maps of the real game under the task's event, on training
    seeds: the game is only reset, never stepped, so the agent still learns from imagined frames only."""
    envs = real_explorer(args.start_maps, args)
    frames, _ = envs.reset(seed=args.seed)
    envs.close()
    return frames


def evaluate(policy: Callable[[np.ndarray], np.ndarray], args: Args, seed: int) -> dict[str, np.ndarray]:
    """One episode of the real Explorer per env, `args.eval_episodes` envs at once: each episode's
    return, coins collected and whether it ended early (lava or an enemy) rather than by truncation."""
    envs = real_explorer(args.eval_episodes, args)
    obs, _ = envs.reset(seed=seed)
    returns, coins = np.zeros(args.eval_episodes), np.zeros(args.eval_episodes)
    died, finished = np.zeros(args.eval_episodes, dtype=bool), np.zeros(args.eval_episodes, dtype=bool)
    while not finished.all():
        obs, rewards, terminated, truncated, _ = envs.step(policy(obs))
        returns += np.where(finished, 0.0, rewards)
        coins += np.where(finished, 0.0, rewards > 0)
        died |= terminated & ~finished
        finished |= np.logical_or(terminated, truncated)
    envs.close()
    return {"returns": returns, "coins": coins, "died": died}


def agent_policy(agent: Agent, device: str) -> Callable[[np.ndarray], np.ndarray]:
    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return agent.act(torch.as_tensor(obs, device=device)).cpu().numpy()
    return policy


def save_agent(agent: Agent, folder: str, name: str) -> None:
    """Write the agent's weights to folder/name.safetensors (nothing when folder is empty), e.g. to
    play it in the game and a world side by side (examples/world_vs_game.py --agent)."""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_tensors(Path(folder) / f"{name}.safetensors", agent.state_dict())


def load_agent(path: str, frame_shape: tuple[int, ...], num_actions: int, device: str = "cpu") -> Agent:
    """An agent saved by `save_agent`."""
    agent = Agent(frame_shape, num_actions)
    agent.load_state_dict(load_tensors(Path(path)))
    return agent.to(device).eval()


def random_policy(num_actions: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(num_actions, size=len(obs))


class RealFrameReader:
    """The world's reward model read on the real game's frames: its reward window (the latents of the
    last K real frames, the first repeated at the start) and the action taken from the last of them."""

    def __init__(self, world: Any, first_frames: np.ndarray) -> None:
        self.world = world
        self.window = start_window(self._encode(first_frames), world.config.reward.context_frames)

    @torch.no_grad()
    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        return self.world.autoencoder.encode(to_pixels(frames, device=self.world.device)).float()

    @torch.no_grad()
    def step(self, actions: np.ndarray, next_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(coin, episode end) flags predicted for the step, then the window moves to `next_frames`."""
        action_ids = torch.as_tensor(actions, device=self.world.device).long()
        rewards, ended = predict_outcomes(self.world.reward_model, self.window, action_ids)
        self.window = advance_window(self.window, self._encode(next_frames))
        return (rewards > 0.5).cpu().numpy(), ended.cpu().numpy()


def reward_calibration(args: Args) -> dict[str, Any]:
    """Precision and recall of the world's coins (+1) and episode ends on its own frames, against the
    real game's on the same episodes: real episodes of random actions under the task's event, the
    world started from each one's first frame and driven by the same actions. A step counts while
    neither episode has ended before it; a detection one step early or late counts (±1).
    `real_frames`: the same reward model read on the real frames of those episodes, which separates
    what the reward model misses from what the world does not show."""
    count, steps = args.calibration_episodes, args.calibration_steps
    real = real_explorer(count, args)
    neural = gym.make_vec("worldsim/NeuralExplorer-v0", num_envs=count, vectorization_mode="vector_entry_point",
                          checkpoint=args.checkpoint, device=args.device, max_episode_steps=None, event=args.event)
    seed = args.seed + 2_000_000  # maps neither trained on nor evaluated on
    first, _ = real.reset(seed=seed)
    neural.reset(seed=seed, options={"context": first})
    reader = RealFrameReader(neural.unwrapped.world, first)
    actions = np.random.default_rng(seed).integers(real.single_action_space.n, size=(steps, count))
    # per outcome: [real game / world / reward model on the real frames, episode, step]
    outcomes = {name: np.zeros((3, count, steps), dtype=bool) for name in ("reward", "ended")}
    running = np.ones(count, dtype=bool)
    for step in range(steps):
        frames, rewards, terminated, _, _ = real.step(actions[step])
        read_coins, read_ends = reader.step(actions[step], frames)
        _, own_rewards, own_terminated, _, _ = neural.step(actions[step])
        for side, (coins, ended) in enumerate(((rewards > 0.5, terminated), (own_rewards > 0.5, own_terminated),
                                               (read_coins, read_ends))):
            outcomes["reward"][side, :, step] = running & coins
            outcomes["ended"][side, :, step] = running & ended
        running &= ~outcomes["ended"][:2, :, step].any(axis=0)
    real.close()
    neural.close()
    found: dict[str, Any] = {"real_frames": {}}
    for name, flags in outcomes.items():
        found[name] = scores(flags[1], flags[0])
        found["real_frames"][name] = scores(flags[2], flags[0])
    return {"episodes": count, "steps": steps, "tolerance_steps": 1, **found}


def scores(predicted: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    """Precision and recall of `predicted` flags against `actual` ones (episode, step), ±1 step."""
    score = precision_recall(predicted, actual, tolerance=1)
    return {"precision": score.precision, "recall": score.recall, "predicted": score.predicted,
            "actual": score.actual}


def summary(episodes: dict[str, np.ndarray], **extra: Any) -> dict[str, Any]:
    """Mean return (with its spread and standard error), coins and the share of episodes ended early."""
    returns = episodes["returns"]
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_stderr": float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else None,
            "episodes": len(returns), "coins_mean": float(episodes["coins"].mean()),
            "died_share": float(episodes["died"].mean()), **extra}


def transfer_summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean real returns with standard errors, and the share of the real-trained gain over random
    that training in imagination keeps (None where a policy was not trained or real PPO did not
    beat random: then there is no gain to share)."""
    def mean_and_error(name: str) -> dict[str, Any] | None:
        result = results.get(name)
        return None if result is None else {"mean": result["return_mean"], "stderr": result["return_stderr"]}

    out = {"random_return": mean_and_error("random"), "real_trained_return": mean_and_error("real_ppo"),
           "imagination_trained_return": mean_and_error("imagination_ppo"), "gain_ratio": None,
           "gain_ratio_stderr": None}
    if out["real_trained_return"] and out["imagination_trained_return"]:
        out["gain_ratio"], out["gain_ratio_stderr"] = gain_ratio(
            out["imagination_trained_return"], out["random_return"], out["real_trained_return"])
    return out


def gain_ratio(imagination: dict[str, float], random: dict[str, float], real: dict[str, float]
               ) -> tuple[float | None, float | None]:
    """(imagination - random) / (real - random) and its standard error to first order (the delta
    method, the three means taken as independent); (None, None) when real does not beat random."""
    real_gain, gain = real["mean"] - random["mean"], imagination["mean"] - random["mean"]
    if real_gain <= 0:
        return None, None
    # Derivatives of the ratio with respect to the imagination, real and random means.
    slopes = (1 / real_gain, -gain / real_gain**2, (gain - real_gain) / real_gain**2)
    errors = (imagination["stderr"], real["stderr"], random["stderr"])
    if any(error is None for error in errors):
        return gain / real_gain, None
    return gain / real_gain, float(np.sqrt(sum((slope * error) ** 2 for slope, error in zip(slopes, errors))))


def run(args: Args) -> dict[str, Any]:
    start = time.perf_counter()
    eval_seed = args.seed + 1_000_000  # evaluation maps differ from the ones trained on
    results = {}
    calibration = reward_calibration(args) if args.calibration_episodes else None
    if args.imagination:
        neural = gym.make_vec("worldsim/NeuralExplorer-v0", num_envs=args.num_envs,
                              vectorization_mode="vector_entry_point", checkpoint=args.checkpoint, device=args.device,
                              max_episode_steps=args.imagination_horizon or args.max_episode_steps, event=args.event,
                              array_type="torch", start_frames=real_first_frames(args) if args.start_maps else None)
        agent, stats = train_ppo(neural, args)
        neural.close()
        save_agent(agent, args.save_agents, "imagination_ppo")
        results["imagination_ppo"] = summary(evaluate(agent_policy(agent, args.device), args, eval_seed), **stats)
    real = real_explorer(args.num_envs, args)
    num_actions = real.single_action_space.n
    results["random"] = summary(evaluate(random_policy(num_actions, args.seed), args, eval_seed))
    if args.real_baseline:
        agent, stats = train_ppo(real, args)
        save_agent(agent, args.save_agents, "real_ppo")
        results["real_ppo"] = summary(evaluate(agent_policy(agent, args.device), args, eval_seed), **stats)
    real.close()
    return {**transfer_summary(results), "steps": args.total_steps, "reward_calibration": calibration,
            "results": results, "args": dataclasses.asdict(args),
            "wall_s": round(time.perf_counter() - start, 2), "machine": describe_machine(torch.device(args.device))}


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, typed and defaulted from the dataclass."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(Args)
    for field in dataclasses.fields(Args):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            parser.add_argument(flag, type=base, default=field.default)
    return Args(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = run(args)
    if report["reward_calibration"]:
        for name in ("reward", "ended"):
            found = report["reward_calibration"][name]
            print(f"world's {name:>6} on its own frames: precision {found['precision']:.3f} "
                  f"recall {found['recall']:.3f} ({found['predicted']} predicted, {found['actual']} real)")
    for name, result in report["results"].items():
        steps = result.get("train_steps", 0)
        print(f"{name:>16}: return {result['return_mean']:7.3f} ± {result['return_std']:.3f} (std; "
              f"s.e. {result['return_stderr'] or float('nan'):.3f}) over {result['episodes']} real episodes "
              f"(trained {steps} steps)")
    if report["gain_ratio"] is not None:
        error = report["gain_ratio_stderr"]
        print(f"imagination-trained PPO keeps {report['gain_ratio']:.0%}" + (f" (s.e. {error:.0%})" if error else "")
              + " of the real-trained gain over random")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, json_ready(report))  # a share of nothing (NaN) is written as null
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
