"""The μP readout: the output layer sees its input divided by the width multiplier.

``MuReadout`` is a `keras.layers.Dense` whose input is scaled first, as mup's
``MuReadout.forward``::

    y = activation((output_mult * x / width_mult) @ kernel + bias)

With the readout's initial variance held at the base's (see `keras_lr.mup.init`), the
output logits stay of the same size at every width, and the 1/width factor makes the
readout's updates as large as the hidden layers' (Table 8 of Tensor Programs V).
`to_mu_readout` swaps the readout layers of a built model for `MuReadout` copies that keep
their weights.

Reference:
    Yang et al. 2022, Tensor Programs V, Table 8; microsoft/mup 1.0.0 ``layer.py``.
"""

from __future__ import annotations

import keras

from keras_lr._validation import check_float

__all__ = ["MuReadout", "to_mu_readout"]


@keras.saving.register_keras_serializable(package="keras_lr")
class MuReadout(keras.layers.Dense):
    """A `Dense` output layer with the μP output multiplier ``output_mult / width_mult``.

    Args:
        units: output size (the number of classes, a fixed dimension).
        width_mult: the width multiplier of the layer's input, ``fan_in / base fan_in``, > 0.
        output_mult: a tunable constant multiplier (mup's ``output_mult``), > 0. Default 1.
        **kwargs: the arguments of `keras.layers.Dense`.

    Example:
        >>> layer = MuReadout(3, width_mult=4.0, kernel_initializer="ones")
        >>> float(layer(keras.ops.ones((1, 8)))[0, 0])
        2.0
    """

    def __init__(self, units, width_mult=1.0, output_mult=1.0, **kwargs):
        super().__init__(units, **kwargs)
        self.width_mult = check_float("width_mult", width_mult, minimum=0.0, strict=True)
        self.output_mult = check_float("output_mult", output_mult, minimum=0.0, strict=True)

    def call(self, inputs, training=None):
        scale = self.output_mult / self.width_mult
        return super().call(inputs * keras.ops.cast(scale, inputs.dtype), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(width_mult=self.width_mult, output_mult=self.output_mult)
        return config


def _readout_layer(model, variable):
    for layer in getattr(model, "layers", []):
        if any(v is variable for v in layer.trainable_variables):
            if hasattr(layer, "layers") and not isinstance(layer, keras.layers.Dense):
                raise ValueError(
                    f"The readout variable {variable.path!r} sits in the nested model "
                    f"{layer.name!r}; muP needs the output layer at the top level."
                )
            return layer
    raise ValueError(f"No layer of the model owns the readout variable {variable.path!r}.")


def to_mu_readout(model, shapes, output_mult=1.0, zero_init=False):
    """A copy of `model` whose readout layers are `MuReadout` (the other layers are shared).

    A readout is a kernel from a width dimension to a fixed one (``InfShape.is_readout``);
    it must belong to a `Dense` layer. With no readout (the model is its own base, every
    multiplier 1) the model comes back unchanged.

    Args:
        model: the built model.
        shapes: ``infshapes(model, base)``.
        output_mult: mup's ``output_mult``, > 0.
        zero_init: start the readout's kernel and bias at zero (mup's
            ``readout_zero_init=True``, which the mup authors recommend).

    Returns:
        The new model (Sequential or functional, as `model`), its layers but the readouts
        being `model`'s own layer objects.
    """
    output_mult = check_float("output_mult", output_mult, minimum=0.0, strict=True)
    variables = model.trainable_variables
    readouts = {}
    for variable, info in zip(variables, shapes, strict=True):
        if info.is_readout:
            layer = _readout_layer(model, variable)
            if type(layer) not in (keras.layers.Dense, MuReadout):
                raise ValueError(
                    f"muP needs the output layer {layer.name!r} to be a Dense layer (it maps "
                    f"the width to the outputs), but it is a {type(layer).__name__}."
                )
            readouts[id(layer)] = (layer, info.mult(info.fan_in_axis))
    if not readouts:
        return model

    def clone(layer):
        if id(layer) not in readouts:
            return layer
        old, mult = readouts[id(layer)]
        config = old.get_config()
        config.update(width_mult=mult, output_mult=output_mult)
        return MuReadout.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for old, _ in readouts.values():
        fresh = new.get_layer(old.name)
        if zero_init:
            fresh.set_weights([0 * w for w in old.get_weights()])
        else:
            fresh.set_weights(old.get_weights())
    return new
