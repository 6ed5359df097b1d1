"""The shared engine: fine-tuning, encoding, vector search and calibration.

Import the submodules directly (``from domainfm.engine.text_classifier import ...``); they import torch,
so nothing here is imported by ``import domainfm``.
"""
