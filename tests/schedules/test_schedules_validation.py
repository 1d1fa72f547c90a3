"""Bad arguments fail at construction with the Keras wording, naming argument and value."""

import re

import keras
import pytest

from keras_lr import schedules as S

nan, inf = float("nan"), float("inf")

CASES = [
    # (factory, error type, exact message)
    (lambda: S.Constant(-1.0), ValueError, "Argument `learning_rate` must be >= 0. Received: learning_rate=-1.0"),
    (lambda: S.Constant(nan), ValueError, "Argument `learning_rate` must be finite. Received: learning_rate=nan"),
    (lambda: S.Constant("0.1"), TypeError, "Argument `learning_rate` must be a real number. Received: learning_rate='0.1'"),
    (lambda: S.StepDecay(0.1, 0), ValueError, "Argument `step_size` must be >= 1. Received: step_size=0"),
    (lambda: S.StepDecay(0.1, 2.5), TypeError, "Argument `step_size` must be an integer. Received: step_size=2.5"),
    (lambda: S.StepDecay(inf, 2), ValueError, "Argument `initial_learning_rate` must be finite. Received: initial_learning_rate=inf"),
    (lambda: S.StepDecay(0.1, 2, gamma=0.0), ValueError, "Argument `gamma` must be > 0. Received: gamma=0.0"),
    (lambda: S.MultiStepDecay(0.1, [5, 3]), ValueError, "Argument `milestones` must be non-decreasing. Received: milestones=[5, 3]"),
    (lambda: S.MultiStepDecay(0.1, [2, 5, 5, 4]), ValueError, "Argument `milestones` must be non-decreasing. Received: milestones=[2, 5, 5, 4]"),
    (lambda: S.MultiStepDecay(0.1, [-1, 3]), ValueError, "Argument `milestones[0]` must be >= 0. Received: milestones[0]=-1"),
    (lambda: S.ExponentialDecay(0.1, -0.5), ValueError, "Argument `gamma` must be > 0. Received: gamma=-0.5"),
    (lambda: S.ExponentialDecay(0.1, nan), ValueError, "Argument `gamma` must be finite. Received: gamma=nan"),
    (lambda: S.LinearDecay(0.1, -3), ValueError, "Argument `decay_steps` must be >= 1. Received: decay_steps=-3"),
    (lambda: S.LinearDecay(0.1, 3, end_learning_rate=-0.1), ValueError, "Argument `end_learning_rate` must be >= 0. Received: end_learning_rate=-0.1"),
    (lambda: S.PolynomialDecay(0.1, 3, power=0.0), ValueError, "Argument `power` must be > 0. Received: power=0.0"),
    (lambda: S.CosineDecay(0.1, 0), ValueError, "Argument `decay_steps` must be >= 1. Received: decay_steps=0"),
    (lambda: S.CosineDecay(0.1, 10, min_learning_rate=0.2), ValueError, "Argument `min_learning_rate` must be <= initial_learning_rate=0.1. Received: min_learning_rate=0.2"),
    (lambda: S.CosineRestarts(0.1, 0), ValueError, "Argument `first_cycle_steps` must be >= 1. Received: first_cycle_steps=0"),
    (lambda: S.CosineRestarts(0.1, 10, cycle_mult=0.5), ValueError, "Argument `cycle_mult` must be >= 1. Received: cycle_mult=0.5"),
    (lambda: S.CosineRestarts(0.1, 10, peak_decay=1.5), ValueError, "Argument `peak_decay` must be <= 1. Received: peak_decay=1.5"),
    (lambda: S.CosineRestarts(0.1, 10, min_learning_rate=0.5), ValueError, "Argument `min_learning_rate` must be <= initial_learning_rate=0.1. Received: min_learning_rate=0.5"),
    (lambda: S.InverseSqrtDecay(0.1, 0), ValueError, "Argument `timescale` must be >= 1. Received: timescale=0"),
    (lambda: S.PiecewiseLinear([0, 10], [0.1]), ValueError, "Arguments `boundaries` and `values` must satisfy len(boundaries) == len(values). Received: len(boundaries)=2, len(values)=1"),
    (lambda: S.PiecewiseLinear([10, 0], [0.1, 0.2]), ValueError, "Argument `boundaries` must be strictly increasing. Received: boundaries=[10.0, 0.0]"),
    (lambda: S.PiecewiseLinear([], []), ValueError, "Argument `boundaries` must hold at least one point. Received: boundaries=[]"),
    (lambda: S.PiecewiseLinear([0, 1], [0.1, nan]), ValueError, "Argument `values[1]` must be finite. Received: values[1]=nan"),
    (lambda: S.CyclicalLR(0.1, 0.01, 10), ValueError, "Argument `max_learning_rate` must be >= base_learning_rate=0.1. Received: max_learning_rate=0.01"),
    (lambda: S.CyclicalLR(0.01, 0.1, 0), ValueError, "Argument `step_size_up` must be >= 1. Received: step_size_up=0"),
    (lambda: S.CyclicalLR(0.01, 0.1, 5, step_size_down=-2), ValueError, "Argument `step_size_down` must be >= 1. Received: step_size_down=-2"),
    (lambda: S.CyclicalLR(0.01, 0.1, 5, mode="sine"), ValueError, "Argument `mode` must be one of 'triangular', 'triangular2', 'exp_range'. Received: mode='sine'"),
    (lambda: S.CyclicalLR(0.01, 0.1, 5, gamma=1.2), ValueError, "Argument `gamma` must be <= 1. Received: gamma=1.2"),
    (lambda: S.OneCycle(0.1, 100, pct_start=1.0), ValueError, "Argument `pct_start` must be in the open interval (0, 1). Received: pct_start=1.0"),
    (lambda: S.OneCycle(0.1, 100, pct_start=0.0), ValueError, "Argument `pct_start` must be in the open interval (0, 1). Received: pct_start=0.0"),
    (lambda: S.OneCycle(0.1, 100, anneal="cosine"), ValueError, "Argument `anneal` must be one of 'cos', 'linear'. Received: anneal='cosine'"),
    (lambda: S.OneCycle(0.1, 1), ValueError, "Argument `total_steps` must be >= 2. Received: total_steps=1"),
    (lambda: S.OneCycle(0.1, 10, div_factor=0.0), ValueError, "Argument `div_factor` must be > 0. Received: div_factor=0.0"),
    (lambda: S.OneCycle(0.1, 10, three_phase="yes"), TypeError, "Argument `three_phase` must be a bool. Received: three_phase='yes'"),
    (lambda: S.OneCycle(0.1, 10, pct_start=0.1), ValueError, "Argument `pct_start` must leave more than one warmup step"),
    (lambda: S.OneCycle(0.1, 10, pct_start=0.6, three_phase=True), ValueError, "Argument `pct_start` must leave every phase at least one step"),
    (lambda: S.WarmupStableDecay(0.1, -1, 5, 5), ValueError, "Argument `warmup_steps` must be >= 0. Received: warmup_steps=-1"),
    (lambda: S.WarmupStableDecay(0.1, 1, -5, 5), ValueError, "Argument `stable_steps` must be >= 0. Received: stable_steps=-5"),
    (lambda: S.WarmupStableDecay(0.1, 1, 5, 0), ValueError, "Argument `decay_steps` must be >= 1. Received: decay_steps=0"),
    (lambda: S.WarmupStableDecay(0.1, 1, 5, 5, decay_shape="sqrt"), ValueError, "Argument `decay_shape` must be one of 'linear', 'cosine', '1-sqrt'. Received: decay_shape='sqrt'"),
    (lambda: S.WarmupStableDecay(0.1, 1, 5, 5, min_learning_rate=1.0), ValueError, "Argument `min_learning_rate` must be <= peak_learning_rate=0.1. Received: min_learning_rate=1.0"),
    (lambda: S.Warmup(0.1, 0), ValueError, "Argument `warmup_steps` must be >= 1. Received: warmup_steps=0"),
    (lambda: S.Warmup(0.1, 5, shape="quadratic"), ValueError, "Argument `shape` must be one of 'linear', 'exponential', 'cosine'. Received: shape='quadratic'"),
    (lambda: S.Warmup(0.1, 5, shape="exponential"), ValueError, 'Argument `start_learning_rate` must be > 0 when shape="exponential". Received: start_learning_rate=0.0'),
    (lambda: S.Warmup(lambda step: 0.1, 5), TypeError, "Argument `schedule` must be a float or a `keras.optimizers.schedules.LearningRateSchedule`"),
    (lambda: S.Warmup(True, 5), TypeError, "Argument `schedule` must be a float or a"),
    (lambda: S.Sequence([0.1, 0.2], [5, 10]), ValueError, "Arguments `schedules` and `boundaries` must satisfy len(schedules) == len(boundaries) + 1. Received: len(schedules)=2, len(boundaries)=2"),
    (lambda: S.Sequence([0.1, 0.2, 0.3], [10, 5]), ValueError, "Argument `boundaries` must be strictly increasing. Received: boundaries=[10, 5]"),
    (lambda: S.Sequence([0.1, 0.2], [0]), ValueError, "Argument `boundaries[0]` must be >= 1. Received: boundaries[0]=0"),
    (lambda: S.Sequence([], []), ValueError, "Argument `schedules` must hold at least one schedule. Received: schedules=[]"),
    (lambda: S.Sequence([0.1, "x"], [3]), TypeError, "Argument `schedules[1]` must be a float or a"),
    (lambda: S.Sequence([-0.1, 0.2], [5]), ValueError, "Argument `schedules[0]` must be >= 0. Received: schedules[0]=-0.1"),
    (lambda: S.Warmup(S.CosineDecay(0.1, 10).get_config(), 5), TypeError, "Argument `schedule` must be a float or a `keras.optimizers.schedules.LearningRateSchedule` (or the dict"),
    (lambda: S.Warmup({"class_name": "Dense", "config": {"units": 1}, "module": "keras.layers"}, 5), TypeError, "Argument `schedule` must be a float or a"),
    (lambda: S.MultiStepDecay(0.1, milestones=5), TypeError, "Argument `milestones` must be a list. Received: milestones=5"),
    (lambda: S.PiecewiseLinear(5, [1]), TypeError, "Argument `boundaries` must be a list. Received: boundaries=5"),
    (lambda: S.PiecewiseLinear([0], "0.1"), TypeError, "Argument `values` must be a list. Received: values='0.1'"),
    (lambda: S.Sequence([0.1], 5), TypeError, "Argument `boundaries` must be a list. Received: boundaries=5"),
    (lambda: S.WarmupStableDecay(0.1, 1, 5, 5, decay_shape=["linear"]), ValueError, "Argument `decay_shape` must be one of 'linear', 'cosine', '1-sqrt'. Received: decay_shape=['linear']"),
    (lambda: S.PerEpoch(0.1, 0), ValueError, "Argument `steps_per_epoch` must be >= 1. Received: steps_per_epoch=0"),
    (lambda: S.PerEpoch(S.StepDecay(0.1, 1), 2.5), TypeError, "Argument `steps_per_epoch` must be an integer. Received: steps_per_epoch=2.5"),
    (lambda: S.values(S.Constant(0.1), -1), ValueError, "Argument `steps` must be >= 0. Received: steps=-1"),
    (lambda: S.Product([]), ValueError, "Argument `schedules` must hold at least one schedule. Received: schedules=[]"),
    (lambda: S.Product(0.1), TypeError, "Argument `schedules` must be a list. Received: schedules=0.1"),
    (lambda: S.Product([0.1, "x"]), TypeError, "Argument `schedules[1]` must be a float or a"),
    (lambda: S.OneCycleMomentum(100, base_momentum=1.0, max_momentum=1.0), ValueError, "Argument `base_momentum` must be in [0, 1). Received: base_momentum=1.0"),
    (lambda: S.OneCycleMomentum(100, max_momentum=1.2), ValueError, "Argument `max_momentum` must be in [0, 1). Received: max_momentum=1.2"),
    (lambda: S.OneCycleMomentum(100, base_momentum=-0.1), ValueError, "Argument `base_momentum` must be in [0, 1). Received: base_momentum=-0.1"),
    (lambda: S.OneCycleMomentum(100, base_momentum=0.9, max_momentum=0.8), ValueError, "Argument `max_momentum` must be >= base_momentum=0.9. Received: max_momentum=0.8"),
    (lambda: S.OneCycleMomentum(10, pct_start=0.1), ValueError, "Argument `pct_start` must leave more than one warmup step"),
    (lambda: S.OneCycleMomentum(10, three_phase=1), TypeError, "Argument `three_phase` must be a bool. Received: three_phase=1"),
    (lambda: S.CyclicalMomentum(0), ValueError, "Argument `step_size_up` must be >= 1. Received: step_size_up=0"),
    (lambda: S.CyclicalMomentum(4, max_momentum=1.0), ValueError, "Argument `max_momentum` must be in [0, 1). Received: max_momentum=1.0"),
    (lambda: S.CyclicalMomentum(4, mode="sine"), ValueError, "Argument `mode` must be one of 'triangular', 'triangular2', 'exp_range'. Received: mode='sine'"),
    (lambda: S.OneCycle(0.1, 100).momentum_schedule(0.99, 0.9), ValueError, "Argument `max_momentum` must be >= base_momentum=0.99. Received: max_momentum=0.9"),
]


@pytest.mark.parametrize("factory, error, message", CASES, ids=[c[2][:60] for c in CASES])
def test_bad_argument_message(factory, error, message):
    with pytest.raises(error, match="^" + re.escape(message)):
        factory()


def test_valid_edge_values_are_accepted():
    S.WarmupStableDecay(0.1, 0, 0, 1)  # no warmup, no stable stage
    S.MultiStepDecay(0.1, [0, 1])  # a milestone at 0 applies at once, as in PyTorch
    S.MultiStepDecay(0.1, [5, 5])  # a repeated milestone applies gamma twice, as in PyTorch
    S.CyclicalLR(0.1, 0.1, 1)  # max == base is a constant
    S.OneCycle(0.1, 10, pct_start=0.5, three_phase=True)
    S.Warmup(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5), 3)
