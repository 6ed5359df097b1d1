"""Cross-cutting benefit terms and constraints for every domain (privacy, fairness, resources).

Filled in by the benefit engine (issue 4).
"""
