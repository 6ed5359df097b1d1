"""The FastAPI application factory (see :mod:`domainfm.serve` for the routes)."""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of the route functions
# built in closures below (the predict request model is made per app, with its limits) at runtime.

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from domainfm import __version__
from domainfm.config import RunConfig
from domainfm.errors import ConfigError, DataError
from domainfm.manager import PluginManager
from domainfm.serve.artifacts import resolve_layouts
from domainfm.serve.auth import make_auth_dependency
from domainfm.serve.batching import MicroBatcher, QueueFullError
from domainfm.serve.context import ServeContext
from domainfm.serve.limits import BodySizeLimit
from domainfm.serve.predictors import DomainUnavailableError, InputError, PredictFailedError, PredictorRegistry
from domainfm.serve.runtime import BatchRunner, HeapTrimmer, tune_allocator
from domainfm.serve.schemas import (
    DomainHealth,
    ErrorResponse,
    HealthResponse,
    PluginsResponse,
    PredictRequestBase,
    PredictResponse,
    predict_request_model,
)
from domainfm.serve.settings import ServeSettings
from domainfm.serve.validation import PathRedactor, public_errors
from domainfm.types import ARTIFACT_METADATA, Artifact

log = logging.getLogger(__name__)


def _loaded_device(registry: PredictorRegistry, domain: str) -> str:
    """The device of ``domain``'s loaded predictor ("cpu" before it loads)."""
    return str(getattr(registry.loaded(domain), "device", "cpu"))


class PluginRouteError(Exception):
    """A plugin's own route raised: answered 500 naming the plugin (a bug in it, not the client's mistake)."""

    def __init__(self, plugin: str, error: BaseException) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r} failed: {type(error).__name__}: {error}")


class _PluginRoute(APIRoute):
    """Route class for plugin routers: an unexpected exception becomes a 503 naming the plugin."""

    plugin_name = "?"

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        plugin = self.plugin_name

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError, DomainUnavailableError, PredictFailedError,
                    InputError, QueueFullError):
                raise
            except DataError as exc:
                raise InputError(str(exc)) from exc
            except Exception as exc:
                raise PluginRouteError(plugin, exc) from exc

        return guarded


def _route_class(plugin: str) -> type[APIRoute]:
    return type(f"PluginRoute_{plugin.replace('.', '_')}", (_PluginRoute,), {"plugin_name": plugin})


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the body is not valid JSON (or not UTF-8)"},
    401: {"model": ErrorResponse, "description": "missing or invalid API key (when keys are configured)"},
    413: {"model": ErrorResponse, "description": "request body larger than max_body_bytes"},
    429: {"model": ErrorResponse, "description": "the domain's queue is full; retry later"},
    500: {"model": ErrorResponse, "description": "the domain's plugin failed on this request (a bug; see the server log)"},
    503: {"model": ErrorResponse, "description": "the domain has no model (none trained, or it failed to load)"},
}


