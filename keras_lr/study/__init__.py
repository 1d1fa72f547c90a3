"""The empirical learning-rate x architecture study behind ``keras-lr study``.

Modules:
    grid: run configs, ``--lrs`` parsing, the default, quick and custom plans.
    runner: one training run (compiled once per group, reset between rates and seeds).
    metrics: divergence, epochs to target, oscillation, stable range, aggregation.
    claims: the structural claims and their verdict rule.
    lrfree: the learning-rate-free sub-study (Prodigy, DAdaptAdam, ScheduleFreeAdamW against
        tuned Adam): its claim, table and the d estimates.
    figures, report: PNG figures, report.md and a self-contained report.html.
    store: results.jsonl (resume), results.csv, results.json.
    engine: `run_study`, progress bar, Ctrl-C handling.
    structure, structure_claims, structure_figures: the structure stage (width under SP and
        μP, depth, residual connections, normalization), its claims and figures.
    standard: the claims per data set (the standard plan on MNIST-5k, Fashion-MNIST, CIFAR-10).
    distributed: the study's work units as tasks on a Dask cluster (optional extra).

Example:

```python
from keras_lr import study

plan = study.default_plan(quick=True)
result = study.run_study(plan, "study_out")
print([(c["claim"], c["subject"], c["verdict"]) for c in result.claims])
```
"""

from keras_lr.study.claims import CLAIMS, evaluate_claims, verdict
from keras_lr.study.engine import StudyInterrupted, StudyResult, run_study, write_outputs
from keras_lr.study.grid import (
    ALL_OPTIMIZERS,
    CLIPS,
    DEFAULT_RATES,
    FAMILIES,
    LR_FREE_OPTIMIZERS,
    MULTIPLIERS,
    OPTIMIZERS,
    SCHEDULES,
    Plan,
    RangeTestConfig,
    RunConfig,
    Stage,
    custom_plan,
    default_plan,
    lr_free_runs,
    parse_list,
    parse_optimizers,
    parse_rates,
    rate_grid,
    standard_plan,
)
from keras_lr.study.parallel import run_parallel, use_parallel
from keras_lr.study.runner import Runner, make_optimizer, make_schedule, run_group
from keras_lr.study.store import Store
from keras_lr.study.structure import structure_plan

__all__ = [
    "ALL_OPTIMIZERS",
    "CLAIMS",
    "CLIPS",
    "DEFAULT_RATES",
    "FAMILIES",
    "LR_FREE_OPTIMIZERS",
    "MULTIPLIERS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Plan",
    "RangeTestConfig",
    "RunConfig",
    "Runner",
    "Stage",
    "Store",
    "StudyInterrupted",
    "StudyResult",
    "custom_plan",
    "default_plan",
    "evaluate_claims",
    "lr_free_runs",
    "make_optimizer",
    "make_schedule",
    "parse_list",
    "parse_optimizers",
    "parse_rates",
    "rate_grid",
    "run_group",
    "run_parallel",
    "run_study",
    "standard_plan",
    "structure_plan",
    "use_parallel",
    "verdict",
    "write_outputs",
]
