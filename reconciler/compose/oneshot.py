"""The one-shot commands' load of a plain directory (``validate``, ``plan``, ``diff``'s
policy check), kept light to import.

Owns: loading a directory with the manifest tools and the parse cache on disk
(``adapters.fs.parsecache``), the operator's policy file and applying it to a load, and
annotating a load with the variables its Terraform stacks declare
(``with_stack_variables``, the daemon's too). Nothing here imports a cluster, Git,
database or Terraform client: a `validate` pays only for what it uses (the caller that
wants the Terraform stack reader passes it in).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import yaml

from reconciler.adapters.errors import AdapterError
from reconciler.adapters.fs.parsecache import DiskParseCache
from reconciler.adapters.fs.source import DirectorySource
from reconciler.compose.tools import manifest_tools, parse_cache_dir
from reconciler.compose.twoparse import parse_in_two
from reconciler.core.loader import LoadResult, ParseTexts, load_repository
from reconciler.core.policy import Policy, PolicyError, check_policy, policy_from_doc
from reconciler.core.yamldoc import Problem

__all__ = ["StackReader", "checked", "load_directory", "read_policy", "with_stack_variables"]

log = logging.getLogger("reconciler.compose")

#: Reads the variables stacks declare: {stack directory: its files} -> {stack directory:
#: (names, errors)}.
StackReader = Callable[[Mapping[str, Mapping[str, str]]],
                       Mapping[str, tuple[frozenset[str], tuple[Problem, ...]]]]


def with_stack_variables(result: LoadResult, read: StackReader | None) -> LoadResult:
    """``result`` with the variables each Terraform stack declares (so a bump changing
    no declared input plans no Terraform step); rejected whole, every error at its
    ``file:line:col``, when Terraform's parser refuses a stack. A stack that cannot be
    read for another reason (no parser, a sandbox problem) stays unknown: every variable
    then counts, as before."""
    desired = result.desired
    if read is None or desired is None:
        return result
    stacks = sorted({s.terraform for s in desired.services.values() if s.terraform})
    try:
        found = read({d: desired.files_under_once(d) for d in stacks})
    except AdapterError as e:
        log.warning("variables of the Terraform stacks unknown (every variable counts): %s",
                    e)
        return result
    declared = {d: names for d, (names, _) in found.items()}
    problems = [p for _, errors in found.values() for p in errors]
    if problems:
        return replace(result, desired=None, errors=tuple(problems))
    return replace(result, desired=replace(desired, stack_variables=declared))


def read_policy(path: str | Path) -> Policy:
    """The operator's policy file (YAML); PolicyError naming the file and key."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise PolicyError(f"{path}: {e}") from None
    return policy_from_doc(doc, str(path))


def checked(result: LoadResult, policy: Policy | None) -> LoadResult:
    """``result``, rejected whole when it violates ``policy``."""
    if policy is None or result.desired is None:
        return result
    problems = check_policy(result.desired, policy)
    if not problems:
        return result
    return replace(result, desired=None, errors=problems)


def load_directory(path: str | Path, stacks: StackReader | None = None) -> LoadResult:
    """The desired state in a directory, loaded once (``validate``, ``plan``, ...); with
    ``stacks`` (``compose.reconciler.stack_reader``), annotated with the variables each
    Terraform stack declares, as the daemon plans (for a plan or status compared with
    the live workspaces). What it parses is kept on disk for the next one-shot command
    (``parse_cache_dir``)."""
    parse: ParseTexts = parse_in_two
    where = parse_cache_dir()
    if where is not None:
        parse = DiskParseCache(where, str(Path(path).resolve())).wrap(parse_in_two)
    result = load_repository(DirectorySource(path), None, parse, manifest_tools())
    return with_stack_variables(result, stacks)
