"""Shell completion scripts for bash, zsh and fish, generated from the argument parser.

Owns: turning the parser's subcommands, options and choices into each shell's
completion language, so completion never falls out of step with the commands. Options
taking a value complete their choices when they have some, else file names.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    takes_value: bool
    choices: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    #: Choices of the first positional argument (``completion bash|zsh|fish``); empty:
    #: positional arguments are file names.
    positional: tuple[str, ...]


def _options(p: argparse.ArgumentParser) -> tuple[tuple[Option, ...], tuple[str, ...]]:
    opts: list[Option] = []
    positional: tuple[str, ...] = ()
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            continue
        choices = tuple(str(c) for c in a.choices) if a.choices else ()
        if not a.option_strings:
            positional = positional or choices
            continue
        opts.append(Option(tuple(a.option_strings), a.nargs != 0, choices,
                           (a.help or "").replace("%%", "%")))
    return tuple(opts), positional


def commands(parser: argparse.ArgumentParser) -> tuple[Command, ...]:
    """The parser's subcommands (in the order ``--help`` lists them)."""
    out: list[Command] = []
    for a in parser._actions:
        if not isinstance(a, argparse._SubParsersAction):
            continue
        helps = {c.dest: c.help or "" for c in a._choices_actions}
        for name, sub in a.choices.items():
            opts, positional = _options(sub)
            out.append(Command(name, helps.get(name, ""), opts, positional))
    return tuple(out)


def _words(items: tuple[str, ...]) -> str:
    return " ".join(items)


def bash(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    top, _ = _options(parser)
    cases = []
    for c in cmds:
        flags = _words(tuple(f for o in c.options for f in o.flags))
        values = []
        for o in c.options:
            if o.takes_value:
                pattern = "|".join(o.flags)
                reply = (f'COMPREPLY=($(compgen -W {shlex.quote(_words(o.choices))} -- "$cur"))'
                         if o.choices else 'COMPREPLY=($(compgen -f -- "$cur"))')
                values.append(f"        {pattern}) {reply}; return 0 ;;")
        positional = (f'COMPREPLY=($(compgen -W {shlex.quote(_words(c.positional))} '
                      f'-- "$cur"))' if c.positional else 'COMPREPLY=($(compgen -f -- "$cur"))')
        cases.append(
            f"    {c.name})\n"
            f'      case "$prev" in\n' + "\n".join(values) + ("\n" if values else "") +
            "      esac\n"
            f'      if [[ "$cur" == -* ]]; then\n'
            f'        COMPREPLY=($(compgen -W {shlex.quote(flags)} -- "$cur"))\n'
            f"      else\n        {positional}\n      fi ;;")
    names = _words(tuple(c.name for c in cmds))
    top_flags = _words(tuple(f for o in top for f in o.flags))
    return (
        "# bash completion for reconciler: source <(reconciler completion bash)\n"
        "_reconciler() {\n"
        '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"\n'
        '  local cmd="" i\n'
        "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
        '    if [[ "${COMP_WORDS[i]}" != -* ]]; then cmd="${COMP_WORDS[i]}"; break; fi\n'
        "  done\n"
        '  case "$cmd" in\n'
        '    "")\n'
        f'      COMPREPLY=($(compgen -W {shlex.quote(names + " " + top_flags)} -- "$cur")) ;;\n'
        + "\n".join(cases) + "\n"
        "  esac\n"
        "}\n"
        "complete -o filenames -F _reconciler reconciler\n")


def zsh(parser: argparse.ArgumentParser) -> str:
    """zsh runs the bash function through ``bashcompinit`` (part of zsh)."""
    return ("#compdef reconciler\n"
            "# zsh completion for reconciler: source <(reconciler completion zsh)\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash(parser))


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    names = _words(tuple(c.name for c in cmds))
    lines = ["# fish completion for reconciler: reconciler completion fish | source",
             "complete -c reconciler -f"]
    for c in cmds:
        lines.append(f"complete -c reconciler -n '__fish_use_subcommand' -a {c.name} "
                     f"-d {_fish_quote(c.help)}")
        cond = f"'__fish_seen_subcommand_from {c.name}'"
        if c.positional:
            lines.append(f"complete -c reconciler -n {cond} -a "
                         f"{_fish_quote(_words(c.positional))}")
        else:
            lines.append(f"complete -c reconciler -n {cond} -F")
        for o in c.options:
            parts = []
            for f in o.flags:
                parts.append(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}")
            value = ""
            if o.takes_value:
                value = f" -x -a {_fish_quote(_words(o.choices))}" if o.choices else " -r -F"
            lines.append(f"complete -c reconciler -n {cond} {' '.join(parts)}{value} "
                         f"-d {_fish_quote(o.help.split(';')[0][:80])}")
    lines.append(f"# subcommands: {names}")
    return "\n".join(lines) + "\n"


SHELLS = {"bash": bash, "zsh": zsh, "fish": fish}


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``; ``args.root`` is the whole parser."""
    sys.stdout.write(SHELLS[args.shell](args.root))
    return 0
