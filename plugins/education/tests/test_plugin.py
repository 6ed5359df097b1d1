"""Plugin registration, light imports, the CLI group, and the knowledge_tracing domain end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from domainfm.manager import PluginManager
from domainfm.testing import check_plugin_contract


def test_domains_are_declared() -> None:
    pm = PluginManager().load()
    assert {"education", "knowledge_tracing"} <= set(pm.domains)
    assert pm.domain("education").key_metric == "macro_f1"
    assert pm.domain("knowledge_tracing").key_metric == "auc"


def test_plugin_import_stays_light() -> None:
    code = ("import sys, domainfm_education.plugin as p; p.domainfm_domains(); "
            "import domainfm_education.cli; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'datasets', 'faiss')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_check_command(tmp_path: Path) -> None:
    from domainfm_education.cli import edu
    from domainfm_education.grading_data import demo_grading_path

    result = CliRunner().invoke(edu, ["check", str(demo_grading_path())])
    assert result.exit_code == 0 and json.loads(result.output)["answers"] == 120
    bad = tmp_path / "bad.csv"
    bad.write_text("question,reference_answers,student_answer,label\nQ,,a,correct\n", encoding="utf-8")
    result = CliRunner().invoke(edu, ["check", str(bad)])
    assert result.exit_code != 0 and "bad.csv:2: field 'reference_answers'" in result.output


def test_knowledge_tracing_end_to_end(tmp_path: Path) -> None:
    pm = PluginManager().load()
    report = check_plugin_contract(
        pm, "knowledge_tracing", output_dir=tmp_path,
        overrides=["device=cpu", "options.kt_epochs=2", "options.kt_max_len=50", "benefit.energy_tracking=false"],
    )
    ev = report.evaluation
    assert {"auc", "accuracy", "recommendation_ndcg_at_3", "mastery_future_auc"} <= set(ev.metrics)
    assert ev.extra["raw_student_ids_in_artifact"] == 0
    assert all(p.ranking and p.extra["mastery"] for p in report.predictions)
    assert set(ev.outcomes.groups) == {"history"}
    names = {c.name for c in report.contributions}
    assert {"practice_minutes_saved", "remediation_reach", "raw_student_ids_in_artifact"} <= names
    artifact_text = " ".join(p.read_text(errors="replace") for p in Path(report.artifact.path).rglob("*.json"))
    assert "student-0" not in artifact_text

    from domainfm_education.kt_predictor import KTPredictor

    predictor = KTPredictor.load(report.artifact, "cpu")
    long, one, odd = predictor.predict([
        {"id": "x", "skills": ["addition"] * 10_000, "correct": [1] * 10_000},
        {"id": "y", "skills": ["counting"], "correct": [0]},
        {"id": "z", "interactions": [{"skill": "quantum", "correct": 1}]},
    ])
    assert long.extra["truncated_to"] == 50 and len(long.ranking) == 5
    assert one.extra["history_length"] == 1
    assert odd.extra["unknown_skills"] == ["quantum"] and odd.extra["history_length"] == 0


def test_kt_predictor_rejects_mismatched_lists(tmp_path: Path) -> None:
    import pytest

    from domainfm.errors import DataError
    from domainfm_education.kt_predictor import KTPredictor

    pm = PluginManager().load()
    report = check_plugin_contract(pm, "knowledge_tracing", output_dir=tmp_path,
                                   overrides=["device=cpu", "options.kt_epochs=1", "options.kt_model=dkt",
                                              "benefit.energy_tracking=false"])
    predictor = KTPredictor.load(report.artifact, "cpu")
    with pytest.raises(DataError, match="record 0: fields 'skills' \\(2\\) and 'correct' \\(1\\)"):
        predictor.predict([{"skills": ["counting", "addition"], "correct": [1]}])
    with pytest.raises(DataError, match="answer #1: field 'correct'"):
        predictor.predict([{"skills": ["counting"], "correct": ["maybe"]}])
