"""Run configuration: pydantic models loadable from YAML or TOML and overridable by ``key=value`` flags.

A bad value raises :class:`~domainfm.errors.ConfigError` with a one-line message naming the field and,
for choices, the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domainfm.errors import ConfigError

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


Mode = Literal["full", "head", "lora", "lpft", "contrastive", "distill", "adalora", "ia3", "prompt", "ptuning"]
MODES: tuple[str, ...] = get_args(Mode)
Tracker = Literal["tensorboard", "mlflow"]
TRACKERS: tuple[str, ...] = get_args(Tracker)


class ModelConfig(_Section):
    base: str | None = Field(default=None, description="hub id or local path; None = the domain's default")
    mode: Mode = Field(
        default="full",
        description="full fine-tuning, head-only on frozen embeddings, LoRA (peft), lpft (linear probe on frozen "
        "sentence embeddings, then fine-tuning every weight under it), or contrastive (few examples per label: the "
        "sentence encoder tuned with in-batch negatives, then the head), or distill (model.teacher fine-tuned, or reused when it "
        "is an artifact, and the base model trained on its temperature-scaled probabilities plus the gold labels), or "
        "the other peft methods: adalora (LoRA whose ranks are reallocated during training), ia3 (learned rescaling "
        "of keys, values and feed-forward outputs), prompt (soft prompt tokens) and ptuning (prompt tokens from a "
        "small encoder); lora, adalora and ia3 are merged into the weights, prompt and ptuning saved as adapters. "
        "Prefix tuning is not offered: peft's needs past key values that BERT/MPNet classifiers do not take",
    )
    max_length: int = Field(default=128, ge=8, le=8192)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | None = None
    adalora_target_r: int = Field(default=8, ge=1, description="model.mode=adalora: average rank after pruning")
    adalora_init_r: int = Field(default=12, ge=1, description="model.mode=adalora: rank of every adapter at the start")
    prompt_tokens: int = Field(default=20, ge=1, le=512, description="model.mode=prompt/ptuning: virtual tokens")
    revision: str | None = None
    trust_remote_code: bool = False
    teacher: str | None = Field(
        default=None, description="model.mode=distill: the teacher, a hub id or local model (fine-tuned first with the "
        "domain's recipe) or a trained artifact directory (reused as it is)",
    )
    distill_temperature: float = Field(default=2.0, gt=0, description="softmax temperature of the distillation targets")
    distill_alpha: float = Field(
        default=0.5, ge=0, le=1, description="weight of the gold labels' cross-entropy; the KL to the teacher gets 1 - alpha"
    )
    distill_student: Literal["full", "lpft"] = Field(
        default="full", description="model.mode=distill: the student's form. full: a sequence classifier (a new head "
        "on the base's [CLS] pooler); lpft: the base sentence encoder read through its own pooling under a linear "
        "probe fitted on its frozen embeddings first (single texts only; the better form for sentence-transformers "
        "checkpoints such as the packaged MiniLM, which were trained to be read through mean pooling)",
    )


AugmentMethod = Literal["swap", "delete", "insert", "keyboard", "ocr", "cutoff", "mixup"]
TEXT_AUGMENTS: tuple[str, ...] = ("swap", "delete", "insert", "keyboard", "ocr")


class AugmentConfig(_Section):
    methods: list[AugmentMethod] = Field(
        default_factory=list,
        description="training-row augmentation (never validation or test): swap / delete / insert (EDA word "
        "operations; insert uses words of the training texts), keyboard / ocr (nlpaug character noise) add "
        "train.augment.copies rewritten copies of each row; cutoff (token cutoff: attention to a fraction of tokens "
        "removed) and mixup (embedding-level mixup of two rows and their labels) act on each training batch",
    )
    copies: int = Field(default=1, ge=1, le=16, description="rewritten copies per training row (text methods)")
    rate: float = Field(default=0.1, gt=0, le=0.5, description="fraction of words a text method changes")
    cutoff: float = Field(default=0.1, gt=0, lt=1, description="fraction of tokens cut off per row (cutoff)")
    mixup_alpha: float = Field(default=0.4, gt=0, description="Beta(alpha, alpha) of the mixing weight (mixup)")

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> Any:
        """``swap,delete`` or one name as well as a list; ``none`` means no augmentation."""
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip().lower() for v in value.split(",") if v.strip() and v.strip().lower() != "none"]
        return value


Strategy = Literal["trainer", "recipe"]


class RecipeConfig(_Section):
    """``train.strategy=recipe`` (:mod:`domainfm.engine.recipe`): fine-tuning for small encoders, chosen on validation."""

    llrd: float = Field(default=0.9, gt=0, le=1, description="layer-wise learning-rate decay: the top layer trains at "
                        "train.learning_rate, each layer below at llrd times the one above, the embeddings lowest")
    unfreeze: bool = Field(default=False, description="gradual unfreezing: layers join training top-down during the "
                           "first epoch (ULMFiT)")
    freeze_embeddings: bool = Field(default=False, description="keep the embedding layer frozen")
    eval_every: float = Field(default=0.5, gt=0, description="evaluate (and checkpoint) every this many epochs")
    seeds: list[int] | None = Field(default=None, min_length=1, description="seeds trained from one "
                                    "initialisation (data order, dropout); None = [train.seed]")
    lr_scales: list[float] | None = Field(default=None, min_length=1, description="learning-rate scale of each "
                                          "seed in turn (a small sweep the soup chooses from)")
    soup: bool = Field(default=True, description="greedy model soup of the seeds' best states (Wortsman et al., "
                       "2022); off: the best seed alone")
    train_budget_s: float | None = Field(default=None, gt=0, description="no further seed starts when its "
                                         "estimated end passes this many seconds")
    intermediate: str | None = Field(default=None, description="a data source of the domain with the same labels "
                                     "trained on first (rows whose text is in the task's data dropped); every "
                                     "seed starts from its weights")
    intermediate_epochs: float = Field(default=2.0, gt=0, description="epochs of the intermediate stage")

    @field_validator("intermediate", mode="before")
    @classmethod
    def _intermediate(cls, value: Any) -> Any:
        """``off``, ``none``, ``false`` or empty: no intermediate stage (YAML reads ``off`` as false)."""
        if value is False or (isinstance(value, str) and value.strip().lower() in ("", "off", "none", "false")):
            return None
        return value


class AdversarialConfig(_Section):
    method: Literal["none", "fgm", "pgd", "freelb"] = Field(
        default="none",
        description="adversarial training on the word embeddings: fgm (one normalised gradient step of size "
        "epsilon), pgd (steps projected ascent steps inside the epsilon ball), freelb (the loss averaged over the "
        "ascent steps); the adversarial loss is added to the clean one",
    )
    epsilon: float = Field(default=0.2, gt=0, description="L2 radius of a row's perturbation of its word "
                           "embeddings (MiniLM's are ~1 per token; 1.0 made PhraseBank training fall to 0.66 "
                           "accuracy, 0.2 gained 2.5 points: benchmarks/techniques)")
    steps: int = Field(default=3, ge=1, le=20, description="ascent steps of pgd / freelb")
    step_size: float | None = Field(default=None, gt=0, description="size of one ascent step; None = epsilon / steps")
    weight: float = Field(default=1.0, gt=0, description="weight of the adversarial loss")


class RegularisationConfig(_Section):
    rdrop: float = Field(default=0.0, ge=0, description="R-Drop: weight of the symmetric KL between two dropout "
                         "passes (0 = off; 1-5 typical)")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1, description="label smoothing of the cross-entropy "
                                   "(TrainingArguments.label_smoothing_factor)")
    l2sp: float = Field(default=0.0, ge=0, description="L2-SP: weight of the squared distance of the trained body "
                        "weights to their starting point (the pretrained or parent model; 0 = off)")
    ewc: float = Field(default=0.0, ge=0, description="EWC: weight of the Fisher-weighted squared distance to the "
                       "anchor's weights (needs an anchor with Fisher information; 0 = off)")
    anchor: str | None = Field(default=None, description="safetensors file of the weights L2-SP/EWC pull toward "
                               "(param.NAME) and their Fisher information (fisher.NAME); written by domainfm improve")


class DPConfig(_Section):
    """``train.dp``: differentially private training (:mod:`domainfm.privacy.dp_training`)."""

    enabled: bool = Field(default=False, description="DP-SGD (opacus) on a linear head over frozen embeddings; "
                          "needs model.mode=head")
    epsilon: float = Field(default=8.0, gt=0, description="the epsilon the training ends at")
    delta: float | None = Field(default=None, gt=0, lt=1, description="None = min(1e-5, 1 / n_train^1.1)")
    max_grad_norm: float = Field(default=1.0, gt=0, description="per-example gradient clipping norm")


class TrainConfig(_Section):
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=128, ge=1)
    learning_rate: float | None = Field(default=None, gt=0, description="None = a default per mode")
    head_learning_rate: float | None = Field(default=None, gt=0, description="discriminative LR for the head")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    grad_accum: int = Field(default=1, ge=1)
    class_weights: Literal["none", "balanced", "prior"] = Field(
        default="none",
        description="cross-entropy class weights in the Trainer modes (full, lora, lpft): balanced = "
        "n / (K * n_k) from the training labels, for macro-F1 on imbalanced labels; prior = class_prior[k] / "
        "(training share of k), so the weighted training rows have the label mix class_prior",
    )
    class_prior: dict[str, float] | None = Field(
        default=None,
        description="label -> share of the label mix the weighted training rows should have (class_weights=prior; "
        "domainfm improve sets it to the mix of the parent's training rows plus the feedback)",
    )
    early_stopping_patience: int | None = Field(default=2, ge=1)
    eval_steps: int | None = Field(default=None, ge=1, description="None = evaluate once per epoch")
    seed: int = 42
    ensemble_size: int = Field(
        default=1, ge=1, le=16,
        description="train this many models (seeds seed, seed+1, ...) and average their probabilities (a deep ensemble)",
    )
    mixed_precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto",
        description="auto: bf16 (or fp16) autocast on a CUDA GPU, float32 on a CPU; bf16: bf16 autocast wherever "
        "bf16 matmuls are fast (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), float32 elsewhere; "
        "fp32: float32 everywhere",
    )
    group_by_length: bool = True
    save_total_limit: int = Field(default=2, ge=1)
    num_workers: int = Field(default=0, ge=0)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig)
    regularisation: RegularisationConfig = Field(default_factory=RegularisationConfig)
    dp: DPConfig = Field(default_factory=DPConfig)
    strategy: Strategy = Field(
        default="trainer",
        description="trainer: one Hugging Face Trainer run per model.mode; recipe (full and lora): layer-wise LR "
        "decay, optional gradual unfreezing, several seeds combined into a greedy soup, an optional intermediate "
        "task, under the Trainer's checkpoints (train.recipe)",
    )
    recipe: RecipeConfig = Field(default_factory=RecipeConfig)
    report_to: list[Tracker] = Field(
        default_factory=list,
        description="experiment tracking: none (default), tensorboard (event files in the run directory), mlflow "
        "(MLFLOW_TRACKING_URI, else a SQLite store next to the runs) or a list of both (domainfm.tracking)",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _trackers(cls, value: Any) -> Any:
        """``none``, one name, ``a,b`` or a list; ``none`` alone means no tracking."""
        if value is None:
            return []
        names = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if isinstance(names, (list, tuple)):
            names = [n.strip().lower() if isinstance(n, str) else n for n in names]
            return list(dict.fromkeys(n for n in names if n not in ("none", "")))
        return value


class BenefitConfig(_Section):
    lambda_: float = Field(default=1.0, ge=0, alias="lambda", description="weight of social benefit R_S")
    assumptions: dict[str, float] = Field(default_factory=dict, description="override a term's assumption")
    limits: dict[str, float] = Field(default_factory=dict, description="override a constraint's limit")
    thresholds: list[float] | None = Field(default=None, description="operating points to sweep")
    lambdas: list[float] | None = Field(default=None, description="lambda values to sweep")
    energy_tracking: bool = True


class RunConfig(_Section):
    domain: str | None = None
    data: str | None = Field(default=None, description="data source; None = the domain's default")
    eval_split: str = "test"
    max_text_chars: int = Field(
        default=10_000, ge=1,
        description="characters one text may have, in every input path (data files, predict's stdin, the server's "
        "default); a longer text is refused naming its file and line, and table lines are capped to match",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_dir: Path = Path("runs")
    run_name: str | None = None
    variants: list[Mode] | None = Field(
        default=None, description="train and compare several fine-tuning modes in one run, e.g. [head, lora, full]"
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    benefit: BenefitConfig = Field(default_factory=BenefitConfig)
    options: dict[str, Any] = Field(default_factory=dict, description="domain-specific options")


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per error: ``field.path: message (got value)``; the first line is the headline."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        msg = err["msg"]
        got = err.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{loc or '(config)'}: {msg}{got_s}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unsupported config format (use .yaml, .yml or .toml)")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML: numbers, booleans, lists) to a nested dict."""
    import yaml

    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected key=value, e.g. train.epochs=2")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {assignment!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def build_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), **fields: Any
) -> RunConfig:
    """File (optional), then ``key=value`` overrides, then explicit keyword fields (None ignored)."""
    data: dict[str, Any] = load_config_file(path) if path else {}
    for assignment in overrides:
        apply_override(data, assignment)
    for key, value in fields.items():
        if value is not None:
            _set(data, key, value)
    return parse_config(data, source=str(path) if path else "config")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):  # e.g. --set model=3 and then --mode full
            raise ConfigError(f"{dotted}: {part} is set to {node!r}, not a section")
    node[parts[-1]] = value


_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off", "none", "")


def parse_flag(value: Any, name: str) -> bool:
    """A yes/no setting: a bool, 0/1, or one of true/false, yes/no, on/off, 1/0 (any case). Anything else is a
    :class:`ConfigError` naming ``name``, so a typo is never read as "on"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _YES:
            return True
        if key in _NO:
            return False
    raise ConfigError(f"{name}: {value!r} is not a yes/no value (true/false, yes/no, on/off, 1/0)")

