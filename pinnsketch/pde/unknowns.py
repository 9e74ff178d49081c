"""Unknown PDE parameters of inverse problems, trained jointly with the network.

A problem field whose value is an :class:`Unknown` is learnt::

    @dataclass(frozen=True)
    class BurgersInverse(Problem):
        nu: float = Unknown(0.05, positive=True)   # learnt, starting from 0.05
        nu_true: float = 0.01 / math.pi            # generates the observations

        def residual(self, d):
            return d.u_t + d.u * d.u_x - self.nu * d.u_xx   # self.nu: the current tensor

Inside ``residual(d)`` the field reads as the parameter's current value, a 0-dim tensor
through which the loss differentiates; a positive one is parametrised as theta = exp(s) with s
trained (Raissi, Perdikaris & Karniadakis, J. Comput. Phys. 2019, learn log-coefficients the
same way; it keeps theta > 0 and makes steps relative). Everywhere else (``validate``,
``reference``, ``conditions``, ``observations``) the value is not known: ``validate`` sees the
initial guess, and any arithmetic on the :class:`Unknown` itself raises
:class:`UnknownValueError`, which says where an unknown can be read.

``--param nu=0.01`` (a number) fixes the parameter (then it is not trained);
``--param nu=unknown:0.1`` or ``unknown:0.1:positive`` declares it unknown with that guess
(the text form, :meth:`Unknown.parse`, is also how config.json records an unknown).
A problem that knows the truth (its own synthetic observations) reports it from
``Problem.true_values()``, and the run reports the learnt values' relative errors.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pinnsketch.checks import is_real

__all__ = ["Unknown", "UnknownValueError", "UnknownParameters", "unknown_fields", "with_values",
           "with_guesses"]

_PREFIX = "unknown:"


class UnknownValueError(TypeError):
    """An unknown parameter's value was used outside ``residual(d)``."""


def _refuse(*_args, **_kwargs):
    raise UnknownValueError(
        "an unknown parameter has a value only inside residual(d), where it reads as the "
        "current (trained) tensor; reference(), conditions(), observations() and output "
        "transforms must not use it: give the true value a field of its own (e.g. nu_true) "
        "and report it from true_values()")


@dataclass(frozen=True)
class Unknown:
    """A PDE parameter learnt jointly with the network, starting from ``guess``.

    Args:
        guess: the initial value (finite; > 0 when ``positive``).
        positive: learn s = log(theta) instead of theta, so theta stays > 0.

    Raises:
        ValueError: a non-finite guess, or a positive one that is not > 0.

    >>> str(Unknown(0.05, positive=True)), Unknown.parse("unknown:2")
    ('unknown:0.05:positive', Unknown(guess=2.0, positive=False))
    """

    guess: float
    positive: bool = False

    def __post_init__(self) -> None:
        g = self.guess
        if not is_real(g) or not math.isfinite(g):
            raise ValueError(f"Unknown: the initial guess must be a finite number, got {g!r}")
        if not isinstance(self.positive, bool):
            raise ValueError(f"Unknown: positive must be True or False, got {self.positive!r}")
        if self.positive and not g > 0:
            raise ValueError(f"Unknown: a positive unknown needs a guess > 0, got {g!r}")
        object.__setattr__(self, "guess", float(g))

    def __str__(self) -> str:
        return f"{_PREFIX}{self.guess!r}" + (":positive" if self.positive else "")

    @classmethod
    def parse(cls, text: str) -> Unknown | None:
        """``"unknown:GUESS"`` or ``"unknown:GUESS:positive"`` -> an Unknown; None for text
        that does not start with ``unknown:``.

        Raises:
            ValueError: text that starts with ``unknown:`` but is not of that form.
        """
        if not isinstance(text, str) or not text.strip().lower().startswith(_PREFIX):
            return None
        parts = text.strip()[len(_PREFIX):].split(":")
        positive = len(parts) == 2 and parts[1].strip().lower() == "positive"
        try:
            if len(parts) > 2 or (len(parts) == 2 and not positive):
                raise ValueError(text)
            guess = float(parts[0])
        except ValueError:
            raise ValueError(f"{text!r}: an unknown is written unknown:GUESS or "
                             "unknown:GUESS:positive, e.g. unknown:0.05:positive") from None
        return cls(guess, positive)

    def raw(self) -> float:
        """The trained variable's initial value: log(guess) if positive, else the guess."""
        return math.log(self.guess) if self.positive else self.guess

    # Arithmetic on an Unknown outside the residual is a mistake: say so (module doc).
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __neg__ = __abs__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __float__ = __int__ = __array__ = _refuse

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        _refuse()


def unknown_fields(problem: object) -> dict[str, Unknown]:
    """The problem's fields that hold an :class:`Unknown`, by name, in field order."""
    return {f.name: getattr(problem, f.name) for f in dataclasses.fields(problem)
            if isinstance(getattr(problem, f.name), Unknown)}


def with_values(problem, values: dict[str, object]):
    """A shallow copy of the (frozen) problem with the named fields replaced by ``values``
    (no ``__init__`` or validation runs: the copy is a view for one evaluation)."""
    if not values:
        return problem
    view = copy.copy(problem)
    for name, value in values.items():
        object.__setattr__(view, name, value)
    return view


def with_guesses(problem):
    """The problem with each unknown bound to its initial guess as a float64 tensor (what a
    residual sees when its derivatives are recorded, before any network exists)."""
    return with_values(problem, {k: torch.tensor(u.guess, dtype=torch.float64)
                                 for k, u in unknown_fields(problem).items()})


class UnknownParameters(nn.Module):
    """The trained variables of a problem's unknowns: theta, or s = log(theta) if positive.

    A module, so that the network's optimizers, checkpoints, dtype changes, data-parallel
    broadcast and gradient all-reduce treat them like weights (the task attaches it to the
    network as ``unknowns``); its state_dict keys are the parameter names.

    >>> p = UnknownParameters({"nu": Unknown(0.05, positive=True), "k": Unknown(-1.0)},
    ...                       dtype=torch.float64)
    >>> {k: round(v, 12) for k, v in p.floats().items()}
    {'nu': 0.05, 'k': -1.0}
    """

    def __init__(self, unknowns: dict[str, Unknown], dtype: torch.dtype = torch.float32):
        super().__init__()
        self.specs = dict(unknowns)
        self.raw = nn.ParameterDict({name: nn.Parameter(torch.tensor(u.raw(), dtype=dtype))
                                     for name, u in self.specs.items()})

    def values(self) -> dict[str, Tensor]:
        """name -> the current value (0-dim, differentiable)."""
        return {name: (torch.exp(self.raw[name]) if u.positive else self.raw[name])
                for name, u in self.specs.items()}

    def floats(self) -> dict[str, float]:
        """name -> the current value as a float (float64 arithmetic on the stored variable)."""
        out = {}
        for name, u in self.specs.items():
            s = float(self.raw[name].detach().double())
            out[name] = math.exp(s) if u.positive else s
        return out
