"""benchmarks/gpu_check.py runs its code paths on the CPU (--device cpu --quick), so that the
first run on a GPU does not fail for want of a test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_quick_on_cpu(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:  # one thread: tiny tensors, where a shared machine's thread pool only costs time
        assert module.main(["--device", "cpu", "--quick", "--threads", "1",
                            "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    table = (tmp_path / "gpu_check_cpu_quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| step")]
    assert len(rows) == 2 * 3 * 2  # two nets, three policies, two batch sizes
    assert "out of memory" not in table and "skipped" not in table
    assert table.count("| largest batch |") == 6 and "stopped at --max-points 1024" in table
    assert "| default burgers run | 2x8 mlp | autograd |" in table
    assert "L2 " in table and "after 5 adam + 2 " in table
    dev = module.Device("cpu")
    assert dev.out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not dev.out_of_memory(RuntimeError("shape mismatch"))
