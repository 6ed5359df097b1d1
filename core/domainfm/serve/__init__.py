"""The HTTP server (``domainfm serve``): one FastAPI app for the core and the plugins a team selected.

Importing this package imports neither FastAPI nor torch; :func:`domainfm.serve.app.create_app` does.

Routes:

- ``GET /health``: liveness and per-domain readiness (always open, even with API keys configured);
- ``GET /plugins``: every plugin the manager knows, with version, status and domains;
- ``POST /{domain}/predict``: a batch of ``records`` (dicts) or ``texts`` in, one
  :class:`~domainfm.types.Prediction` per input out, plus the device the model ran on;
- whatever plugins add through ``domainfm_register_routes``.

Which artifact serves a domain: the one named with ``--artifact DOMAIN=PATH``; otherwise the newest run
under ``<runs dir>/<domain>/`` whose ``run.json`` says ``finished`` (or ``trained``) and which holds an
artifact. A domain without one answers 503 on its routes; the other domains are unaffected.
"""
