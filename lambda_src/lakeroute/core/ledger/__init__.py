"""What happened to each object: the ledger of committed sources (``rule``, read from the
snapshot summaries: ``summary``, kept past expiry: ``archive``), every attempt (``journal``),
the quarantine's records (``quarantine``) and the load history read back (``history``).

The ledger sits below reading and writing: the journey asks it first (already ingested?) and
the commit records into it last.
"""

from .rule import Ledger, Mark, MemoryLedger, TableState, held, reconcile, recorded
from .summary import ROUTES_PROP, SOURCES_PROP, Entry

__all__ = ["ROUTES_PROP", "SOURCES_PROP", "Entry", "Ledger", "Mark", "MemoryLedger", "TableState",
           "held", "reconcile", "recorded"]
