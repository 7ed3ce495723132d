"""Property tests: any command line or config file either works or fails with one line, exit 2.

Never a traceback: every generated input to the real ``vbayes`` parser (all sub-commands) and to
the config-file loader must parse, or end in ``SystemExit(2)`` with a single ``error:`` line.
A typed toy command gives an oracle: a config file parses iff every entry in it is valid, the
parsed values equal the file's, and command-line options win over the file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vbayes.cli import OneLineParser, build_parser
from vbayes.cli.commands._common import add_run_args, positive_float, positive_int
from vbayes.cli.config import ConfigError, config_values, read_config_file

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=1)
def real_parser() -> argparse.ArgumentParser:
    return build_parser()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace | None, int, str]:
    """(namespace or None, exit status, stderr) of ``parser.parse_args(argv)``."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            return parser.parse_args(argv), 0, err.getvalue()
        except SystemExit as stop:
            return None, int(stop.code or 0), err.getvalue()


def assert_clean_failure(status: int, stderr: str) -> None:
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in stderr, stderr


LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() splits on
NASTY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS), max_size=12)
NUMBER_TEXT = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0x10", "1_000", " 3", "3.", "", "-0", "True"]),
)


@st.composite
def real_argv(draw: st.DrawFn) -> list[str]:
    """A sub-command of the real CLI followed by a mix of its own options and junk tokens."""
    parser = real_parser()
    subs = subcommands(parser)
    name = draw(st.sampled_from(sorted(subs)))
    sub = subs[name]
    nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
    argv = [name]
    if nested and draw(st.booleans()):
        argv.append(draw(st.sampled_from(sorted(nested[0].choices))))
    options = sorted(o for a in sub._actions for o in a.option_strings if o.startswith("--") and o not in ("--help", "--config"))
    tokens = st.one_of(st.sampled_from(options) if options else st.nothing(), NUMBER_TEXT, NASTY_TEXT,
                       st.sampled_from(["--bogus", "-x", "--", "-", "--out"]))  # fmt: skip
    argv += draw(st.lists(tokens, max_size=6))
    return argv


@SETTINGS
@given(argv=real_argv())
def test_any_command_line_parses_or_fails_in_one_line(argv: list[str]) -> None:
    assume("--help" not in argv and "-h" not in argv)
    ns, status, stderr = parse(real_parser(), argv)
    if ns is None:
        assert_clean_failure(status, stderr)
    else:
        assert callable(getattr(ns, "func", None))


@SETTINGS
@given(argv=st.lists(st.one_of(NASTY_TEXT, NUMBER_TEXT), max_size=4))
def test_junk_before_any_command_fails_in_one_line(argv: list[str]) -> None:
    assume(not any(a.startswith("-h") or a.startswith("--h") or a.startswith("--v") for a in argv))
    assume(not argv or argv[0] not in subcommands(real_parser()))
    ns, status, stderr = parse(real_parser(), argv)
    assert ns is None
    assert_clean_failure(status, stderr)


@SETTINGS
@given(out=NASTY_TEXT.filter(lambda t: t.strip() != "" and not t.startswith("-")))
def test_resume_of_any_missing_directory_is_one_line_exit_2(out: str) -> None:
    from vbayes.cli import main

    err = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(err):
        status = main(["resume", "--out", str(Path(tmp) / "x" / out)])
    assert status == 2
    assert_clean_failure(status, err.getvalue())
    assert "nothing to resume" in err.getvalue()


@pytest.mark.parametrize("token", ["a\nb", "\r0", "x\u2028y"])
def test_line_breaks_in_arguments_stay_on_one_line(token: str) -> None:
    ns, status, stderr = parse(real_parser(), ["resume", "--out", "x", token])
    assert ns is None
    assert_clean_failure(status, stderr)


# ------------------------------------------------------------------ config files with an oracle
def toy_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vbayes toy")
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--arch", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--early-stopping", type=positive_int, default=None)
    parser.add_argument("--name", default="run")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[400])
    add_run_args(parser, "runs/toy", resumable=True)
    return parser


GOOD = {  # key -> strategy of values the option accepts, and the parsed value they give
    "epochs": st.integers(1, 10**6).map(lambda v: (v, v)),
    "lr": st.one_of(
        st.floats(1e-8, 1e3).map(lambda v: (v, v)),
        st.integers(1, 100).map(lambda v: (v, float(v))),
        st.floats(1e-8, 1e3).map(lambda v: (repr(v), v)),
    ),
    "arch": st.sampled_from(["mlp", "conv"]).map(lambda v: (v, v)),
    "early-stopping": st.one_of(st.none(), st.integers(1, 50)).map(lambda v: (v, v)),
    "early_stopping": st.integers(1, 50).map(lambda v: (v, v)),
    "name": st.text(max_size=8).map(lambda v: (v, v)),
    "no-progress": st.booleans().map(lambda v: (v, v)),
    "sizes": st.lists(st.integers(1, 1000), min_size=1, max_size=3).map(lambda v: (v, v)),
    "seed": st.integers(0, 2**32 - 1).map(lambda v: (v, v)),
    "device": st.sampled_from(["cpu", "cuda", "cuda:1"]).map(lambda v: (v, v)),
    "resume": st.booleans().map(lambda v: (v, v)),
}
BAD = {
    "epochs": st.one_of(st.integers(-5, 0), st.floats(allow_nan=True), st.booleans(), st.just("ten"), st.none(), st.just([3])),
    "lr": st.one_of(st.floats(max_value=0.0), st.just(math.inf), st.just(math.nan), st.just("fast"), st.booleans(), st.none()),
    "arch": st.one_of(st.sampled_from(["MLP", "resnet", ""]), st.integers(), st.none()),
    "early-stopping": st.one_of(st.integers(-3, 0), st.just(2.5), st.just("x")),
    "name": st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.text(), max_size=2)),
    "no-progress": st.one_of(st.integers(0, 1), st.just("true"), st.none()),
    "sizes": st.one_of(st.just([]), st.just([0]), st.integers(1, 4), st.just(["a"])),
    "device": st.one_of(st.integers(), st.none()),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.just("x")),
    "bogus": st.integers(),
    "help": st.booleans(),
    "config": st.just("other.json"),
    "": st.integers(),
}


