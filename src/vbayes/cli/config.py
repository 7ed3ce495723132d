"""Typed configuration files for the command line (``--config FILE``).

A config file is a flat JSON object (``.json``) or TOML table (``.toml``) whose keys are a
command's long options, spelled either way (``batch-size`` or ``batch_size``)::

    # vae.toml                                  # vae.json
    epochs = 50                                 {"epochs": 50, "latent": 2, "arch": "conv",
    latent = 2                                   "early-stopping": 5, "no-progress": true}
    arch = "conv"
    early-stopping = 5

Each value is checked exactly as the command line checks it (the option's type, range and
choices); flags take ``true``/``false``; an option whose default is none accepts ``null``
(JSON only). Options given on the command line win over the file. Any problem is reported as
one line naming the file, the key and the value, with exit status 2. Nothing is evaluated:
the file is parsed by ``json``/``tomllib``, never executed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Sequence

from vbayes.errors import VBayesError

__all__ = ["ConfigError", "read_config_file", "config_values", "install_config_option", "command_line",
           "repeat_command"]

_SENTINEL = object()
_RESERVED = {"help", "config", "version"}


class ConfigError(VBayesError):
    """A config file is missing, malformed, or holds an unknown key or a value of the wrong type."""


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level table of a ``.json`` or ``.toml`` file (other suffixes are read as JSON).

    Raises :class:`ConfigError` (one line, naming the file) when it cannot be read or parsed or
    is not a flat table.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "not UTF-8 text"
        raise ConfigError(f"config file {file} cannot be read: {reason}") from None
    if file.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ConfigError(f"config file {file}: TOML needs Python >= 3.11; use JSON") from None
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {file} is not valid TOML: {err}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config file {file} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
        except RecursionError:
            raise ConfigError(f"config file {file} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file} must hold a table of options, not a {type(data).__name__}")
    return data


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Optional actions of ``parser`` by dest and by long-option spelling (without dashes)."""
    table: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse has no public accessor
        if not action.option_strings or action.dest in _RESERVED or action.dest == argparse.SUPPRESS:
            continue
        table[action.dest] = action
        for opt in action.option_strings:
            if opt.startswith("--"):
                table[opt[2:]] = action
                table[opt[2:].replace("-", "_")] = action
    return table


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert_one(action: argparse.Action, value: Any) -> Any:
    """``value`` checked and converted as argparse would convert its text; raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a {'string' if action.type is None else 'number or string'}, got {_describe(value)}")
    convert: Callable[[str], Any] | None = action.type  # type: ignore[assignment]
    if convert is None:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_describe(value)}")
        result: Any = value
    else:
        text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        try:
            result = convert(text)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
            raise ValueError(str(err).splitlines()[0] if str(err) else f"invalid value {_describe(value)}") from None
    if action.choices is not None and result not in action.choices:
        raise ValueError(f"{_describe(value)} is not one of {', '.join(map(str, action.choices))}")
    return result


def _convert(action: argparse.Action, value: Any) -> Any:
    flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction))
    if flag:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_describe(value)}")
        return value if not isinstance(action, argparse._StoreFalseAction) else not value
    if value is None:
        if action.default is None:
            return None
        raise ValueError("null is not allowed here")
    if not isinstance(action, argparse._StoreAction):
        raise ValueError("cannot be set from a config file")
    if action.nargs in (None, "?"):
        return _convert_one(action, value)
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {_describe(value)}")
    if isinstance(action.nargs, int) and len(value) != action.nargs:
        raise ValueError(f"expected a list of {action.nargs} values, got {len(value)}")
    if action.nargs == "+" and not value:
        raise ValueError("expected a non-empty list")
    return [_convert_one(action, v) for v in value]


def config_values(parser: argparse.ArgumentParser, data: dict[str, Any], source: str) -> dict[str, Any]:
    """``{dest: value}`` from a config table, every value checked against ``parser``'s options.

    ``source`` names the file in errors. Raises :class:`ConfigError` for an unknown key or a bad
    value, e.g. ``config file run.toml: epochs: must be >= 1, got 0``.
    """
    table = _options(parser)
    values: dict[str, Any] = {}
    for key, value in data.items():
        action = table.get(key) if isinstance(key, str) else None
        if action is None:
            known = ", ".join(sorted({a.option_strings[-1].lstrip("-") for a in table.values()}))
            raise ConfigError(f"config file {source}: unknown option {key!r} (known: {known})")
        try:
            values[action.dest] = _convert(action, value)
        except ValueError as err:
            raise ConfigError(f"config file {source}: {key}: {err}") from None
    return values


def install_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` to ``parser``: options from the file, command-line options winning.

    The parser's ``parse_known_args`` is wrapped (on this instance only): after a normal parse,
    the arguments are parsed once more into a namespace pre-filled with a sentinel, which tells
    which options the command line really gave; the file sets every other one.
    """
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="JSON or TOML file of options (command-line options win)")  # fmt: skip
    original = parser.parse_known_args

    def parse_known_args(args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> Any:
        result, extras = original(args, namespace)
        path = getattr(result, "config", None)
        if path is None:
            return result, extras
        probe = argparse.Namespace(**{a.dest: _SENTINEL for a in parser._actions if a.dest != argparse.SUPPRESS})
        given, _ = original(args, probe)
        try:
            values = config_values(parser, read_config_file(path), str(path))
        except ConfigError as err:
            parser.error(str(err))
        for dest, value in values.items():
            if getattr(given, dest, _SENTINEL) is _SENTINEL:
                setattr(result, dest, value)
        return result, extras

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


#: Options whose value is a path: a repeated command names it absolute, so it runs from any folder.
PATH_OPTIONS = frozenset({"out", "data_dir", "config"})
#: Options about one invocation, not about the run: a repeated command leaves them out (``--config``
#: too: its values are already in the namespace, each spelled out).
_INVOCATION = frozenset({"overwrite", "resume", "config", "help", "version"})


def _argument_text(value: Any, path: bool) -> str:
    if path:
        return os.path.abspath(os.fspath(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):  # a comma-separated option such as --hidden 100,100
        return ",".join(_argument_text(v, False) for v in value)
    return str(value)


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, prog: str) -> str:
    """The command line ``prog ...`` that ``parser`` parses back into ``args`` (shell-quoted).

    Walks ``parser``'s actions in order: every option whose value is not ``None`` is spelled out,
    defaults included (so a later change of a default does not change a repeated run); an option
    whose value is ``None`` (not given, no default) is left out; a flag appears when it differs
    from its default; floats are written with ``repr`` (exact), sequences comma-separated, the
    paths of :data:`PATH_OPTIONS` absolute. ``--overwrite``, ``--resume`` and ``--config`` are
    left out (they are about one invocation; a config file's values are spelled out instead).
    """
    parts = shlex.split(prog)
    for action in parser._actions:  # argparse has no public accessor
        if action.dest in _INVOCATION or action.dest == argparse.SUPPRESS:
            continue
        value = getattr(args, action.dest, None)
        if value is None:
            continue
        if not action.option_strings:
            parts.append(_argument_text(value, False))
            continue
        option = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
        if isinstance(action, argparse.BooleanOptionalAction):  # option strings: --name, --no-name
            parts.append(option if value else f"--no-{option[2:]}")
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if value != action.default:
                parts.append(option)
        elif not isinstance(action, argparse._StoreAction):
            raise ValueError(f"command_line: cannot spell out {option} ({type(action).__name__})")
        elif action.nargs not in (None, "?"):
            parts += [option, *(_argument_text(v, action.dest in PATH_OPTIONS) for v in value)]
        else:
            parts += [option, _argument_text(value, action.dest in PATH_OPTIONS)]
    return shlex.join(parts)


def repeat_command(args: argparse.Namespace) -> str:
    """The ``vbayes`` command line that repeats the run of ``args`` (parsed by ``vbayes COMMAND``):
    :func:`command_line` over that sub-command's parser; ``vbayes resume`` replays it."""
    from vbayes.cli.entry import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return command_line(commands[args.command], args, f"vbayes {args.command}")
