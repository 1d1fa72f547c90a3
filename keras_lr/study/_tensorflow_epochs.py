"""The study's compiled epoch on TensorFlow: one ``tf.while_loop`` per epoch.

Each step is a ``GradientTape`` forward/backward pass and ``optimizer.apply``, the run's rate
of the step assigned to the wrapper's ``lr_scale`` first. The whole epoch is XLA-compiled for
MLPs and RNNs; CNNs run as a plain TensorFlow graph, which on CPU compiles in a tenth of the
time and runs about as fast as XLA for these sizes. The validation set is scored in one
compiled call. The model's and the optimizer's variables are the state: they are read and
written in place, as ``model.fit`` does.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["EPOCH_JIT", "Epochs"]

EPOCH_JIT = ("mlp", "lstm", "gru")
"""Families whose epoch runs under XLA; the CNN's runs as a plain graph (compiles faster)."""


class Epochs:
    """The compiled epoch and evaluation of one study group on TensorFlow.

    Args:
        model: the built model; its variables hold the state.
        optimizer: the built study optimizer.
        scale: the wrapper's ``lr_scale`` variable (the step's rate is assigned to it).
        estimate: the variable d of Prodigy or DAdaptAdam, recorded after each step, or None.
        tensors: ``(x_train, y_train, x_val, y_val)`` tensors.
        steps: training steps per epoch.
        batch_size: samples per step.
        loss_and_score: ``f(y, pred) -> (mean loss, mean score)`` in `keras.ops`.
        family: the model family (``"mlp"``, ``"cnn"``, ``"lstm"``, ``"gru"``).
    """

    def __init__(self, model, optimizer, scale, estimate, tensors, steps, batch_size,
                 loss_and_score, family):
        del batch_size  # the traced epoch takes any (steps, batch) permutation
        x_train, y_train, x_val, y_val = tensors
        variables = model.trainable_variables
        self.tracks_estimate = estimate is not None

        def step(x, y, rate):
            scale.assign(rate)
            with tf.GradientTape() as tape:
                loss, _ = loss_and_score(y, model(x, training=True))
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        def epoch(perm, rates):
            def body(j, out, *track):
                idx = perm[j]
                loss = step(tf.gather(x_train, idx), tf.gather(y_train, idx), rates[j])
                if track:  # the estimate d after the step
                    track = (track[0].write(j, tf.cast(estimate, tf.float64)),)
                return (j + 1, out.write(j, loss), *track)

            start = (tf.constant(0), tf.TensorArray(tf.float32, steps))
            if estimate is not None:
                start += (tf.TensorArray(tf.float64, steps),)
            _, *arrays = tf.while_loop(lambda j, *_: j < steps, body, start)
            return tuple(a.stack() for a in arrays)

        jit = family in EPOCH_JIT
        self._epoch = tf.function(epoch, jit_compile=jit)
        self._evaluate = tf.function(
            lambda: loss_and_score(y_val, model(x_val, training=False)), jit_compile=jit)

    def run(self, perm: np.ndarray, rates: np.ndarray):
        """Train one epoch: batch ``j`` is ``x_train[perm[j]]`` at rate ``rates[j]``.

        Returns:
            ``(losses, d)``: the float64 loss of every step, and the estimate after every step
            (None without one).
        """
        out = self._epoch(perm.astype(np.int32), rates)
        losses = out[0].numpy().astype(np.float64)
        return losses, (out[1].numpy() if self.tracks_estimate else None)

    def evaluate(self):
        """``(loss, score)`` of the model's current variables on the validation set."""
        return tuple(float(v) for v in self._evaluate())
