"""``domainfm serve``: the HTTP API for the loaded plugins, on uvicorn (imported only when it runs)."""

from __future__ import annotations

from typing import Any

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--artifact", "artifact_flags", multiple=True, metavar="DOMAIN=PATH",
    help="Artifact (or run directory) serving DOMAIN; default: the newest finished run under runs/DOMAIN/.",
)
@click.option("--runs-dir", type=click.Path(file_okay=False), help="Where runs are looked for (default: runs).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--api-keys-file", type=click.Path(dir_okay=False), help="One API key per line (also $DOMAINFM_API_KEYS).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN", help="Allow CORS from ORIGIN (off by default).")
@click.option("--no-batching", is_flag=True, help="Run each request on its own (no micro-batching).")
@click.option("--max-batch", type=click.IntRange(min=1), help="Records per forward pass (default 64).")
@click.option("--max-wait-ms", type=click.FloatRange(0, 1000), help="How long a batch waits to fill (default 5).")
@click.option("--max-queue", type=click.IntRange(min=1), help="Queued requests per domain before 429 (default 256).")
@click.option("--max-body-bytes", type=click.IntRange(min=256), help="Request body limit (default 1000000).")
@click.option("--max-records", type=click.IntRange(min=1), help="Records per request (default 256).")
@click.option("--max-text-chars", type=click.IntRange(min=1), help="Characters per text (default 10000).")
@click.option("--torch-threads", type=click.IntRange(min=1), help="torch intra-op threads for large forward passes (default: torch's).")
@click.option("--threads-min-records", type=click.IntRange(min=1), help="Smaller forward passes run on 1 thread (default 16).")
@click.option("--forward-batch", type=click.IntRange(min=0), help="Records per forward pass, sorted by length (default 32; 0 = no split).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), help="fp32 (default: no autocast, each model at its artifact's own precision) or bf16 autocast.")
@click.option("--malloc-trim-s", type=click.FloatRange(min=0), help="glibc malloc_trim at most this often (default 5; 0 = never).")
@click.option("--malloc-tuning/--no-malloc-tuning", default=None, help="glibc mmap threshold / arena tuning (default on).")
@click.option("--preload/--lazy", default=True, show_default=True, help="Load every model at startup, or on first use.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve_command(
    host: str,
    port: int,
    artifact_flags: tuple[str, ...],
    runs_dir: str | None,
    device: str,
    api_keys_file: str | None,
    cors_origins: tuple[str, ...],
    no_batching: bool,
    log_level: str,
    preload: bool,
    **limits: Any,
) -> None:
    """Serve the loaded domains over HTTP: GET /health, GET /plugins, POST /DOMAIN/predict and plugin routes.

    Select plugins with the global --plugins a,b. OpenAPI docs at /docs. API keys (X-API-Key or
    Authorization: Bearer) are required when $DOMAINFM_API_KEYS or --api-keys-file gives any.
    """
    import os
    import sys
    from pathlib import Path

    if "torch" not in sys.modules:
        # OpenMP threads sleep instead of spinning between parallel regions: on a small or shared CPU a
        # spinning worker steals the core the event loop (or another process) needs.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from domainfm.config import RunConfig
    from domainfm.manager import get_plugin_manager
    from domainfm.serve.artifacts import parse_artifact_flags
    from pydantic import SecretStr

    from domainfm.serve.settings import ServeSettings, read_api_keys

    pm = get_plugin_manager()
    for info in pm.broken:
        click.echo(f"warning: plugin {info.one_line()}", err=True)
    given = {k: v for k, v in limits.items() if v is not None}
    settings = ServeSettings(
        micro_batching=not no_batching,
        api_keys=[SecretStr(key) for key in read_api_keys(api_keys_file)],
        cors_origins=list(cors_origins),
        preload=preload,
        runs_dir=Path(runs_dir) if runs_dir else None,
        **given,
    )
    from domainfm.serve.app import create_app

    app = create_app(pm, RunConfig.model_validate({"device": device}), parse_artifact_flags(artifact_flags), settings)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.auth_enabled:
        click.echo(f"warning: serving on {host} without API keys; anyone who can reach it can use it", err=True)
    for domain in app.state.registry.domains:
        path = app.state.registry.artifact_path(domain)
        click.echo(f"{domain}: {path if path else 'no artifact (503 until one is given)'}", err=True)

    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
