"""Accuracy per CPU-minute: Adam, then one second-order method, on a built-in PINN problem.

One invocation runs one configuration (so runs can be queued one at a time):

    python benchmarks/optimizers.py --problem burgers --width 20 --depth 3 --points 10000 \\
        --adam-steps 5000 --method ssbroyden --iterations 20000 --time-limit 900 --tag NAME

builds a :class:`pinnsketch.tasks.pinn.PINNTask`, runs Adam for ``--adam-steps`` steps, then
the chosen method of :mod:`pinnsketch.optim` (lbfgs, bfgs, ssbfgs, ssbroyden, lm) in float64
on a fixed batch (or a RAD-resampled one every ``--rad-every`` iterations, keeping the
curvature), until ``--iterations`` or the wall-time limit (which counts the Adam phase too).
It logs the L2 relative error on the problem's evaluation grid every ``--eval-every``
iterations (evaluation time is not counted in the wall time) and writes, under
``benchmarks/results/optimizers/``, ``NAME.csv`` (the curve), ``NAME.json`` (the summary:
time to L2 <= 1e-3, 1e-4, 1e-5, 1e-6 and the final L2) and ``NAME.md``.

``--hard`` builds the initial and boundary conditions into the network in this harness's
own pointwise form (the problem is loaded with ``hard=false``; u = A + B N with B
vanishing where the conditions hold; the loss is then the PDE
residual alone). ``--loss sqrt|log`` minimises sqrt(L) or log(L) in the second-order phase
(Urban et al. 2025's loss tweak). ``python benchmarks/optimizers.py --summarize`` collects
every ``NAME.json`` into ``summary.md``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.func import functional_call, jacrev, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from pinnsketch import ModelConfig, OptimConfig, SamplingConfig, StorageConfig
from pinnsketch.optim import fit_dense, lbfgs, make_optimizer
from pinnsketch.pde.adaptive_sampling import rad_sample
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.registry import make_problem, resolve_problem
from pinnsketch.pde.sampling import derive_seed, sample_interior
from pinnsketch.storage.jets import JetPlan, activation_jets, input_jets, jet_forward_reference
from pinnsketch.tasks.pinn import PINNBatch, PINNTask

OUT = Path(__file__).parent / "results" / "optimizers"
THRESHOLDS = (1e-3, 1e-4, 1e-5, 1e-6)
PI = math.pi


# --- hard constraints: u = A(z) + B(z) N(z), pointwise A and B (this harness only) ---

def hard_transform(problem) -> tuple[Callable, Callable]:
    """(A, B) of the problem's built-in conditions, as functions of the (N, d) points."""
    name = problem.name
    if name == "burgers":  # u(x, 0) = -sin(pi x), u(+-1, t) = 0
        return (lambda z: -torch.sin(PI * z[:, 0]),
                lambda z: z[:, 1] * (1 - z[:, 0] ** 2))
    if name == "heat":  # u(x, 0) = sin(pi x) + b sin(3 pi x), u(0, t) = u(1, t) = 0
        b = problem.b
        return (lambda z: torch.sin(PI * z[:, 0]) + b * torch.sin(3 * PI * z[:, 0]),
                lambda z: z[:, 1] * z[:, 0] * (1 - z[:, 0]))
    if name == "poisson":  # u = 0 on the boundary of the unit square
        return (lambda z: torch.zeros_like(z[:, 0]),
                lambda z: z[:, 0] * (1 - z[:, 0]) * z[:, 1] * (1 - z[:, 1]))
    raise ValueError(f"no hard constraint written for {name!r}; use soft constraints")


def soft_problem(name: str):
    """The built-in problem with its conditions in the loss (``hard=false`` where it has the
    parameter): the harness applies its own transform (:func:`hard_transform`) or none."""
    cls = resolve_problem(name)
    has_hard = any(f.name == "hard" for f in dataclasses.fields(cls))
    return make_problem(cls, {"hard": False} if has_hard else {})


def pointwise_jets(fn: Callable, points: torch.Tensor, keys) -> dict:
    """Derivatives of a pointwise function fn (N, d) -> (N,) for every key (orders <= 2)."""
    z = points.detach().requires_grad_(True)
    v = fn(z) + 0.0 * z[:, 0]  # attached to z even when fn is constant
    out = {(): v.detach()}
    (g,) = torch.autograd.grad(v.sum(), z, create_graph=True)
    for k in keys:
        if len(k) == 1:
            out[k] = g[:, k[0]].detach()
        elif len(k) == 2:
            h = None
            if g.requires_grad:
                (h,) = torch.autograd.grad(g[:, k[0]].sum(), z, retain_graph=True,
                                           allow_unused=True)
            out[k] = (h[:, k[1]] if h is not None else torch.zeros_like(v)).detach()
    return out


