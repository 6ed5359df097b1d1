"""The plugin's fine-tuning recipe for small encoders (``options.recipe=soup``, the default for full and LoRA).

What the core engine's Trainer path does not offer and this recipe adds, all chosen on validation only:

- layer-wise learning-rate decay (discriminative learning rates: the top encoder layer gets ``lr``, each layer
  below ``lr * llrd**depth``, the embeddings the lowest) and a separate head learning rate;
- gradual unfreezing (``unfreeze``): during the first epoch the layers join training top-down, one after another
  (ULMFiT); a layer not yet unfrozen has learning rate 0;
- evaluation on validation every ``eval_every`` epochs, keeping the best state (accuracy, ties broken by lower
  validation loss) and stopping early after ``patience`` evaluations without improvement;
- several seeds from one initialisation (optionally each with its own learning-rate scale, ``lr_scales``: a
  small sweep, as in the model-soups paper) (the new head is initialised with a fixed seed, the seeds change data
  order and dropout) combined into a *greedy model soup* (Wortsman et al., 2022): the seeds' best states are
  averaged weight by weight, each one kept only if validation accuracy does not drop. The result is one model,
  so inference costs the same as for a single fine-tune;
- a wall-clock budget (``train_budget_s``): no further seed starts when its estimated duration would pass it;
- optional intermediate-task training (``intermediate``: a data source with the same labels, e.g. ``tfns``,
  the Twitter Financial News Sentiment set): the model first learns that task (its own seeded 90/10 split for
  early stopping, ``intermediate_epochs``), and every seed then starts from those weights, head included.
  Intermediate rows whose text is also in the task's data are dropped first, so no validation or test sentence
  is ever trained on. Measured on PhraseBank 50agree validation (seed 42, lr 1.5e-4): 0.843 from MiniLM,
  0.851 after one TFNS epoch, 0.855 after two, 0.859 after four;
- bf16 autocast under ``train.mixed_precision`` (:func:`domainfm.engine.precision.training_autocast`): on a CPU
  with hardware bf16 a seed trains ~1.5x faster at the same validation accuracy.

The artifact is a plain Hugging Face sequence-classification model (LoRA adapters merged), loadable by the
engine's ``TextClassifierPredictor`` and by ``transformers.pipeline``; it is temperature-calibrated on
validation as the engine's artifacts are. No test data is read here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from domainfm.config import DEFAULT_BASE_MODEL
from domainfm.data import encode_labels
from domainfm.engine.calibration import (
    expected_calibration_error,
    fit_temperature_calibrator,
    softmax,
)
from domainfm.engine.classifier_predictor import (
    KIND_HF,  # the engine's artifact kind: its predictor loads ours
)
from domainfm.engine.precision import TrainingAmp, training_autocast
from domainfm.io import atomic_directory
from domainfm.models import resolve_model
from domainfm.types import Artifact, DataBundle, RunContext

log = logging.getLogger(__name__)

HEAD_INIT_SEED = 1234


@dataclass
class Recipe:
    """Hyper-parameters of the recipe (``options.<name>`` overrides each; see :func:`recipe_from_ctx`)."""

    mode: str = "full"
    lr: float = 1e-4
    head_lr: float | None = None
    llrd: float = 0.9
    epochs: float = 4.0
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    eval_every: float = 0.5
    patience: int = 3
    seeds: list[int] = field(default_factory=lambda: [42])
    lr_scales: list[float] | None = None
    soup: bool = True
    unfreeze: bool = False
    freeze_embeddings: bool = False
    max_length: int = 128
    train_budget_s: float | None = None
    max_steps: int | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(
        default_factory=lambda: ["query", "key", "value", "intermediate.dense", "output.dense"])
    intermediate: str | None = None
    intermediate_epochs: float = 2.0
    mixed_precision: str = "auto"


def recipe_from_ctx(ctx: RunContext) -> Recipe:
    """Recipe from the run config: ``train.*``/``model.*`` fields first, then ``options.*`` overrides."""
    cfg = ctx.config
    mode = cfg.model.mode
    r = Recipe(mode=mode, epochs=float(cfg.train.epochs), batch_size=cfg.train.batch_size,
               weight_decay=cfg.train.weight_decay, warmup_ratio=cfg.train.warmup_ratio,
               max_length=cfg.model.max_length, seeds=[cfg.train.seed], lora_r=cfg.model.lora_r,
               lora_alpha=cfg.model.lora_alpha, lora_dropout=cfg.model.lora_dropout,
               max_steps=cfg.train.max_steps, mixed_precision=cfg.train.mixed_precision)
    r.lr = cfg.train.learning_rate or (1e-4 if mode == "full" else 2e-3)
    r.head_lr = cfg.train.head_learning_rate
    if cfg.model.lora_target_modules:
        r.lora_targets = list(cfg.model.lora_target_modules)
    if cfg.train.early_stopping_patience:
        r.patience = cfg.train.early_stopping_patience
    for name in ("llrd", "eval_every", "train_budget_s", "head_lr", "patience", "soup", "unfreeze",
                 "freeze_embeddings", "seeds", "lr_scales", "intermediate", "intermediate_epochs"):
        value = ctx.option(name)
        if value is None:
            continue
        if name == "intermediate":
            value = str(value).strip() or None
            if value is not None and value.lower() in ("off", "none", "false"):
                value = None
        elif name in ("seeds", "lr_scales"):
            cast = int if name == "seeds" else float
            value = [cast(v) for v in (value if isinstance(value, (list, tuple)) else str(value).split(","))]
        elif name in ("soup", "unfreeze", "freeze_embeddings"):
            value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        elif name == "patience":
            value = int(value)
        else:
            value = float(value)
        setattr(r, name, value)
    return r


# ----------------------------------------------------------------------------------- batching


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random batches of similar lengths: shuffle, sort within chunks of 50 batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches: list[np.ndarray] = []
    lens = np.asarray(lengths)
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(-lens[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _pad(encoded: list[list[int]], idx: Sequence[int], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(encoded[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq = encoded[i]
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


# ----------------------------------------------------------------------------------- model pieces


def _layer_of(name: str, n_layers: int) -> int:
    """Depth index of a parameter: 0 = embeddings, 1..n = encoder layers, n+1 = pooler and classifier."""
    if ".embeddings." in f".{name}" or name.startswith("embeddings"):
        return 0
    marker = ".layer."
    if marker in name:
        tail = name.split(marker, 1)[1]
        num = tail.split(".", 1)[0]
        if num.isdigit():
            return int(num) + 1
    return n_layers + 1


def param_groups(model: Any, recipe: Recipe, n_layers: int) -> list[dict[str, Any]]:
    """AdamW groups: one per depth (layer-wise decayed LR), no weight decay on biases and LayerNorms."""
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = _layer_of(name, n_layers)
        if depth == n_layers + 1:
            lr = recipe.head_lr or recipe.lr
        else:
            lr = recipe.lr * recipe.llrd ** (n_layers - depth)
        no_decay = p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        key = (depth, no_decay)
        g = groups.setdefault(key, {"params": [], "lr": lr, "weight_decay": 0.0 if no_decay else recipe.weight_decay,
                                    "depth": depth})
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def _n_layers(model: Any) -> int:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(inner, "config", None)
    return int(getattr(cfg, "num_hidden_layers", 0) or 0)


def _build_model(base_path: str, labels: list[str], recipe: Recipe, init_state: dict[str, Any] | None = None) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(HEAD_INIT_SEED)  # same head initialisation for every seed: the soup needs one init
    model = AutoModelForSequenceClassification.from_pretrained(
        base_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, use_safetensors=True,
    )
    if init_state is not None:
        model.load_state_dict(init_state)
    if recipe.freeze_embeddings:
        for name, p in model.named_parameters():
            if _layer_of(name, _n_layers(model)) == 0:
                p.requires_grad_(False)
    if recipe.mode == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        names = [n for n, _ in model.named_modules()]
        targets = [t for t in recipe.lora_targets if any(n.endswith("." + t) for n in names)] or ["query", "value"]
        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_CLS, r=recipe.lora_r, lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout, target_modules=targets, modules_to_save=["classifier", "pooler"],
        ))
    return model


def _logits(model: Any, encoded: list[list[int]], pad_id: int, device: str, batch_size: int = 128) -> np.ndarray:
    import torch

    order = np.argsort([len(e) for e in encoded])
    out: np.ndarray | None = None
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = _pad(encoded, idx, pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(encoded), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
    model.train()
    assert out is not None
    return out


def _score(logits: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, macro-F1, mean NLL) of logits against labels."""
    from sklearn.metrics import f1_score

    pred = logits.argmax(1)
    p = softmax(logits)
    nll = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
    return float((pred == y).mean()), float(f1_score(y, pred, average="macro")), nll


