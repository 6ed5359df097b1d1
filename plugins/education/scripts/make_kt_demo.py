"""Generate the knowledge-tracing demo set (package data): a simulated class, written for domainfm.

Each of 80 simulated students works through 8 arithmetic skills in prerequisite order (with some
wandering back). Answers follow Bayesian Knowledge Tracing: an unmastered skill is answered right with a
guess probability, a mastered one wrong with a slip probability, and every attempt may teach the skill,
faster when its prerequisites are mastered. Deterministic (seed 7). Run from the repository root:

    .venv/bin/python plugins/education/scripts/make_kt_demo.py
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "domainfm_education" / "demo_data"
SKILLS = [
    ("counting", "Counting", []),
    ("place_value", "Place value", ["counting"]),
    ("addition", "Addition", ["counting"]),
    ("subtraction", "Subtraction", ["addition"]),
    ("multiplication", "Multiplication", ["addition", "place_value"]),
    ("division", "Division", ["multiplication", "subtraction"]),
    ("fractions", "Fractions", ["division"]),
    ("decimals", "Decimals", ["fractions", "place_value"]),
]


def main() -> None:
    rng = np.random.default_rng(7)
    index = {key: i for i, (key, _, _) in enumerate(SKILLS)}
    rows = []
    start = datetime(2026, 1, 12, 8, 0, tzinfo=timezone.utc)
    for student in range(80):
        ability = rng.normal(0, 1)
        mastered = np.zeros(len(SKILLS), dtype=bool)
        mastered[0] = rng.random() < 0.7
        when = start + timedelta(days=int(rng.integers(0, 5)))
        position = 0
        for _ in range(int(rng.integers(25, 60))):
            if rng.random() < 0.15 and position > 0:
                skill = int(rng.integers(0, position + 1))  # revisit an earlier skill
            else:
                skill = position
            prereqs = [index[p] for p in SKILLS[skill][2]]
            ready = all(mastered[p] for p in prereqs)
            guess, slip = 0.2, 0.1
            correct = (rng.random() > slip) if mastered[skill] else (rng.random() < guess)
            learn = (0.25 if ready else 0.05) * float(np.exp(0.4 * ability))
            if not mastered[skill] and rng.random() < min(learn, 0.9):
                mastered[skill] = True
            rows.append({"student": f"student-{student + 1:03d}", "skill": SKILLS[skill][0], "correct": int(correct),
                         "timestamp": when.isoformat()})
            when += timedelta(minutes=int(rng.integers(1, 6)))
            if mastered[skill] and skill == position and position < len(SKILLS) - 1 and rng.random() < 0.6:
                position += 1
    with open(OUT / "kt_demo.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["student", "skill", "correct", "timestamp"])
        writer.writeheader()
        writer.writerows(rows)
    with open(OUT / "kt_catalogue.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["skill", "name", "prerequisites"])
        for key, name, prereqs in SKILLS:
            writer.writerow([key, name, ";".join(prereqs)])
    print(len(rows), "interactions")


if __name__ == "__main__":
    main()
