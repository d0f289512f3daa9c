"""The commit lane: stage in parallel, commit once per table.

``handoff`` (the staging side: a batch's objects for one table, written down durably),
``records`` (the hand-off format: a manifest of data files, Arrow rows, a JSON record),
``store`` (the port where hand-offs wait: a folder locally, S3 + an SQS FIFO queue in AWS),
``triggers`` (commit at a file count, a size or an age), ``committer`` (one table's waiting
hand-offs in one snapshot, exactly once, one commit in flight per table).

It sits above ``pipeline``: staging is the pipeline's journey, committing is its group commit.
"""
