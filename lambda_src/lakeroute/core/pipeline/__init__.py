"""The object's journey orchestrated: route, read, shape, write, ledger, per object and per table.

``ingest`` (the ``Pipeline``: a batch of objects in, one commit per table out), ``plans``
(one table within a batch; where an object's journey stands), ``outcomes`` (what became of
each object), ``fanout`` (one object, several tables), ``budget`` (which objects may still
start before a deadline), ``preview`` (a route run without committing), ``checks`` (the
rules ``validate`` checks before any file arrives).
"""

from .ingest import Pipeline
from .outcomes import IngestReport, ObjectRef, Outcome

__all__ = ["IngestReport", "ObjectRef", "Outcome", "Pipeline"]
