"""Command line: ``pinnsketch list``, ``pinnsketch solve PROBLEM``, ``pinnsketch classify
DATASET``, ``pinnsketch fetch DATASET``.

Thin: argv -> the same config objects and the same solve() the notebooks call. Exit codes:
0 success, 2 bad input (also: out of memory, a run directory in use, a full disk),
3 training diverged, 4 another process of a data-parallel run failed, 130 interrupted by
Ctrl-C, 143 stopped by SIGTERM (files saved in both cases).

Under torchrun (WORLD_SIZE > 1) ``solve`` joins the process group and trains data-parallel
(:mod:`pinnsketch.distributed`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

# argparse destination -> configuration field, per configuration (one table: it builds the
# configs and translates field names in error messages back to the flags).
_MODEL_ARGS = {"width": "width", "depth": "depth", "activation": "activation", "arch": "arch",
               "harmonics": "harmonics", "init": "init"}
_SAMPLING_ARGS = {"collocation": "collocation", "boundary_points": "boundary",
                  "initial_points": "initial", "sampler": "method",
                  "resample_every": "resample_every", "rad_every": "rad_every",
                  "rad_pool": "rad_pool", "rad_k": "rad_k", "rad_c": "rad_c",
                  "rad_adam_every": "rad_adam_every"}
_OPTIM_ARGS = {"steps": "steps", "lr": "lr", "lr_decay": "lr_decay",
               "lbfgs_steps": "lbfgs_steps", "second_order_dtype": "second_order_dtype",
               "lbfgs_history": "lbfgs_history", "chunk_size": "chunk_size"}
_RUN_ARGS = {"seed": "seed", "device": "device", "dtype": "dtype", "eval_every": "eval_every",
             "threads": "threads", "time_limit": "time_limit_s", "monitor": "monitor",
             "monitor_rank": "monitor_rank", "monitor_every": "monitor_every"}
_FLAGS = {f"{owner}.{field}": "--" + arg.replace("_", "-")
          for owner, table in (("model", _MODEL_ARGS), ("sampling", _SAMPLING_ARGS),
                               ("optim", _OPTIM_ARGS), ("run", _RUN_ARGS))
          for arg, field in table.items()}
_FLAGS["optim: steps and lbfgs_steps"] = "--steps and --lbfgs-steps"
_FLAGS["run.out"] = "--out"
_FLAGS["optim.adam_betas"] = "--adam-betas"

_RESUMABLE = {"command", "problem", "resume", "steps", "lbfgs_steps", "time_limit", "quiet",
              "device", "threads", "dist_timeout", "allow_changed_problem"}
"""What may be given with --resume; every other solve option is fixed by the run."""


def _build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    from pinnsketch import __version__
    from pinnsketch.cli_classify import add_classify_parser, parse_sketch_rank
    from pinnsketch.config import DEFAULT_PHASES, PHASE_OPTIMIZERS
    from pinnsketch.config import ModelConfig as M
    from pinnsketch.config import OptimConfig as O
    from pinnsketch.config import SamplingConfig as S
    from pinnsketch.storage import SKETCH_METHODS, STORAGE_POLICIES

    parser = argparse.ArgumentParser(
        prog="pinnsketch",
        description="Physics-informed neural networks with sketched activation storage.")
    parser.add_argument("--version", action="version", version=f"pinnsketch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the built-in problems and their PDEs")
    add_classify_parser(sub)

    s = sub.add_parser("solve", help="train a PINN on a problem and write the results")
    s.add_argument("problem", nargs="?", help="a built-in name (see 'pinnsketch list') or a "
                   "path to a problem .py file; omit with --resume")
    s.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="override a problem parameter, e.g. --param nu=0.005 (repeatable); a "
                        "number fixes an unknown parameter, unknown:GUESS[:positive] learns "
                        "one from that guess")
    g = s.add_argument_group("observations")
    g.add_argument("--data", default=None, metavar="FILE",
                   help="observed field values: a CSV with a header row (one column per "
                        "coordinate and per observed field), an NPZ or an HDF5 file (one array "
                        "per coordinate and field); one data term per field (data:<field>); "
                        "replaces the problem's own observations")
    g.add_argument("--data-noise", action="append", default=[], metavar="FIELD=SIGMA",
                   help="noise level of an observed field: fields are weighted by inverse "
                        "variance, relative to the most precise one (repeatable)")
    g = s.add_argument_group("network")
    g.add_argument("--width", type=int, default=None, help=f"hidden width (default {M.width})")
    g.add_argument("--depth", type=int, default=None, help=f"hidden layers (default {M.depth})")
    g.add_argument("--activation", default=None, help="tanh, sin or silu (default tanh)")
    g.add_argument("--arch", default=None, metavar="mlp|modified",
                   help="trunk: the plain MLP or the modified MLP (Wang, Teng & Perdikaris "
                        "2021) (default mlp)")
    g.add_argument("--fourier-features", default=None, metavar="M:SIGMA",
                   help="random Fourier features: M frequencies (2M features) of scale SIGMA "
                        "after the input scaling, e.g. 128:1.0 (default none)")
    g.add_argument("--fourier-trainable", action="store_true",
                   help="train the Fourier frequencies (default frozen)")
    g.add_argument("--periodic", action="append", default=[], metavar="COORD",
                   help="embed a coordinate exactly periodically, cos/sin(2 pi k x / L), "
                        "k = 1..--harmonics; its Periodic conditions leave the loss "
                        "(repeatable or a comma list, e.g. x or x,y)")
    g.add_argument("--harmonics", type=int, default=None, metavar="K",
                   help="harmonics K of --periodic (default 1)")
    g.add_argument("--rwf", default=None, metavar="MU:SIGMA",
                   help="random weight factorization W = diag(exp(s)) V, s ~ N(MU, SIGMA^2), "
                        "on every dense layer, e.g. 1.0:0.1 (default none)")
    g.add_argument("--init", default=None, help="weight initialiser: glorot, glorot_uniform "
                   "or he (default glorot)")
    g.add_argument("--network-per-field", action="store_true",
                   help="with several fields, one network per field (default one network "
                        "with an output per field)")
    g = s.add_argument_group("points")
    g.add_argument("--collocation", type=int, default=None, help=f"interior points (default {S.collocation})")
    g.add_argument("--boundary-points", type=int, default=None, help="boundary points (200)")
    g.add_argument("--initial-points", type=int, default=None, help="initial-slice points (256)")
    g.add_argument("--sampler", default=None, help="uniform, sobol, lhs or halton (sobol)")
    g.add_argument("--resample-every", type=int, default=None,
                   help=f"fresh points every K Adam steps, 0 = never ({S.resample_every})")
    g.add_argument("--rad-every", type=int, default=None,
                   help="second-order phases: new interior points every K iterations by "
                        f"residual-based adaptive sampling (RAD), 0 = never ({S.rad_every})")
    g.add_argument("--rad-pool", type=int, default=None,
                   help=f"RAD candidate pool, 0 = 10 x --collocation ({S.rad_pool})")
    g.add_argument("--rad-k", type=float, default=None,
                   help="RAD exponent k: p ~ |r|^k / mean |r|^k + c (1)")
    g.add_argument("--rad-c", type=float, default=None, help="RAD uniform share c (1)")
    g.add_argument("--rad-adam-every", type=int, default=None,
                   help="Adam phases: draw the fresh interior points from a RAD density "
                        f"re-estimated every K steps, 0 = uniform ({S.rad_adam_every})")
    g = s.add_argument_group("optimisation")
    g.add_argument("--optimizer", default=None, metavar="NAME:STEPS,...",
                   help="the training phases in order, e.g. adam:5000,ssbroyden:20000; names: "
                        + ", ".join(PHASE_OPTIMIZERS) + " (default "
                        + ",".join(f"{p.optimizer}:{p.steps}" for p in DEFAULT_PHASES) + ")")
    g.add_argument("--steps", type=int, default=None,
                   help="shorthand: the Adam steps of the default schedule (0: no Adam)")
    g.add_argument("--lr", type=float, default=None, help=f"Adam learning rate ({O.lr:g})")
    g.add_argument("--adam-betas", default=None, metavar="B1,B2",
                   help=f"Adam's moment decay rates ({O.adam_betas[0]:g},{O.adam_betas[1]:g})")
    g.add_argument("--lr-decay", type=float, default=None,
                   help=f"final lr / initial lr, exponential schedule ({O.lr_decay:g})")
    g.add_argument("--lbfgs-steps", type=int, default=None,
                   help="shorthand: an L-BFGS phase of this many iterations instead of the "
                        "default second-order phase (0: none); with --resume, the new total of "
                        "second-order iterations")
    g.add_argument("--second-order-dtype", "--lbfgs-dtype", dest="second_order_dtype",
                   choices=("float32", "float64"), default=None,
                   help="float type of the second-order phases (float64)")
    g.add_argument("--lbfgs-history", type=int, default=None,
                   help="curvature pairs kept by L-BFGS (50)")
    g.add_argument("--weight", action="append", default=[], metavar="TERM=W",
                   help="loss weight of a term (pde or a condition name), repeatable")
    g.add_argument("--weighting", default=None, metavar="NAME[:KEY=V,...]",
                   help="adaptive loss weights during Adam: none, gradnorm (options every, "
                        "alpha), causal (eps, slices; time-dependent problems), rba (gamma, "
                        "eta), e.g. causal:eps=1,slices=16 (none)")
    g.add_argument("--chunk-size", type=int, default=None,
                   help="accumulate gradients over chunks of this many interior points")
    g = s.add_argument_group("activation storage")
    g.add_argument("--storage", choices=STORAGE_POLICIES, default=None,
                   help="how hidden layers keep what backward needs (default autograd)")
    g.add_argument("--sketch-rank", type=parse_sketch_rank, default=None,
                   help="none | auto | N: sketch rank of the hidden layers (N or auto implies "
                        "--storage sketch; auto: a controller follows the residual trend); "
                        "with --storage projection, the projected width N")
    g.add_argument("--sketch-method", choices=SKETCH_METHODS, default=None,
                   help="which low-rank sketch stores the activations (randomized_svd)")
    g.add_argument("--memory-budget", default=None, metavar="BYTES",
                   help="cap on bytes held for backward, e.g. 2GB: picks the largest "
                        "collocation batch (and sketch ranks) that fit, or refuses")
    g.add_argument("--monitor", action="store_true",
                   help="log per-layer gradient norms estimated from sketches (and exact ones "
                        "every --eval-every steps)")
    g.add_argument("--monitor-rank", type=int, default=None,
                   help="sketch size k of --monitor (16): relative spread of the squared-norm "
                        "estimate at most sqrt(2/k)")
    g.add_argument("--monitor-every", type=int, default=None,
                   help="exact norms beside the estimates every K steps (default --eval-every)")
    g = s.add_argument_group("run")
    g.add_argument("--seed", type=int, default=None, help="seed of weights and points (0)")
    g.add_argument("--device", default=None, help="cpu or cuda[:N] (cpu)")
    g.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="float type of the Adam phase (float32)")
    g.add_argument("--eval-every", type=int, default=None,
                   help="evaluate L2 and checkpoint every K iterations (500)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (0 = default)")
    g.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop training after this much wall time (0 = none)")
    g.add_argument("--out", default=None, help="run directory (default runs/PROBLEM-seedS)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    g.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR (optionally with larger --steps/--lbfgs-steps, "
                        "a new --time-limit, --device, --threads, --quiet)")
    g.add_argument("--allow-changed-problem", action="store_true",
                   help="with --resume: accept a problem file whose contents changed since the "
                        "run started")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others before the "
                        "run is declared failed (300)")
    return parser, s


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None


def _given(args: argparse.Namespace, mapping: dict[str, str]) -> dict[str, object]:
    return {field: getattr(args, arg) for arg, field in mapping.items()
            if getattr(args, arg) is not None}


def _pair(text: str, flag: str, example: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a.strip() or not b.strip():
        raise ValueError(f"{flag} expects two values A:B, e.g. {flag} {example}, got {text!r}")
    return a.strip(), b.strip()


def _model_config(args: argparse.Namespace):
    from pinnsketch.config import ModelConfig

    kwargs = _given(args, _MODEL_ARGS)
    if args.fourier_features is not None:
        m, sigma = _pair(args.fourier_features, "--fourier-features", "128:1.0")
        try:
            kwargs["fourier_features"] = int(m)
        except ValueError:
            raise ValueError(f"--fourier-features {args.fourier_features}: the count {m!r} is "
                             "not an integer") from None
        kwargs["fourier_sigma"] = _number(sigma, f"--fourier-features {args.fourier_features}")
        if kwargs["fourier_features"] < 1:
            raise ValueError(f"--fourier-features {args.fourier_features}: the count must be "
                             ">= 1")
    elif args.fourier_trainable:
        raise ValueError("--fourier-trainable needs --fourier-features M:SIGMA")
    if args.fourier_trainable:
        kwargs["fourier_trainable"] = True
    if args.rwf is not None:
        mu, sigma = _pair(args.rwf, "--rwf", "1.0:0.1")
        kwargs["rwf"] = (_number(mu, f"--rwf {args.rwf}"), _number(sigma, f"--rwf {args.rwf}"))
    periodic = tuple(c.strip() for item in args.periodic for c in item.split(",") if c.strip())
    if periodic:
        kwargs["periodic"] = periodic
    elif args.harmonics is not None:
        raise ValueError("--harmonics needs --periodic COORD")
    if args.network_per_field:
        kwargs["per_field"] = True
    return ModelConfig(**kwargs)


def _cmd_list() -> int:
    from pinnsketch.pde.registry import builtin_problems, load_problem_file

    problems = builtin_problems()
    width = max(map(len, problems), default=0)
    for name, path in problems.items():
        cls = load_problem_file(path)
        print(f"{name:{width}s}  {cls.equation}")
    return 0


def _storage_config(args: argparse.Namespace):
    from pinnsketch.storage import StorageConfig

    kwargs = _given(args, {"storage": "policy", "sketch_method": "method"})
    if args.sketch_rank is not None:
        policy = kwargs.get("policy", "sketch")
        if policy not in ("sketch", "projection"):
            raise ValueError(f"--sketch-rank {args.sketch_rank} needs --storage sketch (or "
                             f"projection), not --storage {kwargs['policy']}")
        kwargs.update(policy=policy, rank=args.sketch_rank)
    return StorageConfig(**kwargs)


def _cmd_solve(args: argparse.Namespace, defaults: dict[str, object]) -> int:
    from pinnsketch import distributed

    timeout = distributed.DEFAULT_TIMEOUT_S if args.dist_timeout is None else args.dist_timeout
    cluster, device = distributed.init_from_env(args.device or "cpu", timeout)
    if args.device is not None or cluster.active:
        args.device = device
    try:
        return _solve_or_resume(args, cluster, defaults)
    finally:
        distributed.shutdown()


def _fixed_on_resume(args: argparse.Namespace, defaults: dict[str, object]) -> list[str]:
    """The flags given with --resume that a continued run cannot change."""
    return ["--" + dest.replace("_", "-") for dest, value in vars(args).items()
            if dest not in _RESUMABLE and value != defaults.get(dest)]


def _solve_or_resume(args: argparse.Namespace, cluster, defaults: dict[str, object]) -> int:
    from pinnsketch.api import load_problem, resume, solve
    from pinnsketch.config import (
        OptimConfig,
        RunConfig,
        SamplingConfig,
        parse_phases,
        parse_weighting,
    )
    from pinnsketch.pde.registry import parse_param_overrides

    if args.resume:
        if args.problem:
            raise ValueError("give either a problem or --resume DIR, not both")
        fixed = _fixed_on_resume(args, defaults)
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change when a run is resumed (the "
                             "run keeps its problem, network, points, optimizer settings, seed "
                             "and directory); with --resume give only --steps, --lbfgs-steps, "
                             "--time-limit, --device, --threads, --quiet, "
                             "--allow-changed-problem")
        result = resume(args.resume, steps=args.steps, lbfgs_steps=args.lbfgs_steps,
                        quiet=True if args.quiet else None, time_limit_s=args.time_limit,
                        cluster=cluster, device=args.device, threads=args.threads,
                        allow_changed_problem=args.allow_changed_problem)
        if cluster.is_main:
            _print_outcome(result.summary, args.resume, cluster)
        return 0
    if args.allow_changed_problem:
        raise ValueError("--allow-changed-problem applies only with --resume DIR")
    if not args.problem:
        raise ValueError("name a problem (see 'pinnsketch list') or give --resume DIR")
    problem = load_problem(args.problem, **parse_param_overrides(args.param))
    model = _model_config(args)
    sampling = SamplingConfig(**_given(args, _SAMPLING_ARGS))
    weights = tuple((k, _number(v, f"--weight {k}={v}"))
                    for k, v in parse_param_overrides(args.weight, "--weight").items())
    phases = parse_phases(args.optimizer) if args.optimizer is not None else None
    extra = {"weighting": parse_weighting(args.weighting)} if args.weighting else {}
    if args.adam_betas is not None:
        extra["adam_betas"] = tuple(_number(b, f"--adam-betas {args.adam_betas}")
                                    for b in args.adam_betas.split(","))
    optim = OptimConfig(weights=weights, phases=phases, **extra, **_given(args, _OPTIM_ARGS))
    storage = _storage_config(args)
    seed = args.seed if args.seed is not None else 0
    out = args.out if args.out is not None else str(Path("runs") / f"{problem.name}-seed{seed}")
    run = RunConfig(out=out, overwrite=args.overwrite, quiet=args.quiet,
                    **_given(args, _RUN_ARGS))
    noise = {k: _number(v, f"--data-noise {k}={v}")
             for k, v in parse_param_overrides(args.data_noise, "--data-noise").items()}
    result = solve(problem, model=model, sampling=sampling, optim=optim, storage=storage,
                   run=run, memory_budget=args.memory_budget, cluster=cluster, data=args.data,
                   data_noise=noise or None)
    if cluster.is_main:
        _print_outcome(result.summary, out, cluster)
    return 0


def _print_outcome(s: dict, out: str, cluster) -> None:
    """One line: the error (per field too; without a reference, the final losses), the learnt
    parameters, steps, time, memory."""
    if s["l2_relative_error"] is not None:
        what = f"L2 relative error {s['l2_relative_error']:.3e}"
        fields = {k[len("l2_relative_error_"):]: v for k, v in s.items()
                  if k.startswith("l2_relative_error_") and v is not None}
        if fields:
            what += " (" + ", ".join(f"{f} {v:.3e}" for f, v in fields.items()) + ")"
    else:
        terms = ", ".join(f"{k} {v:.2e}" for k, v in s["final_loss_terms"].items()
                          if v is not None)
        loss = s["final_loss"]
        what = ("no reference solution; final loss "
                + (f"{loss:.3e} ({terms})" if loss is not None else "not computed"))
    for name, p in s.get("unknowns", {}).items():
        what += f"; {name} = {p['value']:.6g}"
        if p.get("relative_error") is not None:
            what += f" (true {p['true']:.6g}, {100 * p['relative_error']:.3g} % off)"
    phases = " + ".join(f"{p['done']} {p['optimizer']}" for p in s["phases"])
    print(f"{s['problem']}: {what} after {phases} steps in {s['wall_time_s']:.1f} s; "
          + (f"held {s['held_bytes_per_point']:.0f} B/point ({s['storage']})"
             if s["held_bytes_per_point"] is not None else f"storage {s['storage']}")
          + (f" on each of {cluster.world_size} processes" if cluster.active else "")
          + f"; results in {out}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser, solve_parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command in ("classify", "fetch"):
        from pinnsketch.cli_classify import run_classify

        return run_classify(args)
    from pinnsketch.cli_classify import exit_code_of

    if args.command == "list":
        return exit_code_of(_cmd_list)
    defaults = dict(vars(solve_parser.parse_args([])), command="solve")
    return exit_code_of(lambda: _cmd_solve(args, defaults), " (continue with --resume DIR)",
                        flags=_FLAGS)


if __name__ == "__main__":
    sys.exit(main())