@st.composite
def config_entries(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(file table, expected parsed values by dest, whether the whole file is valid)."""
    keys = draw(st.lists(st.sampled_from(sorted(set(GOOD) | set(BAD))), max_size=5, unique=True))
    keys = [k for k in keys if not (k == "early_stopping" and "early-stopping" in keys)]
    table: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    valid = True
    for key in keys:
        use_good = key in GOOD and (key not in BAD or draw(st.booleans()))
        if use_good:
            raw, parsed = draw(GOOD[key])
            table[key] = raw
            expected[key.replace("-", "_")] = parsed
        else:
            table[key] = draw(BAD[key])
            valid = False
    return table, expected, valid


def write_table(table: dict[str, Any], suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8")
    with handle:
        handle.write(json.dumps(table))
    return Path(handle.name)


@SETTINGS
@given(entries=config_entries())
def test_config_file_parses_iff_every_entry_is_valid(entries: tuple[dict[str, Any], dict[str, Any], bool]) -> None:
    table, expected, valid = entries
    path = write_table(table, ".json")
    try:
        ns, status, stderr = parse(toy_parser(), ["--config", str(path)])
    finally:
        path.unlink()
    if valid:
        assert ns is not None, stderr
        for dest, value in expected.items():
            assert getattr(ns, dest) == value, dest
    else:
        assert ns is None
        assert_clean_failure(status, stderr)
        assert f"config file {path}" in stderr


@SETTINGS
@given(cli_epochs=st.integers(1, 99), file_epochs=st.integers(1, 99), before=st.booleans(), lr=st.floats(1e-6, 1.0))
def test_command_line_wins_over_config_file(cli_epochs: int, file_epochs: int, before: bool, lr: float) -> None:
    path = write_table({"epochs": file_epochs, "lr": lr, "no_progress": True}, ".json")
    try:
        cli = ["--epochs", str(cli_epochs)]
        argv = cli + ["--config", str(path)] if before else ["--config", str(path)] + cli
        ns, _, stderr = parse(toy_parser(), argv)
    finally:
        path.unlink()
    assert ns is not None, stderr
    assert (ns.epochs, ns.lr, ns.no_progress) == (cli_epochs, lr, True)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)), suffix=st.sampled_from([".json", ".toml", ".cfg"]))
def test_arbitrary_file_bytes_never_crash_the_loader(raw: bytes, suffix: str) -> None:
    with tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False) as handle:
        handle.write(raw)
    path = Path(handle.name)
    try:
        try:
            table = read_config_file(path)
        except ConfigError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            return
        try:
            config_values(toy_parser(), table, str(path))
        except ConfigError as err:
            assert "\n" not in str(err)
    finally:
        path.unlink()


def test_toml_config_and_documented_errors(tmp_path: Path) -> None:
    good = tmp_path / "run.toml"
    good.write_text('epochs = 7\nlr = 0.01\narch = "conv"\nearly-stopping = 3\nno-progress = true\nsizes = [10, 20]\n')
    ns, _, stderr = parse(toy_parser(), ["--config", str(good)])
    assert ns is not None, stderr
    assert (ns.epochs, ns.lr, ns.arch, ns.early_stopping, ns.no_progress, ns.sizes) == (7, 0.01, "conv", 3, True, [10, 20])
    cases = {
        "missing.json": (None, "does not exist"),
        "bad.json": ("{epochs: 3}", "is not valid JSON"),
        "bad.toml": ("epochs = = 3", "is not valid TOML"),
        "list.json": ("[1, 2]", "must hold a table of options, not a list"),
        "unknown.json": ('{"epoch": 3}', "unknown option 'epoch'"),
        "type.json": ('{"epochs": "many"}', "epochs: expected a positive integer, got 'many'"),
        "range.toml": ("epochs = 0", "epochs: must be >= 1, got 0"),
        "choice.json": ('{"arch": "rnn"}', 'arch: "rnn" is not one of mlp, conv'),
        "flag.json": ('{"no-progress": "yes"}', 'no-progress: expected true or false, got "yes"'),
        "nested.toml": ("[vae]\nepochs = 3", "vae: cannot be set" if False else "unknown option 'vae'"),
    }
    for name, (text, fragment) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        ns, status, stderr = parse(toy_parser(), ["--config", str(path)])
        assert ns is None, name
        assert_clean_failure(status, stderr)
        assert fragment in stderr, (name, stderr)


@pytest.mark.parametrize("name", ["vae", "ae"])
def test_real_training_commands_accept_a_config_file(tmp_path: Path, name: str) -> None:
    subs = subcommands(real_parser())
    if name not in subs:
        pytest.skip(f"no `vbayes {name}` command in this checkout")
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 3, "batch-size": 64, "seed": 5}))
    ns, _, stderr = parse(real_parser(), [name, "--config", str(path), "--seed", "6"])
    assert ns is not None, stderr
    assert (ns.epochs, ns.batch_size, ns.seed) == (3, 64, 6)
    path.write_text(json.dumps({"epochs": -1}))
    ns, status, stderr = parse(real_parser(), [name, "--config", str(path)])
    assert ns is None
    assert_clean_failure(status, stderr)
    assert "epochs: must be >= 1" in stderr
