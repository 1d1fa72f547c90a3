"""One training run of the study, and the compiled machinery that makes thousands cheap.

For tiny models the cost of a run is dominated by tracing and XLA compilation, not by the
arithmetic. So the runner compiles once per *group* (`RunConfig.group`: family, data,
optimizer, clipping, multipliers, epochs, batch size) and reuses the compiled functions for
every rate, seed and schedule of the group:

* the optimizer is built with a base rate of 1.0 and wrapped in a keras-lr wrapper
  (`LRWrapper`, or `GradientGuard` / `LayerwiseLR`, which are wrappers too); the run's rate
  enters only through the wrapper's shared ``lr_scale`` variable;
* the schedule is evaluated on the host for every step (``keras_lr.schedules.values`` of the
  real schedule object, peak 1.0) and multiplied by the rate: the compiled epoch loop assigns
  ``lr_scale = rate_table[step]`` before each step. Nothing is retraced between runs;
* between runs the model's weights are set to the seeded initial weights of
  ``keras_lr.models.build(..., seed=seed)`` and every optimizer variable (slots,
  iterations, the guard's counters) is put back to its freshly built value, so a run gives
  the same numbers as a freshly built model (tested).

One epoch is one compiled call of the backend's module (`epochs_module`, one per backend):
on TensorFlow a ``tf.while_loop`` over the steps, each a ``GradientTape`` forward/backward
pass and ``optimizer.apply`` (XLA-compiled for MLPs and RNNs; CNNs run as a plain TensorFlow
graph, which on CPU compiles in a tenth of the time and runs about as fast as XLA for these
sizes); on JAX Keras's stateless step in one jitted ``lax.scan`` (a CNN's steps jitted one by
one); on torch one eager step per batch. The
batch order is a seeded permutation per epoch (``numpy.random.default_rng([seed, 1])``); the
incomplete last batch is dropped so every step has one shape. The validation set is scored
in one compiled call after each epoch.

`run_group` receives configs of one group (differing in rate, seed and schedule only) and
yields one record each; it hands batches of one seed to the parallel engine
(`keras_lr.study.parallel`, built on ``keras_lr.sweep``) when ``Runner.parallel`` allows it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator

import numpy as np

from keras_lr._validation import check_choice
from keras_lr.study.grid import RangeTestConfig, RunConfig
from keras_lr.study.metrics import divergence_epoch, epochs_to_target, oscillation

__all__ = [
    "ADDING_KWARGS",
    "MODEL_KWARGS",
    "TARGET_SCORE",
    "Runner",
    "make_optimizer",
    "make_schedule",
    "run_group",
]

MODEL_KWARGS = {
    "default": {"mlp": {"hidden": (64,)}, "cnn": {"filters": (16, 32), "dense": 64},
                "lstm": {"units": 32}, "gru": {"units": 32}},
    "quick": {"mlp": {"hidden": (32,)}, "cnn": {"filters": (8, 16), "dense": 32},
              "lstm": {"units": 16}, "gru": {"units": 16}},
    # 28x28 and 32x32 images: a third conv block brings them to 4x4 before the dense layer
    "standard": {"mlp": {"hidden": (128,)}, "cnn": {"filters": (16, 32, 64), "dense": 64},
                 "lstm": {"units": 32}, "gru": {"units": 32}},
}
"""`keras_lr.models.build` arguments per model size and family."""
ADDING_KWARGS = {"n": 1000, "length": 20}
"""The adding problem used by the study: 1,000 sequences of 20 steps."""
TARGET_SCORE = 0.9
"""Target of `epochs_to_target`: 0.9 accuracy (classification) or 0.9 skill (regression)."""


def epochs_module():
    """The module of the backend's compiled epoch (``Epochs``, and ``Replicas`` on JAX)."""
    import importlib

    import keras

    return importlib.import_module(f"keras_lr.study._{keras.backend.backend()}_epochs")