def create_app(
    pm: PluginManager | None = None,
    config: RunConfig | None = None,
    artifacts: Mapping[str, Path] | None = None,
    settings: ServeSettings | None = None,
) -> FastAPI:
    """Build the server for the loaded plugins.

    :param pm: the plugin manager (default: the process-wide one; ``--plugins`` selects what it loads).
    :param config: run configuration (device, output_dir); default ``RunConfig()``.
    :param artifacts: explicit ``{domain: artifact or run dir}``; other domains use their newest finished
        run under ``settings.runs_dir`` (default ``config.output_dir``).
    :param settings: limits, batching, auth, CORS.
    :raises ConfigError: an explicit artifact is not one, or belongs to another domain.
    """
    if pm is None:
        from domainfm.manager import get_plugin_manager

        pm = get_plugin_manager()
    pm.load()
    config = config or RunConfig()
    settings = settings or ServeSettings()
    runs_dir = Path(settings.runs_dir if settings.runs_dir is not None else config.output_dir)
    explicit = dict(artifacts or {})
    layouts, reasons = resolve_layouts(pm.domains, explicit, runs_dir)
    resolved = {domain: layout.artifact_dir if layout is not None else None for domain, layout in layouts.items()}
    for domain, layout in layouts.items():
        if domain in explicit and layout is not None:
            found = Artifact.load(layout.artifact_dir).domain
            if found != domain:
                raise ConfigError(f"--artifact {domain}={explicit[domain]}: "
                                  f"{layout.artifact_dir / ARTIFACT_METADATA} is for domain {found!r}")
    registry = PredictorRegistry(pm, config, layouts, runs_dir=runs_dir, reasons=reasons)
    trimmer = HeapTrimmer(settings.malloc_trim_s)
    batchers = {
        domain: MicroBatcher(
            domain,
            BatchRunner(
                partial(registry.predict, domain),
                forward_batch=settings.forward_batch,
                torch_threads=settings.torch_threads,
                threads_min_records=settings.threads_min_records,
                precision=settings.precision,
                device=partial(_loaded_device, registry, domain),
                trimmer=trimmer,
            ),
            max_queue=settings.max_queue,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            enabled=settings.micro_batching,
            thread_initializer=_torch_threads_setter(settings.torch_threads),
        )
        for domain in resolved
    }
    runtime: dict[str, Any] = {
        "precision": settings.precision,
        "torch_threads": settings.torch_threads,
        "threads_min_records": settings.threads_min_records,
        "forward_batch": settings.forward_batch,
        "allocator": {"tuned": False},
        "malloc_trim_s": settings.malloc_trim_s,
    }

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.malloc_tuning:  # before the models allocate anything
            runtime["allocator"] = tune_allocator()
        set_threads = _torch_threads_setter(settings.torch_threads)
        if set_threads is not None:
            set_threads()
        if settings.preload:
            for domain, path in resolved.items():
                if path is not None:
                    with contextlib.suppress(DomainUnavailableError):  # reported by /health and on its routes
                        await run_in_threadpool(registry.get, domain)
        yield
        for batcher in batchers.values():
            await batcher.close()

    # Swagger UI and ReDoc from assets shipped in the package (fastapi-offline): /docs works without internet.
    app = FastAPIOffline(
        title="domainfm",
        version=__version__,
        description="Foundation models at work in the loaded domains. Predictions are domainfm Prediction records.",
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from an online validator
    )
    record_models = {domain: pm.domains[domain].record_model if domain in pm.domains else None for domain in resolved}
    serve = ServeContext(registry, batchers, record_models, settings)
    redact = PathRedactor(
        {"<runs_dir>": runs_dir, **{f"<{domain} artifact>": path for domain, path in resolved.items() if domain in explicit}}
    )
    app.state.registry = registry
    app.state.batchers = batchers
    app.state.serve = serve
    app.state.redact = redact
    app.state.runtime = runtime
    app.state.trimmer = trimmer
    app.state.settings = settings
    app.state.route_errors = {}
    _install_error_handlers(app, redact)

    keys = [k.get_secret_value() for k in settings.api_keys]
    guard = [Depends(make_auth_dependency(keys))] if keys else []

    @app.get("/health", response_model=HealthResponse, tags=["core"])
    async def health() -> HealthResponse:
        """Liveness and per-domain readiness. Always open (no API key needed); with API keys configured it
        leaves out artifact paths and error messages."""
        domains = {}
        for domain in registry.domains:
            batcher = batchers[domain]
            state = registry.status(domain)
            if keys:  # /health is open: without a key, say only whether each domain is ready
                state = {"status": state["status"], "device": state.get("device")}
            else:
                state = {k: redact(v) if k in ("artifact", "error") and isinstance(v, str) else v for k, v in state.items()}
            domains[domain] = DomainHealth(**state, queued=batcher.queued, batching=batcher.stats.as_dict())
        degraded = any(d.status == "failed" for d in domains.values()) or bool(app.state.route_errors)
        return HealthResponse(
            status="degraded" if degraded else "ok", version=__version__, domains=domains,
            runtime={**runtime, "malloc_trims": trimmer.trims},
        )

    core = APIRouter(dependencies=guard, responses={401: ERROR_RESPONSES[401]} if guard else {})

    @core.get("/plugins", response_model=PluginsResponse, tags=["core"])
    async def plugins() -> PluginsResponse:
        """Every plugin the manager knows: name, version, status (loaded | broken | disabled), domains."""
        infos = [info.as_dict() for info in pm.plugins.values()]
        for info in infos:
            if info["name"] in app.state.route_errors:
                info["error"] = app.state.route_errors[info["name"]]
            if isinstance(info.get("error"), str):
                info["error"] = redact(info["error"])
        return PluginsResponse.model_validate({"plugins": infos})

    for domain in resolved:
        request_model = predict_request_model(domain, serve.record_model(domain), settings.max_records, settings.max_text_chars)
        _add_predict_route(core, domain, request_model, serve)
    app.include_router(core)

    _add_plugin_routes(app, pm, registry, guard)

    # Our own limit rather than FastAPI's ``max_body_size``: that one answers 413 in plain text without
    # saying the limit, where every other error of this API is JSON with the field or limit named.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    return app


def _torch_threads_setter(threads: int | None) -> Callable[[], None] | None:
    """Sets torch's intra-op threads in the calling thread (OpenMP keeps the setting per thread, so the
    worker threads call it too). On a small or shared CPU, fewer threads than cores leave one for the
    event loop and avoid OpenMP spin-waiting against other processes."""
    if threads is None:
        return None

    def set_threads() -> None:
        import torch

        torch.set_num_threads(threads)

    return set_threads