def _coords(key) -> tuple[int, ...]:
    """The coordinate part of a derivative key (this harness has the one field u)."""
    return key[1] if key and isinstance(key[0], str) else key


def product_derivatives(domain, points, A: dict, B: dict, n_of: Callable) -> Derivatives:
    """Derivatives of u = A + B N by the Leibniz rule, N's from ``n_of(key)``."""

    def compute(key):
        key = _coords(key)
        if len(key) == 0:
            return A[()] + B[()] * n_of(())
        if len(key) == 1:
            return A[key] + B[key] * n_of(()) + B[()] * n_of(key)
        i, j = key
        return (A[key] + B[key] * n_of(()) + B[(i,)] * n_of((j,)) + B[(j,)] * n_of((i,))
                + B[()] * n_of(key))

    return Derivatives(domain, points, compute)


class _JetNet(torch.nn.Module):
    """jet_forward_reference as a module (for torch.func.functional_call)."""

    def __init__(self, mlp, plan):
        super().__init__()
        self.mlp, self.plan = mlp, plan

    def forward(self, points):
        return jet_forward_reference(self.mlp, points, self.plan)


class Objective:
    """The PINN loss of one batch as functions of the flat float64 parameter vector."""

    def __init__(self, task: PINNTask, hard: bool):
        self.task, self.hard = task, hard
        self.problem, self.domain = task.problem, task.domain
        self.params = list(task.model.parameters())
        self.names = ("pde",) if hard else task.term_names
        self.AB = hard_transform(self.problem) if hard else None
        keys = set()
        for name in task.term_names:
            keys.update(task.engines[name].keys)
        self.plan = JetPlan.from_keys(keys, self.domain.dim)
        self.keys = list(self.plan.keys())  # every first derivative a second one needs
        self.jetnet = _JetNet(task.model, self.plan)
        self.batch: PINNBatch | None = None
        self.fixed: dict = {}

    # batch-dependent constants of the hard transform
    def set_batch(self, batch: PINNBatch) -> None:
        self.batch = batch
        self.fixed = {}
        if self.hard:
            pts = batch.sets["pde"][0].double()
            A, B = self.AB
            self.fixed = {"A": pointwise_jets(A, pts, self.keys),
                          "B": pointwise_jets(B, pts, self.keys)}

    def _derivs(self, name: str, points, engine_d: Derivatives | None, jets=None,
                fixed=None) -> Derivatives:
        def n_of(key):
            if engine_d is not None:
                return engine_d.key(key)
            return jets[self.plan.index(_coords(key))]

        if not self.hard:
            return engine_d if engine_d is not None else Derivatives(self.domain, points, n_of)
        fixed = fixed or self.fixed
        return product_derivatives(self.domain, points, fixed["A"], fixed["B"], n_of)

    def _residual(self, name: str, d: Derivatives, normals):
        if name == "pde":
            return self.problem.residual(d)
        cond = self.task.conditions[self.task.term_names.index(name) - 1]
        return cond.residual(d, normals)

    def backward(self) -> dict[str, float]:
        """Accumulate the loss gradient into .grad; return the loss terms (as task.backward)."""
        if not self.hard:
            return self.task.backward(self.batch)
        pts = self.batch.sets["pde"][0].to(self.task.dtype)
        d = self._derivs("pde", pts, self.task.engines["pde"](pts))
        if self.task.dtype != torch.float64:
            d = _cast(d, self.task.dtype)
        r = self._residual("pde", d, None)
        loss = r.pow(2).mean()
        loss.backward()
        return {"pde": float(loss.detach()), "loss": float(loss.detach())}

    def fg(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        vector_to_parameters(x, self.params)
        for p in self.params:
            p.grad = None
        terms = self.backward()
        return terms["loss"], parameters_to_vector([p.grad for p in self.params])

    @torch.no_grad()
    def pde_residual(self, points: torch.Tensor) -> torch.Tensor:
        """|r| of the PDE at points, by the plain jet forward (no parameter gradient)."""
        out = []
        for blk in points.split(8192):
            jets = self.jetnet(blk.to(self.task.dtype))
            fixed = None
            if self.hard:
                A, B = self.AB
                with torch.enable_grad():
                    fixed = {"A": pointwise_jets(A, blk, self.keys),
                             "B": pointwise_jets(B, blk, self.keys)}
            d = self._derivs("pde", blk, None, jets=jets, fixed=fixed)
            out.append(self._residual("pde", d, None).double())
        return torch.cat(out)

    def rj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled residuals r (loss = ||r||^2) and their Jacobian J (M, P), exactly.

        Per-example gradients of linear layers (Goodfellow, "Efficient per-example gradient
        computations", arXiv 1510.01799, 2015), extended to jets: r_i depends only on point
        i, so one backward pass of sum_i r_i gives every delta_{l,c,i} = dr_i / dZ_l[c, i]
        (layer l's pre-activation jet component c at point i), and
        dr_i / dW_l = sum_c delta_{l,c,i} h_{l-1,c,i}^T, dr_i / db_l = delta_{l,0,i} (the
        bias enters the value component only). One forward and one backward pass instead of
        a Jacobian-vector product per point (:meth:`rj_reference`, the test oracle).
        """
        vector_to_parameters(x, self.params)
        mlp = self.task.model
        rs, Js = [], []
        for name in self.names:
            pts, nrm = self.batch.sets[name]
            scale = math.sqrt(self.task.term_weights[name] / self.batch.count(name))
            for sl in _slices(pts.shape[0], 4096):
                p, n = pts[sl].double(), nrm[sl].double()
                H = input_jets(mlp, p, self.plan)
                Hs, Zs = [], []
                for k, layer in enumerate(mlp.layers):
                    Hs.append(H)
                    Z = H @ layer.weight.T
                    Z = torch.cat([(Z[0] + layer.bias).unsqueeze(0), Z[1:]])
                    Zs.append(Z)
                    if k + 1 < len(mlp.layers):
                        H = activation_jets(mlp.activation, Z, self.plan)
                fx = None
                if self.hard:
                    fx = {"A": {k: v[sl] for k, v in self.fixed["A"].items()},
                          "B": {k: v[sl] for k, v in self.fixed["B"].items()}}
                d = self._derivs(name, p, None, jets=Zs[-1][..., 0], fixed=fx)
                r = self._residual(name, d, n)
                deltas = torch.autograd.grad(r.sum(), Zs)
                cols = []
                for Hl, dl in zip(Hs, deltas):
                    cols.append(torch.einsum("cio,cij->ioj", dl, Hl).reshape(r.shape[0], -1))
                    cols.append(dl[0])
                Js.append(scale * torch.cat(cols, 1).detach())
                rs.append(scale * r.detach())
        return torch.cat(rs), torch.cat(Js)

    def rj_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`rj` by torch.func: vmap over points of jacrev of the one-point residual."""
        vector_to_parameters(x, self.params)
        params = {k: v.detach() for k, v in self.jetnet.named_parameters()}
        rs, Js = [], []
        for name in self.names:
            pts, nrm = self.batch.sets[name]
            scale = math.sqrt(self.task.term_weights[name] / self.batch.count(name))
            fixed = self.fixed
            if self.hard:
                ab = {k: torch.stack([fixed["A"][k], fixed["B"][k]], 1) for k in fixed["A"]}
            else:
                ab = {k: torch.zeros(pts.shape[0], 2, dtype=torch.float64) for k in self.keys}

            def r_point(prm, p, n, ab_p, name=name):
                jets = functional_call(self.jetnet, prm, (p.unsqueeze(0),))
                fx = None
                if self.hard:
                    fx = {"A": {k: v[0:1] for k, v in ab_p.items()},
                          "B": {k: v[1:2] for k, v in ab_p.items()}}
                d = self._derivs(name, p.unsqueeze(0), None, jets=jets, fixed=fx)
                return self._residual(name, d, n.unsqueeze(0))[0]

            f = vmap(jacrev(r_point), in_dims=(None, 0, 0, 0))
            with torch.no_grad():
                for sl in _slices(pts.shape[0], 1024):
                    ab_c = {k: v[sl] for k, v in ab.items()}
                    jac = f(params, pts[sl], nrm[sl], ab_c)
                    Js.append(scale * torch.cat([jac[k].reshape(jac[k].shape[0], -1)
                                                 for k, _ in self.jetnet.named_parameters()], 1))
                    fx = None
                    if self.hard:
                        fx = {"A": {k: v[sl] for k, v in fixed["A"].items()},
                              "B": {k: v[sl] for k, v in fixed["B"].items()}}
                    jets = self.jetnet(pts[sl])
                    d = self._derivs(name, pts[sl], None, jets=jets, fixed=fx)
                    rs.append(scale * self._residual(name, d, nrm[sl]))
        return torch.cat(rs), torch.cat(Js)

    @torch.no_grad()
    def l2(self) -> float:
        if not self.hard:
            return self.task.evaluate()["l2_relative_error"]
        pts = self.task.eval_points
        A, B = self.AB
        u = A(pts) + B(pts) * self.task.predict(pts)
        ref = self.task.reference
        return float((u - ref).norm() / ref.norm())


def _cast(d: Derivatives, dtype) -> Derivatives:
    return Derivatives(d.domain, d.points.to(dtype), lambda k: d.key(k).to(dtype))


def _slices(n: int, size: int):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class Clock:
    """Wall and CPU time (this process) of training only: evaluations are paused out.

    CPU time is the fairer figure on a shared machine: it does not count the time other
    jobs held the cores.
    """

    def __init__(self):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.paused = 0.0
        self.cpu_paused = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def cpu(self) -> float:
        return time.process_time() - self.cpu_start - self.cpu_paused

    def pause(self):
        return _Pause(self)


class _Pause:
    def __init__(self, clock):
        self.clock = clock

    def __enter__(self):
        self.t = time.perf_counter()
        self.c = time.process_time()

    def __exit__(self, *exc):
        self.clock.paused += time.perf_counter() - self.t
        self.clock.cpu_paused += time.process_time() - self.c


def out_of_time(args, clock: Clock) -> bool:
    return bool((args.time_limit and clock.now() >= args.time_limit)
                or (args.cpu_limit and clock.cpu() >= args.cpu_limit))


def rad_batch(obj: Objective, task: PINNTask, args, index: int) -> PINNBatch:
    """A fresh interior set: RAD from a pool (``--rad-pool`` points) or plain sampling."""
    base = task.sample(index)
    if args.rad_pool <= 0:
        return base
    seed = derive_seed(args.seed, index, 99)
    pool = sample_interior(task.domain, args.rad_pool, "uniform", seed)
    res = obj.pde_residual(pool)
    gen = torch.Generator().manual_seed(derive_seed(args.seed, index, 98))
    _, pts = rad_sample(pool, res, args.points, args.rad_k, args.rad_c, gen)
    sets = dict(base.sets)
    sets["pde"] = (pts, torch.zeros_like(pts))
    return PINNBatch(sets)


def loss_transform(kind: str, fg: Callable) -> Callable:
    if kind == "mse":
        return fg

    def wrapped(x):
        f, g = fg(x)
        if kind == "sqrt":
            r = math.sqrt(f)
            return r, g / (2 * r) if r > 0 else g
        return math.log(f) if f > 0 else -math.inf, g / f if f > 0 else g

    return wrapped


def untransform(kind: str, f: float) -> float:
    return f if kind == "mse" else (f * f if kind == "sqrt" else math.exp(f))


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    problem = soft_problem(args.problem)
    task = PINNTask(problem, ModelConfig(width=args.width, depth=args.depth),
                    SamplingConfig(collocation=args.points, boundary=args.boundary,
                                   initial=args.initial, method=args.sampler, resample_every=0),
                    OptimConfig(), StorageConfig(policy=args.storage), seed=args.seed,
                    dtype=torch.float32 if args.adam_dtype == "float32" else torch.float64)
    obj = Objective(task, args.hard)
    P = sum(p.numel() for p in task.model.parameters())
    rows: list[dict] = []
    clock = Clock()

    def log(phase, it, loss, extra=None):
        with clock.pause():
            row = {"phase": phase, "iteration": it, "wall_s": round(clock.now(), 3),
                   "cpu_s": round(clock.cpu(), 3), "loss": loss, "l2": obj.l2()}
            row.update(extra or {})
            rows.append(row)
            if not args.quiet:
                print(f"{phase:6s} {it:7d} t={row['wall_s']:8.1f}s cpu={row['cpu_s']:8.1f}s "
                      f"loss={loss:.3e} "
                      f"l2={row['l2']:.3e} {row.get('message', '')}", flush=True)

    # --- Adam ---
    index = 0
    obj.set_batch(rad_batch(obj, task, args, index) if args.rad_pool and index else task.sample(0))
    opt = torch.optim.Adam(task.model.parameters(), lr=args.lr, betas=(args.beta1, 0.999))
    gamma = args.lr_decay ** (1.0 / max(args.adam_steps, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    terms = {"loss": float("nan")}
    stop = None
    for step in range(args.adam_steps):
        if args.adam_resample and step and step % args.adam_resample == 0:
            index += 1
            obj.set_batch(rad_batch(obj, task, args, index))
        opt.zero_grad(set_to_none=True)
        terms = obj.backward()
        if not math.isfinite(terms["loss"]):
            stop = "adam diverged"
            break
        opt.step()
        sched.step()
        if (step + 1) % args.adam_eval_every == 0 or step + 1 == args.adam_steps:
            log("adam", step + 1, terms["loss"])
        if out_of_time(args, clock):
            stop = "time limit"
            break
    # --- second-order phase, float64 ---
    task.set_dtype(torch.float64)
    if args.rad_pool and args.rad_every:
        index += 1
        obj.set_batch(rad_batch(obj, task, args, index))
    else:
        obj.set_batch(obj.batch)
    method = make_optimizer(args.method, **({"history": args.history} if args.method == "lbfgs"
                                            else {}))
    if args.method in ("bfgs", "ssbfgs", "ssbroyden"):
        method = make_optimizer(args.method, inplace=True)
    method, why = fit_dense(method, P, fallback=lbfgs(args.history))
    if why:
        print(why)
    fg = loss_transform(args.loss, obj.fg)
    x = parameters_to_vector(task.model.parameters()).detach().clone()
    f, g = fg(x)
    state = method.init(x, f, g) if math.isfinite(f) else None
    it = 0
    log(args.method, 0, untransform(args.loss, f))
    last_ok_stall = False
    while stop is None and it < args.iterations:
        if args.method == "lm":
            state, info = method.step(state, fg, obj.rj)
        else:
            state, info = method.step(state, fg)
        it += 1
        vector_to_parameters(state.x, list(task.model.parameters()))
        extra = {"evaluations": state.evaluations, "resets": getattr(state, "resets", 0)}
        if info.message:
            extra["message"] = info.message
        if not math.isfinite(info.loss):
            stop = "diverged"
        elif out_of_time(args, clock):
            stop = "time limit"
        elif info.stalled and last_ok_stall and not args.rad_every:
            stop = "stalled"
        last_ok_stall = info.stalled
        if it % args.eval_every == 0 or info.message or stop or it == args.iterations:
            log(args.method, it, untransform(args.loss, state.f), extra)
        if stop is None and args.rad_every and it % args.rad_every == 0:
            index += 1
            obj.set_batch(rad_batch(obj, task, args, index))
            f, g = fg(state.x)
            state = method.rebase(state, f, g)
    stop = stop or "iterations"
    return summarize_run(args, rows, P, stop), rows


def summarize_run(args, rows, P, stop) -> dict:
    def first(th, key="wall_s"):
        for r in rows:
            if r["l2"] <= th:
                return r.get(key)
        return None

    best = min(rows, key=lambda r: r["l2"])
    last = rows[-1]
    out = {"tag": args.tag, "problem": args.problem, "net": f"{args.depth}x{args.width}",
           "P": P, "points": args.points, "hard": args.hard, "adam_steps": args.adam_steps,
           "method": args.method, "loss_kind": args.loss, "rad_every": args.rad_every,
           "rad_pool": args.rad_pool, "seed": args.seed, "stop": stop,
           "iterations": last["iteration"], "wall_s": last["wall_s"],
           "cpu_s": last.get("cpu_s"), "final_l2": last["l2"],
           "final_loss": last["loss"], "best_l2": best["l2"],
           "evaluations": last.get("evaluations"), "resets": last.get("resets")}
    for th in THRESHOLDS:
        out[f"t_{th:.0e}"] = first(th)
        out[f"cpu_{th:.0e}"] = first(th, "cpu_s")
    out["command"] = "python benchmarks/optimizers.py " + " ".join(sys.argv[1:])
    return out


def write(summary: dict, rows: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{summary['tag']}.json").write_text(json.dumps(summary, indent=1))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(OUT / f"{summary['tag']}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (OUT / f"{summary['tag']}.md").write_text(
        f"Command: `{summary['command']}` (one thread; the machine's 2 cores were shared)\n\n"
        + summary_table([OUT / f"{summary['tag']}.json"]))


COLUMNS = ["tag", "problem", "net", "P", "points", "hard", "adam_steps", "method", "loss_kind",
           "rad_every", "seed", "cpu_1e-03", "cpu_1e-04", "cpu_1e-05", "cpu_1e-06", "t_1e-05",
           "final_l2", "best_l2", "iterations", "cpu_s", "wall_s", "stop"]


def summary_table(paths: list[Path]) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(paths)]

    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(tags: list[str], out: Path, x: str = "cpu_s") -> None:
    """L2 against CPU (or wall) seconds for the given runs, one line each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tag in tags:
        with open(OUT / f"{tag}.csv") as f:
            rows = [r for r in csv.DictReader(f) if r.get(x)]
        summary = json.loads((OUT / f"{tag}.json").read_text())
        label = (f"{summary['method']}{' +RAD' if summary['rad_every'] else ''}"
                 f"{' hard' if summary['hard'] else ' soft'} s{summary['seed']}")
        ax.semilogy([float(r[x]) for r in rows], [float(r["l2"]) for r in rows], label=label)
    ax.set_xlabel("CPU seconds (one thread)" if x == "cpu_s" else "wall seconds")
    ax.set_ylabel("L2 relative error")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--summarize", action="store_true", help="collect every run's JSON")
    ap.add_argument("--plot", nargs="+", default=None, metavar="TAG",
                    help="plot these runs' L2 curves into --plot-out and exit")
    ap.add_argument("--plot-out", default="curves.png")
    ap.add_argument("--plot-x", default="cpu_s", choices=["cpu_s", "wall_s"])
    ap.add_argument("--problem", default="burgers", choices=["burgers", "heat", "poisson"])
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--boundary", type=int, default=200)
    ap.add_argument("--initial", type=int, default=256)
    ap.add_argument("--sampler", default="sobol")
    ap.add_argument("--storage", default="exact")
    ap.add_argument("--hard", action="store_true", help="conditions built into the network")
    ap.add_argument("--adam-steps", type=int, default=5000)
    ap.add_argument("--adam-dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", type=float, default=0.1, help="total decay over Adam")
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--adam-resample", type=int, default=0,
                    help="fresh (RAD if --rad-pool) interior points every K Adam steps")
    ap.add_argument("--adam-eval-every", type=int, default=1000)
    ap.add_argument("--method", default="bfgs", choices=["lbfgs", "bfgs", "ssbfgs",
                                                          "ssbroyden", "lm"])
    ap.add_argument("--history", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--loss", default="mse", choices=["mse", "sqrt", "log"])
    ap.add_argument("--rad-every", type=int, default=0,
                    help="RAD-resample every K second-order iterations (0: fixed batch)")
    ap.add_argument("--rad-pool", type=int, default=0, help="RAD candidate pool (0: no RAD)")
    ap.add_argument("--rad-k", type=float, default=1.0)
    ap.add_argument("--rad-c", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--time-limit", type=float, default=900.0, help="wall seconds (0: none)")
    ap.add_argument("--cpu-limit", type=float, default=0.0,
                    help="CPU seconds of this process (0: none); on a shared machine the "
                         "measure of what a quiet one would do in that wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.plot:
        plot(args.plot, OUT / args.plot_out, args.plot_x)
        return 0
    if args.summarize:
        md = summary_table(list(OUT.glob("*.json")))
        header = ("### Optimizer study runs (each one process, one thread; the machine's 2 "
                  "cores were shared with other jobs)\n\nCommand per row: the `command` field "
                  "of its JSON. cpu_X: CPU seconds of this process until L2 <= X (evaluations "
                  "excluded; the fair figure on a shared machine); t_X and wall_s: wall "
                  "seconds; '-' = not reached.\n\n")
        (OUT / "summary.md").write_text(header + md)
        print(md)
        return 0
    args.tag = args.tag or (f"{args.problem}_{args.depth}x{args.width}_{args.method}"
                            f"{'_hard' if args.hard else ''}_s{args.seed}")
    summary, rows = run(args)
    write(summary, rows)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