def make_schedule(name: str, total_steps: int, steps_per_epoch: int, peak: float = 1.0, *,
                  warmup_steps: int | None = None, drops: int = 2, gamma: float = 0.1,
                  final_fraction: float = 0.01, min_fraction: float = 0.0,
                  pct_start: float = 0.3, div_factor: float = 25.0, cycles: int = 2,
                  base_fraction: float = 0.1, mode: str = "triangular"):
    """The keras-lr schedule of a study schedule name, with peak rate `peak` (1.0 in the study,
    where the run's rate scales it).

    With ``T = total_steps``, ``W = warmup_steps`` (default ``steps_per_epoch``, at most
    ``T // 2``) and the keyword options at their defaults (the study's schedules; the
    KerasTuner search space `keras_lr.tuner.hp_schedule` varies them):

    * ``constant``: ``Constant(peak)``;
    * ``step``: ``StepDecay(peak, step_size=ceil(T / (drops + 1)), gamma=gamma)`` (two drops
      by 0.1);
    * ``exponential``: ``ExponentialDecay(peak, gamma=final_fraction ** (1 / T))`` (to 1% at
      the end);
    * ``cosine``: ``CosineDecay(peak, T, min_learning_rate=min_fraction * peak)``;
    * ``warmup``: ``Warmup(Constant(peak), W)`` (linear warmup over the first epoch);
    * ``warmup_cosine``: ``Warmup(CosineDecay(peak, T - W), W)``;
    * ``onecycle``: ``OneCycle(peak, T, pct_start=pct_start, div_factor=div_factor)``
      (PyTorch's defaults);
    * ``cyclical``: ``CyclicalLR(base_fraction * peak, peak, step_size_up=T // (2 * cycles),
      mode=mode)`` (`cycles` triangles over the run).
    """
    from keras_lr import schedules

    if warmup_steps is None:
        warmup_steps = min(steps_per_epoch, total_steps // 2)
    warm = max(1, warmup_steps)
    if name == "constant":
        return schedules.Constant(peak)
    if name == "step":
        return schedules.StepDecay(peak, step_size=max(1, math.ceil(total_steps / (drops + 1))),
                                   gamma=gamma)
    if name == "exponential":
        return schedules.ExponentialDecay(peak, gamma=final_fraction ** (1.0 / total_steps))
    if name == "cosine":
        return schedules.CosineDecay(peak, total_steps, min_learning_rate=min_fraction * peak)
    if name == "warmup":
        return schedules.Warmup(schedules.Constant(peak), warm)
    if name == "warmup_cosine":
        return schedules.Warmup(schedules.CosineDecay(peak, max(1, total_steps - warm)), warm)
    if name == "onecycle":
        return schedules.OneCycle(peak, total_steps, pct_start=pct_start, div_factor=div_factor)
    if name == "cyclical":
        return schedules.CyclicalLR(base_fraction * peak, peak,
                                    step_size_up=max(1, total_steps // (2 * cycles)), mode=mode)
    raise ValueError(f"unknown schedule {name!r}")


def make_optimizer(name: str, learning_rate=1.0, clip: str = "none",
                   multipliers: str = "none", model=None, mup_shapes=None):
    """The study's optimizer: a keras-lr wrapper around SGD (momentum 0.9), Adam, or a
    learning-rate-free optimizer at its defaults but the rate.

    The learning-rate-free ones (`keras_lr.study.grid.LR_FREE_OPTIMIZERS`):
    ``prodigy`` is `keras_lr.optimizers.Prodigy`, ``dadapt_adam`` `DAdaptAdam` (their rate
    is the factor on the estimate d, 1 by default) and ``schedule_free_adamw``
    `ScheduleFreeAdamW` (default rate 0.0025), every other argument at its default. The
    wrapper's scale multiplies the rate they receive, so a rate fed through ``lr_scale``
    gives the optimizer built with that rate (Prodigy's d and schedule-free's ``lr_max`` and
    averaging weights see it).

    Args:
        name: one of `keras_lr.study.grid.ALL_OPTIMIZERS`.
        learning_rate: float or schedule of the inner optimizer.
        clip: ``"none"``, ``"global_norm"`` (``GlobalNorm(1.0)``) or ``"agc"``
            (``AdaptiveClip(0.05)``), applied by a `GradientGuard` (non-finite steps are not
            skipped: the study measures divergence).
        multipliers: ``"none"``, ``"conv_x10"``, ``"dense_x10"`` or ``"gates_x4"`` (the i, f,
            o gates of an LSTM, z and r of a GRU), applied by `LayerwiseLR`; needs `model`.
        model: the built model (for the multiplier rules).
        mup_shapes: `keras_lr.mup.infshapes` of a μP model: its per-variable rates
            (`keras_lr.mup.mu_optimizer`, Adam's or SGD's rule) instead of `multipliers`.
    """
    import keras

    from keras_lr import optimizers as lr_optimizers
    from keras_lr.guards import AdaptiveClip, GlobalNorm, GradientGuard
    from keras_lr.optimizers import LayerwiseLR, LRWrapper
    from keras_lr.study.grid import ALL_OPTIMIZERS

    check_choice("optimizer", name, ALL_OPTIMIZERS)
    if name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate)
    elif name == "prodigy":
        optimizer = lr_optimizers.Prodigy(learning_rate)
    elif name == "dadapt_adam":
        optimizer = lr_optimizers.DAdaptAdam(learning_rate)
    else:
        optimizer = lr_optimizers.ScheduleFreeAdamW(learning_rate)
    wrapped = optimizer
    if mup_shapes is not None:
        from keras_lr import mup

        if multipliers != "none":
            raise ValueError("Argument `multipliers` must be 'none' with mup_shapes (muP sets "
                             f"every rate). Received: multipliers={multipliers!r}")
        wrapped = mup.mu_optimizer(wrapped, mup_shapes)
    elif multipliers != "none":
        wrapped = LayerwiseLR(wrapped, multiplier_rules(multipliers, model))
    if clip != "none":
        rule = {"global_norm": GlobalNorm(1.0), "agc": AdaptiveClip(0.05)}[clip]
        wrapped = GradientGuard(wrapped, clip=rule, skip_nonfinite=False)
    if wrapped is optimizer:
        wrapped = LRWrapper(optimizer)
    return wrapped


def multiplier_rules(multipliers: str, model) -> list:
    """`LayerwiseLR` rules of a study multiplier name (see `make_optimizer`)."""
    from keras_lr.optimizers import gate_multipliers

    if multipliers == "conv_x10":
        return [(r"/conv_\d+/", 10.0)]
    if multipliers == "dense_x10":
        return [(r"/(dense_\d+|output)/", 10.0)]
    if multipliers == "gates_x4":
        layer = model.layers[0]
        gates = {"LSTM": {"i": 4.0, "f": 4.0, "o": 4.0}, "GRU": {"z": 4.0, "r": 4.0}}
        return gate_multipliers(layer, **gates[type(layer).__name__])
    raise ValueError(f"unknown multipliers {multipliers!r}")


class _Data:
    """A loaded data set with its loss, score and baseline."""

    def __init__(self, family: str, name: str, limit):
        from keras_lr import data

        kwargs = dict(ADDING_KWARGS) if name == "adding" else {}
        self.ds = data.load(name, view=data.view_for(family), seed=0, limit=limit, **kwargs)
        self.regression = self.ds.num_classes is None
        self.baseline_score = 0.0 if self.regression else 1.0 / self.ds.num_classes
        self.baseline_mse = data.BASELINE_MSE
        self._tensors = None

    def tensors(self):
        """``(x_train, y_train, x_val, y_val)`` as tensors of the backend, made once and shared
        by every trainer of this data set (CIFAR-10's training images are 590 MB as float32)."""
        if self._tensors is None:
            import keras

            ds = self.ds
            self._tensors = tuple(keras.ops.convert_to_tensor(a)
                                  for a in (ds.x_train, ds.y_train, ds.x_val, ds.y_val))
        return self._tensors


class Runner:
    """Runs configs, caching data, initial weights and one compiled trainer per group."""

    def __init__(self, parallel: bool | str = "auto"):
        self.parallel = check_choice("parallel", parallel, (True, False, "auto"))
        # the engine may train several groups at once (`keras_lr.study.engine.group_threads`)
        self._lock = threading.RLock()
        self._data: dict = {}
        self._weights: dict = {}
        self._trainers: dict = {}
        self._finders: dict = {}

    def data(self, family: str, name: str, limit) -> _Data:
        key = (family, name, limit)
        with self._lock:
            if key not in self._data:
                self._data[key] = _Data(family, name, limit)
            return self._data[key]

    def initial_weights(self, config, data: _Data, seed):
        """The seeded initial weights of `config`'s model (its family, size and structure;
        under μP already rescaled), built once per seed."""
        from keras_lr.study.grid import structure_of

        key = (config.family, config.size, data.ds.name, data.ds.input_shape, seed,
               tuple(structure_of(vars(config)).values()))
        with self._lock:
            if key not in self._weights:
                self._weights[key] = [np.array(w) for w in _build(config, data, seed)[0]
                                      .get_weights()]
            return self._weights[key]

    def prepare(self, configs) -> None:
        """Build the trainer of the group of ``configs[0]`` ahead of its runs, if its first
        batch will run one by one; on JAX the group's functions then compile in the background
        while the runs before it train. An error in building it is left to the group's first
        run, where it is raised."""
        from keras_lr.study.parallel import use_parallel

        first = configs[0]
        if first.group in self._trainers:
            return
        batch = [c for c in configs if c.seed == first.seed]
        try:
            if not use_parallel(batch, self.parallel):
                self._trainers[first.group] = _Trainer(self, first)
        except Exception:  # noqa: BLE001 - raised again by the group's own first run
            self._trainers.pop(first.group, None)

    def run(self, config: RunConfig) -> dict:
        """Train one run and return its record."""
        trainer = self._trainers.get(config.group)
        if trainer is None:
            trainer = _Trainer(self, config)
            self._trainers[config.group] = trainer
        return trainer.run(config)

    def run_range_test(self, config: RangeTestConfig) -> dict:
        """Run `keras_lr.find_lr` for one family, optimizer and seed; return its record."""
        return _range_test(self, config)


def run_group(configs: Iterable[RunConfig], runner: Runner | None = None) -> Iterator[dict]:
    """Run configs that share a group (same model, data and optimizer; they differ in rate,
    seed and schedule only), yielding one record per config as it finishes.

    The configs of each seed form a batch; a batch that `keras_lr.study.parallel.use_parallel`
    accepts under ``runner.parallel`` trains at once in one replicated model (its records come
    together at its end), any other batch run by run. Both engines give the same records, but
    for their ``"engine"`` field (``"parallel"`` or ``"sequential"``).
    """
    from keras_lr.study.parallel import run_parallel, use_parallel

    runner = runner or Runner()
    batches: dict = {}
    for config in configs:
        batches.setdefault((config.group, config.seed), []).append(config)
    for batch in batches.values():
        if use_parallel(batch, runner.parallel):
            for record in run_parallel(runner, batch):
                yield {**record, "engine": "parallel"}
        else:
            for config in batch:
                yield {**runner.run(config), "engine": "sequential"}


def _build(config, data: _Data, seed):
    """``(model, mup_shapes)`` of a run or range-test config (`keras_lr.study.structure`)."""
    from keras_lr.study import structure

    if not isinstance(config, RunConfig):  # a range test: the size's own model
        config = RunConfig(config.family, config.data, config.optimizer, 1.0, 0,
                           size=config.size)
    return structure.build(config, data.ds.input_shape, data.ds.num_classes, seed)


class _Trainer:
    """The compiled model, optimizer and functions of one group.

    With ``replicas=True`` (JAX) the epoch is the backend's ``Replicas``: the same step mapped
    over stacked replica states (`keras_lr.study.parallel`), the variables then only the
    template every replica's state is read from.
    """

    def __init__(self, runner: Runner, config: RunConfig, replicas: bool = False):
        import keras

        from keras_lr.optimizers import base_optimizer, find_lr_scale

        self.runner = runner
        self.data = runner.data(config.family, config.data, config.limit)
        ds = self.data.ds
        model, shapes = _build(config, self.data, 0)
        self.model = model
        self.optimizer = opt = make_optimizer(config.optimizer, 1.0, config.clip,
                                              config.multipliers, model, mup_shapes=shapes)
        with keras.name_scope(opt.name, caller=opt):
            opt.build(model.trainable_variables)
        self.scale = find_lr_scale(opt)
        inner = base_optimizer(opt)
        # schedule-free: the model holds y while training; every evaluation swaps x in
        self.schedule_free = hasattr(inner, "z_variables")
        # Prodigy and DAdaptAdam: their estimate d, recorded after every step
        self.estimate = getattr(inner, "lr_estimate", None)
        self.opt_variables = list(opt.variables)
        self.opt_initial = [np.array(keras.ops.convert_to_numpy(v)) for v in self.opt_variables]
        self.batch_size = config.batch_size
        self.steps = len(ds.x_train) // config.batch_size
        if self.steps < 1:
            raise ValueError(
                f"{len(ds.x_train)} training samples are fewer than one batch of "
                f"{config.batch_size}"
            )
        regression = self.data.regression
        baseline_mse = float(self.data.baseline_mse)

        def loss_and_score(y, pred):
            if regression:
                mse = keras.ops.mean(keras.ops.square(pred[:, 0] - keras.ops.cast(y, pred.dtype)))
                return mse, 1.0 - mse / baseline_mse
            loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, pred))
            hits = keras.ops.equal(keras.ops.cast(keras.ops.argmax(pred, -1), "int32"),
                                   keras.ops.cast(y, "int32"))
            return loss, keras.ops.mean(keras.ops.cast(hits, "float32"))

        module = epochs_module()
        epochs = module.Replicas if replicas else module.Epochs
        self.epochs = epochs(model, opt, self.scale, self.estimate, self.data.tensors(),
                             self.steps, self.batch_size, loss_and_score, config.family)
        self.n_train = len(ds.x_train)

    def evaluate(self):
        """Validation loss and score of the model; at x for a schedule-free optimizer (the
        variables hold y again afterwards), as `keras_lr.callbacks.ScheduleFreeEval` does for
        `fit`'s validation."""
        if not self.schedule_free:
            return self.epochs.evaluate()
        from keras_lr.callbacks import schedule_free_eval, schedule_free_train

        schedule_free_eval(self.optimizer)
        try:
            return self.epochs.evaluate()
        finally:
            schedule_free_train(self.optimizer)

    def reset(self, config: RunConfig):
        weights = self.runner.initial_weights(config, self.data, config.seed)
        self.model.set_weights(weights)
        for variable, value in zip(self.opt_variables, self.opt_initial):
            variable.assign(value)

    def rate_table(self, config: RunConfig) -> np.ndarray:
        from keras_lr.schedules import values

        total = config.epochs * self.steps
        shape = values(make_schedule(config.schedule, total, self.steps), total)
        return (np.asarray(shape, np.float64) * config.lr).astype(np.float32)

    def run(self, config: RunConfig) -> dict:
        import keras

        start = time.perf_counter()
        keras.utils.set_random_seed(config.seed)
        self.reset(config)
        table = self.rate_table(config)
        initial_loss, _ = self.evaluate()
        rng = np.random.default_rng([config.seed, 1])
        used = self.steps * self.batch_size
        train_losses, val_losses, scores, step_losses, estimates = [], [], [], [], []
        diverged_at = None
        for e in range(config.epochs):
            perm = rng.permutation(self.n_train)[:used].reshape(self.steps, self.batch_size)
            rates = table[e * self.steps:(e + 1) * self.steps]
            losses, d = self.epochs.run(perm, rates)
            if d is not None:
                estimates += [float(f"{v:.6g}") for v in d]
            val_loss, score = self.evaluate()
            step_losses.append(losses)
            train_losses.append(float(np.mean(losses)))
            val_losses.append(val_loss)
            scores.append(score if math.isfinite(score) else float("nan"))
            diverged_at = divergence_epoch(initial_loss, train_losses, val_losses)
            if diverged_at is not None:
                break
        record = make_record(self.data, config, initial_loss, train_losses, val_losses,
                             scores, step_losses, diverged_at, time.perf_counter() - start)
        if self.estimate is not None:
            record["d"] = estimates  # the estimate after every step (6 significant digits)
        return record


