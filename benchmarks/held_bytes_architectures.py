"""Held bytes per point of each architecture under each storage policy, measured and by formula.

For a Burgers PINN (4 x 256, float32, N interior points, the PDE residual's jets: u, u_x,
u_t, u_xx), one forward pass per (architecture, policy) under the saved-tensor hooks
(:class:`pinnsketch.memory.HeldBytes`, every derivative read, parameters excluded), divided
by N; beside it :func:`pinnsketch.memory.policy_held_bytes` on the network's stored widths
(nested autograd has no closed form). The two must be equal (the tests assert it on small
networks); the table says whether they were.

    python benchmarks/held_bytes_architectures.py --points 2000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_table  # noqa: E402

from pinnsketch import ModelConfig, load_problem  # noqa: E402
from pinnsketch.memory import HeldBytes, policy_held_bytes  # noqa: E402
from pinnsketch.network import build_network  # noqa: E402
from pinnsketch.pde.derivatives import required_derivatives  # noqa: E402
from pinnsketch.pde.sampling import sample_interior  # noqa: E402
from pinnsketch.storage import JetPlan, StorageConfig, make_engine  # noqa: E402

ARCHS = {
    "plain": ({}, {}),
    "+ Fourier features 128": ({"fourier_features": 128, "fourier_sigma": 2.0}, {}),
    "periodic x, K = 4": ({"periodic": ("x",), "harmonics": 4}, {}),
    "modified": ({"arch": "modified"}, {}),
    "modified + RWF": ({"arch": "modified", "rwf": (1.0, 0.1)}, {}),
    "modified + RWF + hard constraint": ({"arch": "modified", "rwf": (1.0, 0.1)},
                                         {"hard": True}),
}
POLICIES = {"autograd": StorageConfig("autograd"), "exact": StorageConfig("exact"),
            "sketch r32": StorageConfig("sketch", rank=32), "quant8": StorageConfig("quant8"),
            "projection r32": StorageConfig("projection", rank=32),
            "checkpoint": StorageConfig("checkpoint")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    n, rows = args.points, []
    for label, (model, params) in ARCHS.items():
        problem = load_problem("burgers", **params)
        net = build_network(ModelConfig(width=args.width, depth=args.depth, **model),
                            problem.domain, generator=torch.Generator().manual_seed(0))
        net.set_output_transforms(problem.output_transforms())
        keys = required_derivatives([problem.residual], problem.domain)
        plan = JetPlan.from_keys(keys, problem.domain.dim)
        pts = sample_interior(problem.domain, n, "sobol", 0).float()
        row = {"architecture": label, "stored widths": " ".join(map(str, net.stored_widths))}
        for name, cfg in POLICIES.items():
            eng = make_engine(net, problem.domain, keys, cfg)
            with HeldBytes(exclude=net.parameters()) as held:
                d = eng(pts)
                for k in eng.keys:
                    d.key(k)
            row[name] = held.bytes / n
            if cfg.policy != "autograd":
                want = policy_held_bytes(cfg.policy, n, net.stored_widths, plan.num_components,
                                         plan.dim, 4, cfg.rank, cfg.method)
                if want != held.bytes:
                    row["formula"] = f"MISMATCH at {name}: {want} != {held.bytes}"
            del d
        row.setdefault("formula", "equal for every policy")
        row["sketch r32 / autograd"] = row["sketch r32"] / row["autograd"]
        rows.append(row)
        print(row, flush=True)
    command = "python benchmarks/held_bytes_architectures.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(write_table(rows, args.out, f"held_bytes_architectures_{args.depth}x{args.width}",
                      command, f"Held bytes per interior point, Burgers, {args.depth} x "
                      f"{args.width}, float32, {n} points (one forward; measured by saved-tensor "
                      "hooks, checked against the formula)", floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
