"""``domainfm cs``: ask a question, chat, record feedback, update the knowledge index in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from domainfm_customer_service import DOMAIN

RUN_HELP = "run directory, artifact directory or domain name (default: the newest run of customer_service under ./runs)"


def find_artifact(run: str | None, artifact: str | None, output_dir: str = "runs", variant: str | None = None) -> Path:
    """The artifact directory ``--artifact``/``--run`` name (``--artifact`` wins), else the newest customer_service
    run's, through the resolver every command uses (:func:`domainfm.run_layout.resolve_model`: a multi-variant run
    gives the variant ``--variant`` names, else the one its benefit report chose, else it is refused)."""
    from domainfm.errors import DomainfmError
    from domainfm.run_layout import resolve_model

    try:
        return resolve_model(artifact or run or DOMAIN, domain=DOMAIN, variant=variant, output_dir=output_dir).artifact_dir
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None


def _load(run: str | None = None, artifact: str | None = None, variant: str | None = None, device: str = "auto",
          no_ner: bool = False, generator: str | None = None) -> Any:
    """The assistant the common options name (``--run``/``--artifact``/``--variant``, ``--device``, ...)."""
    from domainfm.device import resolve_device
    from domainfm.errors import DomainfmError

    from domainfm_customer_service.assistant import CustomerServiceAssistant

    path = find_artifact(run, artifact, variant=variant)
    try:
        return CustomerServiceAssistant.load(path, resolve_device(device), use_ner=False if no_ner else None, generator=generator)
    except (DomainfmError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


def _show(ans: dict[str, Any]) -> None:
    thr = "none: every answer goes to a human" if ans["threshold"] is None else format(ans["threshold"], ".3f")
    click.echo(f"intent: {ans['intent']}  confidence: {ans['confidence']:.3f}  (threshold {thr})")
    scores = ans.get("escalation_scores") or {}
    if scores.get("out_of_scope_score") is not None:
        thr = scores["out_of_scope_threshold"]
        click.echo(f"out-of-scope score ({scores['out_of_scope_method']}): {scores['out_of_scope_score']:.4g}"
                   f"  (threshold {'none' if thr is None else format(thr, '.4g')})")
    for i, p in enumerate(ans["passages"], 1):
        click.echo(f"  [{i}] {p['score']:.4f}  {p['doc_id']}: {p['title']}")
    if ans["escalate"]:
        click.echo(f"-> handing over to a human agent [{', '.join(ans['escalation_reasons'])}] ({ans['escalation_reason']})")
        if ans["answer"]:
            click.echo(f"   suggested answer for the agent: {ans['answer']}")
    elif ans["answer"] is None:
        click.echo(f"-> routed to the '{ans['intent']}' flow (this model has no knowledge base)")
    else:
        click.echo(f"answer ({ans['answer_source']}): {ans['answer']}")
    if ans.get("generated_answer"):
        click.echo(f"phrased by the generator: {ans['generated_answer']}")


_common = [
    click.option("--run", "run", default=None, help=RUN_HELP),
    click.option("--artifact", default=None, help="artifact directory (overrides --run)"),
    click.option("--variant", default=None, help="the model variant of a multi-variant run"),
    click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"])),
    click.option("--no-ner", is_flag=True, help="mask personal data with regex recognisers only (faster start)"),
    click.option("--generator", default=None, help="optional causal LM (path or hub id) that phrases the answer"),
]


def common(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


@click.group(name="cs")
def cs() -> None:
    """Customer service: ask, chat, feedback, knowledge-base updates."""


@cs.command()
@click.argument("question")
@click.option("--k", default=3, show_default=True, help="passages to show")
@click.option("--json", "as_json", is_flag=True, help="print the full answer as JSON")
@common
def ask(question: str, k: int, as_json: bool, **model: Any) -> None:
    """Answer QUESTION: intent + confidence, top passages, the answer, and the escalation decision."""
    from domainfm.errors import DomainfmError

    assistant = _load(**model)
    try:
        ans = assistant.answer(question, k=k)
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(ans, indent=2, ensure_ascii=False, default=str))
    else:
        _show(ans)


@cs.command()
@click.option("--feedback-db", default=None, help="SQLite feedback file (default: runs/customer_service/feedback.sqlite)")
@common
def chat(feedback_db: str | None, **model: Any) -> None:
    """Interactive chat. After an answer: /up, /down, /intent NAME (correct it), /quit."""
    from domainfm.errors import DomainfmError

    from domainfm_customer_service.feedback import FeedbackStore

    assistant = _load(**model)
    store = FeedbackStore(feedback_db or Path("runs") / DOMAIN / "feedback.sqlite")
    last: dict[str, Any] | None = None
    click.echo("Ask a question (/up, /down, /intent NAME, /quit).")
    while True:
        try:
            line = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
        except (EOFError, click.Abort):
            break
        cmd = line.strip()
        if cmd in ("/quit", "/exit"):
            break
        try:
            if cmd.startswith("/"):
                if last is None:
                    click.echo("nothing to give feedback on yet")
                    continue
                thumbs, corrected = 0, None
                if cmd == "/up":
                    thumbs = 1
                elif cmd == "/down":
                    thumbs = -1
                elif cmd.startswith("/intent "):
                    corrected = cmd.split(maxsplit=1)[1]
                else:
                    click.echo("unknown command")
                    continue
                store.add(last["query"], thumbs=thumbs, predicted_intent=last["intent"], corrected_intent=corrected,
                          answer_doc_id=last["answer_doc_id"], label_names=assistant.labels, masker=assistant.masker)
                click.echo("thanks, noted")
                continue
            last = assistant.answer(cmd)
            _show(last)
        except DomainfmError as exc:
            click.echo(f"error: {exc}", err=True)


@cs.command()
@click.argument("question")
@click.option("--up", "thumbs", flag_value=1, help="the answer was right")
@click.option("--down", "thumbs", flag_value=-1, help="the answer was wrong")
@click.option("--intent", "corrected", default=None, help="the correct intent")
@click.option("--new-intent", is_flag=True, help="--intent is a label the model does not know yet (`domainfm improve` "
              "grows the head for it)")
@click.option("--feedback-db", default=None)
@common
def feedback(question: str, thumbs: int | None, corrected: str | None, new_intent: bool, feedback_db: str | None,
             **model: Any) -> None:
    """Record feedback on QUESTION; the next `domainfm run customer_service` trains on it, and
    `domainfm improve RUN --feedback FEEDBACK_DB` trains a child of RUN on it."""
    from domainfm.errors import DomainfmError

    from domainfm_customer_service.feedback import FeedbackStore

    assistant = _load(**model)
    store = FeedbackStore(feedback_db or Path("runs") / DOMAIN / "feedback.sqlite")
    try:
        ans = assistant.answer(question)
        rid = store.add(question, thumbs=thumbs or 0, predicted_intent=ans["intent"], corrected_intent=corrected,
                        answer_doc_id=ans["answer_doc_id"], label_names=None if new_intent else assistant.labels,
                        masker=assistant.masker)
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"feedback {rid} stored in {store.path}: {store.summary()}")


@cs.group()
def kb() -> None:
    """Update the knowledge index of a trained model in place (no rebuild)."""


@kb.command("add")
@click.argument("source", type=click.Path(exists=True))
@click.option("--replace", is_flag=True, help="replace documents whose id is already indexed")
@common
def kb_add(source: str, replace: bool, **model: Any) -> None:
    """Add the documents of SOURCE (table or folder of .md/.txt) to the index."""
    from domainfm.errors import DomainfmError

    from domainfm_customer_service.assistant import KB_DIR
    from domainfm_customer_service.readers import read_knowledge_base

    assistant = _load(**model)
    if assistant.index is None:
        raise click.ClickException("this model has no knowledge index (it was trained without a knowledge base)")
    try:
        n = assistant.index.add_documents(read_knowledge_base(source), replace=replace)
        assistant.index.save(Path(assistant.artifact.path) / KB_DIR)
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {n} chunks; index has {len(assistant.index)} documents")


@kb.command("delete")
@click.argument("doc_ids", nargs=-1, required=True)
@common
def kb_delete(doc_ids: tuple[str, ...], **model: Any) -> None:
    """Delete documents by id from the index."""
    from domainfm.errors import DomainfmError

    from domainfm_customer_service.assistant import KB_DIR

    assistant = _load(**model)
    if assistant.index is None:
        raise click.ClickException("this model has no knowledge index")
    try:
        n = assistant.index.delete_documents(doc_ids)
        assistant.index.save(Path(assistant.artifact.path) / KB_DIR)
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"deleted {n} chunks; index has {len(assistant.index)} documents")