def make_record(data: _Data, config: RunConfig, initial_loss, train_losses, val_losses, scores,
                step_losses, diverged_at, seconds) -> dict:
    """The record of one finished run (shared by the sequential and parallel engines)."""
    import dataclasses

    base = data.baseline_score
    diverged = diverged_at is not None
    finite = [s for s in scores if math.isfinite(s)]
    final_score = base if diverged or not finite else scores[-1]
    best_score = max(finite) if finite else base
    if diverged:
        best_score = max([base] + [s for s in finite[:diverged_at]])
    # a diverged run's best loss comes from the epochs before the divergence, as its best score
    kept = val_losses[:diverged_at] if diverged else val_losses
    finite_losses = [v for v in kept if math.isfinite(v)]
    half = max(1, math.ceil(config.epochs / 2))
    tail = np.concatenate(step_losses[-half:]) if step_losses else np.zeros(0)
    return {
        "kind": "run",
        "key": config.key,
        "variant": config.variant,
        **dataclasses.asdict(config),
        "regression": data.regression,
        "baseline_score": base,
        "initial_loss": initial_loss,
        "final_score": final_score,
        "best_score": best_score,
        "final_val_acc": None if data.regression else final_score,
        "best_val_acc": None if data.regression else best_score,
        "final_loss": val_losses[-1] if not diverged else float("nan"),
        "best_loss": min(finite_losses) if finite_losses else float("nan"),
        "diverged": diverged,
        "diverged_epoch": None if not diverged else diverged_at + 1,
        "epochs_run": len(val_losses),
        "epochs_to_target": epochs_to_target(scores[: diverged_at], TARGET_SCORE)
        if diverged else epochs_to_target(scores, TARGET_SCORE),
        "oscillation": float("nan") if diverged else oscillation(tail),
        "train_loss": train_losses,
        "val_loss": val_losses,
        "val_score": scores,
        "seconds": seconds,
    }


