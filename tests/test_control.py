"""The rank controller (synthetic loss/error sequences) and memory-budget planning."""

from __future__ import annotations

import math
import random

import pytest

from pinnsketch.control import (
    RankController,
    RankStats,
    exact_held_bytes,
    exact_points_within,
    layer_errors,
    lbfgs_ranks,
    log_loss_trend,
    parse_bytes,
    plan_budget,
    sketch_held_bytes,
)
from pinnsketch.memory import expected_exact_bytes, expected_sketch_bytes
from pinnsketch.model import MLP
from pinnsketch.storage import JetPlan

FLAT = 1.0


def run(ctrl, widths, losses, errors):
    """Feed step i losses[i] and errors(i, ranks); return (the ranks after each step, state)."""
    ranks, state = ctrl.init(widths)
    trace = []
    for i, loss in enumerate(losses):
        ranks, state = ctrl.update(state, RankStats(i, loss, errors(i, ranks)))
        trace.append(ranks)
    return trace, state


def changes_of(trace, layer):
    """(step, old, new) for each change of one layer in a trace."""
    return [(i, a[layer], b[layer]) for i, (a, b) in enumerate(zip(trace, trace[1:]), 1)
            if a[layer] != b[layer]]


# ------------------------------------------------------------------------------ controller
def test_stall_with_lossy_layer_grows_it_only_after_the_window_fills():
    ctrl = RankController(window=50, initial_rank=8)
    trace, state = run(ctrl, (64, 64, 64), [FLAT] * 60, lambda i, r: (1e-4, 5e-2, 2e-3))
    assert all(r == (8, 8, 8) for r in trace[:49])  # steps 0..48: the window is not full
    assert trace[49] == (8, 16, 8)  # step 49 is the 50th step
    assert trace[-1] == (8, 16, 8)  # cooldown: nothing else within 50 steps
    assert state.log[-1] == ("step 49: layer 1 rank 8 -> 16 (residual stalling, slope "
                             "0.0e+00/step; sketch error 5.0e-02)")


def test_rising_loss_is_logged_as_rising():
    ctrl = RankController(window=10, initial_rank=8)
    _, state = run(ctrl, (64,), [math.exp(1e-3 * i) for i in range(10)], lambda i, r: (0.1,))
    assert state.ranks == (16,)
    assert "residual rising" in state.log[-1]


def test_stall_with_accurate_sketches_changes_nothing():
    ctrl = RankController(window=20, initial_rank=8)
    trace, _ = run(ctrl, (64, 64), [FLAT] * 200, lambda i, r: (5e-3, 2e-3))
    assert set(trace) == {(8, 8)}


def test_steady_fall_with_small_errors_shrinks_to_min_rank_and_no_lower():
    ctrl = RankController(window=30, min_rank=5)
    losses = [math.exp(-1e-2 * i) for i in range(1500)]
    small = ctrl.error_low / 10
    trace, state = run(ctrl, (64, 64), losses, lambda i, r: (small, small))
    firsts = [r[0] for r in trace]
    assert firsts == sorted(firsts, reverse=True)  # never grows back
    assert trace[-1] == (5, 5)
    assert min(min(r) for r in trace) == 5
    assert sum("residual falling" in line for line in state.log) >= 5  # 32 -> 24 -> ... -> 5


def test_errors_measured_sparsely_are_used_and_forgotten_after_a_change():
    # Errors arrive every 25 steps; after a growth the old error no longer counts, so the
    # next growth waits for a measurement at the new rank.
    ctrl = RankController(window=20, initial_rank=4, cooldown=5)
    trace, _ = run(ctrl, (256,), [FLAT] * 120,
                   lambda i, r: (0.1,) if i % 25 == 0 else None)
    grew = [s for s, _, _ in changes_of(trace, 0)]
    assert grew == [19, 25, 50, 75, 100]  # window full at 19, then only on fresh measurements
    assert trace[-1] == (128,)


