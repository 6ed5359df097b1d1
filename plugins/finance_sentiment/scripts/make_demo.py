"""Generate the plugin's offline demo set: original sentences about fictional companies, with a planted surge.

Every sentence is composed here from templates written for this project (no third-party text). The output is
deterministic (seeded) and shipped as package data:

- ``demo_data/finance_demo.jsonl``: id, text, label, timestamp, topic, source, entity;
- ``demo_data/surge_truth.json``: where the planted negative surge is (entity, topic, start, end).

Run: ``python plugins/finance_sentiment/scripts/make_demo.py``.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "domainfm_finance_sentiment" / "demo_data"
SEED = 20260301
START = datetime(2026, 3, 2, tzinfo=timezone.utc)
DAYS = 30
SURGE_ENTITY, SURGE_TOPIC = "Norvale Bank", "credit"
SURGE_START = START + timedelta(days=21, hours=6)
SURGE_HOURS = 30

COMPANIES = [
    "Norvale Bank", "Kestrel Motors", "Aurelia Pharma", "Brightwater Energy",
    "Fennick Retail", "Solvik Telecom", "Harlow Insurance", "Marrow Logistics",
]
SOURCES = {"newswire": 0.4, "analyst_note": 0.2, "blog": 0.2, "forum": 0.2}

T: dict[str, dict[str, list[str]]] = {
    "earnings": {
        "positive": [
            "{c} lifted quarterly operating profit by {p} percent on stronger margins.",
            "{c} beat analyst estimates and raised its full-year revenue guidance.",
            "Net sales at {c} grew {p} percent year on year, ahead of expectations.",
            "{c} reported record {q} earnings and announced a higher dividend.",
            "Analysts upgraded {c} after its {q} results showed a sharp rebound in orders.",
        ],
        "neutral": [
            "{c} will publish its {q} interim report on the {d}th of next month.",
            "{c} reported {q} revenue of EUR {m} million, in line with its own forecast.",
            "The board of {c} will present the annual accounts at the general meeting.",
            "{c} keeps its outlook for the year unchanged.",
            "{c} said its {q} results will be discussed on a conference call for investors.",
        ],
        "negative": [
            "{c} swung to a {q} loss of EUR {m} million as sales fell {p} percent.",
            "{c} cut its full-year guidance, citing weaker demand.",
            "Operating profit at {c} dropped {p} percent, missing market forecasts.",
            "{c} warned that {q} earnings will fall well short of last year.",
            "Shares in {c} slid after the company suspended its dividend.",
        ],
    },
    "credit": {
        "positive": [
            "{c} repaid EUR {m} million of bonds early, strengthening its balance sheet.",
            "A rating agency upgraded {c}'s long-term debt rating to A-.",
            "{c} reduced its non-performing loan ratio for the third quarter in a row.",
            "{c} refinanced its revolving credit facility on better terms.",
        ],
        "neutral": [
            "{c} issued a EUR {m} million five-year bond at a fixed coupon.",
            "{c} extended the maturity of its credit facility to 2030.",
            "The loan book of {c} stood at EUR {m} million at the end of the quarter.",
            "{c} will hold a fixed-income investor call next week.",
        ],
        "negative": [
            "{c} set aside EUR {m} million for expected credit losses as defaults rose.",
            "A rating agency put {c} on negative watch over rising bad loans.",
            "{c} breached a covenant on its syndicated loan and is in talks with lenders.",
            "Depositors withdrew funds from {c} after reports of mounting loan losses.",
            "Bond spreads of {c} widened sharply amid worries about its capital buffer.",
            "{c} disclosed a {p} percent jump in non-performing loans.",
            "Regulators asked {c} to raise fresh capital after a stress-test shortfall.",
            "{c} shares plunged as losses on commercial property loans mounted.",
            "Short sellers piled into {c} as its funding costs climbed {p} percent.",
            "{c} halted withdrawals from one of its money-market funds.",
            "Analysts slashed their targets for {c} over fears of a EUR {m} million capital gap.",
            "{c} missed an interest payment on a EUR {m} million note.",
            "Credit default swaps on {c} rose to their highest level since {y}.",
            "{c} sold a loan portfolio at a steep discount to shore up liquidity.",
        ],
    },
    "labour": {
        "positive": [
            "{c} will hire {n} engineers at its new research centre.",
            "{c} reached a wage agreement with unions, ending the strike threat.",
            "Staff turnover at {c} fell to its lowest level in five years.",
        ],
        "neutral": [
            "{c} employs about {n} people in {k} countries.",
            "{c} appointed a new chief financial officer effective next month.",
            "{c} started statutory consultations with employee representatives.",
        ],
        "negative": [
            "{c} will cut {n} jobs as part of a cost-saving programme.",
            "Workers at {c} walked out over pay, halting production for two days.",
            "{c} announced temporary lay-offs at two plants.",
        ],
    },
    "deals": {
        "positive": [
            "{c} agreed to acquire a smaller rival, expanding its market share.",
            "{c} won a EUR {m} million contract from a national operator.",
            "{c} signed a long-term supply deal expected to lift sales.",
        ],
        "neutral": [
            "{c} completed the sale of a non-core unit announced earlier this year.",
            "{c} and a partner formed a joint venture for logistics services.",
            "The acquisition by {c} is subject to approval by competition authorities.",
        ],
        "negative": [
            "{c} abandoned its planned merger after shareholders rejected the terms.",
            "{c} lost its largest customer contract to a competitor.",
            "{c} wrote down EUR {m} million of goodwill on a failed acquisition.",
        ],
    },
    "regulation": {
        "positive": [
            "Regulators cleared {c}'s new product line for sale across the EU.",
            "{c} settled the long-running tax dispute in its favour.",
        ],
        "neutral": [
            "{c} said it is reviewing the new disclosure rules.",
            "The supervisory authority will publish its review of {c} next quarter.",
        ],
        "negative": [
            "{c} was fined EUR {m} million for breaching market rules.",
            "Authorities opened an investigation into accounting practices at {c}.",
            "{c} recalled {n} units after a safety regulator found defects.",
        ],
    },
    "products": {
        "positive": [
            "{c} launched a new service that analysts expect to boost revenue.",
            "Customer numbers at {c} rose {p} percent after its latest launch.",
        ],
        "neutral": [
            "{c} will present its new product range at a trade fair in {t}.",
            "{c} opened a sales office in {t}.",
        ],
        "negative": [
            "{c} delayed the launch of its flagship product by a year.",
            "Sales of {c}'s main product fell {p} percent amid fierce competition.",
        ],
    },
}
CITIES = ["Helsinki", "Tallinn", "Lisbon", "Gdansk", "Lyon", "Bergen", "Graz", "Porto"]
LABEL_MIX = {"negative": 0.2, "neutral": 0.5, "positive": 0.3}
TOPIC_MIX = {"earnings": 0.3, "credit": 0.15, "labour": 0.15, "deals": 0.15, "regulation": 0.1, "products": 0.15}


def fill(rng: random.Random, template: str, company: str) -> str:
    return template.format(
        c=company,
        p=rng.choice([3, 5, 7, 9, 12, 15, 18, 22, 27]),
        q=rng.choice(["first-quarter", "second-quarter", "third-quarter", "fourth-quarter"]),
        m=rng.choice([12, 25, 40, 65, 80, 120, 150, 240, 310]),
        n=rng.choice([40, 90, 150, 300, 450, 800, 1200]),
        k=rng.choice([4, 6, 9, 12, 17]),
        d=rng.choice([5, 12, 18, 24]),
        t=rng.choice(CITIES),
        y=rng.choice([2009, 2011, 2012, 2016, 2020]),
    )


def pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def make() -> tuple[list[dict[str, object]], dict[str, object]]:
    rng = random.Random(SEED)
    rows: list[dict[str, object]] = []
    seen: set[str] = set()

    def add(ts: datetime, topic: str, label: str, company: str) -> bool:
        for _ in range(20):  # retry on a duplicate sentence
            text = fill(rng, rng.choice(T[topic][label]), company)
            if text not in seen:
                break
        else:
            return False
        seen.add(text)
        rows.append(
            {"text": text, "label": label, "timestamp": ts.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
             "topic": topic, "source": pick(rng, SOURCES), "entity": company}
        )
        return True

    for _ in range(1000):  # enough test items per source and entity for the fairness checks (issue 22.7)
        ts = START + timedelta(seconds=rng.uniform(0, DAYS * 86400))
        add(ts, pick(rng, TOPIC_MIX), pick(rng, LABEL_MIX), rng.choice(COMPANIES))
    planted = 0
    for _ in range(45):  # the planted surge: negative credit news about one bank within SURGE_HOURS
        ts = SURGE_START + timedelta(seconds=rng.uniform(0, SURGE_HOURS * 3600))
        planted += add(ts, SURGE_TOPIC, "negative", SURGE_ENTITY)
    rows.sort(key=lambda r: str(r["timestamp"]))
    for i, row in enumerate(rows, start=1):
        row["id"] = f"demo-{i:04d}"
    truth = {
        "entity": SURGE_ENTITY,
        "topic": SURGE_TOPIC,
        "start": SURGE_START.isoformat().replace("+00:00", "Z"),
        "end": (SURGE_START + timedelta(hours=SURGE_HOURS)).isoformat().replace("+00:00", "Z"),
        "planted_items": planted,
        "note": "original sentences about fictional companies, generated by scripts/make_demo.py",
    }
    return rows, truth


def main() -> None:
    rows, truth = make()
    OUT.mkdir(parents=True, exist_ok=True)
    keys = ["id", "timestamp", "text", "label", "topic", "source", "entity"]
    with open(OUT / "finance_demo.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({k: row[k] for k in keys}, ensure_ascii=False) + "\n")
    (OUT / "surge_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
