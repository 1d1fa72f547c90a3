"""Keep README.md true: run its Python quick start and its main-job command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from keras_lr.cli.main import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)


def test_readme_has_one_fresh_machine_install_command_and_keeps_an_installed_backend():
    commands = [line.split("#")[0].strip() for block in blocks("bash")
                for line in block.splitlines() if "pip" in line]
    # A fresh machine: one command naming a backend extra (and test: pytest, hypothesis).
    # JAX runs the study fastest (the main job uses it); TensorFlow is the test command's.
    assert commands[0] == 'python -m pip install ".[jax,tensorflow-cpu,all,test]"'
    # Next to an existing tensorflow / jax / torch: no backend extra, nothing replaced.
    assert commands[1:] == ['python -m pip install ".[all]"']
    assert "python -m pytest -q -n auto --dist loadfile" in blocks("bash")[-1]


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    sources = blocks("python")
    assert sources, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)
    for source in sources:
        exec(compile(source, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    # The three recipes trained 2 epochs of 8 batches: check the rates they report.
    assert "StepLR: lr after 2 epochs = 0.1" in printed
    assert f"ExponentialLR: lr after 2 epochs = {0.1 * 0.9**2:.4g}" in printed
    assert f"LambdaLR warmup: lr after 2 epochs = {0.1 * 16 / 500:.4g}" in printed


def test_readme_main_command_runs(tmp_path, capsys):
    lines = [line for block in blocks("bash") for line in block.splitlines()]
    # A command may start with environment assignments (the main job's KERAS_BACKEND=jax).
    commands = [line for line in lines if re.match(r"(?:[A-Z_]+=\S+ )*keras-lr ", line)]
    assert commands, "README.md shows no keras-lr command"
    assert "KERAS_BACKEND=jax keras-lr study" in commands, (
        "README's main job must be `keras-lr study`, on the backend measured fastest")
    for command in commands:
        argv = [word for word in shlex.split(command) if not re.match(r"[A-Z_]+=", word)][1:]
        if argv[:1] in (["study"], ["tune"]):
            # The default study and a 30-trial search take minutes; tests/study runs
            # `study --quick` and tests/tuner runs `tune` end to end. Here: the README's
            # exact command line must parse.
            args = build_parser().parse_args(argv)
            assert args.func is not None
            continue
        if "--out" in argv:
            index = argv.index("--out") + 1
            argv[index] = str(tmp_path / argv[index])
        assert main(argv) == 0, command
        if "--out" in argv:
            assert Path(argv[argv.index("--out") + 1]).stat().st_size > 0
