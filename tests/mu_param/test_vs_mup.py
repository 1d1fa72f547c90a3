"""keras_lr.mup against microsoft/mup 1.0.0 on the same MLP and CNN in PyTorch.

Rate multipliers (MuAdam / MuSGD param groups), initial values (mup.init and
set_base_shapes' rescaling) and 50-step trajectories from equal initial weights.
"""

import keras
import numpy as np
import pytest

from keras_lr import models
from keras_lr import mup as kmup

torch = pytest.importorskip("torch")
mup = pytest.importorskip("mup", reason="the mup oracle (microsoft/mup) is not installed")

D, C, N = 12, 5, 32


def mlp_fn(width, **kw):
    return models.mlp((D,), C, width=width, depth=2, seed=0, **kw)


def cnn_fn(width):
    return models.cnn((8, 8, 1), C, width=width, seed=0)


class TorchMLP(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.l0 = torch.nn.Linear(D, width)
        self.l1 = torch.nn.Linear(width, width)
        self.out = mup.MuReadout(width, C)

    def forward(self, x):
        return self.out(torch.relu(self.l1(torch.relu(self.l0(x)))))


class TorchCNN(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.c0 = torch.nn.Conv2d(1, width, 3, padding=1)
        self.c1 = torch.nn.Conv2d(width, 2 * width, 3, padding=1)
        self.d0 = torch.nn.Linear(2 * 2 * 2 * width, 4 * width)
        self.out = mup.MuReadout(4 * width, C)

    def forward(self, x):  # x: NHWC like Keras
        h = x.permute(0, 3, 1, 2)
        h = torch.nn.functional.max_pool2d(torch.relu(self.c0(h)), 2)
        h = torch.nn.functional.max_pool2d(torch.relu(self.c1(h)), 2)
        h = h.permute(0, 2, 3, 1).flatten(1)  # Keras flattens NHWC
        return self.out(torch.relu(self.d0(h)))


FAMILIES = {
    "mlp": (mlp_fn, TorchMLP, 64, 16, (D,)),
    "cnn": (cnn_fn, TorchCNN, 8, 4, (8, 8, 1)),
}


def _to_torch(value):
    value = np.asarray(value, dtype="float64")
    if value.ndim == 2:
        value = value.T
    elif value.ndim == 4:
        value = value.transpose(3, 2, 0, 1)
    return torch.tensor(value, dtype=torch.float32)


def _from_torch(param):
    value = param.detach().numpy()
    if value.ndim == 2:
        return value.T
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    return value


def _torch_pair(cls, width, base, rescale):
    torch.manual_seed(0)
    target, base_model = cls(width), cls(base)
    mup.set_base_shapes(target, base_model, rescale_params=rescale)
    return target


def _torch_multipliers(model, kind, lr):
    make = mup.MuAdam if kind == "adam" else mup.MuSGD
    opt = make(model.parameters(), lr=lr)
    by_param = {}
    for group in opt.param_groups:
        for p in group["params"]:
            by_param[id(p)] = group["lr"] / lr
    return [by_param[id(p)] for p in model.parameters()]


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_rate_multipliers_equal_mup(family, kind):
    fn, cls, width, base, _ = FAMILIES[family]
    optimizer = keras.optimizers.Adam(1e-2) if kind == "adam" else keras.optimizers.SGD(0.1)
    model, wrapped = kmup.build(fn, width=width, base_width=base, optimizer=optimizer)
    wrapped.build(model.trainable_variables)
    ours = [float(row.multiplier) for row in wrapped.describe(print_fn=None)]
    theirs = _torch_multipliers(_torch_pair(cls, width, base, False), kind, 0.1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len(set(ours)) > 1  # the comparison is not trivially all ones
    # width multipliers and infinite-dimension counts, parameter by parameter
    t = _torch_pair(cls, width, base, False)
    shapes = kmup.infshapes(model, fn(base))
    assert [s.ninf for s in shapes] == [p.infshape.ninf() for p in t.parameters()]
    assert [s.width_mult for s in shapes] == [p.infshape.width_mult() for p in t.parameters()]


def test_multipliers_with_delta_and_at_base_width():
    # At the base width every multiplier is 1, with or without a delta model (as mup).
    _, wrapped = kmup.build(mlp_fn, width=16, base_width=16, optimizer=keras.optimizers.SGD(),
                            delta_width=32)
    assert wrapped.get_config()["multipliers"] == []
    shapes = kmup.infshapes(mlp_fn(16), mlp_fn(16), mlp_fn(32))
    assert [s.ninf for s in shapes] == [1, 1, 2, 1, 1, 0]
    torch.manual_seed(0)
    t = TorchMLP(16)
    mup.set_base_shapes(t, TorchMLP(16), delta=TorchMLP(32), rescale_params=False)
    assert [s.ninf for s in shapes] == [p.infshape.ninf() for p in t.parameters()]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_initial_values_equal_mup_init_xavier(family):
    """Glorot kernels: μP values = SP values x mup.init.xavier_uniform_'s width adjustment."""
    fn, cls, width, base, _ = FAMILIES[family]
    sp = fn(width)
    model, _ = kmup.build(fn, width=width, base_width=base)
    t = _torch_pair(cls, width, base, False)
    for ours, plain, p in zip(model.trainable_variables, sp.trainable_variables, t.parameters(),
                              strict=True):
        ours, plain = np.asarray(ours, "float64"), np.asarray(plain, "float64")
        if ours.ndim == 1:
            assert not ours.any()  # zero biases stay zero
            continue
        factor = mup.init._inf_fan_adjust_xavier(1.0, p)  # mup's std / torch xavier std
        np.testing.assert_allclose(ours, plain * factor, rtol=1e-6)
        # and the variance mup.init actually draws
        mup.init.xavier_uniform_(p)
        np.testing.assert_allclose(ours.var(), p.detach().numpy().var(), rtol=0.15)


def _fan_in_fn(width):
    """The MLP with PyTorch's default initialization, written as Keras initializers."""
    layers = [keras.Input((D,))]
    for i, (n_in, n_out) in enumerate([(D, width), (width, width), (width, C)]):
        bound = 1 / np.sqrt(n_in)
        layers.append(keras.layers.Dense(
            n_out, activation="relu" if i < 2 else "softmax",
            kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed=i),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound, seed=10 + i),
            name=f"d{i}" if i < 2 else "output"))
    return keras.Sequential(layers, name="fan_in_mlp")


def test_initial_rescaling_equals_set_base_shapes_on_torch_default_init():
    width, base = 64, 16
    shapes = kmup.infshapes(_fan_in_fn(width), _fan_in_fn(base))
    ours = kmup.rescale_initialization(_fan_in_fn(width), _fan_in_fn(base), shapes)
    torch.manual_seed(0)
    t, tb = TorchMLP(width), TorchMLP(base)
    before = [p.detach().clone() for p in t.parameters()]
    mup.set_base_shapes(t, tb, rescale_params=True)
    theirs = [float((p.detach() / b).flatten()[0]) for p, b in zip(t.parameters(), before)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert max(ours) > 1.5  # biases (sqrt(fan_in mult) = 2) and the readout are rescaled


class KerasAdam(torch.optim.Optimizer):
    """Adam with Keras's epsilon placement, for `mup.MuAdam(impl=...)`.

    ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``: Keras adds epsilon to the
    uncorrected ``sqrt(v)``, torch to ``sqrt(v / (1 - b2^t))``, so no constant epsilon makes
    the two equal, and a tiny one (1e-12) makes both ill-conditioned: an element whose
    gradient is near zero then takes a step of the full rate, in the direction of its float
    rounding (measured: torch-backend trajectories 2e-3 to 8e-2 away from torch's Adam after
    50 steps, against 5e-6 on TensorFlow). mup decides the per-parameter rates (its param
    groups); this class only applies Keras's update with them.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["t"] += 1
                t, m, v, g = state["t"], state["m"], state["v"], p.grad
                m.add_((g - m) * (1 - b1))
                v.add_((g * g - v) * (1 - b2))
                alpha = group["lr"] * (1 - b2**t) ** 0.5 / (1 - b1**t)
                p.sub_(m * alpha / (v.sqrt() + group["eps"]))


def _train_torch(model, kind, lr, x, y, steps):
    if kind == "adam":
        opt = mup.MuAdam(model.parameters(), impl=KerasAdam, lr=lr)
    else:
        opt = mup.MuSGD(model.parameters(), lr=lr, momentum=0.9)
    x, y = torch.tensor(x), torch.tensor(y, dtype=torch.long)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_trajectory_equals_mup(family, kind):
    fn, cls, width, base, shape = FAMILIES[family]
    lr = 1e-2 if kind == "adam" else 0.05
    optimizer = (keras.optimizers.Adam(lr) if kind == "adam"  # epsilon 1e-7, as KerasAdam
                 else keras.optimizers.SGD(lr, momentum=0.9))
    model, wrapped = kmup.build(fn, width=width, base_width=base, optimizer=optimizer)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N,) + shape).astype("float32")
    y = rng.integers(0, C, size=N)
    t = _torch_pair(cls, width, base, False)
    with torch.no_grad():
        for p, v in zip(t.parameters(), model.trainable_variables, strict=True):
            p.copy_(_to_torch(v))
    np.testing.assert_allclose(  # equal starting outputs
        model.predict(x, verbose=0),
        torch.softmax(t(torch.tensor(x)), -1).detach().numpy(), rtol=1e-5, atol=1e-6)
    model.compile(wrapped, "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=N, epochs=50, shuffle=False, verbose=0)
    _train_torch(t, kind, lr, x, y, 50)
    moved = 0.0
    for p, v, v0 in zip(t.parameters(), model.trainable_variables, fn(width).trainable_variables,
                        strict=True):
        ours, theirs = np.asarray(v), _from_torch(p)
        if kind == "sgd":
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6, err_msg=v.path)
        else:
            # Adam normalizes each element's step, so an element whose gradient is small
            # carries its float32 rounding at the full step size: elementwise, a few weights
            # near zero end 1e-6 to 1.5e-5 apart on every backend, and on JAX two weights of
            # one CNN filter 7.2e-5 (XLA's convolution sums in another order). Measured
            # tensor-wise: at most 7e-6 on TensorFlow and torch, 4.1e-5 on JAX. Held: 1e-4
            # per tensor, and no element more than 1 % of one step (`lr`) away.
            relative = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
            assert relative < 1e-4, (v.path, relative)
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-2 * lr, err_msg=v.path)
        moved = max(moved, float(np.abs(ours - np.asarray(v0)).max()))
    assert moved > 1e-2  # training moved the weights