def test_budget_caps_are_never_exceeded_and_a_capped_layer_is_noted_once():
    ctrl = RankController(window=10, budget_ranks=(6, 20, 64), min_rank=4)
    assert ctrl.init((64, 64, 64))[0] == (6, 20, 32)  # initial rank 32 clamped to the caps
    trace, state = run(ctrl, (64, 64, 64), [FLAT] * 400, lambda i, r: (0.2, 0.2, 0.2))
    assert trace[0] == (6, 20, 64)  # layer 2: lossy at 32 = 64 / 2, not compressible
    assert all(r[0] <= 6 and r[1] <= 20 and r[2] <= 64 for r in trace)
    assert trace[-1] == (6, 20, 64)
    notes = [line for line in state.log if "stays at rank" in line]
    assert len([n for n in notes if "layer 0" in n]) == 1
    assert len([n for n in notes if "layer 1" in n]) == 1


def test_random_sequences_keep_ranks_within_floor_and_caps():
    rng = random.Random(0)
    ctrl = RankController(window=8, cooldown=3, min_rank=3, budget_ranks=(9, 40), max_rank=30)
    ranks, state = ctrl.init((16, 64))
    for i in range(3000):
        loss = math.exp(rng.gauss(-1e-3 * i, 0.2 if rng.random() < 0.5 else 0.0))
        errs = tuple(10 ** rng.uniform(-5, 0) for _ in range(2)) if rng.random() < 0.5 else None
        ranks, state = ctrl.update(state, RankStats(i, loss, errs))
        assert 3 <= ranks[0] <= 9 and 3 <= ranks[1] <= 30
    assert state.caps == (9, 30)


