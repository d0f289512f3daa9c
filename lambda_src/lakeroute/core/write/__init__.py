"""Writing: rows staged as data files, then committed exactly once in one snapshot per table.

``staging`` (rows cast and written as data files, not yet visible), ``modes`` (what replace
and overwrite delete; shared rewrite helpers), ``upsert`` (the merge by key), ``commit`` (the
snapshot, planned in each attempt, retried on conflict, recorded in the ledger).
"""
