"""domainfm-education: short-answer grading, knowledge tracing and what to study next.

Two domains:

- ``education``: grade free-text answers against reference answers (3-way labels correct / contradictory /
  incorrect, or ordinal scores) with a cross-encoder fine-tuned from the base model; uncertain answers go
  to a human-review queue; feedback names what the answer misses relative to the closest reference.
- ``knowledge_tracing``: predict each student's next answer from their history (DKT LSTM or an
  AKT-style attention model), estimate mastery per skill and recommend what to study next.
"""

__version__ = "0.1.0"
