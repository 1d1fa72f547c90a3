"""Tests of `keras-lr schedule` (in process through `main`, plus one console-script run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_lr.cli.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def assert_usage_error(status, err, *words):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-lr: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def test_plot_writes_a_png(tmp_path, capsys):
    out = tmp_path / "curve.png"
    status, stdout, _ = run(
        ["schedule", "plot", "warmup(cosine_decay(1e-3,1000),100)", "--steps", "1100",
         "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert status == 0 and str(out) in stdout
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_plot_several_specs_log_title_svg(tmp_path, capsys):
    out = tmp_path / "curves.svg"
    status, _, _ = run(
        ["schedule", "plot", "one_cycle(1e-2, 300)", "cosine_decay:initial_learning_rate=1e-2,"
         "decay_steps=300", "--steps", "300", "--out", str(out), "--log", "--title", "Two curves"],
        capsys,
    )  # fmt: skip
    assert status == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "Two curves" in svg
    assert "one_cycle(1e-2, 300)" in svg  # the legend names each spec


def test_plot_log_scale_with_zeros(tmp_path, capsys):
    out = tmp_path / "zeros.png"
    status, _, err = run(
        ["schedule", "plot", "linear_decay(1e-2, 50)", "--steps", "100", "--out", str(out),
         "--log"],
        capsys,
    )  # fmt: skip
    assert status == 0, err
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_values_prints_csv_equal_to_the_pytorch_formula(capsys):
    status, out, _ = run(
        ["schedule", "values", "step_decay(0.1, step_size=3, gamma=0.5)", "--steps", "10"], capsys
    )
    assert status == 0
    lines = out.strip().splitlines()
    assert lines[0] == "step,lr"
    steps, rates = zip(*(line.split(",") for line in lines[1:]), strict=True)
    assert [int(s) for s in steps] == list(range(10))
    expected = 0.1 * 0.5 ** (np.arange(10) // 3)  # StepLR: lr * gamma ** (t // step_size)
    np.testing.assert_allclose([float(r) for r in rates], expected, rtol=1e-6)


def test_values_every(capsys):
    status, out, _ = run(
        ["schedule", "values", "cosine_decay(1.0, 100)", "--steps", "101", "--every", "25"], capsys
    )
    assert status == 0
    rows = [line.split(",") for line in out.strip().splitlines()[1:]]
    assert [int(step) for step, _ in rows] == [0, 25, 50, 75, 100]
    expected = 0.5 * (1 + np.cos(np.pi * np.array([0, 25, 50, 75, 100]) / 100))
    np.testing.assert_allclose([float(lr) for _, lr in rows], expected, atol=1e-6)


def test_names_lists_the_spec_names(capsys):
    status, out, _ = run(["schedule", "names"], capsys)
    names = out.split()
    assert status == 0
    assert {"cosine_decay", "warmup", "one_cycle", "keras.CosineDecay"} <= set(names)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("cosine_decy(1e-3, 1000)", ["Unknown schedule 'cosine_decy'", "cosine_decay"]),
        ("cosine_decay(1e-3, 0)", ["Argument `decay_steps`", "Received: decay_steps=0"]),
        ("cosine_decay(1e-3, 1000", ["Invalid schedule spec"]),
        ("@/no/such/schedule.json", ["Cannot read schedule file"]),
    ],
)
@pytest.mark.parametrize("action", ["plot", "values"])
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, spec, words, action):
    argv = ["schedule", action, spec, "--steps", "10"]
    if action == "plot":
        argv += ["--out", str(tmp_path / "x.png")]
    status, out, err = run(argv, capsys)
    assert_usage_error(status, err, *words)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("target, words", [
    ("missing_dir/x.png", "does not exist"), ("is_a_dir", "it is a directory"),
    ("curve.unknownext", "unknown image type"), ("no_extension", "unknown image type"),
    ("a_file/x.png", "is a file, not a directory"),
])
def test_unwritable_out_exits_2(tmp_path, capsys, target, words):
    (tmp_path / "is_a_dir").mkdir()
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / target
    status, _, err = run(
        ["schedule", "plot", "constant(0.1)", "--steps", "5", "--out", str(out)], capsys
    )
    assert_usage_error(status, err, "cannot write", words)


@pytest.mark.skipif(
    sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
    reason="root ignores file permissions",
)
def test_read_only_directory_exits_2(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        status, _, err = run(
            ["schedule", "plot", "constant(0.1)", "--steps", "5", "--out", str(locked / "x.png")],
            capsys,
        )
    finally:
        locked.chmod(0o700)
    assert_usage_error(status, err, "cannot write")


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule"],
        ["schedule", "plot", "constant(0.1)", "--out", "x.png"],
        ["schedule", "plot", "constant(0.1)", "--steps", "0", "--out", "x.png"],
        ["schedule", "values", "constant(0.1)", "--steps", "ten"],
        ["schedule", "frobnicate"],
    ],
)
def test_argparse_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("keras-lr schedule")
    assert "error:" in err and "Traceback" not in err


def console_script() -> str:
    candidate = Path(sys.executable).with_name("keras-lr")
    found = str(candidate) if candidate.exists() else shutil.which("keras-lr")
    assert found, "the keras-lr console script is not installed (pip install -e .)"
    return found


def test_console_script_version_and_usage_error(tmp_path):
    script = console_script()
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    from keras_lr import __version__

    assert done.returncode == 0
    assert done.stdout.strip() == f"keras-lr {__version__}"
    done = subprocess.run(
        [script, "schedule", "plot", "constant(0.1)", "--steps", "-3", "--out", "x.png"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("keras-lr schedule plot: error:")