def _state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------------- training


def train_one_seed(model: Any, recipe: Recipe, seed: int, x: list[list[int]], y: np.ndarray,
                   xv: list[list[int]], yv: np.ndarray, pad_id: int, device: str) -> dict[str, Any]:
    """Train from the model's current weights; returns the best validation state and the history."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_layers = _n_layers(model)
    groups = param_groups(model, recipe, n_layers)
    base_lrs = [g["lr"] for g in groups]
    opt = torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    total = max(1, round(recipe.epochs * steps_per_epoch))
    if recipe.max_steps:
        total = min(total, recipe.max_steps)
    warmup = int(recipe.warmup_ratio * total)
    eval_steps = max(1, round(recipe.eval_every * steps_per_epoch))
    # gradual unfreezing: depth d (0 = embeddings .. n+1 = head) joins at step unfreeze_at[d] in epoch 1
    unfreeze_at = {d: (int((n_layers + 1 - d) * steps_per_epoch / (n_layers + 2)) if recipe.unfreeze else 0)
                   for d in range(n_layers + 2)}

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    labels_t = torch.as_tensor(y, dtype=torch.long)
    best: dict[str, Any] = {"accuracy": -1.0, "nll": math.inf}
    history: list[dict[str, float]] = []
    since_best = 0
    step = 0
    window_loss, window_steps = 0.0, 0  # mean training loss since the last evaluation, for the training curve
    started = time.perf_counter()
    model.to(device).train()
    amp = TrainingAmp(device, training_autocast(device, recipe.mixed_precision))
    stop = False
    while step < total and not stop:
        for idx in length_grouped_batches([len(e) for e in x], recipe.batch_size, rng):
            if step >= total:
                break
            factor = lr_factor(step)
            for g, base in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = base * factor if step >= unfreeze_at[g["depth"]] else 0.0
            ids, mask = _pad(x, idx, pad_id)
            with amp.autocast():
                out = model(input_ids=ids.to(device), attention_mask=mask.to(device))
                loss = torch.nn.functional.cross_entropy(out.logits.float(), labels_t[idx].to(device))
            amp.backward_step(loss, opt, clip_parameters=model.parameters(), max_norm=1.0)
            opt.zero_grad(set_to_none=True)
            step += 1
            window_loss, window_steps = window_loss + float(loss.detach()), window_steps + 1
            if step % eval_steps == 0 or step == total:
                acc, f1, nll = _score(_logits(model, xv, pad_id, device), yv)
                history.append({"step": step, "epoch": round(step / steps_per_epoch, 3), "val_accuracy": acc,
                                "val_macro_f1": f1, "val_nll": nll, "seconds": round(time.perf_counter() - started, 1),
                                "train_loss": window_loss / window_steps})
                window_loss, window_steps = 0.0, 0
                log.info("seed %s step %s: val acc %.4f f1 %.4f nll %.4f", seed, step, acc, f1, nll)
                if acc > best["accuracy"] or (acc == best["accuracy"] and nll < best["nll"]):
                    best = {"accuracy": acc, "macro_f1": f1, "nll": nll, "step": step, "state": _state(model)}
                    since_best = 0
                else:
                    since_best += 1
                    if since_best >= recipe.patience:
                        stop = True
                        break
    return {**best, "seed": seed, "history": history, "steps": step, "seconds": time.perf_counter() - started}


def _average(states: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = sum(s[k] for s in states) / len(states)
        else:
            out[k] = v
    return out


def greedy_soup(model: Any, runs: list[dict[str, Any]], xv: list[list[int]], yv: np.ndarray, pad_id: int,
                device: str) -> tuple[dict[str, Any], list[int], float]:
    """Average seeds' best states greedily (best first), keeping each only if validation accuracy holds."""
    ranked = sorted(runs, key=lambda r: (-r["accuracy"], r["nll"]))
    chosen = [ranked[0]]
    best_acc, best_nll = ranked[0]["accuracy"], ranked[0]["nll"]
    for run in ranked[1:]:
        trial = _average([r["state"] for r in [*chosen, run]])
        model.load_state_dict(trial)
        acc, _, nll = _score(_logits(model, xv, pad_id, device), yv)
        log.info("soup + seed %s: val acc %.4f nll %.4f", run["seed"], acc, nll)
        if acc > best_acc or (acc == best_acc and nll <= best_nll):
            chosen.append(run)
            best_acc, best_nll = acc, nll
    return _average([r["state"] for r in chosen]), [r["seed"] for r in chosen], best_acc


