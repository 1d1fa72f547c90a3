"""The study's claims on the standard data sets (MNIST-5k, Fashion-MNIST, CIFAR-10).

`keras_lr.study.claims.evaluate_claims` measures the claims on the digits runs (and the
adding problem for clipping). `evaluate_per_data` applies the same measurements, with the
same thresholds and verdict rule, to each data set of the records in turn: the runs of data
set ``D`` stand in for the digits runs, and every claim row gets ``D`` in its subject
(``cnn/fashion_mnist``) and a ``data`` field. Claims whose runs a data set lacks come out "not measured", as on digits.
The clipping claim needs the adding problem, so the standard plan leaves it out.

Example:
    >>> evaluate_per_data([])
    []

Reference:
    ``docs/study.md``, "The study on the standard data sets".
"""

from __future__ import annotations

from keras_lr.study.claims import evaluate_claims

__all__ = ["evaluate_per_data"]

_STANDIN = "digits"


def _as_digits(record: dict, name: str) -> dict:
    record = dict(record, data=_STANDIN)
    if "variant" in record:
        record["variant"] = record["variant"].replace(f"data={name}|", f"data={_STANDIN}|")
    return record


def evaluate_per_data(records: list[dict]) -> list[dict]:
    """Claim rows for each data set of `records` other than ``adding``, ``/D`` in the subject.

    The clipping claim (``clip_rnn``, on the adding problem) is dropped: it does not depend on
    the image data set.
    """
    names = sorted({r.get("data") for r in records if r.get("kind") in ("run", "range_test")}
                   - {"adding", None})
    rows = []
    for name in names:
        mine = [_as_digits(r, name) for r in records if r.get("data") == name]
        for row in evaluate_claims(mine):
            if row["id"] == "clip_rnn":
                continue
            subject = row["subject"].replace(f"/{_STANDIN}", f"/{name}")
            if f"/{name}" not in subject:  # range tests already name it: cnn/mnist5k (adam)
                subject = f"{subject}/{name}"
            rows.append({**row, "subject": subject, "data": name})
    return rows
