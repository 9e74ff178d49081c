"""Runners that train pinnsketch and DeepXDE side by side on one network, point set and schedule.

A runner owns one model, its fixed point set and its Adam optimizer with the learning rate
lr * decay^(step / steps) (pinnsketch's schedule; DeepXDE's ``("exponential", gamma)`` with
gamma = decay^(1/steps)). ``advance(k)`` takes k optimizer steps and adds their wall time to
``train_time``; ``l2()`` evaluates the relative L2 error on the problem's evaluation grid
(not timed). Every runner of one (problem, network, seed) starts from the same weights and
trains on the same points: pinnsketch's ``PINNTask`` with that seed initialises the MLP and
draws the points, and DeepXDE gets a copy of both (:mod:`deepxde_problems`).

What one step times, on each side, is the library's own step and nothing else:
pinnsketch ``task.backward`` + ``Adam.step`` + scheduler step (what ``pinnsketch.train``
runs per Adam step, without its logging); DeepXDE ``Model.train_step`` (what
``Model.train`` runs per iteration, without its callbacks and test-loss displays).

Held bytes (DESIGN.md section 4) are counted by :class:`pinnsketch.memory.HeldBytes` around
the loss computation of each side, parameters excluded, and divided by the number of points
the loss touches (interior plus condition points, the same on both sides).
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from deepxde_problems import deepxde_model

from pinnsketch import ModelConfig, OptimConfig, Problem, SamplingConfig, StorageConfig
from pinnsketch.control import RankController
from pinnsketch.memory import HeldBytes
from pinnsketch.tasks.pinn import PINNTask

__all__ = ["Setup", "PinnRunner", "DdeRunner", "linear_fit_largest", "rss_bytes"]


@dataclass(frozen=True)
class Setup:
    """What every runner of a comparison shares: problem, network, points, schedule, seed."""

    problem: Problem
    width: int = 20
    depth: int = 8
    points: int = 2000
    boundary: int = 200
    initial: int = 256
    lr: float = 1e-3
    decay: float = 0.1
    steps: int = 1000  # the schedule's length: lr reaches lr * decay after this many steps
    seed: int = 0

    def with_points(self, n: int) -> Setup:
        return Setup(self.problem, self.width, self.depth, n, self.boundary, self.initial,
                     self.lr, self.decay, self.steps, self.seed)

    def task(self, storage: StorageConfig, chunk_size: int = 0,
             controller: RankController | None = None) -> PINNTask:
        return PINNTask(self.problem, ModelConfig(width=self.width, depth=self.depth),
                        SamplingConfig(collocation=self.points, boundary=self.boundary,
                                       initial=self.initial, resample_every=0),
                        OptimConfig(steps=self.steps, lr=self.lr, lr_decay=self.decay,
                                    chunk_size=chunk_size),
                        storage, seed=self.seed, dtype=torch.float32, controller=controller)

    @property
    def gamma(self) -> float:
        return self.decay ** (1.0 / self.steps)


class _Runner:
    label: str
    step: int = 0
    train_time: float = 0.0
    diverged: bool = False

    def advance(self, k: int) -> None:
        t0 = time.perf_counter()
        for _ in range(k):
            self._step()
            self.step += 1
        self.train_time += time.perf_counter() - t0

    def _step(self) -> None:
        raise NotImplementedError


class PinnRunner(_Runner):
    """pinnsketch under one storage policy (chunks and a rank controller optional)."""

    def __init__(self, label: str, setup: Setup, storage: StorageConfig, chunk_size: int = 0,
                 controller: RankController | None = None):
        self.label, self.setup = label, setup
        self.task = setup.task(storage, chunk_size, controller)
        self.batch = self.task.sample(0)
        self.num_points = self.batch.num_points
        self.opt = torch.optim.Adam(self.task.model.parameters(), lr=setup.lr)
        self.sched = torch.optim.lr_scheduler.ExponentialLR(self.opt, gamma=setup.gamma)
        self.max_held = 0

    def _step(self) -> None:
        task = self.task
        task.before_step(self.step)
        self.opt.zero_grad(set_to_none=True)
        terms = task.backward(self.batch)
        if not math.isfinite(terms["loss"]):
            self.diverged = True
        self.opt.step()
        self.sched.step()
        task.after_step(self.step, terms)
        self.max_held = max(self.max_held, task.held_bytes)

    def held_bytes(self) -> int:
        """Bytes held for backward by one loss evaluation (the largest chunk's), measured."""
        self.task.model.zero_grad(set_to_none=True)
        self.task.backward(self.batch)
        self.task.model.zero_grad(set_to_none=True)
        return self.task.held_bytes

    def l2(self) -> float:
        return self.task.evaluate()["l2_relative_error"]

    @property
    def ranks(self):
        return self.task.sketch_ranks


class DdeRunner(_Runner):
    """DeepXDE (PyTorch backend) on the pinnsketch network's initial weights and points."""

    def __init__(self, setup: Setup, label: str = "deepxde"):
        self.label, self.setup = label, setup
        ref = setup.task(StorageConfig(policy="autograd"))
        self.model = deepxde_model(setup.problem, ref.model, ref.sample(0), setup.lr, setup.gamma)
        self.X, self.y, self.aux = self.model.data.train_next_batch()
        self.num_points = self.X.shape[0]
        self.eval_points, self.reference = ref.eval_points, ref.reference
        self.max_held = 0

    def _step(self) -> None:
        self.model.train_step(self.X, self.y, self.aux)

    def held_bytes(self) -> int:
        """Bytes held for backward by DeepXDE's training loss, measured (forward only)."""
        with HeldBytes(exclude=self.model.net.parameters()) as held:
            self.model.outputs_losses_train(self.X, self.y, self.aux)
        self.max_held = max(self.max_held, held.bytes)
        return held.bytes

    @torch.no_grad()
    def l2(self) -> float:
        net = self.model.net
        net.eval()
        u = torch.cat([net(p.to(torch.float32)).reshape(-1).double()
                       for p in self.eval_points.split(65536)])
        net.train()
        return float((u - self.reference).norm() / self.reference.norm())

    @property
    def ranks(self):
        return None


def linear_fit_largest(held_at: Callable[[int], int], cap: int, n1: int, n2: int,
                       limit: int | None = None) -> tuple[int, float, float]:
    """The largest interior-point count N with a + b N <= cap, a and b fitted at n1 < n2.

    Held bytes are affine in N for every policy here (each saved tensor has N rows, plus
    the fixed condition points' graph); a sketch's k (N + w) is affine for N >= k.
    Returns (N, a, b); N is clipped to ``limit`` when given, 0 if nothing fits.
    """
    if not 0 < n1 < n2:
        raise ValueError(f"need 0 < n1 < n2, got n1={n1}, n2={n2}")
    h1, h2 = held_at(n1), held_at(n2)
    b = (h2 - h1) / (n2 - n1)
    a = h1 - b * n1
    n = int((cap - a) // b) if b > 0 else (limit or 0)
    n = max(n, 0)
    return (min(n, limit) if limit else n), a, b


def rss_bytes() -> int:
    """The current resident set size of this process (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize()
