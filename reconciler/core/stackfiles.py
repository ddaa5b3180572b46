"""Which files a Terraform stack in the repository may not ship. Pure.

Owns: the names that would let a pull request replace state or our bookkeeping, inject
variables, or bring its own provider binaries and CLI configuration into a workspace —
refused at load (the whole revision is rejected) and again when a workspace is prepared.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

#: (glob on the path inside the stack, why it is refused)
RESERVED: tuple[tuple[str, str], ...] = (
    ("*.tfstate", "state is Terraform's own: a shipped state file would replace it"),
    ("*.tfstate.backup", "state is Terraform's own: a shipped state file would replace it"),
    ("*.tfvars", "variables come from the cell (a shipped .tfvars file would override them)"),
    ("*.tfvars.json",
     "variables come from the cell (a shipped .tfvars file would override them)"),
    ("applied.json", "the reconciler's record of the last apply"),
    (".reconciler-init", "the reconciler's record of the last init"),
    ("reconciler.tfplan", "the reconciler's saved plan"),
    (".terraform/*", "providers and modules are installed by init, never shipped"),
    ("terraform.d/*", "providers come from the operator's mirror: a stack's own plugin "
     "directory would be an implicit local mirror"),
    (".terraform.d/*", "providers come from the operator's mirror: a stack's own plugin "
     "directory would be an implicit local mirror"),
    (".terraformrc", "the Terraform CLI configuration is the operator's"),
    ("terraform.rc", "the Terraform CLI configuration is the operator's"),
)


def stack_file_problem(name: str) -> str | None:
    """Why ``name`` (a path relative to the stack directory) may not be shipped, or None."""
    lowered = name.lower()
    base = lowered.rsplit("/", 1)[-1]
    for pattern, why in RESERVED:
        target = lowered if "/" in pattern else base
        directory = pattern[:-1] if pattern.endswith("/*") else None
        if fnmatchcase(target, pattern) or (directory is not None
                                            and f"/{directory}" in f"/{lowered}"):
            return f"a Terraform stack may not ship {name!r}: {why}"
    return None
