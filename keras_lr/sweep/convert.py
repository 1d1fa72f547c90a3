"""Turn N copies of a Keras model into one replicated model, and take replica ``i`` back out.

`replicate(models)` reads N `keras.Sequential` models of the same architecture (each with its
own initial weights) and returns a `ReplicaModel` whose weights stack theirs along a leading
replica axis; `ReplicaModel.extract(i, model)` writes replica ``i``'s weights back into a
model of the original architecture.

Supported layers: `Dense` (2-D inputs), `Conv2D` (``channels_last``, ``groups=1``),
`LSTM`, `GRU` (``reset_after=True``), `SimpleRNN` (no dropout, not stateful, forward only),
`Flatten`, `MaxPooling2D`, `AveragePooling2D`, `GlobalAveragePooling2D`,
`GlobalMaxPooling2D`, `Dropout` (after the first layer with weights, ``noise_shape=None``; each
replica draws its original layer's masks), `Activation` (per replica, after convolutions too),
and any deterministic layer without weights placed before the first replicated layer (it runs
once, shared by all replicas). Anything else raises a `ValueError` naming the layer: other
random layers (noise, random augmentation), regularizers and constraints, `Masking`, and
inputs with an unknown dimension besides the batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_lr.sweep.recurrent import ReplicatedRecurrent
from keras_lr.sweep.replicate import (
    ReplicaFlatten,
    ReplicatedConv2D,
    ReplicatedDense,
    ReplicatedDropout,
)

__all__ = ["XLA_MIN_STEPS", "ReplicaModel", "grouped_conv_available", "replicate"]

XLA_MIN_STEPS = 2000
"""Training steps from which ``jit_compile="auto"`` compiles a recurrent sweep with XLA:
XLA's compilation (~1.3 s per batch size for 8 GRU replicas here, after ~1 s of tracing) is
repaid after about 1,000 (GRU) to 1,800 (LSTM) steps (see `ReplicaModel.configure`)."""

CONV_IMPLEMENTATION = {"jax": "patches", "torch": "grouped"}
"""The replicated convolutions off TensorFlow (`ReplicaModel.configure`). JAX: im2col, since
XLA:CPU runs a grouped convolution one group at a time (8 digits CNN replicas, 3 epochs,
steady epochs: 51x one fit grouped, 7.9x as im2col); torch: one grouped convolution
(`keras.ops.conv`; 3.9x, against 4.7x as im2col)."""
_RNN_KINDS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple"}
_POOLS = ("MaxPooling2D", "AveragePooling2D")
_GLOBAL_POOLS = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")


@functools.cache
def grouped_conv_available() -> bool:
    """Whether a grouped convolution runs outside XLA here: always on JAX and PyTorch (Keras's
    ``ops.conv`` infers the groups); on TensorFlow where oneDNN runs it on the CPU (plain
    Eigen, e.g. with ``TF_ENABLE_ONEDNN_OPTS=0``, does not)."""
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    try:
        with tf.device("/CPU:0"):
            out = tf.nn.convolution(tf.ones((1, 3, 3, 2)), tf.ones((1, 1, 1, 4)), padding="SAME")
        return bool(tf.reduce_all(tf.equal(out, 1.0)))
    except (tf.errors.OpError, ValueError):
        return False


def _unsupported(layer, layout: str, why: str = ""):
    detail = f": {why}" if why else ""
    raise ValueError(
        f"parallel_fit cannot replicate layer '{layer.name}' ({type(layer).__name__}) with "
        f"input layout '{layout}'{detail}. Supported: Dense, Conv2D, LSTM, GRU, SimpleRNN, "
        "Flatten, pooling, Dropout, Activation (see keras_lr.sweep.convert)."
    )


def _clone(layer):
    return type(layer).from_config(layer.get_config())


def _rnn_weights(layer):
    cell = layer.cell
    return [cell.kernel, cell.recurrent_kernel] + ([cell.bias] if cell.use_bias else [])


_PENALTIES = ("kernel", "bias", "recurrent", "activity", "depthwise", "pointwise", "beta",
              "gamma", "embeddings")


def _penalties(layer) -> list[str]:
    """Names of the regularizers and constraints set on `layer` (or its cell, its weights)."""
    found = []
    for owner in (layer, getattr(layer, "cell", None)):
        if owner is None:
            continue
        for prefix in _PENALTIES:
            for suffix in ("regularizer", "constraint"):
                name = f"{prefix}_{suffix}"
                if getattr(owner, name, None) is not None and name not in found:
                    found.append(name)
    if not found and any(getattr(w, "constraint", None) is not None for w in layer.weights):
        found.append("a weight constraint")
    return found


def _holds_rng(layer) -> bool:
    """Whether `layer` or a layer inside it holds a `keras.random.SeedGenerator` (tracked by
    Keras, or in any attribute: `RandomFlip` keeps its own in ``generator``)."""
    for sub in layer._flatten_layers(include_self=True):
        if getattr(sub, "_seed_generators", None):
            return True
        for value in vars(sub).values():
            values = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, keras.random.SeedGenerator) for v in values):
                return True
    return False


def _convert_layer(layer, layout: str, n: int):
    """Return ``(replicated_layer, new_layout, [(rep_var, weight_getter)])``."""
    kind = type(layer).__name__
    if kind == "Masking" or isinstance(layer.input, (list, tuple)) or getattr(
            layer, "mask_zero", False):
        _unsupported(layer, layout, "masks (Masking, mask_zero=True) are not replicated; "
                     "pad the sequences without a mask")
    shape = tuple(layer.input.shape[1:])
    if None in shape:
        _unsupported(layer, layout, f"its input shape {(None,) + shape} has an unknown "
                     "dimension besides the batch; give keras.Input a fixed shape (pad "
                     "variable-length sequences to one length)")
    penalties = _penalties(layer)
    if penalties:
        _unsupported(layer, layout, f"regularizers and constraints ({', '.join(penalties)}) "
                     "are not replicated and would be silently dropped; remove them")
    if kind == "Dropout":
        if layer.noise_shape is not None or layout == "shared":
            _unsupported(layer, layout, "dropout needs noise_shape=None and a layer with "
                         "weights before it (a shared input cannot take per-replica masks)")
        return ReplicatedDropout(n, layer.rate, layout=layout, name=layer.name), layout, []
    if kind not in _RNN_KINDS and _holds_rng(layer):  # RNN generators serve dropout only
        _unsupported(layer, layout, "random layers other than Dropout (noise, random "
                     "augmentation, ...) would share their noise")
    if layout == "shared" and not layer.weights:
        return _clone(layer), "shared", []
    if kind == "Dense":
        if layout not in ("shared", "axis") or len(shape) != 1:
            _unsupported(layer, layout, "Dense needs flat (rank-2) inputs; add a Flatten")
        rep = ReplicatedDense(n, shape[0], layer.units, layer.activation, layer.use_bias,
                              layout=layout, name=layer.name)
        getters = [lambda m: m.kernel] + ([lambda m: m.bias] if layer.use_bias else [])
        return rep, "axis", list(zip(rep.trainable_weights, getters, strict=True))
    if kind == "Conv2D":
        if (layout not in ("shared", "channels") or layer.data_format != "channels_last"
                or layer.groups != 1 or len(shape) != 3):
            _unsupported(layer, layout, "only channels_last, groups=1 images")
        rep = ReplicatedConv2D(
            n, shape[-1], layer.filters, layer.kernel_size, layer.strides, layer.padding,
            layer.dilation_rate, layer.activation, layer.use_bias, layout=layout,
            name=layer.name,
        )
        getters = [lambda m: m.kernel] + ([lambda m: m.bias] if layer.use_bias else [])
        return rep, "channels", list(zip(rep.trainable_weights, getters, strict=True))
    if kind in _RNN_KINDS:
        if layout not in ("shared", "time") or len(shape) != 2:
            _unsupported(layer, layout, "recurrent layers need (timesteps, features) inputs")
        cell = layer.cell
        if (layer.go_backwards or layer.stateful or layer.return_state or cell.dropout
                or cell.recurrent_dropout or (kind == "GRU" and not cell.reset_after)):
            _unsupported(layer, layout, "no dropout, go_backwards, stateful, return_state, "
                         "and GRU needs reset_after=True")
        recurrent_activation = getattr(cell, "recurrent_activation", None)
        rep = ReplicatedRecurrent(
            _RNN_KINDS[kind], n, shape[-1], cell.units, cell.activation,
            recurrent_activation or "sigmoid", cell.use_bias,
            return_sequences=layer.return_sequences, layout=layout, name=layer.name,
        )
        reps = [rep.kernel, rep.cell.recurrent_kernel] + (
            [rep.cell.bias] if cell.use_bias else [])
        getters = [(lambda m, k=k: _rnn_weights(m)[k]) for k in range(len(reps))]
        layout_out = "time" if layer.return_sequences else "axis"
        return rep, layout_out, list(zip(reps, getters, strict=True))
    if layer.weights:
        _unsupported(layer, layout)
    if kind == "Flatten":
        if layout == "time":
            _unsupported(layer, layout)
        return ReplicaFlatten(n, layout=layout, name=layer.name), "axis", []
    if kind in _POOLS and layout == "channels" and layer.data_format == "channels_last":
        return _clone(layer), "channels", []
    if kind in _GLOBAL_POOLS and layout == "channels" and not layer.keepdims:
        pool = _clone(layer)
        channels = shape[-1]  # one replica's channels
        return keras.Sequential([pool, keras.layers.Reshape((n, channels))],
                                name=layer.name), "axis", []
    if kind == "Activation" and layout in ("axis", "time"):
        return _clone(layer), layout, []
    if kind == "Activation" and layout == "channels":
        # (B, H, W, N * C) -> (B, H, W, N, C): a softmax then stays within each replica.
        height, width, channels = shape
        return keras.Sequential([keras.layers.Reshape((height, width, n, channels)),
                                 _clone(layer),
                                 keras.layers.Reshape((height, width, n * channels))],
                                name=layer.name), "channels", []
    _unsupported(layer, layout)


class ReplicaModel(keras.Model):
    """N replicas of a `Sequential` model as one model with outputs ``(B, N, ...)``.

    Built by `replicate`; `links` pairs each replicated weight with the function that finds
    the corresponding weight in an original model. Metrics whose result is a vector of N
    values (see `keras_lr.sweep.metrics.ReplicaMean`) are logged as ``name[i]``.
    """

    def __init__(self, stack, links, num_replicas, **kwargs):
        super().__init__(**kwargs)
        self.stack = list(stack)
        self._links = links
        self.num_replicas = num_replicas

    def configure(self, jit_compile="auto", steps: int | None = None) -> bool:
        """Choose the fastest layer implementations for `jit_compile` and resolve ``"auto"``.

        On JAX ``"auto"`` is ``True`` (``jax.jit``, as JAX's own ``fit``) and on torch
        ``False`` (eager, Keras's default there); convolutions there are grouped
        (`keras.ops.conv`). On TensorFlow ``"auto"`` resolves to a plain TensorFlow graph (``False``), except for recurrent
        models trained for at least `XLA_MIN_STEPS` steps (`steps`, the number of training
        steps of the whole fit; ``None`` when unknown), which compile with XLA. Measured with
        8 replicas of the reference models on digits (45 steps per epoch), total time of the
        sweep: at 5 epochs the LSTM took 2.1-2.5x one ordinary fit without XLA against
        3.7-5.1x with XLA (whose compilation, ~1.3 s for each batch size, dominates); at
        40 epochs (1800 steps) XLA and the plain graph came out even for the LSTM (19.9 s
        against 19.7 s, 20.1 s against 20.8 s) and XLA ahead for the GRU (16.1 s against
        19.2 s, 19.6 s against 21.5 s): its steady epochs are 10-30% faster. The MLP's
        compilation is not repaid (3.2x / 1.6x total / steady with XLA, 1.7x / 1.8x
        without); the CNN runs ``groups=N`` convolutions (oneDNN) in a plain graph, ~2-3.7x
        in steady state against ~2.8-5.7x under XLA with im2col. Two exceptions:

        * without CPU grouped convolutions (`grouped_conv_available` false, e.g. oneDNN
          disabled), convolutional models use im2col under XLA;
        * models with dropout run without XLA: XLA draws other masks than TensorFlow's
          kernels from the same seeds, and an ordinary fit on a CPU does not use XLA, so this
          reproduces it mask for mask.

        Under XLA the convolutions use im2col (``"patches"``).

        Args:
            jit_compile: ``True``, ``False`` or ``"auto"``.
            steps: training steps of the fit (epochs x batches per epoch), or ``None``.

        Returns:
            The resolved `jit_compile` (a bool) to pass to ``compile``.
        """
        convs = [layer for layer in self.stack
                 if isinstance(layer, ReplicatedConv2D) and layer.layout == "channels"]
        backend = keras.backend.backend()
        if backend != "tensorflow":
            # JAX runs compiled (`jax.jit`, as its own `fit` does), torch eagerly (Keras's
            # default there; torch.compile costs more than it saves on these models).
            if jit_compile == "auto":
                jit_compile = backend == "jax"
            for layer in convs:
                layer.implementation = CONV_IMPLEMENTATION[backend]
            return bool(jit_compile)
        grouped = grouped_conv_available()
        dropout = any(isinstance(layer, ReplicatedDropout) and layer.rate > 0
                      for layer in self.stack)
        recurrent = any(isinstance(layer, ReplicatedRecurrent) for layer in self.stack)
        if jit_compile == "auto":
            long_run = steps is not None and steps >= XLA_MIN_STEPS
            jit_compile = ((recurrent and long_run) or bool(convs and not grouped)) and not dropout
        for layer in convs:
            layer.implementation = "grouped" if grouped and not jit_compile else "patches"
        return bool(jit_compile)

    def call(self, x, training=False):
        for layer in self.stack:
            x = layer(x, training=training)
        return x

    def load(self, models: Sequence[keras.Model]) -> None:
        """Stack the weights of the N `models` into this model."""
        for rep, layer_index, getter in self._links:
            values = [
                keras.ops.convert_to_numpy(getter(m.layers[layer_index])) for m in models
            ]
            rep.assign(np.stack(values))
        for layer_index, layer in enumerate(self.stack):
            if isinstance(layer, ReplicatedDropout):
                layer.load([m.layers[layer_index] for m in models])

    def replica_weights(self, i: int) -> list[tuple[int, object, np.ndarray]]:
        """``(layer_index, getter, value)`` of replica `i` for each replicated weight."""
        return [
            (layer_index, getter, keras.ops.convert_to_numpy(rep)[i])
            for rep, layer_index, getter in self._links
        ]

    def extract(self, i: int, model: keras.Model) -> keras.Model:
        """Write replica `i`'s weights into `model` (same architecture) and return it."""
        for layer_index, getter, value in self.replica_weights(i):
            getter(model.layers[layer_index]).assign(value)
        return model

    def get_metrics_result(self):
        out = {}
        for metric in self.metrics:
            result = metric.result()
            items = result.items() if isinstance(result, dict) else [(metric.name, result)]
            for key, value in items:
                if len(ops.shape(value)) == 1:
                    for i in range(self.num_replicas):
                        out[f"{key}[{i}]"] = value[i]
                else:
                    out[key] = value
        return out


def replicate(models: Sequence[keras.Model]) -> ReplicaModel:
    """Build a `ReplicaModel` from N `Sequential` models of one architecture.

    Args:
        models: N built, uncompiled `keras.Sequential` models; replica ``i`` starts from
            ``models[i]``'s weights.

    Returns:
        A built `ReplicaModel` holding the stacked weights.

    Raises:
        ValueError: a layer cannot be replicated, or the models differ in architecture.

    Example:
        >>> from keras_lr import models
        >>> nets = [models.mlp((64,), 10, hidden=(16,), seed=s) for s in range(3)]
        >>> tuple(replicate(nets)(keras.ops.zeros((2, 64))).shape)
        (2, 3, 10)
    """
    template = models[0]
    if not isinstance(template, keras.Sequential):
        raise ValueError(
            "parallel_fit replicates `keras.Sequential` models; build_model returned a "
            f"{type(template).__name__}. Received: {template.name!r}"
        )
    signature = [tuple(w.shape) for w in template.weights]
    for m in models[1:]:
        if type(m) is not type(template) or [tuple(w.shape) for w in m.weights] != signature:
            raise ValueError(
                "build_model must return models of one architecture; replica models differ "
                f"from the first one. Received: {m.name!r}"
            )
    n = len(models)
    stack, links, layout = [], [], "shared"
    for index, layer in enumerate(template.layers):
        rep, layout, pairs = _convert_layer(layer, layout, n)
        rep.trainable = layer.trainable
        stack.append(rep)
        links.extend((var, index, getter) for var, getter in pairs)
    if layout != "axis":
        raise ValueError(
            f"The model's output must have a replica axis after replication (layout 'axis'); "
            f"it ends in layout '{layout}'. End the model with a Dense layer."
        )
    mapped = len(links)
    if mapped != len(template.weights):
        raise ValueError(
            "parallel_fit could not map every weight of the model to a replicated weight "
            f"({mapped} of {len(template.weights)})."
        )
    model = ReplicaModel(stack, links, n, name=f"{template.name}_x{n}")
    model(ops.zeros((1,) + tuple(template.inputs[0].shape[1:]), dtype=template.inputs[0].dtype))
    model.load(models)
    return model
