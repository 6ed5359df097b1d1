"""The serve context: how routes (the core's and plugins') reach a domain's model through the server.

``ServeContext.predict`` applies what ``POST /{domain}/predict`` applies: the domain's record model, the
record and text limits, the shared predictor (503 when the domain has no model), the domain's micro-batcher
and queue bound (429) and the ``domainfm_predict`` hook. A plugin route takes it as a dependency::

    from domainfm.serve.context import ServeDep

    @router.post("/my_domain/thing")
    async def thing(body: ThingIn, serve: ServeDep) -> ThingOut:
        [prediction] = await serve.predict("my_domain", [{"text": body.text}], loc=[("body",)])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from domainfm.records import GenericRecord
from domainfm.serve.batching import MicroBatcher
from domainfm.serve.predictors import PredictorRegistry
from domainfm.serve.settings import ServeSettings
from domainfm.serve.validation import Loc, check_strings, prefixed
from domainfm.types import Prediction, Predictor


class ServeContext:
    """One per app (``app.state.serve``): limits, record models, predictors and batchers of every domain."""

    def __init__(
        self,
        registry: PredictorRegistry,
        batchers: Mapping[str, MicroBatcher],
        record_models: Mapping[str, type[BaseModel] | None],
        settings: ServeSettings,
    ) -> None:
        self.registry = registry
        self.batchers = dict(batchers)
        self._record_models = {domain: model or GenericRecord for domain, model in record_models.items()}
        self.settings = settings

    @property
    def domains(self) -> list[str]:
        return list(self.batchers)

    def record_model(self, domain: str) -> type[BaseModel]:
        """The pydantic model one record of ``domain`` is validated with (``GenericRecord`` if it declares none)."""
        return self._record_models.get(domain, GenericRecord)

    def records(
        self, domain: str, records: Sequence[Mapping[str, Any] | BaseModel], *, loc: Sequence[Loc] | None = None
    ) -> list[dict[str, Any]]:
        """Validate records for ``domain``: its record model, ``max_records`` and ``max_text_chars`` (every string,
        nested ones too, must also be valid Unicode). Returns them as dicts with the fields the client set.

        :param loc: where each record sits in the request, for error messages (default
            ``("body", "records", i)``; a route taking one record in its body passes ``[("body",)]``).
        :raises RequestValidationError: answered 422 with every offending field named.
        """
        where = list(loc) if loc is not None else [("body", "records", i) for i in range(len(records))]
        if len(where) != len(records):
            raise ValueError(f"loc has {len(where)} entries for {len(records)} records")
        max_records = self.settings.max_records
        if len(records) > max_records:
            raise RequestValidationError([{
                "type": "too_long", "loc": ("body", "records") if loc is None else ("body",),
                "msg": f"at most {max_records} records per request (max_records); got {len(records)}",
                "ctx": {"max_length": max_records},
            }])
        model = self.record_model(domain)
        out: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for record, prefix in zip(records, where, strict=True):
            try:
                validated = record if type(record) is model else model.model_validate(_plain(record))
            except ValidationError as exc:
                errors.extend(prefixed(exc.errors(include_url=False, include_input=False), prefix))
                continue
            data = validated.model_dump(exclude_unset=True)
            errors.extend(check_strings(data, prefix, self.settings.max_text_chars))
            out.append(data)
        if errors:
            raise RequestValidationError(errors)
        return out

    async def predictor(self, domain: str) -> Predictor:
        """The domain's shared predictor, loaded on first use (in a worker thread).

        :raises DomainUnavailableError: answered 503: the domain has no model or it failed to load.
        """
        loaded = self.registry.loaded(domain)
        if loaded is not None:
            return loaded
        return await run_in_threadpool(self.registry.get, domain)

    async def submit(self, domain: str, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Predict already validated records (see :meth:`records`) through the domain's micro-batcher."""
        await self.predictor(domain)
        return await self.batchers[domain].submit(records)

    async def predict(
        self, domain: str, records: Sequence[Mapping[str, Any] | BaseModel], *, loc: Sequence[Loc] | None = None
    ) -> list[Prediction]:
        """Validate (:meth:`records`) and predict: one :class:`~domainfm.types.Prediction` per record, in order.

        :raises RequestValidationError: 422, a record breaks the record model or a limit.
        :raises DomainUnavailableError: 503, the domain has no model.
        :raises QueueFullError: 429, the domain's queue is full.
        """
        if domain not in self.batchers:
            raise KeyError(f"domain {domain!r} is not served; served domains: {sorted(self.batchers)}")
        return await self.submit(domain, self.records(domain, records, loc=loc))


def _plain(record: Mapping[str, Any] | BaseModel) -> Any:
    return record.model_dump(exclude_unset=True) if isinstance(record, BaseModel) else record


def serve_context(request: Request) -> ServeContext:
    """FastAPI dependency: the app's :class:`ServeContext`."""
    context: ServeContext = request.app.state.serve
    return context


#: Annotate a route parameter with this to receive the :class:`ServeContext`.
ServeDep = Annotated[ServeContext, Depends(serve_context)]
