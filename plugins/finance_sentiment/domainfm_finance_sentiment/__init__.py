"""domainfm plugin ``finance_sentiment``: financial sentiment and topic models, and a negative-surge monitor.

Nothing here imports torch at module level: ``domainfm plugins list`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

DOMAIN = "finance_sentiment"
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

__all__ = ["DOMAIN", "LABELS", "__version__"]
