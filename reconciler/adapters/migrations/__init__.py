"""Expand/contract migrations against PostgreSQL: the ledger, the SQL runner, the job runner.

Owns: connecting to a cell's database (credentials only from the environment or a file
named by ``DatabaseRef``), the ledger table ``reconciler.migration_ledger`` in every target
database, running one phase (expand / contract / rollback) of one migration in one cell,
and reading which migrations are in which phase for the live snapshot.
Must never: decide *when* a phase should run (the planner does), re-run a recorded phase,
silently accept a changed step, or put a connection string or password in a message.
Raises only ``reconciler.adapters.errors`` types.
"""

from reconciler.adapters.migrations.ledger import LEDGER_TABLE, LedgerRow
from reconciler.adapters.migrations.report import migration_phases, read_phases
from reconciler.adapters.migrations.runner import PhaseResult, run_phase

__all__ = ["LEDGER_TABLE", "LedgerRow", "PhaseResult", "migration_phases", "read_phases",
           "run_phase"]