def _add_predict_route(
    router: APIRouter, domain: str, request_model: type[PredictRequestBase], serve: ServeContext
) -> None:
    settings = serve.settings

    async def predict(body: request_model) -> Response:  # type: ignore[valid-type]
        records = serve.records(domain, body.as_records(), loc=body.record_locs())  # type: ignore[attr-defined]
        predictions = await serve.submit(domain, records)
        predictor = await serve.predictor(domain)
        payload = PredictResponse(domain=domain, device=str(predictor.device), predictions=predictions)
        return Response(payload.model_dump_json(exclude_none=True), media_type="application/json")

    router.add_api_route(
        f"/{domain}/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses={k: v for k, v in ERROR_RESPONSES.items() if k != 401},
        operation_id=f"{domain}_predict",
        summary=f"Predict a batch for {domain}",
        description=(
            f"Exactly one of `records` ({serve.record_model(domain).__name__} objects with {domain}'s input fields) "
            f"or `texts` (records with only `text`); at most {settings.max_records} per request, "
            f"{settings.max_text_chars} characters per string. A record that breaks its model or a limit is a 422 "
            "naming the field. Concurrent requests are micro-batched into one forward pass."
        ),
        tags=[domain],
    )


def _add_plugin_routes(app: FastAPI, pm: PluginManager, registry: PredictorRegistry, guard: list[Any]) -> None:
    """Each loaded plugin's ``domainfm_register_routes``, on its own router: one plugin failing to
    register is recorded (``/plugins``, ``/health``) and the others are served. Routes reach the models
    through the :class:`~domainfm.serve.context.ServeContext` (``ServeDep``), not ``get_predictor``."""
    for info in list(pm.plugins.values()):
        if info.status != "loaded":
            continue
        if not pm.hooks.implements(info.name, "domainfm_register_routes"):
            continue
        documented = (400, 401, 413, 429, 500, 503) if guard else (400, 413, 429, 500, 503)
        router = APIRouter(route_class=_route_class(info.name), responses={k: ERROR_RESPONSES[k] for k in documented})
        try:
            pm.hooks.register_routes(info.name, router, registry.get)  # raises what the plugin raised
            _check_openapi(router, info.name)
        except Exception as exc:
            app.state.route_errors[info.name] = f"domainfm_register_routes raised: {type(exc).__name__}: {exc}"
            continue
        app.include_router(router, dependencies=guard)


def _check_openapi(router: APIRouter, plugin: str) -> None:
    """Build the plugin's part of the OpenAPI schema now: a route whose models cannot be resolved (e.g. a
    class defined inside a function under ``from __future__ import annotations``) would otherwise make
    ``/openapi.json`` fail for every plugin."""
    from fastapi.openapi.utils import get_openapi

    try:
        get_openapi(title=plugin, version="0", routes=router.routes)
    except Exception as exc:
        raise RuntimeError(
            f"its routes' request/response models cannot be resolved ({type(exc).__name__}: {exc}); a model class "
            "defined inside a function is unresolvable under 'from __future__ import annotations': move it to "
            "module level or drop that import in the routes module"
        ) from exc


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate from the request (``"\\ud800"``) can never make
    rendering the error itself fail (a 500 in plain text)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _install_error_handlers(app: FastAPI, redact: PathRedactor) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return SafeJSONResponse({"detail": public_errors(exc.errors(), redact)}, status_code=422)

    @app.exception_handler(DomainUnavailableError)
    async def unavailable(_: Request, exc: DomainUnavailableError) -> JSONResponse:
        return SafeJSONResponse({"detail": redact(str(exc)), "domain": exc.domain}, status_code=503)

    @app.exception_handler(PredictFailedError)
    async def predict_failed(_: Request, exc: PredictFailedError) -> JSONResponse:
        log.error("%s", exc, exc_info=exc.__cause__ or exc)
        return SafeJSONResponse({"detail": redact(str(exc)), "domain": exc.domain}, status_code=500)

    @app.exception_handler(PluginRouteError)
    async def plugin_failed(_: Request, exc: PluginRouteError) -> JSONResponse:
        log.error("%s", exc, exc_info=exc.__cause__ or exc)
        return SafeJSONResponse({"detail": redact(str(exc)), "plugin": exc.plugin}, status_code=500)

    @app.exception_handler(QueueFullError)
    async def queue_full(_: Request, exc: QueueFullError) -> JSONResponse:
        return SafeJSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": "1"})

    @app.exception_handler(InputError)
    async def bad_input(_: Request, exc: InputError) -> JSONResponse:
        detail = [{"type": "value_error", "loc": ["body", "records"], "msg": redact(str(exc))}]
        return SafeJSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        return SafeJSONResponse({"detail": f"internal server error ({type(exc).__name__}); see the server log"}, status_code=500)
