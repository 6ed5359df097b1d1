"""Regenerate the packaged demo set (domainfm_recommendation/demo_data/): an original catalogue of
hobby workshops written for this project, and a synthetic interaction log drawn from seeded user tastes.

Run from the repository root: ``.venv/bin/python plugins/recommendation/scripts/make_demo.py``.
The output is deterministic (seed 7); the catalogue text below is the project's own.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "domainfm_recommendation" / "demo_data"

# (item, title, description, tags, creator, theme)
CATALOGUE = [
    ("w01", "Balcony Tomatoes from Seed", "Grow cherry tomatoes in pots on a small balcony: seed trays, potting mix, staking and watering.", "gardening|vegetables|containers", "green-thumbs", "garden"),
    ("w02", "Composting Without a Garden", "Turn kitchen scraps into compost in a flat with a worm bin or a bokashi bucket.", "gardening|compost|zero waste", "green-thumbs", "garden"),
    ("w03", "Pruning Fruit Trees", "When and how to prune apple and pear trees for shape, light and a better harvest.", "gardening|orchard|trees", "orchard-club", "garden"),
    ("w04", "A Pollinator Border in One Season", "Choose flowering perennials that feed bees and butterflies from spring to autumn.", "gardening|wildlife|flowers", "new:meadow-lab", "garden"),
    ("w05", "Herbs on the Windowsill", "Basil, parsley, chives and mint indoors: light, pots and harvesting without killing the plant.", "gardening|herbs|indoor", "green-thumbs", "garden"),
    ("w06", "Sourdough Starter Basics", "Feed a starter, read its bubbles and bake a first open-crumb loaf.", "baking|bread|fermentation", "crumb-school", "kitchen"),
    ("w07", "Weeknight Curries from Scratch", "Toast and grind spices, build a base of onion, ginger and garlic, and cook three curries.", "cooking|spices|dinner", "spice-route", "kitchen"),
    ("w08", "Fresh Pasta by Hand", "Egg dough, rolling pin technique, tagliatelle and filled ravioli without a machine.", "cooking|pasta|italian", "crumb-school", "kitchen"),
    ("w09", "Fermented Vegetables: Kimchi and Sauerkraut", "Salt, time and a jar: lacto-fermentation safely at home.", "cooking|fermentation|vegetables", "new:jar-and-brine", "kitchen"),
    ("w10", "Knife Skills for Home Cooks", "Hold, sharpen and use a chef's knife: dicing, julienne and chiffonade.", "cooking|technique|basics", "spice-route", "kitchen"),
    ("w11", "Plant-Based Protein Dishes", "Lentils, beans, tofu and tempeh cooked so that they taste of something.", "cooking|vegetarian|nutrition", "new:green-plate", "kitchen"),
    ("w12", "Fixing a Puncture at the Roadside", "Tyre levers, patches, spare tubes and a mini pump: back on the road in ten minutes.", "cycling|repair|basics", "spoke-works", "bike"),
    ("w13", "Gears and Brakes Tune-Up", "Adjust derailleurs and rim or disc brakes with basic tools.", "cycling|repair|maintenance", "spoke-works", "bike"),
    ("w14", "Planning a Weekend Bike Tour", "Routes, luggage, rain gear and where to sleep on a two-day ride.", "cycling|touring|travel", "long-road", "bike"),
    ("w15", "Commuting by Bike in Winter", "Lights, mudguards, layers and studded tyres for dark and icy mornings.", "cycling|commuting|safety", "new:city-riders", "bike"),
    ("w16", "Finding Planets with the Naked Eye", "Tell Venus, Jupiter and Saturn from stars and follow them through the year.", "astronomy|night sky|beginners", "dark-sky", "sky"),
    ("w17", "Choosing a First Telescope", "Refractors, reflectors and mounts explained, with what each shows of the Moon and planets.", "astronomy|equipment|telescopes", "dark-sky", "sky"),
    ("w18", "Photographing the Milky Way", "Wide lenses, long exposures, star trackers and stacking for the galactic core.", "astronomy|photography|night", "lens-and-light", "sky"),
    ("w19", "Meteor Showers and How to Watch Them", "Which nights, which direction and why patience matters more than equipment.", "astronomy|night sky|events", "new:star-party", "sky"),
    ("w20", "Composition for Phone Photographers", "Leading lines, framing and light for better pictures with the phone in your pocket.", "photography|composition|phone", "lens-and-light", "photo"),
    ("w21", "Portraits in Natural Light", "Window light, reflectors and posing for flattering portraits without a studio.", "photography|portraits|light", "lens-and-light", "photo"),
    ("w22", "Editing Raw Files", "Exposure, white balance, curves and local adjustments in a raw editor.", "photography|editing|software", "pixel-lab", "photo"),
    ("w23", "Street Photography Ethics and Practice", "Shooting strangers in public with respect: consent, distance and storytelling.", "photography|street|ethics", "new:open-streets", "photo"),
    ("w24", "Cutting Dovetails by Hand", "Mark, saw and chop through-dovetails with a few hand tools.", "woodworking|joinery|hand tools", "bench-and-plane", "wood"),
    ("w25", "Building a Simple Bookshelf", "Measure, cut, assemble and finish a pine bookshelf in a weekend.", "woodworking|furniture|beginners", "bench-and-plane", "wood"),
    ("w26", "Sharpening Chisels and Plane Irons", "Grinding angles, honing and stropping to a mirror edge.", "woodworking|sharpening|tools", "new:edge-guild", "wood"),
    ("w27", "Spoon Carving with Green Wood", "Axe and knife work on freshly cut birch to carve a cooking spoon.", "woodworking|carving|green wood", "forest-craft", "wood"),
    ("w28", "Knitting Your First Scarf", "Cast on, knit and purl, and bind off: a striped scarf for complete beginners.", "knitting|textiles|beginners", "yarn-circle", "craft"),
    ("w29", "Mending Clothes Visibly", "Darning, patches and sashiko stitches to make repairs part of the garment.", "sewing|repair|textiles", "new:mend-more", "craft"),
    ("w30", "Sewing Machine Basics", "Thread the machine, sew straight seams and hem a pair of trousers.", "sewing|machine|beginners", "yarn-circle", "craft"),
    ("w31", "Beginner Bouldering Technique", "Footwork, body position and falling safely on indoor bouldering walls.", "climbing|fitness|indoor", "crux-crew", "move"),
    ("w32", "Couch to 5K, Gently", "A nine-week plan with walk-run intervals, rest days and shoes that fit.", "running|fitness|beginners", "new:easy-miles", "move"),
    ("w33", "Mobility for Desk Workers", "Ten-minute routines for hips, shoulders and back after long hours of sitting.", "fitness|mobility|health", "crux-crew", "move"),
    ("w34", "Trail Running on Hills", "Climbing, descending and pacing on uneven paths, with kit for changing weather.", "running|trail|outdoors", "long-road", "move"),
    ("w35", "Reading Music from Scratch", "Staves, clefs, note values and rhythm for adults who never learnt.", "music|theory|beginners", "open-chord", "music"),
    ("w36", "First Chords on Guitar", "Open chords, strumming patterns and changing chords in time.", "music|guitar|beginners", "open-chord", "music"),
    ("w37", "Home Recording on a Budget", "A microphone, an interface and free software: record a song in a bedroom.", "music|recording|software", "new:garage-tapes", "music"),
    ("w38", "Singing in a Community Choir", "Breathing, warm-ups and harmony singing for people who think they cannot sing.", "music|singing|community", "open-chord", "music"),
    ("w39", "Wild Camping Responsibly", "Leave-no-trace practice, where it is allowed, and a light kit list.", "outdoors|camping|hiking", "long-road", "outdoor"),
    ("w40", "Map and Compass Navigation", "Contours, bearings and pacing to find your way when the phone has no signal.", "outdoors|navigation|hiking", "new:trail-sense", "outdoor"),
    ("w41", "Foraging Safely in Autumn", "Nuts, berries and a few unmistakable mushrooms, and the many to leave alone.", "outdoors|foraging|food", "forest-craft", "outdoor"),
    ("w42", "Birdsong for Beginners", "Learn ten common songs by ear on an early morning walk.", "wildlife|birds|outdoors", "new:meadow-lab", "outdoor"),
]

THEMES = sorted({row[5] for row in CATALOGUE})
NEIGHBOURS = {  # themes a user of one theme also tends to like
    "garden": ["kitchen", "outdoor"], "kitchen": ["garden", "craft"], "bike": ["outdoor", "move"],
    "sky": ["photo", "outdoor"], "photo": ["sky", "outdoor"], "wood": ["craft", "garden"],
    "craft": ["wood", "kitchen"], "move": ["bike", "outdoor"], "music": ["craft", "photo"],
    "outdoor": ["move", "garden"],
}


def main() -> None:
    rng = random.Random(7)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "items.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item", "title", "text", "tags", "creator"])
        for item, title, text, tags, creator, _ in CATALOGUE:
            writer.writerow([item, title, text, tags, creator])
    by_theme = {t: [row[0] for row in CATALOGUE if row[5] == t] for t in THEMES}
    popularity = {row[0]: 1.0 + 2.0 * rng.random() for row in CATALOGUE}
    rows = []
    start = 1_700_000_000
    for u in range(1, 61):
        main_theme = rng.choice(THEMES)
        length = rng.randint(5, 12)
        t = start + rng.randint(0, 86_400 * 30)
        seen: set[str] = set()
        for _ in range(length):
            r = rng.random()
            theme = main_theme if r < 0.65 else rng.choice(NEIGHBOURS[main_theme]) if r < 0.9 else rng.choice(THEMES)
            pool = [i for i in by_theme[theme] if i not in seen] or [i for i in popularity if i not in seen]
            weights = [popularity[i] for i in pool]
            item = rng.choices(pool, weights=weights)[0]
            seen.add(item)
            t += rng.randint(600, 86_400 * 3)
            rating = rng.choice([3.0, 3.5, 4.0, 4.0, 4.5, 5.0])
            rows.append((f"u{u:02d}", item, rating, t))
    with open(OUT / "interactions.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user", "item", "rating", "timestamp"])
        writer.writerows(rows)
    print(f"wrote {len(CATALOGUE)} items and {len(rows)} interactions to {OUT}")


if __name__ == "__main__":
    main()
