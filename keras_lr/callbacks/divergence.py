"""`DivergenceGuard`: roll back to a verified state before a loss spike, skip ahead, go on."""

from __future__ import annotations

import math
import typing
import warnings

import keras

from keras_lr._validation import check_float, check_int, check_open_interval, fail
from keras_lr.callbacks._divergence_measure import (
    Baseline,
    Window,
    check_logged_mean,
    find_mean_metric,
    host,
)
from keras_lr.callbacks._jax_state import StateReader
from keras_lr.callbacks._lr import FreshCopy, check_guards, guards_in, rate_variables
from keras_lr.callbacks._rate_steps import RateSteps
from keras_lr.callbacks._snapshot import Copier, Snapshot
from keras_lr.optimizers.base import unwrap

__all__ = ["DivergenceGuard", "RateRestore", "Recovery"]

class Recovery(typing.NamedTuple):
    """One rollback: where it happened, what was seen, the rate after it, steps discarded."""

    epoch: int
    step: int | None  # step in the epoch (None: an epoch-end check)
    value: float
    learning_rate: float
    steps_skipped: int


class RateRestore(typing.NamedTuple):
    """One undone `lr_factor`: where, and the rate after it."""

    epoch: int
    step: int | None
    learning_rate: float


class DivergenceGuard(FreshCopy, keras.callbacks.Callback):
    """Keep a run alive through loss spikes: roll back to a verified state, skip ahead, go on.

    What large runs do by hand (PaLM restarts from a checkpoint about 100 steps before a
    spike and skips the batches that caused it; OPT-175B lowered the rate and restarted), done
    automatically every `snapshot_every` steps (default 10) or every epoch. Why each default
    is what it is, with measurements: docs/guards.md, "DivergenceGuard".

    **Checks.** At each check the monitored value ``x`` (the mean over the steps since the
    previous check) is compared with ``best``, the lowest value so far of a moving average of
    the checked values (time constant `SMOOTHING_STEPS` = 20 steps: the average, not the raw
    minimum, so that one lucky window of a few noisy batches does not set the bar)::

        scale     = max(abs(best), SCALE_FLOOR * abs(first checked value))   # floor: 2%
        diverged  = not isfinite(x) or x - best > (spike_factor - 1) * scale
                    or `patience` checks in a row were not near_best
        near_best = x - best <= tolerance * scale

    ``abs(best)`` keeps the tests meaningful for losses that can be negative (Keras's
    `CosineSimilarity`); the floor keeps a loss that has fallen near 0, where 0.001 to 0.004
    is 4x and no divergence, from tripping them. With no scale (all 0) only a non-finite
    value diverges. The average is a plain mean until it covers 20 steps, and ``best`` is
    only set from then on (`WARMUP_STEPS`; epoch checks: from the first), so the first
    batches of a `fit` do not set the bar; until then only a non-finite value diverges. The
    `patience` rule catches a rate that is too high and makes the loss climb and stay up (a
    network that died at ``log(classes)``) without one big spike.

    **Snapshots, verified.** The loss of a step is computed before its update, so the state
    at a check is measured by the *next* window, not by the one that ends there. The guard
    keeps two snapshots on the device (never copied to NumPy): the *candidate* taken at the
    last check, and the *verified* one, a candidate whose following window was finite and
    `near_best`. Only a verified state is ever rolled back to (the state at the start of
    training counts as verified), so a state damaged just before a check, or during a rise
    that is not yet a divergence, is never restored. A snapshot holds all of `model.weights`
    (BatchNormalization statistics included) and the optimizer's variables (slots, guard
    counters) except the rate (and the step counts, see `keep_step`), and is only ever taken
    of a finite state (a `GradientGuard`'s `grad_norm`, NaN by design after a skipped step,
    is not tested); a finite value with a non-finite state counts as a divergence.

    **Recovery.** On a divergence the guard restores the verified snapshot and multiplies the
    rate by `lr_factor`. Keras's data iterator is not rewound, so the batches since the
    snapshot are skipped, as PaLM skips them. With ``keep_step=True`` (the default) the
    optimizer's step count is not restored either, so a schedule moves on with the data: a
    spike that the schedule itself caused is not replayed, and the schedule stays aligned
    with the data seen (Adam's bias correction then counts the skipped steps too: a
    correction of at most ``beta2**k`` for k skipped steps). ``keep_step=False`` restores the
    count, and a schedule replays the skipped steps on new data. A recovery in the middle of
    an epoch resets the model's metrics, so the epoch's logged metrics are the means since
    the recovery (when it falls on the epoch's last step, the means from before the reset are
    logged instead of 0.0).

    **The rate comes back.** After `restore_after` consecutive `near_best` checks the guard
    undoes one `lr_factor` (exactly; never above the rate without the guard; another
    callback's changes are kept). A restored rate that diverges again before `restore_after`
    further good checks has proved too high: the guard lowers it again and never raises it
    to that level again. ``restore_after=None`` keeps every lowering.

    After `max_recoveries` recoveries, the next divergence restores the verified state and
    stops training cleanly (``model.stop_training = True``) with a warning. When training
    ends during a rise that `patience` has not confirmed, covering at least `snapshot_every`
    steps, the verified state is restored (``final_rollback_steps``, with a warning).

    **History.** Each epoch's logs get ``divergence_recoveries``, ``divergence_steps_skipped``
    (both cumulative), ``divergence_rate_restores`` and ``learning_rate`` (one
    ``learning_rate_<name>`` per sub-optimizer of a `MultiOptimizer`); `recoveries`
    (`Recovery` rows) and `restores` (`RateRestore` rows) keep the details.

    **Cost.** A step check runs at the next batch's begin (no batch-end hook, so Keras keeps
    dispatching steps asynchronously on JAX and torch) and makes one compiled call that copies
    the state on the device and reads the running sums of the Keras mean metric named
    `monitor`, the step count and a finite flag, brought to the host in one transfer
    (`benchmarks/divergence_snapshot.py`); the copy is the candidate snapshot, dropped when
    the check finds a divergence. The epoch's
    last steps are checked after its last step, before validation (which resets the
    metrics). On JAX the trainer keeps the state outside the variables during an epoch; a
    check reads it there (``model._jax_state``) without writing it back, and only a recovery
    or a rate change writes through ``self.model`` (Keras's state sync). Memory: two copies
    of the weights and optimizer variables on the device.

    Callback order: put `DivergenceGuard` **before** `keras.callbacks.BackupAndRestore` and
    `ModelCheckpoint`, so that a diverged epoch is rolled back before they save it, and
    before callbacks that change the model at a batch's begin (a step check sees the state
    that the callbacks before it leave).

    Args:
        monitor: the metric to watch, lower is better (default "loss"). Step checks need a
            Keras mean metric of that name (the loss, MAE, a compiled crossentropy, ...: any
            with running ``total`` and ``count``); "val_loss" and other logs entries need
            ``snapshot_every="epoch"``.
        spike_factor: float > 1; a rise above ``best`` of more than
            ``(spike_factor - 1) * scale`` is a divergence (default 3.0).
        tolerance: float >= 0; a window is near the best, and verifies the snapshot before
            it, when it is within ``tolerance * scale`` of ``best`` (default 0.25).
        patience: int >= 1 or None; this many checks in a row not near the best are a
            divergence (default 3; None: only spikes and non-finite values).
        lr_factor: float in (0, 1), the factor applied to the learning rate on a recovery
            (default 0.25).
        restore_after: int >= 1 or None; consecutive good checks before one `lr_factor` is
            undone (default 10).
        max_recoveries: int >= 0, recoveries allowed before stopping (default 10).
        snapshot_every: an int >= 1 (training steps between checks, default 10) or "epoch".
        keep_step: bool; keep the optimizer's step count on a rollback (default True) or
            restore it.

    Raises:
        RuntimeError: at the start of training, when the model's weights or optimizer
            variables are already non-finite (no good state to snapshot).
        ValueError: at the start of training, with step checks, when the model has no mean
            metric named `monitor` (on TensorFlow with compiled metrics, which Keras builds
            in the first step: after it, with the weights and optimizer variables put back
            as they were; the step count has moved by one).

    Example:

    ```python
    opt = keras_lr.optimizers.LRWrapper(keras.optimizers.Adam(schedule))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=6, callbacks=[keras_lr.callbacks.DivergenceGuard()])
    history.history["divergence_recoveries"], history.history["divergence_steps_skipped"]
    ```

    Reference:
        Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022, section 5.1;
        Zhang et al., "OPT: Open Pre-trained Transformer Language Models", 2022, logbook.
    """

    def __init__(
        self,
        monitor="loss",
        spike_factor=3.0,
        tolerance=0.25,
        patience=3,
        lr_factor=0.25,
        restore_after=10,
        max_recoveries=10,
        snapshot_every=10,
        keep_step=True,
    ):
        super().__init__()
        if not isinstance(monitor, str):
            fail("monitor", "must be a string", monitor, TypeError)
        self.monitor = monitor
        self.spike_factor = check_float("spike_factor", spike_factor, minimum=1.0, strict=True)
        self.tolerance = check_float("tolerance", tolerance, minimum=0.0)
        if patience is not None:
            patience = check_int("patience", patience, minimum=1)
        self.patience = patience
        self.lr_factor = check_open_interval("lr_factor", lr_factor, 0.0, 1.0)
        if restore_after is not None:
            restore_after = check_int("restore_after", restore_after, minimum=1)
        self.restore_after = restore_after
        self.max_recoveries = check_int("max_recoveries", max_recoveries, minimum=0)
        if snapshot_every != "epoch":
            if isinstance(snapshot_every, str):
                fail("snapshot_every", "must be 'epoch' or an int >= 1", snapshot_every)
            snapshot_every = check_int("snapshot_every", snapshot_every, minimum=1)
        self.snapshot_every = snapshot_every
        if not isinstance(keep_step, bool):
            fail("keep_step", "must be a bool", keep_step, TypeError)
        self.keep_step = keep_step
        self._remember(monitor=monitor, spike_factor=spike_factor, tolerance=tolerance,
                       patience=patience, lr_factor=lr_factor, restore_after=restore_after,
                       max_recoveries=max_recoveries, snapshot_every=snapshot_every,
                       keep_step=keep_step)
        if snapshot_every != "epoch":
            # Checks at the next batch's begin, not at a batch end: with no batch-end hook
            # Keras dispatches batch ends asynchronously on JAX and torch, without waiting for
            # each step (a batch-end hook that does nothing cost 1.17-1.19x wall per step on
            # the digits models on JAX).
            self.on_train_batch_begin = self._batch_begin
        self._copier = None
        self._live = None  # StateReader of the model in training
        self._window = Window()  # the monitored metric's mean since the last check
        self._reset()

    def _reset(self):
        self.recoveries = []
        self.restores = []
        self._baseline = Baseline(epochs=self.snapshot_every == "epoch")
        self.final_rollback_steps = 0
        self.stopped = False
        self._restore_at_epoch_end = False
        self._verified = None
        self._candidate = None
        self._rates = None
        self._good_checks = 0  # consecutive near-best checks since the last rate change
        self._bad_checks = 0  # consecutive checks that were not near best
        self._bad_steps = 0  # the steps those checks covered
        self._on_probation = False  # the last rate change was a restore
        self._floor = 0  # lowerings that are never undone (their restore diverged)
        self._epoch = 0
        self._metric = None
        self._metric_verified = False
        self._last_begin = None
        self._epoch_open = False  # between an epoch's begin and its last step's check
        self._epoch_mean = None  # (mean, total) of `monitor` after the epoch's last step
        self._measured = True  # False between a mid-epoch metrics reset and the next step
        self._before_reset = {}
        self._reset_window(-1)

    def _reset_window(self, base):
        """Step checks: `base` is the last batch NOT in the metrics' running mean."""
        self._base = base
        self._last_batch = base
        self._steps_since_check = 0
        self._window.reset()

    # ------------------------------------------------------------------ state
    def _state_variables(self, model):
        optimizer = model.optimizer
        excluded = {id(v) for v in rate_variables(optimizer)}
        if self.keep_step:
            pending = [optimizer]
            while pending:
                for opt in unwrap(pending.pop()):
                    for counter in (getattr(opt, "_iterations", None),
                                    getattr(opt, "iterations", None)):
                        if counter is not None:
                            excluded.add(id(counter))
                    pending.extend(getattr(opt, "optimizers", None) or [])
        seen, found = set(), []
        for v in list(model.weights) + list(optimizer.variables):
            if id(v) not in excluded and id(v) not in seen:
                seen.add(id(v))
                found.append(v)
        return found

    def _untested_variables(self, model):
        return {id(guard.grad_norm) for guard in guards_in(model.optimizer)
                if isinstance(getattr(guard, "grad_norm", None), keras.Variable)}

    def _read(self, variable):
        """A scalar variable's current value as a float (on JAX mid-epoch, without a sync)."""
        return float(self._live.read(variable))

    def _steps_done(self):
        return int(self._live.read(self._live.model.optimizer.iterations))

    def _check_guards(self):
        """`check_guards`, reading the counters without a sync; a stuck guard raises its error."""
        for guard in guards_in(self._live.model.optimizer):
            limit = guard.max_consecutive_skips
            if limit is not None and guard.built and self._read(guard.consecutive_skips) >= limit:
                check_guards(self.model.optimizer)  # synced first: the guard's own check raises

    # ------------------------------------------------------------------ training hooks
    def on_train_begin(self, logs=None):
        self._reset()
        model = self.model
        if self.snapshot_every != "epoch":
            # Before anything changes; TensorFlow builds compiled metrics (accuracy, ...) in
            # the first step's trace, so without them yet the first check looks again.
            compiled = getattr(model, "_compile_metrics", None)
            built = compiled is None or getattr(compiled, "built", True)
            self._metric = find_mean_metric(model, self.monitor, self.snapshot_every,
                                            required=built)
        self._live = StateReader(model)
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        # Refuses an optimizer whose rate cannot be lowered, before any training happens.
        self._rates = RateSteps(optimizer, caller="DivergenceGuard")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._live.index()  # the trainer gathers the same lists at the epoch's first step
        if self._verified is None:
            # Taken here rather than in on_train_begin, after every callback's on_train_begin
            # (BackupAndRestore loads its checkpoint there, wherever it sits in the list).
            model = self.model
            variables = self._state_variables(model)
            untested = self._untested_variables(model)
            if self._copier is None or not self._copier.serves(variables, untested):
                # Kept across `fit` calls on the same model (no retracing per call).
                self._copier = Copier(variables, untested)
            snapshot, finite, _ = self._take()
            if not finite:
                raise RuntimeError(
                    "DivergenceGuard: the model's weights or optimizer variables contain NaN "
                    f"or inf at the start of epoch {epoch}, so there is no good state to "
                    "return to. If training resumed from a checkpoint "
                    "(keras.callbacks.BackupAndRestore, ModelCheckpoint), that checkpoint was "
                    "written after the model diverged: put DivergenceGuard before those "
                    "callbacks in the `callbacks` list so that it rolls back before they "
                    "save, and restart from an earlier checkpoint or from scratch."
                )
            self._verified = snapshot
        self._measured = True
        self._last_begin = None
        self._epoch_open = True
        self._reset_window(-1)

    def _take(self, scalars=()):
        """``(candidate, finite, numbers)``: a snapshot of the state, whether it is finite, and
        the values of `scalars`, all in one compiled copy and one host transfer (on JAX
        mid-epoch read from the trainer's state, without a sync)."""
        iterations = self._live.model.optimizer.iterations
        scalars = [iterations, *scalars]
        values = self._live.values(self._copier.variables + scalars)
        copies, finite, numbers = self._copier.take(scalars, values)
        return Snapshot(copies, int(numbers[0])), finite, numbers[1:]

    def _batch_begin(self, batch, logs=None):
        # Keras passes the first step of each call (`steps_per_execution` steps): the one
        # before it is the last step done.
        self._last_begin = batch
        self._advance(batch - 1)

    def _find_metric_after_the_first_step(self):
        """TensorFlow's compiled metrics exist now; without `monitor` among them, put the
        weights and optimizer variables back as training began, then raise."""
        try:
            self._metric = find_mean_metric(self._live.model, self.monitor,
                                            self.snapshot_every)
        except ValueError:
            self._restore_verified()
            raise

    def _restore_verified(self):
        """Assign the verified snapshot (on JAX after a state sync, so the writes stick)."""
        _ = self.model  # the callback's model property syncs the trainer's state
        self._copier.restore(self._verified)

    def _check_window(self, step, reset_metrics):
        """Check the window of the steps since the last check, and start a new one."""
        steps_in_window = self._steps_since_check
        self._steps_since_check = 0
        # The candidate snapshot is taken with the window's sums (one transfer per check); a
        # check that finds a divergence drops it.
        candidate, finite, sums = self._take([self._metric.total, self._metric.count])
        self._check(self._window.value(*sums), step, steps_in_window, reset_metrics,
                    taken=(candidate, finite))

    def _advance(self, last, reset_metrics=True):
        """Count the steps up to batch `last` (done) and check when `snapshot_every` are due."""
        steps = (self.params or {}).get("steps")
        if steps:
            last = min(last, steps - 1)
        if last <= self._last_batch:
            return
        if self._metric is None:
            self._find_metric_after_the_first_step()
        self._steps_since_check += last - self._last_batch
        self._last_batch = last
        self._measured = True
        if self._steps_since_check >= self.snapshot_every:
            # Reads the model through `self._live`: on JAX, `self.model` would write the
            # trainer's state back to the variables (and the next step gather it again).
            self._check_window(last, reset_metrics)

    def on_test_begin(self, logs=None):
        # Inside `fit`, validation runs after the epoch's last step and before on_epoch_end,
        # and first resets the metrics (the loss tracker then sums the validation loss).
        self._close_epoch()

    def _close_epoch(self):
        """After the epoch's last step (at validation's start, else at the epoch's end).

        Step checks: the steps after the last batch begin, then the short rest, on the
        training metric's sums; a recovery here keeps the metrics (they are logged next), and
        validation then runs on the restored state.
        """
        if not self._epoch_open:
            return
        self._epoch_open = False
        if self._restore_at_epoch_end:
            self._restore_at_epoch_end = False
            self._restore_verified()
        if self.snapshot_every == "epoch":
            return
        if self._last_begin is not None:
            spe = getattr(self._live.model, "steps_per_execution", 1) or 1
            self._advance(self._last_begin + spe - 1, reset_metrics=False)
        self._epoch_mean = None
        if self._measured and self._metric is not None:
            total, count = self._read(self._metric.total), self._read(self._metric.count)
            self._epoch_mean = (total / count if count > 0 else math.nan), total
        if self._steps_since_check > 0:
            self._check_window(None, reset_metrics=False)

    def _verify_metric(self, logs):
        """Warn once when the logs' `monitor` is not the mean of the metric the checks read."""
        value = (logs or {}).get(self.monitor)
        if self._metric_verified or value is None or self._epoch_mean is None:
            return
        self._metric_verified = True
        check_logged_mean(self.monitor, value, self._epoch_mean)

    def on_epoch_end(self, epoch, logs=None):
        model = self.model  # Keras synced the state before the epoch's end
        self._close_epoch()
        if self.snapshot_every == "epoch":
            # Unknown epoch length: no smoothing across epochs (epoch means are smooth).
            steps = (self.params or {}).get("steps") or math.inf
            self._check(self._lookup(logs), None, steps)
        else:
            self._verify_metric(logs)
        if logs is not None:
            if not self._measured:
                # A recovery on the epoch's last step reset the metrics and no step ran
                # since: they read 0.0, a perfect loss. Log what they held before the reset.
                for key, value in self._before_reset.items():
                    if key in logs:
                        logs[key] = value
            logs["divergence_recoveries"] = len(self.recoveries)
            logs["divergence_steps_skipped"] = sum(r.steps_skipped for r in self.recoveries)
            logs["divergence_rate_restores"] = len(self.restores)
            logs.update(RateSteps.rates(model.optimizer))

    def on_train_end(self, logs=None):
        # A rise as long as one regular check: the short window of an epoch's last steps
        # (5 of 45 steps) is too noisy to act on alone (on healthy JAX training one rose
        # 0.29 x best and threw away 15 good steps).
        enough = self.snapshot_every == "epoch" or self._bad_steps >= self.snapshot_every
        if self._bad_checks and enough and not self.stopped and self._verified is not None:
            # Training ended during a rise that `patience` had not confirmed yet: never
            # hand back a state that was not near the best; return to the verified one.
            # (After `fit`'s last step Keras has synced the state: the variables hold it.)
            skipped = self._steps_done() - self._verified.step
            self._copier.restore(self._verified)
            self.final_rollback_steps = skipped
            warnings.warn(
                f"DivergenceGuard: training ended {self._bad_checks} check(s) into a rise of "
                f"`{self.monitor}` above its best; the verified state from {skipped} steps "
                "earlier is restored.",
                stacklevel=2,
            )

    def _lookup(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"DivergenceGuard: the logs have no `{self.monitor}` entry (available: "
                f"{sorted(logs or {})}); nothing is checked.",
                stacklevel=2,
            )
            return None
        return float(value)

    # ------------------------------------------------------------------ the decision
    @property
    def best(self):
        """The lowest value so far of the moving average of the checked values (None before
        it covers `WARMUP_STEPS` steps)."""
        return self._baseline.best

    def _check(self, value, step, steps, reset_metrics=True, taken=None):
        """One check. Reads the state through `self._live` (on JAX mid-epoch: no state sync);
        what writes (a recovery, a rate restore) goes through `self.model` (a sync first).
        `taken`: ``(candidate, finite)`` of `_take` at this check, or None to take it here."""
        if self.stopped:
            return
        self._check_guards()
        if value is None:
            return
        rise = self._baseline.rise(value)
        if not math.isfinite(value) or (rise is not None and rise > self.spike_factor - 1.0):
            self._recover(f"`{self.monitor}` diverged ({value:.4g})", value, step,
                          reset_metrics)
            return
        near_best = rise is None or rise <= self.tolerance
        self._bad_checks = 0 if near_best else self._bad_checks + 1
        self._bad_steps = 0 if near_best else self._bad_steps + steps
        if self.patience is not None and self._bad_checks >= self.patience:
            self._recover(f"`{self.monitor}` stayed above the best ({self.best:.4g}) by "
                          f"more than tolerance={self.tolerance:g} for {self._bad_checks} "
                          f"checks ({value:.4g})", value, step, reset_metrics)
            return
        self._baseline.update(value, steps)
        candidate, finite = taken if taken is not None else self._take()[:2]
        if not finite:
            # A finite value but NaN/inf in the state (say BatchNorm statistics after a NaN
            # batch the optimizer skipped): never snapshot it, roll back instead.
            self._recover(f"the model state became non-finite (`{self.monitor}`="
                          f"{value:.4g})", value, step, reset_metrics)
            return
        if near_best:
            if self._candidate is not None:
                self._verified = self._candidate
            self._good_checks += 1
            if (self.restore_after is not None and self._good_checks >= self.restore_after
                    and len(self._rates) > self._floor):
                model = self.model  # on JAX: a sync, so that the next step takes the new rate
                self._rates.undo(model.optimizer)
                rate = RateSteps.rates(model.optimizer)
                self.restores.append(RateRestore(self._epoch, step, next(iter(rate.values()))))
                self._good_checks = 0
                self._on_probation = True
        else:
            self._good_checks = 0
        self._candidate = candidate

    def _recover(self, reason, value, step, reset_metrics):
        # On JAX mid-epoch: writes the trainer's state back to the variables, so that what is
        # assigned below (weights, rate, metrics) is what the next step gathers.
        model = self.model
        steps_done = self._steps_done()
        self._copier.restore(self._verified)  # with keep_step=False, the step counts too
        self._candidate = None
        self._good_checks = self._bad_checks = self._bad_steps = 0
        where = f"epoch {self._epoch}" + ("" if step is None else f", step {step}")
        skipped = steps_done - self._verified.step
        if len(self.recoveries) >= self.max_recoveries:
            self.stopped = True
            model.stop_training = True
            # A step check at a batch's begin: Keras stops after that batch's step, so the
            # epoch's close (before validation) restores the verified state once more.
            self._restore_at_epoch_end = self._epoch_open
            warnings.warn(
                f"DivergenceGuard: {reason} at {where} after "
                f"{len(self.recoveries)} recoveries (max_recoveries={self.max_recoveries}); "
                "training stopped with the last verified weights restored.",
                stacklevel=3,
            )
            return
        if self._on_probation:
            # The last restore brought back a rate that diverged again: keep it lowered.
            self._floor = len(self._rates) + 1
            self._on_probation = False
        self._rates.lower(model.optimizer, self.lr_factor)
        rate = next(iter(RateSteps.rates(model.optimizer).values()))
        self.recoveries.append(Recovery(self._epoch, step, value, rate, skipped))
        if step is not None and reset_metrics:
            # Mid-epoch: the running means hold the diverged batches; restart them.
            self._before_reset = {
                key: host(v) for key, v in model.get_metrics_result().items()
            }
            model.reset_metrics()
            self._measured = False
            self._reset_window(step)