def _text_key(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def intermediate_stage(recipe: Recipe, base_path: str, labels: list[str], tokenizer: Any, data: DataBundle,
                       pad_id: int, device: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train on the intermediate source first; returns (weights every seed starts from, what was done).

    :raises DataError: the source has a label outside the task's labels (its head would mean nothing).
    :raises ConfigError: too few of its rows are left once the task's own texts are dropped.
    """
    from domainfm.data import stratified_split_indices
    from domainfm.errors import ConfigError

    from domainfm_finance_sentiment.readers import read_source

    assert recipe.intermediate is not None
    rows, meta = read_source(recipe.intermediate)
    y_rows = encode_labels([r["label"] for r in rows], labels, f"options.intermediate ({meta['origin']})")
    task_texts = {_text_key(t) for table in data.tables.values() for t in table["text"]}
    keep = [i for i, r in enumerate(rows) if _text_key(r["text"]) not in task_texts]
    if len(keep) < 10:
        raise ConfigError(f"options.intermediate={recipe.intermediate!r}: only {len(keep)} rows are not in the task's "
                          "data; too few to train on")
    kept = [rows[i] for i in keep]
    y_all = np.asarray([y_rows[i] for i in keep], dtype=int)
    train_idx, valid_idx = stratified_split_indices(y_all, (0.9, 0.1), seed=recipe.seeds[0])
    ids = tokenizer([str(r["text"]) for r in kept], truncation=True, max_length=recipe.max_length)["input_ids"]
    x, xv = [ids[i] for i in train_idx], [ids[i] for i in valid_idx]
    stage = replace(recipe, epochs=recipe.intermediate_epochs, max_steps=None, lr_scales=None)
    model = _build_model(base_path, labels, stage)
    run = train_one_seed(model, stage, recipe.seeds[0], x, y_all[train_idx], xv, y_all[valid_idx], pad_id, device)
    model.load_state_dict(run["state"])
    if recipe.mode == "lora":
        model = model.merge_and_unload()
    done = {
        "source": meta["origin"], "rows": len(rows), "dropped_in_task_data": len(rows) - len(kept),
        "train_examples": len(x), "validation_examples": len(xv), "epochs": recipe.intermediate_epochs,
        "steps": run["steps"], "best_step": run["step"], "validation_accuracy": run["accuracy"],
        "validation_macro_f1": run["macro_f1"], "seconds": round(run["seconds"], 1),
    }
    log.info("intermediate %s: %s", recipe.intermediate, done)
    return _state(model), done


def fine_tune(ctx: RunContext, data: DataBundle, label_names: Sequence[str], recipe: Recipe | None = None) -> Artifact:
    """Train with the recipe, save a plain HF classifier artifact, calibrate its temperature on validation."""
    import torch
    from transformers import AutoTokenizer

    recipe = recipe or recipe_from_ctx(ctx)
    labels = list(label_names)
    base = ctx.config.model.base or DEFAULT_BASE_MODEL
    resolved = resolve_model(base, revision=ctx.config.model.revision)
    tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
    pad_id = tokenizer.pad_token_id or 0
    train, valid = data.split("train"), data.tables.get("validation")
    if valid is None or not len(valid):
        raise ValueError("the soup recipe selects on validation and needs a non-empty validation split")

    def enc(table: Any) -> tuple[list[list[int]], np.ndarray]:
        texts = [str(t) for t in table["text"]]
        ids = tokenizer(texts, truncation=True, max_length=recipe.max_length)["input_ids"]
        return ids, np.asarray(encode_labels(table["label"], labels, data.source), dtype=int)

    x, y = enc(train)
    xv, yv = enc(valid)
    device = ctx.device
    started = time.perf_counter()
    init_state, intermediate = None, None
    if recipe.intermediate:
        init_state, intermediate = intermediate_stage(recipe, str(resolved.path), labels, tokenizer, data, pad_id, device)
    seeds_started = time.perf_counter()  # the budget is for the seeds (the intermediate stage runs once)
    runs: list[dict[str, Any]] = []
    model = None
    for i, seed in enumerate(recipe.seeds):
        elapsed = time.perf_counter() - seeds_started
        if recipe.train_budget_s and i and elapsed + elapsed / i > recipe.train_budget_s:
            log.info("budget: seed %s not started (%.0fs used of %.0fs)", seed, elapsed, recipe.train_budget_s)
            break
        model = _build_model(str(resolved.path), labels, recipe, init_state)
        run_recipe = recipe
        if recipe.lr_scales:  # a small learning-rate sweep across the seeds; the soup chooses on validation
            scale = recipe.lr_scales[i % len(recipe.lr_scales)]
            run_recipe = replace(recipe, lr=recipe.lr * scale, head_lr=recipe.head_lr * scale if recipe.head_lr else None)
        run = train_one_seed(model, run_recipe, seed, x, y, xv, yv, pad_id, device)
        runs.append({**run, "lr": run_recipe.lr})
    assert model is not None
    if recipe.soup and len(runs) > 1:
        state, kept, soup_acc = greedy_soup(model, runs, xv, yv, pad_id, device)
    else:
        top = max(runs, key=lambda r: (r["accuracy"], -r["nll"]))
        state, kept, soup_acc = top["state"], [top["seed"]], top["accuracy"]
    model.load_state_dict(state)
    total_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if recipe.mode == "lora":
        model = model.merge_and_unload()
    model.eval()
    logits = _logits(model, xv, pad_id, device)
    seconds = time.perf_counter() - started
    with atomic_directory(ctx.artifact_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    calibrator = fit_temperature_calibrator(logits, yv)
    ctx.resources.train_seconds = seconds
    ctx.resources.parameters = int(total_params)
    ctx.resources.trainable_parameters = int(trainable)
    artifact = Artifact(
        path=ctx.artifact_dir, domain=ctx.domain, kind=KIND_HF, base_model=base, label_names=labels,
        device=device,
        metadata={
            "mode": recipe.mode, "recipe": "soup", "recipe_settings": asdict(recipe),
            "max_length": recipe.max_length, "text_column": "text", "text_pair_column": None,
            "train_seconds": seconds, "train_examples": len(x), "resolved_from": resolved.source,
            "parameters": int(total_params), "trainable_parameters": int(trainable),
            "learning_rate": recipe.lr, "seeds_trained": [r["seed"] for r in runs], "soup_seeds": kept,
            "epochs_run": round(sum(r["steps"] for r in runs) / math.ceil(len(x) / recipe.batch_size), 3),
            "per_seed": [{k: r[k] for k in ("seed", "lr", "accuracy", "macro_f1", "nll", "step", "steps", "seconds",
                                             "history")} for r in runs],
            "best_validation_accuracy": soup_acc, "temperature": calibrator.temperature,
            "calibrator": calibrator.to_metadata(),
            "validation_ece_before": expected_calibration_error(softmax(logits), yv),
            "validation_ece": expected_calibration_error(calibrator.apply(logits), yv),
            "validation_accuracy": float((logits.argmax(1) == yv).mean()),
            "torch_threads": torch.get_num_threads(), "intermediate": intermediate,
            "training_autocast": training_autocast(device, recipe.mixed_precision) or "float32",
        },
    )
    artifact.save_metadata()
    from domainfm.training_log import save_log_history

    save_log_history(ctx.artifact_dir, ctx.variant or "model", [
        {"seed": r["seed"], "step": h["step"], "epoch": h["epoch"], "loss": h.get("train_loss"),
         "eval_accuracy": h["val_accuracy"], "eval_macro_f1": h["val_macro_f1"], "eval_loss": h["val_nll"]}
        for r in runs for h in r["history"]], metric_for_best_model="accuracy", best_metric=max(r["accuracy"] for r in runs))
    return artifact
