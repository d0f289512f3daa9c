"""CDK code of lakeroute: one construct per concern, composed by :class:`LakerouteStack`.

``stacks.application.build`` adds the stage's stack (and cdk-nag) to an app; ``app.py`` is
the CLI entry point that calls it.
"""

from .config import StageConfig, StageConfigError
from .lakeroute_stack import DEFAULT_ROUTES_DIR, LakerouteStack

__all__ = ["DEFAULT_ROUTES_DIR", "LakerouteStack", "StageConfig", "StageConfigError"]
