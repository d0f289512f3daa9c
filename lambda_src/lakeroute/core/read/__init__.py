"""Reading: the object as DuckDB's relation ``source``, the route SQL over it, Arrow batches out.

``engine`` (the locked-down connection per object, time limits), ``source_view`` (the reader
call), ``hints`` (schema hints applied to the reader), ``rejects`` (bad rows set aside),
``streams`` (compressed objects proven whole), ``depth`` (JSON nesting checked before DuckDB
reads it), ``crash`` and ``isolated`` (crash markers; an object a process died on read in a
child first), ``scratch`` (private copies DuckDB reads), ``alarms`` (the thread that fires
time limits).
"""
