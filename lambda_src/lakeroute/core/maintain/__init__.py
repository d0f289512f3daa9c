"""Table maintenance: compaction, snapshot expiry, orphan files, manifest rewrite.

``maintenance`` (what ``lakeroute maintain`` and the scheduled task run, per table),
``compaction`` (bin-packing small files), ``replace_files`` (the REPLACE snapshot it commits),
``expiry`` (which snapshots go), ``references`` (which files the metadata references).
"""
