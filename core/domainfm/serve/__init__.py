"""The HTTP server (``domainfm serve``): one FastAPI app for the core and the plugins a team selected.

Importing this package imports neither FastAPI nor torch; :func:`domainfm.serve.app.create_app` does.

Routes:

- ``GET /health``: liveness and per-domain readiness (always open, even with API keys configured);
- ``GET /plugins``: every plugin the manager knows, with version, status and domains;
- ``POST /{domain}/predict``: a batch of ``records`` (dicts) or ``texts`` in, one
  :class:`~domainfm.types.Prediction` per input out, plus the device the model ran on;
- whatever plugins add through ``domainfm_register_routes`` (they predict through
  :class:`~domainfm.serve.context.ServeContext`, with the same checks as ``/{domain}/predict``);
- ``GET /docs`` and ``/redoc``: the API documentation, from assets shipped with the package (no internet).

Statuses: 422 for a client mistake (the body names the field and never echoes the input), 413 for a body over
``max_body_bytes``, 429 when a domain's queue is full, 500 when a plugin fails on a request (a bug), 503 only when
a domain has no model. No body shows a server path.

Which artifact serves a domain: the one named with ``--artifact DOMAIN=PATH``; otherwise the newest run
under ``<runs dir>/<domain>/`` whose ``run.json`` says ``finished`` (or ``trained``) and which holds an
artifact. A domain without one answers 503 on its routes; the other domains are unaffected.
"""
