#!/usr/bin/env python3
"""CDK entry point: the stack of one stage, chosen with ``-c stage=NAME`` (default ``dev``).

Stages and their settings live in ``cdk.json`` (context ``lakeroute:stages``). The account and
region come from the stage (optional) or the CLI's ``CDK_DEFAULT_ACCOUNT`` /
``CDK_DEFAULT_REGION``; nothing is looked up in AWS, so ``cdk synth`` runs offline, without
credentials and without Docker (the image is only staged). Route files are read from
``routes/`` next to this file, or from ``-c routes=DIR`` (relative to the current directory),
and validated: a bad route fails the synth with one ``error:`` line per problem (the text
``lakeroute validate`` prints) and exit code 2. cdk-nag's AwsSolutions pack checks every synth;
an unacknowledged finding fails it.
"""

from __future__ import annotations

import sys

from stacks.application import main

if __name__ == "__main__":
    sys.exit(main())
