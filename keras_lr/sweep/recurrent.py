"""Replicated recurrent layers: N `LSTM`, `GRU` or `SimpleRNN` layers as one recurrent loop.

Weights carry the replica axis first (kernel ``(N, F, G*U)``, recurrent kernel ``(N, U, G*U)``),
the loop runs replica-major ``(N, B, U)`` states, and the gates are batched matmuls over the
replica axis, so nothing mixes replicas (see `keras_lr.sweep.replicate` for the layouts).

Reference:
    The replicated recurrent cell follows the notes in ``shared/notes/reference-behaviour.md``
    ("Training many replicas at once").
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lr.sweep.replicate import _replica_weight

__all__ = ["ReplicatedRecurrent"]


class _ReplicatedCell(keras.layers.Layer):
    """The recurrent weights of N replicas and one time step, replica-major ``(N, B, ...)``."""

    def __init__(self, kind, num_replicas, units, activation, recurrent_activation, use_bias,
                 **kwargs):
        super().__init__(**kwargs)
        self.kind, self.num_replicas, self.units = kind, num_replicas, units
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.gates = {"lstm": 4, "gru": 3, "simple": 1}[kind]
        self.recurrent_kernel = _replica_weight(
            self, "recurrent_kernel", (num_replicas, units, self.gates * units)
        )
        self.bias = None
        if use_bias:
            shape = (
                (num_replicas, 2, 3 * units) if kind == "gru"
                else (num_replicas, self.gates * units)
            )
            self.bias = _replica_weight(self, "bias", shape)
        self.built = True

    def step(self, x, states):
        """One step: `x` ``(N, B, G*U)`` projected input, `states` a tuple of ``(N, B, U)``."""
        h = states[0]
        inner = ops.matmul(h, self.recurrent_kernel)
        if self.kind == "lstm":
            z = ops.add(x, inner)
            if self.bias is not None:
                z = ops.add(z, self.bias[:, None, :])
            z0, z1, z2, z3 = ops.split(z, 4, axis=-1)
            i = self.recurrent_activation(z0)
            f = self.recurrent_activation(z1)
            c = f * states[1] + i * self.activation(z2)
            o = self.recurrent_activation(z3)
            return (o * self.activation(c), c)
        if self.kind == "gru":
            if self.bias is not None:
                x = ops.add(x, self.bias[:, None, 0])
                inner = inner + self.bias[:, None, 1]
            x_z, x_r, x_h = ops.split(x, 3, axis=-1)
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            hh = self.activation(x_h + r * r_h)
            return (z * h + (1 - z) * hh,)
        return (self.activation(x + inner),)  # simple RNN: the bias is in the projection


class ReplicatedRecurrent(keras.layers.Layer):
    """N `LSTM`, `GRU` (``reset_after=True``) or `SimpleRNN` layers as one recurrent loop.

    The input projection ``x_t @ kernel[i]`` of every step and replica is one broadcast
    batched matmul before the loop, time-major ``(T, N, B, G*U)``; the loop (a
    ``tf.while_loop`` reading step ``t`` from a ``TensorArray``) runs a cell whose gates are
    batched matmuls over the replica axis (kernel ``(N, F, G*U)``, recurrent kernel
    ``(N, U, G*U)``). The arithmetic follows the Keras cells (``implementation=2``) term by
    term.

    Args:
        kind: ``"lstm"``, ``"gru"`` or ``"simple"``.
        num_replicas: N.
        input_dim: F, features of one replica's input.
        units: U.
        activation, recurrent_activation, use_bias: as the Keras layer.
        return_sequences: output ``(B, T, N, U)`` (``"time"`` layout) or ``(B, N, U)``.
        layout: ``"shared"`` (input ``(B, T, F)``) or ``"time"`` (input ``(B, T, N, F)``).

    Example:
        >>> layer = ReplicatedRecurrent("gru", 3, 5, 4, layout="shared")
        >>> tuple(layer(keras.ops.zeros((2, 7, 5))).shape)
        (2, 3, 4)
    """

    def __init__(self, kind, num_replicas, input_dim, units, activation="tanh",
                 recurrent_activation="sigmoid", use_bias=True, return_sequences=False,
                 layout="shared", **kwargs):
        super().__init__(**kwargs)
        self.kind, self.num_replicas, self.input_dim, self.units = (
            kind, num_replicas, input_dim, units)
        self.return_sequences, self.layout = return_sequences, layout
        self.cell = _ReplicatedCell(kind, num_replicas, units, activation,
                                    recurrent_activation, use_bias, name=f"{self.name}_cell")
        gates = self.cell.gates
        self.kernel = _replica_weight(self, "kernel", (num_replicas, input_dim, gates * units))
        self.built = True

    def call(self, x):
        n, u = self.num_replicas, self.units
        # Time-major, replica-major projection (T, N, B, G*U) as one broadcast batched matmul
        # (an einsum to that layout costs 3x more forward and backward without XLA).
        if self.layout == "shared":
            proj = ops.matmul(ops.transpose(x, (1, 0, 2))[:, None], self.kernel[None])
        else:
            proj = ops.matmul(ops.transpose(x, (1, 2, 0, 3)), self.kernel)
        if self.kind == "simple" and self.cell.bias is not None:
            proj = ops.add(proj, self.cell.bias[:, None, :])
        steps = x.shape[1] if x.shape[1] is not None else ops.shape(proj)[0]
        zeros = ops.zeros((n, ops.shape(x)[0], u), dtype=proj.dtype)
        states = (zeros, zeros) if self.kind == "lstm" else (zeros,)
        if keras.backend.backend() != "tensorflow":
            return self._scan(proj, states)
        import tensorflow as tf  # TensorArrays: per-step reads whose gradients stay O(1)

        # Reading step t from a TensorArray (not slicing `proj[t]`) keeps the backward pass
        # O(1) per step: the gradient of a slice of a captured tensor is a full-size tensor,
        # built and summed once per step (2.2x slower without XLA, measured).
        inputs = tf.TensorArray(proj.dtype, size=steps, element_shape=proj.shape[1:])
        inputs = inputs.unstack(proj)
        # Without sequences to return, the loop carries the states only.
        outputs = (tf.TensorArray(proj.dtype, size=steps, element_shape=zeros.shape),
                   ) if self.return_sequences else ()

        def body(t, states, outputs):
            new = self.cell.step(inputs.read(t), states)
            if self.return_sequences:
                outputs = (outputs[0].write(t, new[0]),)
            return t + 1, new, outputs

        _, states, outputs = tf.while_loop(
            lambda t, states, outputs: t < steps, body, (0, states, outputs),
            maximum_iterations=steps,  # XLA needs a bound for gradients
        )
        if self.return_sequences:
            return ops.transpose(outputs[0].stack(), (2, 0, 1, 3))  # (T, N, B, U) -> (B, T, N, U)
        return ops.transpose(states[0], (1, 0, 2))  # (N, B, U) -> (B, N, U)

    def _scan(self, proj, states):
        """The loop on JAX and PyTorch: `keras.ops.scan` over the time-major projection
        (``lax.scan`` on JAX, a Python loop on torch)."""

        def step(states, inputs):
            new = tuple(self.cell.step(inputs, states))
            return new, (new[0] if self.return_sequences else None)

        states, outputs = ops.scan(step, states, proj)
        if self.return_sequences:
            return ops.transpose(outputs, (2, 0, 1, 3))  # (T, N, B, U) -> (B, T, N, U)
        return ops.transpose(states[0], (1, 0, 2))  # (N, B, U) -> (B, N, U)