@pytest.mark.parametrize("error_model", ["alternating", "rank_dependent"])
def test_adversarial_alternation_cannot_make_ranks_oscillate(error_model):
    # Stall and fall alternate in blocks of 37 steps (not aligned with the window); errors
    # either alternate with them (high when stalling) or depend on the rank with noise.
    window = 40
    ctrl = RankController(window=window, initial_rank=16)
    widths = (128, 128, 128)
    steps, block = 6000, 37
    rng = random.Random(1)
    log_loss = [0.0]
    for i in range(1, steps):
        log_loss.append(log_loss[-1] + (0.0 if (i // block) % 2 == 0 else -5e-3))

    def errors(i, ranks):
        if error_model == "alternating":
            high = (i // block) % 2 == 0
            return tuple((5e-2 if high else ctrl.error_low / 10) for _ in ranks)
        return tuple(0.3 * math.exp(-r / 6) * 10 ** rng.uniform(-0.5, 0.5) for r in ranks)

    trace, state = run(ctrl, widths, [math.exp(v) for v in log_loss], errors)
    cooldown = ctrl.cooldown
    for layer in range(len(widths)):
        ch = changes_of(trace, layer)
        assert len(ch) <= steps // cooldown
        ups = [s for s, a, b in ch if b > a]
        downs = [s for s, a, b in ch if b < a]
        for u in ups:  # no shrink within 2 * cooldown after a growth
            assert not [d for d in downs if u < d < u + 2 * cooldown]
        # A rank found lossy is never returned to, so no A -> B -> A cycle: each growth
        # starts from a strictly higher rank than the previous one.
        grow_from = [a for _, a, b in ch if b > a]
        assert grow_from == sorted(set(grow_from))
    lines = [line for line in state.log if "->" in line]
    assert len(lines) == sum(len(changes_of(trace, layer)) for layer in range(3))


def test_incompressible_layer_goes_to_full_width_and_says_so():
    ctrl = RankController(window=20, initial_rank=16)
    trace, state = run(ctrl, (50, 256), [FLAT] * 400, lambda i, r: (5e-2, 1e-4))
    assert trace[19] == (32, 16)  # stall + lossy: 16 -> 32 (32 >= 50 / 2)
    assert trace[-1] == (50, 16)  # still lossy at 32: not compressible -> full width
    assert state.incompressible == (True, False)
    line = [line for line in state.log if "not compressible" in line]
    assert len(line) == 1 and "layer 0 rank 32 -> 50" in line[0] and "full width" in line[0]
    assert len(changes_of(trace, 0)) == 2


def test_incompressible_layer_under_a_budget_cap_is_said_to_stay_approximate():
    ctrl = RankController(window=5, initial_rank=32, budget_ranks=(40,))
    _, state = run(ctrl, (50,), [FLAT] * 10, lambda i, r: (5e-2,))
    assert state.ranks == (40,)
    assert "not compressible" in state.log[-1] and "approximate" in state.log[-1]


def test_incompressible_layer_is_never_shrunk():
    ctrl = RankController(window=10, initial_rank=32)
    errs = iter([(5e-2,)] + [(1e-6,)] * 2000)
    trace, _ = run(ctrl, (50,), [math.exp(-1e-2 * i) for i in range(1000)],
                   lambda i, r: next(errs))
    assert trace[0] == (50,) and set(trace) == {(50,)}


def test_layer_held_by_accuracy_is_said_once_per_rank_with_its_verdict():
    # The residual falls steadily; layer 0 (rank 32 >= 50 / 2) and layer 1 (32 of 256) both
    # measure errors in the dead band, so neither shrinks: each is said once, layer 0 "not
    # compressible", layer 1 "compressed to 12% of the width".
    ctrl = RankController(window=10)
    falling = [math.exp(-1e-2 * i) for i in range(300)]
    trace, state = run(ctrl, (50, 256), falling, lambda i, r: (2e-3, 5e-4))
    assert set(trace) == {(32, 32)}
    said = [line for line in state.log if "keeps rank" in line]
    assert len(said) == 2
    assert said[0].startswith("step 9: layer 0 keeps rank 32 of width 50: sketch error 2.0e-03")
    assert "not compressible" in said[0] and "accuracy kept over memory" in said[0]
    assert said[1].startswith("step 9: layer 1 keeps rank 32 of width 256")
    assert "compressed to 12% of the width" in said[1] and "not compressible" not in said[1]
    assert state.kept_noted == (True, True) and state.incompressible == (False, False)


def test_a_layer_is_said_kept_again_only_at_a_new_rank():
    # Small errors first (it shrinks 32 -> 24 -> 18), then dead-band errors: said once at 18.
    ctrl = RankController(window=10, cooldown=10)
    falling = [math.exp(-1e-2 * i) for i in range(300)]
    trace, state = run(ctrl, (50,), falling, lambda i, r: (1e-6,) if r[0] > 18 else (2e-3,))
    assert trace[-1] == (18,)
    said = [line for line in state.log if "keeps rank" in line]
    assert len(said) == 1 and "keeps rank 18 of width 50" in said[0]
    assert "compressed to 36% of the width, and no further" in said[0]


def test_lbfgs_ranks_are_the_widths_and_logged():
    assert lbfgs_ranks((50, 20, 7)) == (50, 20, 7)
    ctrl = RankController(min_rank=2)
    _, state = ctrl.init((50, 20, 7))
    ranks, state = ctrl.enter_lbfgs(state)
    assert ranks == (50, 20, 7) and state.ranks == ranks
    assert "L-BFGS" in state.log[-1] and "full rank" in state.log[-1]
    capped = RankController(budget_ranks=(10, 10, 10), min_rank=2)
    ranks, state = capped.enter_lbfgs(capped.init((50, 20, 7))[1])
    assert ranks == (10, 10, 7) and "memory-budget" in state.log[-1]


@pytest.mark.parametrize("kwargs, match", [
    ({"min_rank": 0}, "min_rank"),
    ({"min_rank": 8, "max_rank": 4, "initial_rank": 4}, "min_rank=8 > max_rank=4"),
    ({"initial_rank": 2}, "initial_rank=2 < min_rank"),
    ({"shrink_factor": 1.0}, "shrink_factor"),
    ({"shrink_factor": 0.0}, "shrink_factor"),
    ({"grow_factor": 1.0}, "grow_factor"),
    ({"error_low": 1e-2, "error_high": 1e-2}, "error_low < error_high"),
    ({"error_low": 0.0}, "error_low"),
    ({"window": -5}, "window"),
    ({"window": 2}, "window"),
    ({"cooldown": -1}, "cooldown"),
    ({"fall_slope": 1e-4}, "fall_slope"),
    ({"fall_slope": -1e-5, "stall_slope": -1e-4}, "below stall_slope"),
    ({"fall_confidence": -1.0}, "fall_confidence"),
    ({"incompressible_fraction": 1.5}, "incompressible_fraction"),
    ({"incompressible_error": 1e-4}, "incompressible_error"),
    ({"budget_ranks": (2, 8)}, "below min_rank"),
    ({"budget_ranks": (0,)}, "budget_ranks"),
    ({"stall_slope": float("nan")}, "stall_slope"),
])
def test_bad_configs_are_refused_with_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RankController(**kwargs)


def test_defaults_and_resolved_fields():
    ctrl = RankController()
    assert ctrl.cooldown == ctrl.window == 200
    assert ctrl.incompressible_error == ctrl.error_high
    assert ctrl.fall_slope < ctrl.stall_slope < 0 and ctrl.error_low < ctrl.error_high


def test_bad_calls_are_refused():
    ctrl = RankController(budget_ranks=(8, 8))
    with pytest.raises(ValueError, match="2 entries for 3 hidden layers"):
        ctrl.init((50, 50, 50))
    with pytest.raises(ValueError, match="widths"):
        ctrl.init(())
    _, state = ctrl.init((50, 50))
    _, state = ctrl.update(state, RankStats(5, 1.0))
    with pytest.raises(ValueError, match="not after the previous step 5"):
        ctrl.update(state, RankStats(5, 1.0))
    with pytest.raises(ValueError, match="1 sketch errors for 2 hidden layers"):
        ctrl.update(state, RankStats(6, 1.0, (0.1,)))
    for bad in [{"residual_loss": float("nan")}, {"residual_loss": -1.0}, {"step": -1},
                {"sketch_errors": (float("nan"),)}, {"sketch_errors": (-0.1,)}]:
        kw = {"step": 0, "residual_loss": 1.0, **bad}
        with pytest.raises(ValueError):
            RankStats(**kw)


def test_log_loss_trend_slope_and_standard_error():
    slope, se = log_loss_trend([(s, math.exp(2.0 - 3e-3 * s)) for s in range(0, 100, 7)])
    assert slope == pytest.approx(-3e-3, rel=1e-9) and se < 1e-12
    # Gaussian noise sigma on log-loss: se ~= sigma * sqrt(12 / W^3) for W unit-spaced steps.
    rng = random.Random(3)
    w, sigma = 400, 0.1
    _, se = log_loss_trend([(s, math.exp(rng.gauss(0.0, sigma))) for s in range(w)])
    assert se == pytest.approx(sigma * math.sqrt(12 / w**3), rel=0.2)
    with pytest.raises(ValueError, match="at least 3"):
        log_loss_trend([(0, 1.0), (1, 1.0)])


def test_layer_errors_takes_the_worst_component():
    assert layer_errors([[0.0, 1e-3, 3e-2], [2e-4]]) == (3e-2, 2e-4)
    with pytest.raises(ValueError):
        layer_errors([[]])


# ---------------------------------------------------------------------------------- budget
@pytest.mark.parametrize("text, expected", [
    ("2GB", 2 * 10**9), ("2gb", 2 * 10**9), ("1.5GiB", 3 * 2**29), ("512 MiB", 512 * 2**20),
    ("1KB", 1000), ("1kib", 1024), ("100B", 100), ("100", 100), ("0.5KB", 500),
    (".5KiB", 512), ("0.1GB", 10**8), (" 3 mb ", 3 * 10**6), (1000, 1000),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text, match", [
    ("abc", "cannot read 'abc'"), ("-1GB", "negative"), ("0", "zero"), ("0GB", "zero"),
    ("0.1B", "zero"), ("2 XB", "cannot read"), ("", "cannot read"), ("1e9", "cannot read"),
    (-5, "negative"), (2.5, "memory size"),
])
def test_parse_bytes_refuses(text, match):
    with pytest.raises(ValueError, match=match):
        parse_bytes(text)


KEYS = [(1,), (0,), (0, 0)]  # Burgers: u_t, u_x, u_xx (plus the value)


def stand_in(width=50, depth=4):
    net = MLP((-1.0, 0.0), (1.0, 1.0), width=width, depth=depth)
    plan = JetPlan.from_keys(KEYS, 2)
    return net, plan, (width,) * depth


@pytest.mark.parametrize("method", ["range_finder", "three_sketch", "ema"])
@pytest.mark.parametrize("exact_value", [False, True])
def test_held_bytes_formula_matches_memory_module(method, exact_value):
    net, plan, widths = stand_in(width=20, depth=3)
    for n in (1, 7, 20, 333):
        for ranks in (1, 5, 19, 20, 64, (3, 30, 8)):
            ours = sketch_held_bytes(n, widths, ranks, plan.num_components, plan.dim, 4, method,
                                     exact_value)
            theirs = expected_sketch_bytes(net, plan, n, 4, ranks, method, exact_value)
            assert ours == theirs, (n, ranks)
        assert exact_held_bytes(n, widths, plan.num_components, plan.dim, 8) == \
            expected_exact_bytes(net, plan, n, 8)


@pytest.mark.parametrize("method", ["range_finder", "three_sketch"])
def test_budget_that_fits_the_requested_points_gives_the_largest_rank(method):
    net, plan, widths = stand_in()
    n = 10_000
    budget = parse_bytes("8MB")
    p = plan_budget(budget, widths, plan.num_components, plan.dim, 4, method, n, min_rank=4)
    assert p.points == n and len(set(p.ranks)) == 1 and 4 <= p.ranks[0] < 50
    held = expected_sketch_bytes(net, plan, n, 4, p.ranks, method)
    assert held == p.held_bytes <= budget
    assert expected_sketch_bytes(net, plan, n, 4, p.ranks[0] + 1, method) > budget
    assert f"{n} collocation points" in p.message
    ranks, _ = RankController(budget_ranks=p.ranks).init(widths)
    assert all(r <= c for r, c in zip(ranks, p.ranks, strict=True))


def test_large_budget_gives_full_width_and_says_exact_fits():
    _, plan, widths = stand_in()
    p = plan_budget(parse_bytes("1GiB"), widths, plan.num_components, plan.dim, 4,
                    "range_finder", 1000, 4)
    assert p.points == 1000 and p.ranks == widths
    assert "a sketch is not needed" in p.message


def test_small_budget_reduces_the_points():
    net, plan, widths = stand_in()
    budget, n = parse_bytes("1MB"), 100_000
    p = plan_budget(budget, widths, plan.num_components, plan.dim, 4, "range_finder", n, 8)
    assert p.points < n and min(p.ranks) >= 8
    assert expected_sketch_bytes(net, plan, p.points, 4, p.ranks) == p.held_bytes <= budget
    assert expected_sketch_bytes(net, plan, p.points + 1, 4, 8) > budget
    assert "reduced from the requested 100000 points" in p.message
    capped = plan_budget(budget, widths, plan.num_components, plan.dim, 4, "range_finder", n,
                         8, max_points=50)
    assert capped.points == 50


def test_impossible_budget_names_the_budget_and_the_minimum():
    net, plan, widths = stand_in()
    smallest = expected_sketch_bytes(net, plan, 1, 4, 4)
    with pytest.raises(ValueError, match=rf"\(100 bytes\) is too small.*\({smallest} bytes\)"):
        plan_budget(100, widths, plan.num_components, plan.dim, 4, "range_finder", 1000, 4)
    with pytest.raises(ValueError, match="unknown sketch method"):
        plan_budget(10**9, widths, plan.num_components, plan.dim, 4, "svd", 1000, 4)


def test_exact_points_within():
    net, plan, widths = stand_in()
    budget = parse_bytes("3MiB")
    n = exact_points_within(budget, widths, plan.num_components, plan.dim, 4)
    assert expected_exact_bytes(net, plan, n, 4) <= budget < expected_exact_bytes(net, plan,
                                                                                   n + 1, 4)
    assert exact_points_within(10, widths, plan.num_components, plan.dim, 4) == 0