def _range_test(runner: Runner, config: RangeTestConfig) -> dict:
    import dataclasses

    import keras

    from keras_lr.finder import find_lr

    start = time.perf_counter()
    data = runner.data(config.family, config.data, config.limit)
    # one model per work unit (`keras_lr.study.distributed.units`): units may run at once
    key = (config.family, config.data, config.optimizer, config.size, config.limit,
           config.batch_size)
    model = runner._finders.get(key)
    if model is None:
        model = _build(config, data, 0)[0]
        optimizer = (keras.optimizers.SGD(1e-3, momentum=0.9) if config.optimizer == "sgd"
                     else keras.optimizers.Adam(1e-3))
        loss = "mse" if data.regression else "sparse_categorical_crossentropy"
        # torch.compile costs more than it saves on these models (and fails on the MLP's)
        model.compile(optimizer=optimizer, loss=loss,
                      jit_compile=keras.backend.backend() != "torch")
        runner._finders[key] = model
    keras.utils.set_random_seed(config.seed)
    model.set_weights(runner.initial_weights(config, data, config.seed))
    result = find_lr(model, data.ds.x_train, data.ds.y_train, batch_size=config.batch_size,
                     start_lr=config.start_lr, end_lr=config.end_lr,
                     num_steps=config.num_steps, seed=config.seed)
    try:
        suggestion = float(result.suggestion("valley"))
    except ValueError:
        suggestion = None
    return {
        "kind": "range_test",
        "key": config.key,
        **dataclasses.asdict(config),
        "suggestion": suggestion,
        "stop_reason": result.stop_reason,
        "learning_rates": [float(v) for v in result.learning_rates],
        "smoothed_losses": [float(v) for v in result.smoothed_losses],
        "seconds": time.perf_counter() - start,
    }
