"""The classification task: an image data set, an MLP or small CNN, cross-entropy, minibatches.

Implements the Task protocol (:mod:`pinnsketch.tasks.base`) so that the generic loop
(:func:`pinnsketch.train.train`) trains classifiers exactly as it trains PINNs: ``sample(i)``
is the i-th minibatch of a seeded epoch-wise shuffle (``resample_every = 1``:
a fresh batch every step), ``backward`` accumulates the cross-entropy gradient, and
``evaluate`` reports test accuracy and loss.

Storage: ``exact`` trains the plain network (standard autograd layers); ``sketch`` replaces
its linear layers by :class:`~pinnsketch.sketch.linear.SketchedLinear` (rank k, fused
bit-packed ReLU), the output layer kept exact unless ``sketch_last``. With ``rank="auto"`` a
:class:`~pinnsketch.control.RankController` sets the ranks of the sketched layers from the
trend of the training loss and each layer's measured sketch error (the same controller and
driver as the PINNs' ``--sketch-rank auto``; :mod:`pinnsketch.tasks.linear_ranks`).

Held bytes (DESIGN.md section 4) are counted with :class:`~pinnsketch.memory.HeldBytes`
around the forward pass. The batch is kept as uint8 images and normalised inside
``backward``, so the float input of the first layer is counted like any other activation
(it is alive only because backward needs it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinnsketch.checks import check_int, check_seed, is_real
from pinnsketch.control import RankController
from pinnsketch.data.datasets import DatasetSpec, normalize
from pinnsketch.memory import HeldBytes
from pinnsketch.sketch.linear import LINEAR_SKETCH_METHODS, SKETCH_DTYPES, sketchify
from pinnsketch.tasks.linear_ranks import SketchedLayers
from pinnsketch.tasks.rank_driver import RankDriver

__all__ = ["ClassifierConfig", "LinearStorage", "MinibatchConfig", "ImageBatch",
           "ClassificationTask", "CLASSIFIER_MODELS", "CLASSIFY_STORAGE", "build_classifier"]

CLASSIFIER_MODELS = ("mlp", "cnn")
CLASSIFY_STORAGE = ("exact", "sketch")
_EVAL_CHUNK = 2000
@dataclass(frozen=True)
class ClassifierConfig:
    """The network: ``mlp`` (flatten, hidden ReLU layers, 10 outputs) or ``cnn``.

    ``hidden`` are the MLP's hidden widths (default 512, 512: 784-512-512-10 on MNIST,
    3072-512-512-10 on CIFAR-10) or the CNN's fully connected hidden widths (default 256).
    The CNN is three 3x3 conv (32, 64, 64 channels) + ReLU + 2x2 max-pool blocks, then the
    fully connected layers (the ones that are sketched).
    """

    model: str = "mlp"
    hidden: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.model not in CLASSIFIER_MODELS:
            raise ValueError(f"unknown model {self.model!r}; valid models: "
                             f"{', '.join(CLASSIFIER_MODELS)}")
        if self.hidden is not None:
            hidden = tuple(self.hidden)
            object.__setattr__(self, "hidden", hidden)
            for w in hidden:
                check_int("model.hidden", w, low=1)

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        if self.hidden is not None:
            return self.hidden
        return (512, 512) if self.model == "mlp" else (256,)


@dataclass(frozen=True)
class LinearStorage:
    """What the linear layers keep for backward.

    Args:
        policy: ``"exact"`` (plain layers) or ``"sketch"``.
        rank: sketch rank k >= 1, or ``"auto"`` (a rank controller chooses per layer)
            (``sketch`` only; required there). k >= min(batch, width) keeps that layer's
            input exactly.
        method: ``"range_finder"`` (default), ``"truncated_svd"``, ``"three_sketch"`` or
            ``"ema"`` (the paper's EMA three-sketch across steps).
        sketch_last: also sketch the output layer (default: keep it exact).
        seed: base seed of the sketch test matrices (fresh per step, deterministic).
        sketch_dtype: None (the model's float type) or ``"bfloat16"`` / ``"float16"``: the
            float type the sketch factors are stored in (half the bytes).
        beta: EMA weight of the past, 0 <= beta < 1 (``method="ema"`` only).

    >>> LinearStorage("sketch", rank=16).method
    'range_finder'
    >>> LinearStorage("sketch")
    Traceback (most recent call last):
    ...
    ValueError: storage 'sketch' needs a rank (e.g. rank=16, --sketch-rank 16)
    """

    policy: str = "exact"
    rank: int | str | None = None
    method: str = "range_finder"
    sketch_last: bool = False
    seed: int = 0
    sketch_dtype: str | None = None
    beta: float = 0.9

    def __post_init__(self) -> None:
        if self.policy not in CLASSIFY_STORAGE:
            raise ValueError(f"unknown storage {self.policy!r}; valid: {', '.join(CLASSIFY_STORAGE)}")
        if self.method not in LINEAR_SKETCH_METHODS:
            raise ValueError(f"unknown sketch method {self.method!r}; valid methods: "
                             f"{', '.join(LINEAR_SKETCH_METHODS)}")
        if self.policy == "sketch":
            if self.rank is None:
                raise ValueError("storage 'sketch' needs a rank (e.g. rank=16, --sketch-rank 16)")
            if self.rank != "auto":
                check_int("storage.rank", self.rank, low=1)
        elif self.rank is not None:
            raise ValueError(f"rank={self.rank!r} needs storage 'sketch' (storage 'exact' keeps "
                             "every activation); drop the rank or use policy='sketch'")
        if self.sketch_dtype is not None and self.sketch_dtype not in SKETCH_DTYPES:
            raise ValueError(f"unknown sketch dtype {self.sketch_dtype!r}; valid: "
                             f"{', '.join(SKETCH_DTYPES)}")
        if self.policy == "exact" and self.sketch_dtype is not None:
            raise ValueError("sketch_dtype needs storage 'sketch'")
        if not is_real(self.beta) or not 0.0 <= self.beta < 1.0:
            raise ValueError(f"storage.beta={self.beta!r} must satisfy 0 <= beta < 1 (the EMA "
                             "weight of the past); e.g. 0.9")
        if not isinstance(self.sketch_last, bool):
            raise ValueError(f"sketch_last must be True or False, got {self.sketch_last!r}")
        check_seed("storage.seed", self.seed)


@dataclass(frozen=True)
class MinibatchConfig:
    """Epochs and batch size. Each epoch is a fresh seeded shuffle; the last partial batch
    of an epoch is dropped (every step sees ``batch_size`` examples)."""

    epochs: int = 5
    batch_size: int = 128

    def __post_init__(self) -> None:
        check_int("batches.epochs", self.epochs, low=1)
        check_int("batches.batch_size", self.batch_size, low=1)


@dataclass(frozen=True)
class ImageBatch:
    """A minibatch: uint8 images (B, C, H, W) and int64 labels (B,)."""

    images: Tensor
    labels: Tensor

    @property
    def num_points(self) -> int:
        return int(self.labels.shape[0])


def _mlp(spec: DatasetSpec, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = spec.input_size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


def _cnn(spec: DatasetSpec, hidden: tuple[int, ...]) -> nn.Sequential:
    c, h, w = spec.image_shape
    layers: list[nn.Module] = []
    for out in (32, 64, 64):
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    layers.append(nn.Flatten())
    width = c * h * w
    for hid in hidden:
        layers += [nn.Linear(width, hid), nn.ReLU()]
        width = hid
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


def build_classifier(spec: DatasetSpec, config: ClassifierConfig, seed: int,
                     dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The plain network for ``spec``, initialised from ``seed`` (He-uniform weights for
    layers followed by ReLU, PyTorch's default bound for the output layer, zero biases)."""
    with torch.device("meta"):  # shapes only; weights drawn below from a seeded generator
        net = (_mlp if config.model == "mlp" else _cnn)(spec, config.hidden_widths)
    net = net.to_empty(device="cpu").to(dtype)
    gen = torch.Generator().manual_seed(seed)
    params = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for i, m in enumerate(params):
            if i < len(params) - 1:
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu", generator=gen)
            else:
                bound = 1.0 / m.weight[0].numel() ** 0.5
                nn.init.uniform_(m.weight, -bound, bound, generator=gen)
            nn.init.zeros_(m.bias)
    return net


class ClassificationTask:
    """Trains an image classifier with exact or sketched linear-layer storage.

    Args:
        spec: the data set (:data:`pinnsketch.data.DATASETS`).
        train, test: (uint8 images (N, C, H, W), int64 labels (N,)) pairs.
        model, storage, batches: configurations.
        seed: seeds the initialisation and the shuffles.
        device: where the model and batches live.
        controller: the rank policy for ``storage.rank == "auto"`` (default
            ``RankController()``); refused otherwise.
        control_every: measure the sketch errors every this many steps (rank control).

    Raises:
        ValueError: images of another shape than the spec's, a batch size larger than the
            training set, or a controller without ``rank="auto"``.
    """

    def __init__(self, spec: DatasetSpec, train: tuple[Tensor, Tensor],
                 test: tuple[Tensor, Tensor], model: ClassifierConfig | None = None,
                 storage: LinearStorage | None = None, batches: MinibatchConfig | None = None,
                 seed: int = 0, device: str = "cpu", controller: RankController | None = None,
                 control_every: int = 50):
        self.spec = spec
        self.model_config = model or ClassifierConfig()
        self.storage = storage or LinearStorage()
        self.batches = batches or MinibatchConfig()
        self.seed = seed
        self.device = torch.device(device)
        for name, (x, y) in (("train", train), ("test", test)):
            if x.dtype != torch.uint8 or tuple(x.shape[1:]) != spec.image_shape:
                raise ValueError(f"{name} images must be uint8 (N, {', '.join(map(str, spec.image_shape))}), "
                                 f"got {x.dtype} {tuple(x.shape)}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"{name}: {x.shape[0]} images but labels of shape {tuple(y.shape)}")
        self.train_images, self.train_labels = train[0], train[1].long()
        self.test_images, self.test_labels = test[0], test[1].long()
        n = self.train_labels.shape[0]
        if self.batches.batch_size > n:
            raise ValueError(f"batch size {self.batches.batch_size} exceeds the {n} training "
                             "examples; lower --batch-size")
        self.batches_per_epoch = n // self.batches.batch_size
        net = build_classifier(spec, self.model_config, seed)
        st = self.storage
        auto = st.policy == "sketch" and st.rank == "auto"
        if controller is not None and not auto:
            raise ValueError("a rank controller needs LinearStorage(policy='sketch', "
                             "rank='auto')")
        if st.policy == "sketch":
            controller = controller or (RankController() if auto else None)
            first = controller.initial_rank if auto else st.rank
            net = sketchify(net, first, st.method, skip_last=not st.sketch_last, seed=st.seed,
                            sketch_dtype=st.sketch_dtype, beta=st.beta)
        self.model = net.to(self.device)
        self.rank_driver: RankDriver | None = None
        if auto:
            layers = SketchedLayers(self.model)
            self.rank_driver = RankDriver(controller, layers,
                                          layers.widths(self.batches.batch_size), control_every)
        self._perm_epoch: int | None = None
        self._perm: Tensor | None = None
        self.held_bytes: int | None = None
        self.held_bytes_per_point: float | None = None

    # --- hooks of the training loop (see pinnsketch.tasks.base.Task) ---

    resample_every = 1
    """A new minibatch every step."""

    adapt_every = 0
    """No adaptive sampling of the minibatches."""

    refine_every = 0
    """No adaptive refinement (classification trains with Adam only)."""

    def adaptive_density(self, index: int):
        raise NotImplementedError("classification draws its minibatches by a seeded shuffle, "
                                  "not adaptively")

    def refine(self, index: int, saved=None):
        raise NotImplementedError("classification has no second-order phase to refine")

    def residual_jacobian(self, batch: ImageBatch):
        raise ValueError("classification trains with Adam only: a cross-entropy loss has no "
                         "residual Jacobian for a Gauss-Newton phase")

    def enter_phase(self, phase: str) -> list[str]:
        """Classification trains with Adam only: nothing changes between phases."""
        return []

    def checkpoint_state(self) -> dict[str, object]:
        """The rank state (plain data) under ``rank="auto"``, else nothing."""
        return {"rank": self.rank_driver.state_dict() if self.rank_driver is not None else None}

    def restore_checkpoint_state(self, saved: dict[str, object]) -> None:
        """Undo :meth:`checkpoint_state`."""
        if self.rank_driver is not None and saved.get("rank") is not None:
            self.rank_driver.load_state_dict(saved["rank"])

    def before_step(self, step: int) -> None:
        if self.rank_driver is not None:
            self.rank_driver.before_step(step)

    def after_step(self, step: int, terms: dict[str, float]) -> tuple[dict[str, object], list[str]]:
        """Extra history columns (sketch ranks) and log lines (rank changes) after a step;
        the controller follows the training loss."""
        if self.rank_driver is None:
            return {}, []
        messages = self.rank_driver.after_step(step, terms["loss"])
        return self.rank_driver.columns(), messages

    @property
    def sketch_ranks(self) -> tuple[int, ...] | None:
        """The current ranks of the sketched layers (module order), or None (exact)."""
        if self.storage.policy != "sketch":
            return None
        return SketchedLayers(self.model).ranks

    @property
    def rank_log(self) -> tuple[str, ...]:
        """Every rank-controller decision so far (empty without ``rank="auto"``)."""
        return tuple(self.rank_driver.state.log) if self.rank_driver is not None else ()

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def total_steps(self) -> int:
        return self.batches.epochs * self.batches_per_epoch

    def set_dtype(self, dtype: torch.dtype) -> None:
        self.model.to(dtype)

    def _permutation(self, epoch: int) -> Tensor:
        if self._perm_epoch != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.train_labels.shape[0], generator=gen)
            self._perm_epoch = epoch
        return self._perm

    def sample(self, index: int, density: None = None) -> ImageBatch:
        """The index-th minibatch: batch ``index % batches_per_epoch`` of epoch
        ``index // batches_per_epoch``'s seeded shuffle. ``index = -1`` (the loop's
        L-BFGS phase) is the first batch of epoch 0. (``density``: always None here,
        ``adapt_every`` being 0.)"""
        index = max(index, 0)
        epoch, pos = divmod(index, self.batches_per_epoch)
        b = self.batches.batch_size
        idx = self._permutation(epoch)[pos * b:(pos + 1) * b]
        return ImageBatch(self.train_images[idx].to(self.device),
                          self.train_labels[idx].to(self.device))

    def _inputs(self, images: Tensor) -> Tensor:
        return normalize(self.spec, images, self.dtype)

    def backward(self, batch: ImageBatch) -> dict[str, float]:
        """Accumulate the gradient of the mean cross-entropy into .grad; return
        {"loss", "train_accuracy"} on the batch. Held bytes are counted over the forward."""
        self.model.train()
        with HeldBytes(exclude=self.model.parameters()) as held:
            logits = self.model(self._inputs(batch.images))
            loss = F.cross_entropy(logits, batch.labels)
        loss.backward()
        self.held_bytes = held.bytes
        self.held_bytes_per_point = held.bytes / batch.num_points
        acc = (logits.detach().argmax(1) == batch.labels).float().mean()
        return {"loss": float(loss.detach()), "train_accuracy": float(acc)}

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Logits (N, classes) of uint8 images, in chunks, on the CPU."""
        self.model.eval()
        out = [self.model(self._inputs(x.to(self.device))).float().cpu()
               for x in images.split(_EVAL_CHUNK)]
        return torch.cat(out) if out else torch.zeros(0, self.spec.num_classes)

    def evaluate(self) -> dict[str, float]:
        """Test accuracy and mean cross-entropy on the whole test split."""
        logits = self.predict(self.test_images)
        labels = self.test_labels
        loss = F.cross_entropy(logits, labels) if len(labels) else torch.tensor(float("nan"))
        acc = (logits.argmax(1) == labels).float().mean() if len(labels) else torch.tensor(float("nan"))
        return {"test_accuracy": float(acc), "test_loss": float(loss)}

    def confusion_matrix(self) -> Tensor:
        """(classes, classes) counts: row = true class, column = predicted class."""
        pred = self.predict(self.test_images).argmax(1)
        k = self.spec.num_classes
        return torch.bincount(self.test_labels * k + pred, minlength=k * k).reshape(k, k)
