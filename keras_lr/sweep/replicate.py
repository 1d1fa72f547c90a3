"""Replicated layers: N independent copies of a layer computed as one batched operation.

Every weight of a replicated layer carries the replica axis first: a `Dense` kernel of shape
``(in, out)`` becomes ``(N, in, out)``, a `Conv2D` kernel ``(kh, kw, c, f)`` becomes
``(N, kh, kw, c, f)``, an `LSTM` kernel ``(F, 4U)`` becomes ``(N, F, 4U)``. Slice ``i`` of every
weight is replica ``i``'s copy, and nothing in a forward or backward pass mixes two slices, so
the replicas train independently when the loss is the sum of the per-replica losses.

Activations travel in one of four layouts (the `layout` argument of every layer):

* ``"shared"``: no replica axis, the model input ``(B, ...)``, common to all replicas;
* ``"axis"``: ``(B, N, ...)``, e.g. ``(B, N, units)`` after a replicated `Dense`;
* ``"channels"``: ``(B, H, W, N * C)``, the N images stacked along the channels, replica ``i``
  in channels ``[i * C, (i + 1) * C)``; convolutions are grouped (``groups=N``) or im2col;
* ``"time"``: ``(B, T, N, F)``, a sequence of replicated features.

The batched forms (``einsum("bnf,nfu->bnu")``, grouped convolutions, a recurrent cell whose
gates are batched matmuls over the replica axis) are what makes N replicas cost much less
than N runs on a CPU.

The replicated recurrent layers live in `keras_lr.sweep.recurrent`.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "LAYOUTS",
    "ReplicaFlatten",
    "ReplicatedConv2D",
    "ReplicatedDropout",
    "ReplicatedDense",
]

LAYOUTS = ("shared", "axis", "channels", "time")


def _replica_weight(layer: keras.layers.Layer, name: str, shape: tuple) -> keras.Variable:
    return layer.add_weight(shape=shape, initializer="zeros", name=name, trainable=True)


class ReplicatedDense(keras.layers.Layer):
    """N `Dense` layers as one batched matmul: ``y[:, i] = act(x_i @ kernel[i] + bias[i])``.

    Args:
        num_replicas: N.
        input_dim: features of one replica's input.
        units: output units of one replica.
        activation: the activation (any Keras activation).
        use_bias: whether there is a bias.
        layout: ``"shared"`` (input ``(B, F)``) or ``"axis"`` (input ``(B, N, F)``); the
            output is ``(B, N, units)``.

    Example:
        >>> layer = ReplicatedDense(4, 8, 3, layout="shared")
        >>> tuple(layer(keras.ops.zeros((2, 8))).shape)
        (2, 4, 3)
    """

    def __init__(self, num_replicas, input_dim, units, activation=None, use_bias=True,
                 layout="axis", **kwargs):
        super().__init__(**kwargs)
        self.num_replicas, self.input_dim, self.units = num_replicas, input_dim, units
        self.activation = keras.activations.get(activation)
        self.use_bias, self.layout = use_bias, layout
        self.kernel = _replica_weight(self, "kernel", (num_replicas, input_dim, units))
        self.bias = _replica_weight(self, "bias", (num_replicas, units)) if use_bias else None
        self._equation = "bf,nfu->bnu" if layout == "shared" else "bnf,nfu->bnu"
        self.built = True

    def call(self, x):
        y = ops.einsum(self._equation, x, self.kernel)
        if self.bias is not None:
            y = ops.add(y, self.bias)
        return self.activation(y)


class ReplicatedConv2D(keras.layers.Layer):
    """N `Conv2D` layers as one grouped convolution (or one batched matmul over patches).

    The kernel is stored ``(N, kh, kw, C, F)``; the output is in the ``"channels"`` layout,
    ``(B, Ho, Wo, N * F)``. A ``"shared"`` input ``(B, H, W, C)`` takes one ordinary
    convolution with ``N * F`` filters. A ``"channels"`` input ``(B, H, W, N * C)`` takes, by
    `implementation`:

    * ``"grouped"``: one TensorFlow convolution with ``groups=N`` (oneDNN on CPU). The fastest
      on CPU *without* XLA (8 replicas of the reference CNN train in ~2x the time of one
      model); XLA compiles grouped convolutions one group at a time, 20x slower;
    * ``"patches"``: image patches ``(B, Ho, Wo, N, kh*kw*C)`` (``kh * kw`` strided slices)
      times the kernels ``(N, kh*kw*C, F)`` in one einsum (im2col), the best form under XLA
      and the fallback where TensorFlow has no CPU grouped convolution (oneDNN disabled);
    * ``"split"``: one convolution per replica, concatenated.

    `keras_lr.sweep.parallel_fit` picks it (see `keras_lr.sweep.convert.configure`).

    Args:
        num_replicas: N.
        in_channels: C, channels of one replica's input.
        filters: F, filters of one replica.
        kernel_size, strides, padding, dilation_rate, activation, use_bias: as `Conv2D`
            (``channels_last`` only).
        layout: ``"shared"`` or ``"channels"``.
        implementation: ``"grouped"``, ``"patches"`` or ``"split"`` (see above).

    Example:
        >>> layer = ReplicatedConv2D(2, 1, 4, (3, 3), layout="shared", padding="same")
        >>> tuple(layer(keras.ops.zeros((1, 8, 8, 1))).shape)
        (1, 8, 8, 8)
    """

    def __init__(self, num_replicas, in_channels, filters, kernel_size, strides=(1, 1),
                 padding="valid", dilation_rate=(1, 1), activation=None, use_bias=True,
                 layout="channels", implementation="grouped", **kwargs):
        super().__init__(**kwargs)
        self.num_replicas, self.in_channels, self.filters = num_replicas, in_channels, filters
        self.kernel_size = tuple(kernel_size)
        self.strides, self.padding = tuple(strides), padding
        self.dilation_rate = tuple(dilation_rate)
        self.activation = keras.activations.get(activation)
        self.use_bias, self.layout = use_bias, layout
        self.implementation = implementation
        shape = (num_replicas,) + self.kernel_size + (in_channels, filters)
        self.kernel = _replica_weight(self, "kernel", shape)
        self.bias = _replica_weight(self, "bias", (num_replicas, filters)) if use_bias else None
        self.built = True

    def _patches(self, x):
        """``(B, H, W, ..., C)`` -> ``(B, Ho, Wo, ..., kh * kw * C)`` in (dy, dx, c) order."""
        kh, kw = self.kernel_size
        (sh, sw), (dh, dw) = self.strides, self.dilation_rate
        h, w = x.shape[1], x.shape[2]
        ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        if self.padding == "same":
            ho, wo = -(-h // sh), -(-w // sw)
            ph = max((ho - 1) * sh + ekh - h, 0)
            pw = max((wo - 1) * sw + ekw - w, 0)
            pad = [(0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
            x = ops.pad(x, pad + [(0, 0)] * (len(x.shape) - 3))
        else:
            ho, wo = (h - ekh) // sh + 1, (w - ekw) // sw + 1
        cols = [
            x[:, dy * dh: dy * dh + (ho - 1) * sh + 1: sh, dx * dw: dx * dw + (wo - 1) * sw + 1: sw]
            for dy in range(kh)
            for dx in range(kw)
        ]
        return ops.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]

    def _kernel_hwio(self):
        """``(N, kh, kw, C, F)`` -> ``(kh, kw, C, N * F)``: replica ``i`` in outputs ``i*F..``."""
        n, c, f = self.num_replicas, self.in_channels, self.filters
        kernel = ops.transpose(self.kernel, (1, 2, 3, 0, 4))
        return ops.reshape(kernel, self.kernel_size + (c, n * f))

    def _conv(self, x, kernel):
        if keras.backend.backend() != "tensorflow":  # JAX, torch: groups = channels // C
            return ops.conv(x, kernel, self.strides, self.padding, "channels_last",
                            self.dilation_rate)
        import tensorflow as tf  # grouped convolutions: TF's own op (Keras forces XLA on them)

        return tf.nn.convolution(x, kernel, self.strides, self.padding.upper(),
                                 dilations=self.dilation_rate)

    def call(self, x):
        n, c, f = self.num_replicas, self.in_channels, self.filters
        if self.implementation == "patches":
            kernel = ops.reshape(self.kernel, (n, -1, f))
            if self.layout == "shared":
                y = ops.einsum("bhwk,nkf->bhwnf", self._patches(x), kernel)
            else:
                x = ops.reshape(x, (-1, x.shape[1], x.shape[2], n, c))
                y = ops.einsum("bhwnk,nkf->bhwnf", self._patches(x), kernel)
            y = ops.reshape(y, (-1, y.shape[1], y.shape[2], n * f))
        elif self.layout == "shared" or self.implementation == "grouped":
            # One convolution: N * F filters on a shared input, or groups=N on stacked ones.
            y = self._conv(x, self._kernel_hwio())
        else:  # "split": one convolution per replica (what XLA compiles best)
            y = ops.concatenate(
                [self._conv(x[..., i * c:(i + 1) * c], self.kernel[i]) for i in range(n)],
                axis=-1)
        y = ops.reshape(y, (-1, y.shape[1], y.shape[2], n, f))
        if self.bias is not None:
            y = ops.add(y, self.bias)
        y = self.activation(y)  # per replica, even for a softmax over the filters
        return ops.reshape(y, (-1, y.shape[1], y.shape[2], n * f))


class ReplicaFlatten(keras.layers.Layer):
    """Flatten each replica's features: ``"channels"`` or ``"axis"`` in, ``(B, N, -1)`` out.

    The order of the flattened features is the one `keras.layers.Flatten` gives each replica
    (height, width, channels), so a following `ReplicatedDense` uses the original kernels.

    Example:
        >>> tuple(ReplicaFlatten(2, layout="channels")(keras.ops.zeros((1, 2, 2, 6))).shape)
        (1, 2, 12)
    """

    def __init__(self, num_replicas, layout="channels", **kwargs):
        super().__init__(**kwargs)
        self.num_replicas, self.layout = num_replicas, layout
        self.built = True

    def call(self, x):
        n = self.num_replicas
        if self.layout == "channels":
            h, w, c = x.shape[1], x.shape[2], x.shape[3] // n
            x = ops.reshape(x, (-1, h, w, n, c))
            x = ops.transpose(x, (0, 3, 1, 2, 4))
            return ops.reshape(x, (-1, n, h * w * c))
        return ops.reshape(x, (-1, n, int(_prod(x.shape[2:]))))


def _prod(values):
    out = 1
    for v in values:
        out *= v
    return out


class ReplicatedDropout(keras.layers.Layer):
    """N `Dropout` layers that draw the masks the N original layers would draw.

    Replica ``i``'s slice (``x[:, i]`` in the ``"axis"`` layout, ``x[:, :, i]`` in ``"time"``,
    channels ``[i * C, (i + 1) * C)`` in ``"channels"``) goes through ``keras.random.dropout``
    with its own seed generator, whose state `load` copies from the original layer's: the
    slice has the shape the original layer sees, so each replica gets the same masks, step by
    step, as a separate run of its model.

    Args:
        num_replicas: N.
        rate: the dropout rate.
        layout: ``"axis"``, ``"time"`` or ``"channels"``.

    Example:
        >>> layer = ReplicatedDropout(2, 0.5, layout="axis")
        >>> tuple(layer(keras.ops.ones((3, 2, 4)), training=True).shape)
        (3, 2, 4)
    """

    def __init__(self, num_replicas, rate, layout="axis", **kwargs):
        super().__init__(**kwargs)
        self.num_replicas, self.rate, self.layout = num_replicas, rate, layout
        self.generators = [keras.random.SeedGenerator(i, name=f"seed_generator_{i}")
                           for i in range(num_replicas)]
        self.built = True

    def load(self, layers) -> None:
        """Copy the seed-generator state of the N original `Dropout` layers."""
        for generator, layer in zip(self.generators, layers, strict=True):
            generator.state.assign(layer.seed_generator.state)

    def call(self, x, training=False):
        if not training or self.rate <= 0:
            return x
        n = self.num_replicas
        if self.layout == "channels":
            parts = ops.split(x, n, axis=-1)
        else:
            parts = ops.unstack(x, n, axis=1 if self.layout == "axis" else 2)
        dropped = [keras.random.dropout(part, self.rate, seed=generator)
                   for part, generator in zip(parts, self.generators, strict=True)]
        if self.layout == "channels":
            return ops.concatenate(dropped, axis=-1)
        return ops.stack(dropped, axis=1 if self.layout == "axis" else 2)
