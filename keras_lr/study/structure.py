"""The structure stage: the runs that vary width, depth, normalization and residual connections.

The stage (`stages`) varies one structural knob of the digits MLP and CNN at a time, each over
the rate grid and the seeds; `keras_lr.study.structure_claims` turns the runs into claims and
`keras_lr.study.structure_figures` draws them. A run's structure is in its `RunConfig`
(``width``, ``depth``, ``norm``, ``residual``, ``mup_base``); `model_kwargs` maps it to
`keras_lr.models.build`, `build` adds μP:

* **width**: the MLP's hidden units (two hidden layers, `WIDTH_DEPTH`) or the CNN's base
  channels at the four widths of `WIDTHS` (8x), under the standard parametrization (SP) and
  under μP with the smallest width as its base (`keras_lr.mup.parametrize`: rescaled
  initialization, `MuReadout`, the μP per-variable rates of Adam or SGD);
* **depth**: 1, 2, 4 and 8 hidden blocks (the CNN: conv blocks per stage), plain and residual;
* **normalization**: none, ``norm="batch"`` and ``norm="layer"``.

`structure_plan` is the full study (``keras-lr study --plan structure``); the default and quick
plans hold a smaller stage (`keras_lr.study.grid.default_plan`). The size's own model keeps
``width=None`` (and depth 1 keeps ``depth=None``), so a run that another stage also asks for has
one key and trains once.

Example:
    >>> model_kwargs(RunConfig("cnn", "digits", "adam", 1e-3, 0, width=8))
    {'filters': (8, 16), 'dense': 32}

Reference:
    Yang et al. 2022, "Tensor Programs V" (arXiv 2203.03466); He et al. 2016, "Deep Residual
    Learning"; Ioffe & Szegedy 2015; Ba et al. 2016; ``docs/study.md``, "The structure stage".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from keras_lr._validation import check_choice
from keras_lr.study import metrics
from keras_lr.study.grid import OPTIMIZERS, Plan, RunConfig, Stage, rate_grid, structure_of

__all__ = ["DEPTHS", "NORMS_SWEPT", "WIDTHS", "WIDTH_DEPTH", "build", "depth_arms",
           "model_kwargs", "norm_arms", "select", "stages", "structure_plan", "subjects",
           "width_curves"]

WIDTHS = {
    "default": {"mlp": (32, 64, 128, 256), "cnn": (4, 8, 16, 32)},
    "quick": {"mlp": (8, 32), "cnn": (4, 8)},
    "standard": {"mlp": (32, 64, 128, 256), "cnn": (4, 8, 16, 32)},
}
"""The width sweep per model size (each spans 8x but the quick one, and holds the size's own
width)."""
WIDTH_DEPTH = {"mlp": 2, "cnn": None}
"""The depth of the width sweep: two hidden layers for the MLP, so that it has a hidden
(width x width) matrix, the weights whose Adam rate μP divides by the width multiplier
(with one hidden layer only the readout's scale changes); the CNN as it is."""
DEPTHS = (1, 2, 4, 8)
"""The depth sweep: hidden blocks (MLP), conv blocks per stage (CNN)."""
NORMS_SWEPT = ("batch", "layer")
"""The normalizations compared with none."""


# ---------------------------------------------------------------------- models
def model_kwargs(config: RunConfig) -> dict:
    """`keras_lr.models.build` arguments of a run: the size's model with its structure fields.

    ``width=w`` is an MLP of hidden units ``w`` (``depth`` layers) and a CNN of filters ``(w, 2w,
    ...)`` (as many stages as the size's CNN) with a dense layer of ``4w``: the default sizes'
    models are widths 64 (MLP) and 16 (CNN).
    """
    from keras_lr.study.runner import MODEL_KWARGS

    kwargs = dict(MODEL_KWARGS[config.size][config.family])
    if config.family == "mlp" and (config.width is not None or config.depth is not None):
        hidden = kwargs.pop("hidden")
        kwargs["hidden"] = ((config.width or hidden[0]),) * (config.depth or len(hidden))
    elif config.family == "cnn":
        if config.width is not None:
            stages_ = len(kwargs["filters"])
            kwargs["filters"] = tuple(config.width * 2 ** i for i in range(stages_))
            kwargs["dense"] = 4 * config.width
        if config.depth is not None:
            kwargs["depth"] = config.depth
    elif config.depth is not None:  # recurrent
        kwargs["depth"] = config.depth
    if config.norm != "none":
        kwargs["norm"] = config.norm
    if config.residual:
        kwargs["residual"] = True
    return kwargs


def build(config: RunConfig, input_shape, num_classes, seed: int):
    """The run's model with seeded weights, and its μP shapes (None under SP).

    Under μP (``config.mup_base``) the model and its base (``width=mup_base``) are built with
    the same seed and `keras_lr.mup.parametrize` rescales the model's initial weights and swaps
    in a `MuReadout`; the shapes give the rate multipliers (`keras_lr.mup.mu_optimizer`).

    Example:
        >>> config = RunConfig("mlp", "digits", "adam", 1e-2, 0, width=32, mup_base=8)
        >>> model, shapes = build(config, (64,), 10, seed=0)
        >>> type(model.get_layer("output")).__name__, model.get_layer("output").width_mult
        ('MuReadout', 4.0)
    """
    import dataclasses

    from keras_lr import models

    model = models.build(config.family, input_shape, num_classes, seed=seed,
                         **model_kwargs(config))
    if config.mup_base is None:
        return model, None
    from keras_lr import mup

    base_config = dataclasses.replace(config, width=config.mup_base, mup_base=None)
    base = models.build(config.family, input_shape, num_classes, seed=seed,
                        **model_kwargs(base_config))
    model, _ = mup.parametrize(model, base)
    return model, mup.infshapes(model, base)


# ---------------------------------------------------------------------- runs
def _runs(families, data, optimizers, rates, seeds, **fixed):
    return [RunConfig(family=f, data=data, optimizer=o, lr=r, seed=s, **fixed)
            for f, o, r, s in itertools.product(families, optimizers, rates, seeds)]


def _own_width(family, size):
    from keras_lr.study.runner import MODEL_KWARGS

    kwargs = MODEL_KWARGS[size][family]
    return kwargs["hidden"][0] if family == "mlp" else kwargs["filters"][0]


def _width(family, size, width):
    """None for the size's own width: one key for one model, whichever stage asks."""
    return None if width == _own_width(family, size) else width


def stages(*, families, optimizers, rates, seeds, common, depth_rates=None, norm_rates=None,
           depth_families=None, norm_families=None, depths=DEPTHS) -> list[Stage]:
    """The structure stage's runs: ``width``, ``depth`` and ``normalization`` stages.

    Args:
        families: families of the width sweep (``"mlp"``, ``"cnn"``).
        optimizers: ``"sgd"`` and/or ``"adam"``.
        rates: the width sweep's rates (the full grid: the best rate must lie inside).
        seeds: seeds (at least 3 for the claims' verdicts).
        common: the other `RunConfig` fields (``data``, ``epochs``, ``batch_size``, ``size``,
            ``limit``).
        depth_rates, norm_rates: the rates of the depth and normalization stages (default
            `rates`; the stable ranges end in the upper part of the grid).
        depth_families, norm_families: their families (default `families`).
        depths: the depth sweep (default `DEPTHS`).

    Example:
        >>> common = dict(data="digits", epochs=1, batch_size=32, size="quick", limit=None)
        >>> out = stages(families=("mlp",), optimizers=("adam",), rates=(0.01,), seeds=(0,),
        ...              common=common, depths=(1, 2))
        >>> [(s.name, len(s.configs)) for s in out]
        [('width', 4), ('depth', 4), ('normalization', 3)]
    """
    common = dict(common)
    data, size = common.pop("data"), common["size"]
    widths = WIDTHS[size]
    width_runs = []
    for family in families:
        base, depth = widths[family][0], WIDTH_DEPTH[family]
        for width in widths[family]:
            w = _width(family, size, width)
            width_runs += _runs((family,), data, optimizers, rates, seeds, width=w,
                                depth=depth, **common)
            width_runs += _runs((family,), data, optimizers, rates, seeds, width=width,
                                depth=depth, mup_base=base, **common)
    depth_runs = []
    for family in depth_families or families:
        for depth, residual in itertools.product(depths, (False, True)):
            depth_runs += _runs((family,), data, optimizers, depth_rates or rates, seeds,
                                depth=None if depth == 1 else depth, residual=residual,
                                **common)
    norm_runs = []
    for family in norm_families or families:
        for norm in ("none",) + NORMS_SWEPT:
            norm_runs += _runs((family,), data, optimizers, norm_rates or rates, seeds,
                               norm=norm, **common)
    return [Stage("width", width_runs), Stage("depth", depth_runs),
            Stage("normalization", norm_runs)]


# ---------------------------------------------------------------------- selection
def select(records, **fields):
    """Constant-schedule, unclipped runs matching `fields` (structure fields at their
    defaults unless given).

    Example:
        >>> rec = {"kind": "run", "family": "mlp", "schedule": "constant", "clip": "none",
        ...        "multipliers": "none", "norm": "batch"}
        >>> len(select([rec], family="mlp")), len(select([rec], family="mlp", norm="batch"))
        (0, 1)
    """
    from keras_lr.study.grid import STRUCTURE_DEFAULTS

    plain = {"schedule": "constant", "clip": "none", "multipliers": "none"}
    want = {**plain, **STRUCTURE_DEFAULTS, **fields}
    out = []
    for r in records:
        if r.get("kind") != "run":
            continue
        values = {**r, **structure_of(r)}
        if all(values.get(k) == v for k, v in want.items()):
            out.append(r)
    return out


def _own(records, family, size=None):
    sizes = {r.get("size") for r in records if r.get("kind") == "run" and r["family"] == family}
    return _own_width(family, size or (sorted(sizes)[0] if sizes else "default"))


def width_curves(records, family, optimizer, param, data="digits") -> dict:
    """``{width: {seed: {lr: record}}}`` of the width sweep under ``param`` (``"sp"`` or
    ``"mup"``). The sweep is where the μP runs are: the smallest base width among them, their
    depth; the SP curves are the runs of the same depth at those widths.

    Example:
        >>> width_curves([], "mlp", "adam", "mup") == {}
        True
    """
    runs = [r for r in records if r.get("kind") == "run" and r["family"] == family
            and r["data"] == data and r["optimizer"] == optimizer]
    mu = [structure_of(r) for r in runs if structure_of(r)["mup_base"] is not None]
    if not mu:
        return {}
    own = _own(runs, family)
    base = min(s["mup_base"] for s in mu)
    depth = min((s["depth"] for s in mu if s["mup_base"] == base), key=lambda d: d or 1)
    widths = {own if s["width"] is None else s["width"] for s in mu if s["mup_base"] == base}
    out = {}
    for w in widths:
        if param == "mup":
            chosen = select(runs, width=w, mup_base=base, depth=depth)
        else:
            chosen = select(runs, width=None if w == own else w, depth=depth)
        if chosen:
            out[w] = metrics.seed_curves(chosen)
    return dict(sorted(out.items())) if len(out) > 1 else {}


def depth_arms(records, family, optimizer, data="digits") -> dict:
    """``{(depth, residual): runs}`` of the depth sweep of one family and optimizer (arms
    without runs left out).

    Example:
        >>> rec = {"kind": "run", "family": "mlp", "optimizer": "adam", "data": "digits",
        ...        "schedule": "constant", "clip": "none", "multipliers": "none", "depth": 4}
        >>> list(depth_arms([rec], "mlp", "adam"))
        [(4, False)]
    """
    arms = {}
    for depth, residual in itertools.product(DEPTHS, (False, True)):
        runs = select(records, family=family, optimizer=optimizer, data=data,
                      depth=None if depth == 1 else depth, residual=residual)
        if runs:
            arms[(depth, residual)] = runs
    return arms


def norm_arms(records, family, optimizer, data="digits") -> dict:
    """``{norm: runs}`` for ``"none"`` and `NORMS_SWEPT` (a list may be empty).

    Example:
        >>> {norm: len(runs) for norm, runs in norm_arms([], "cnn", "sgd").items()}
        {'none': 0, 'batch': 0, 'layer': 0}
    """
    return {n: select(records, family=family, optimizer=optimizer, data=data, norm=n)
            for n in ("none",) + NORMS_SWEPT}


def subjects(records, **fields):
    """Sorted ``(family, optimizer, data)`` of the constant-schedule, unclipped runs whose
    structure fields pass the predicates `fields` (e.g. ``mup_base=lambda v: v is not None``).

    Example:
        >>> rec = {"kind": "run", "family": "mlp", "optimizer": "adam", "data": "digits",
        ...        "schedule": "constant", "clip": "none", "multipliers": "none",
        ...        "norm": "layer"}
        >>> subjects([rec], norm=lambda v: v != "none")
        [('mlp', 'adam', 'digits')]
    """
    found = set()
    for r in records:
        if r.get("kind") == "run" and r.get("schedule") == "constant" \
                and r.get("clip") == "none" and r.get("multipliers") == "none":
            s = structure_of(r)
            if all(fields[k](s[k]) for k in fields):
                found.add((r["family"], r["optimizer"], r["data"]))
    return sorted(found)


def structure_plan(quick: bool = False, seeds: int | None = None,
                   epochs: int | None = None, data: str = "digits",
                   families: Sequence[str] = ("mlp", "cnn"),
                   optimizers: Sequence[str] = OPTIMIZERS) -> Plan:
    """The full structure study (``keras-lr study --plan structure [--data D] [--models M]
    [--optimizers O]``).

    The MLP and the CNN, SGD (momentum 0.9) and Adam, every rate of ``1e-4:1:9``, 3 seeds,
    8 epochs: widths 32 to 256 (MLP, two hidden layers) and 4 to 32 (CNN) under SP and μP;
    depths 1, 2, 4 and 8 (CNN: conv blocks per stage), plain and residual; normalization
    none, batch and layer (`keras_lr.study.structure`). On a data set other than digits the
    models of size ``"standard"`` (for 28x28 and 32x32 images), 5 epochs, and the claims
    measured on that data set (`keras_lr.study.standard.evaluate_per_data`). With `quick`
    the quick plan's models (600 samples, 3 epochs, 2 seeds, rates ``1e-3:1:4``, widths 8
    and 32). `families` (``"mlp"``, ``"cnn"``) and `optimizers` (``"sgd"``, ``"adam"``)
    narrow it.

    Raises:
        ValueError: a family or optimizer the structure stage does not take.

    Example:
        >>> plan = structure_plan(quick=True, families=("mlp",), optimizers=("adam",))
        >>> for stage in plan.stages:
        ...     print(stage.name, len(stage.configs))
        width 32
        depth 64
        normalization 24
    """
    families = tuple(check_choice("family", f, ("mlp", "cnn")) for f in families)
    optimizers = tuple(check_choice("optimizer", o, OPTIMIZERS) for o in optimizers)
    if quick:
        rates = rate_grid(1e-3, 1.0, 4)
        seeds_ = tuple(range(seeds if seeds is not None else 2))
        common = dict(epochs=epochs or 3, batch_size=32, size="quick", limit=600)
    else:
        rates = rate_grid(1e-4, 1.0, 9)
        seeds_ = tuple(range(seeds if seeds is not None else 3))
        digits = data == "digits"
        common = dict(epochs=epochs or (8 if digits else 5), batch_size=32,
                      size="default" if digits else "standard", limit=None)
    stages_ = stages(families=families, optimizers=optimizers, rates=rates, seeds=seeds_,
                     common=dict(common, data=data))
    settings = {"families": families, "data": data, "optimizers": optimizers,
                "rates": rates, "seeds": len(seeds_), **common}
    description = "structure study (quick)" if quick else "structure study"
    claims = None
    if data != "digits":
        from keras_lr.study.standard import evaluate_per_data as claims
    return Plan(stages_, rates, description, settings, claims=claims)
