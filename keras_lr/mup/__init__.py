"""μP (the maximal update parametrization) for Keras: rates that transfer across width.

Under the standard parametrization the best Adam rate falls as a network widens; under μP it
stays put, so a rate tuned on a narrow model serves a wide one. `build` is the one call;
`infshapes`, `rescale_initialization`, `to_mu_readout` and `mu_optimizer` are its parts,
`coord_check` the diagnostic. See docs/mup.md.

Reference:
    Yang et al. 2022, "Tensor Programs V" (arXiv 2203.03466); microsoft/mup 1.0.0.
"""

from keras_lr.mup.build import build, parametrize
from keras_lr.mup.coord_check import CoordCheck, activations, coord_check
from keras_lr.mup.init import initializer_variance, rescale_initialization
from keras_lr.mup.optim import (
    ADAM_TYPE,
    SGD_TYPE,
    mu_optimizer,
    multipliers,
    optimizer_kind,
    rules,
)
from keras_lr.mup.readout import MuReadout, to_mu_readout
from keras_lr.mup.shapes import InfShape, infshapes

__all__ = [
    "ADAM_TYPE",
    "SGD_TYPE",
    "CoordCheck",
    "InfShape",
    "MuReadout",
    "activations",
    "build",
    "coord_check",
    "infshapes",
    "initializer_variance",
    "mu_optimizer",
    "multipliers",
    "optimizer_kind",
    "parametrize",
    "rescale_initialization",
    "rules",
    "to_mu_readout",
]
