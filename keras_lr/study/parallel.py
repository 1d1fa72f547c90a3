"""The study's parallel engine: the runs of one group and seed trained at once, one replica each.

Runs that share a group (`RunConfig.group`) and a seed differ only in their rate and schedule:
same model, data, optimizer, clipping, epochs and batch order. `run_parallel` trains such a
batch at once, replica ``i`` starting from the seed's initial weights as the sequential run
does, on the seeded batch permutation, with every replica's per-step rate
(``rate_i * schedule_i(t)``):

* TensorFlow and PyTorch: one `keras_lr.sweep.ReplicaModel` with the replicated optimizer of
  `keras_lr.sweep`, the rates assigned to its ``replica_rate`` before each step, in the
  sequential engine's epoch loop (a ``tf.while_loop``; torch's eager steps);
* JAX: the sequential engine's own stateless step mapped over stacked replica states with
  ``jax.vmap`` (`keras_lr.study._jax_epochs.Replicas`), so any optimizer, clip, multiplier
  and structure the sequential engine runs, but a schedule-free optimizer (its evaluation
  point is swapped into the variables).

Records are built by the same `runner.make_record`, so they have the same fields and, up to
float rounding, the same numbers as the sequential engine (tested on every backend).

Divergence follows the sequential engine: a replica's record stops at the epoch its training
or validation loss becomes non-finite or exceeds 4x its initial loss. A replica of the
replicated model whose gradients become non-finite is frozen by the optimizer (the others are
untouched); its validation loss and score for that epoch are recorded as NaN, as the
sequential run's NaN weights give (a mapped JAX replica simply holds those NaN weights).
The batch stops early once every replica has diverged.

When it is used (`use_parallel`, the rule behind ``keras-lr study --[no-]parallel``): a batch
of at least `MIN_REPLICAS` runs that `supported` accepts on the backend; by default
(``auto``) only for the families of `PARALLEL_FAMILIES`, where it was measured faster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence

import numpy as np

from keras_lr.study.grid import OPTIMIZERS, RunConfig
from keras_lr.study.metrics import divergence_epoch
from keras_lr.study.runner import Runner, _build, make_record, make_schedule

__all__ = ["MIN_REPLICAS", "PARALLEL_CLIPS", "PARALLEL_FAMILIES", "run_parallel",
           "use_parallel"]

MIN_REPLICAS = 2
"""Smallest batch trained in parallel."""
PARALLEL_FAMILIES = {"tensorflow": ("cnn",), "jax": (), "torch": ("mlp", "cnn", "lstm", "gru")}
"""Families the ``auto`` rule trains in parallel, per backend. JAX: none (its sequential
epochs, one jitted ``lax.scan`` each, cost no more than the mapped replicas: 10 runs of 3
epochs, steady, 0.08 s both ways for the MLP, 1.2-1.5 s against 1.4-1.5 s for the CNN, 0.44
against 0.48 for the LSTM, measured; the replicas compile once more per batch size). torch:
every family (the same 10 runs: MLP 0.5 s against 2.3 s, CNN 2.0 against 5.3, LSTM 2.3
against 5.0, GRU 1.8 against 4.7: one replicated step costs little more than one eager
step). TensorFlow, measured on the default study (2 CPU cores,
summed run times per group, parallel vs sequential): CNN 33 s vs 92 s (adam), 8.6 vs 24 (sgd),
8.8 vs 19 (clipped); MLP 8.7 vs 5.9; on digits with the default schedules and clips
(``keras-lr study --models lstm``, 54 runs, summed run times; whole command in brackets),
LSTM 10.9 s vs 9.2 s (21.9 s vs 20.7 s) and GRU 11.4 s vs 9.9 s (22.6 s vs 22.9 s); GRU 10 vs
6 on adding (measured before the recurrent loop left XLA). The sequential engine runs a whole
XLA-compiled epoch per call for the MLP and the RNNs and reuses it for every rate and seed;
the replicated model is traced per group and batch size (its recurrent loop a plain graph
below `keras_lr.sweep.convert.XLA_MIN_STEPS` steps), which is not repaid. The CNN runs as a
plain graph, where grouped convolutions batch 9 runs for the price of ~3."""
PARALLEL_CLIPS = ("none", "global_norm")
"""Clipping rules the parallel engine reproduces per replica."""


def supported(config: RunConfig) -> bool:
    """Whether the parallel engine of this backend can train `config`.

    TensorFlow and PyTorch (`keras_lr.sweep`'s replicated models and optimizers): SGD or Adam
    (the learning-rate-free ones run sequentially), clipping in `PARALLEL_CLIPS`, no
    multipliers, and plain Sequential structure (width and depth; no normalization layers,
    shortcuts or μP readout). JAX (the sequential step under ``jax.vmap``): every config but a
    schedule-free optimizer's, whose evaluation point is swapped into the variables.
    """
    backend = _backend()
    if backend == "jax":
        return config.optimizer != "schedule_free_adamw"
    return (backend in ("tensorflow", "torch") and config.optimizer in OPTIMIZERS
            and config.clip in PARALLEL_CLIPS and config.multipliers == "none"
            and config.norm == "none" and not config.residual and config.mup_base is None)


def use_parallel(batch: Sequence[RunConfig], parallel: bool | str = "auto") -> bool:
    """Whether a batch of one group and seed runs in parallel under the `parallel` setting.

    ``True``: every batch of at least `MIN_REPLICAS` runs that `supported` accepts;
    ``False``: never; ``"auto"``: the same, for the families where the parallel engine of the
    backend was measured faster (`PARALLEL_FAMILIES`).

    Raises:
        ValueError: ``parallel=True`` on a backend without a parallel engine (one line, naming
            ``--no-parallel``).
    """
    if parallel is False:
        return False
    if parallel is True:
        _require_parallel_backend()
    if len(batch) < MIN_REPLICAS or not all(map(supported, batch)):
        return False
    return parallel is True or batch[0].family in PARALLEL_FAMILIES.get(_backend(), ())


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _require_parallel_backend() -> None:
    backend = _backend()
    if backend not in PARALLEL_FAMILIES:
        raise ValueError(
            f"The study's parallel engine needs the TensorFlow, JAX or PyTorch backend; on "
            f"{backend} run the study with --no-parallel (or parallel=False)."
        )


class _ParallelTrainer:
    """The compiled replicated model, optimizer and epoch function of one group and size N."""

    def __init__(self, runner: Runner, config: RunConfig, n: int):
        import keras

        from keras_lr.sweep import replicate, replicated_optimizer

        self._torch = None

        self.runner, self.n = runner, n
        self.data = runner.data(config.family, config.data, config.limit)
        ds = self.data.ds
        self.templates = [_build(config, self.data, 0)[0] for _ in range(n)]
        self.model = model = replicate(self.templates)
        self.steps = len(ds.x_train) // config.batch_size
        jit = model.configure("auto", steps=self.steps * config.epochs)
        clip = {"global_clipnorm": 1.0} if config.clip == "global_norm" else {}
        base = (keras.optimizers.SGD(1.0, momentum=0.9, **clip) if config.optimizer == "sgd"
                else keras.optimizers.Adam(1.0, **clip))
        self.optimizer = opt = replicated_optimizer(base, np.ones(n), 1.0)
        opt.build(model.trainable_variables)
        self.opt_variables = list(opt.variables)
        self.opt_initial = [np.array(keras.ops.convert_to_numpy(v)) for v in self.opt_variables]
        self.batch_size = config.batch_size
        self.n_train = len(ds.x_train)
        regression, baseline_mse = self.data.regression, float(self.data.baseline_mse)
        ops = keras.ops

        def losses_and_scores(y, pred):
            """Per-replica mean loss and score, each ``(N,)``; `pred` is ``(B, N, out)``."""
            if regression:
                mse = ops.mean(ops.square(pred[..., 0] - ops.cast(y, pred.dtype)[:, None]), 0)
                return mse, 1.0 - mse / baseline_mse
            tiled = ops.broadcast_to(ops.expand_dims(y, 1), ops.shape(pred)[:2])
            loss = ops.mean(keras.losses.sparse_categorical_crossentropy(tiled, pred), 0)
            hits = ops.equal(ops.cast(ops.argmax(pred, -1), "int32"), ops.cast(tiled, "int32"))
            return loss, ops.mean(ops.cast(hits, "float32"), 0)

        if keras.backend.backend() == "torch":  # one eager step at a time
            from keras_lr.study._torch_epochs import Epochs

            self._torch = Epochs(model, opt, opt.replica_rate, None, self.data.tensors(),
                                 self.steps, self.batch_size, losses_and_scores,
                                 config.family)
            return
        import tensorflow as tf

        variables = model.trainable_variables
        x_train, y_train, x_val, y_val = self.data.tensors()  # shared by every trainer

        def step(x, y, rates):
            opt.replica_rate.assign(rates)
            with tf.GradientTape() as tape:
                losses, _ = losses_and_scores(y, model(x, training=True))
                total = ops.sum(losses)
            opt.apply(tape.gradient(total, variables), variables)
            return losses

        steps = self.steps

        def epoch(perm, rates):
            def body(j, out):
                idx = perm[j]
                return j + 1, out.write(j, step(tf.gather(x_train, idx),
                                                tf.gather(y_train, idx), rates[j]))

            _, out = tf.while_loop(lambda j, _: j < steps, body,
                                   (tf.constant(0), tf.TensorArray(tf.float32, steps)))
            return out.stack()

        self.epoch = tf.function(epoch, jit_compile=jit)
        self.evaluate = tf.function(
            lambda: losses_and_scores(y_val, model(x_val, training=False)), jit_compile=jit)

    def reset(self, batch: Sequence[RunConfig]):
        for template, config in zip(self.templates, batch, strict=True):
            template.set_weights(self.runner.initial_weights(config, self.data, config.seed))
        self.model.load(self.templates)
        for variable, value in zip(self.opt_variables, self.opt_initial, strict=True):
            variable.assign(value)

    def rate_table(self, batch: Sequence[RunConfig]) -> np.ndarray:
        """``(epochs * steps, N)``: the rate of every replica at every step."""
        from keras_lr.schedules import values

        total = batch[0].epochs * self.steps
        columns = [np.asarray(values(make_schedule(c.schedule, total, self.steps), total),
                              np.float64) * c.lr for c in batch]
        return np.stack(columns, axis=1).astype(np.float32)

    def train(self, perm, rates):
        """One epoch of every replica: losses ``(steps, N)``, and no estimate d (SGD and Adam
        only)."""
        if self._torch is not None:
            return self._torch.run(perm, rates)
        return self.epoch(perm.astype(np.int32), rates).numpy().astype(np.float64), None

    def scores(self):
        """Validation ``(losses, scores)``, each ``(N,)``; NaN for a frozen replica (the NaN
        weights of a sequential run)."""
        import keras

        scores = self._torch.evaluate() if self._torch is not None else self.evaluate()
        loss, score = (keras.ops.convert_to_numpy(v).astype(np.float64) for v in scores)
        frozen = keras.ops.convert_to_numpy(self.optimizer.replica_alive) < 0.5
        return np.where(frozen, np.nan, loss), np.where(frozen, np.nan, score)


class _ReplicaTrainer:
    """The runs of one group and size N as `jax.vmap`-ped replicas of the sequential step
    (`keras_lr.study._jax_epochs.Replicas`): any optimizer, clipping, multipliers and
    structure the sequential engine runs, but schedule-free's evaluation point."""

    def __init__(self, runner: Runner, config: RunConfig, n: int):
        from keras_lr.study.runner import _Trainer

        self.trainer = trainer = _Trainer(runner, config, replicas=True)
        self.n, self.steps, self.batch_size = n, trainer.steps, trainer.batch_size
        self.n_train, self.data = trainer.n_train, trainer.data

    def reset(self, batch: Sequence[RunConfig]):
        states = []
        for config in batch:
            self.trainer.reset(config)  # the variables take the replica's initial state
            states.append(self.trainer.epochs.read())
        self.trainer.epochs.load(states)

    def rate_table(self, batch: Sequence[RunConfig]) -> np.ndarray:
        return np.stack([self.trainer.rate_table(c) for c in batch], axis=1)

    def train(self, perm, rates):
        return self.trainer.epochs.run(perm, rates)

    def scores(self):
        return self.trainer.epochs.evaluate()


def _run_batch(trainer, batch: Sequence[RunConfig]) -> list[dict]:
    """Train `batch` on a replica trainer (the replicated model's on TensorFlow and torch, the
    mapped step's on JAX) and build its records as the sequential engine does: a replica's
    record stops at the epoch it diverges."""
    import keras

    start = time.perf_counter()
    first = batch[0]
    keras.utils.set_random_seed(first.seed)
    trainer.reset(batch)
    table = trainer.rate_table(batch)
    initial = [float(v) for v in trainer.scores()[0]]
    rng = np.random.default_rng([first.seed, 1])
    used = trainer.steps * trainer.batch_size
    n = trainer.n
    train = [[] for _ in range(n)]
    val = [[] for _ in range(n)]
    score = [[] for _ in range(n)]
    step_losses = [[] for _ in range(n)]
    estimates = [[] for _ in range(n)]
    diverged_at: list = [None] * n
    for e in range(first.epochs):
        perm = rng.permutation(trainer.n_train)[:used].reshape(trainer.steps,
                                                               trainer.batch_size)
        losses, d = trainer.train(perm, table[e * trainer.steps:(e + 1) * trainer.steps])
        val_loss, val_score = trainer.scores()
        for i in range(n):
            if diverged_at[i] is not None:
                continue
            step_losses[i].append(losses[:, i])
            if d is not None:
                estimates[i] += [float(f"{v:.6g}") for v in d[:, i]]
            train[i].append(float(np.mean(losses[:, i])))
            val[i].append(float(val_loss[i]))
            s = float(val_score[i])
            score[i].append(s if math.isfinite(s) else float("nan"))
            diverged_at[i] = divergence_epoch(initial[i], train[i], val[i])
        if all(at is not None for at in diverged_at):
            break
    seconds = (time.perf_counter() - start) / n
    records = [make_record(trainer.data, config, initial[i], train[i], val[i], score[i],
                           step_losses[i], diverged_at[i], seconds)
               for i, config in enumerate(batch)]
    if d is not None:  # Prodigy and DAdaptAdam, as the sequential engine records them
        for record, values in zip(records, estimates):
            record["d"] = values
    return records


def run_parallel(runner: Runner, batch: Sequence[RunConfig]) -> Iterator[dict]:
    """Train a batch of runs of one group and seed at once; yield their records in order.

    Raises:
        ValueError: the batch mixes groups or seeds, or holds an unsupported config; a backend
            other than TensorFlow.
    """
    _require_parallel_backend()
    batch = list(batch)
    keys = {(c.group, c.seed) for c in batch}
    if len(keys) != 1 or not all(supported(c) for c in batch):
        raise ValueError(
            "run_parallel needs runs of one group and seed that the parallel engine of "
            f"{_backend()} supports (keras_lr.study.parallel.supported). "
            f"Received: {[c.label() for c in batch]}"
        )
    cache = runner._trainers
    key = ("parallel", batch[0].group, len(batch))
    if key not in cache:
        trainer = _ReplicaTrainer if _backend() == "jax" else _ParallelTrainer
        cache[key] = trainer(runner, batch[0], len(batch))
    return iter(_run_batch(cache[key], batch))
