"""The original protocol's sentences (confidence_trap/analysis/original_findings.py) on synthetic
summaries where the right words are known: one image, many images whose change falls, many whose
change the run cannot tell, no original code block, no clamp, one ε."""
import json
import os

from confidence_trap.analysis.original_findings import original_findings
from confidence_trap.analysis.summary import summarize
from test_original_analysis import INFO, LOGO, records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(REPO, "paper", "original_study.json"), encoding="utf-8") as f:
    CODE = json.load(f)["code"]
PHOTOS = tuple(f"data/photos/p{i}.jpg" for i in range(6))


def summary_of(recs, code=CODE):
    return summarize(recs, seed=0, n_boot=200, original_code=code)


def test_one_image_says_what_was_measured_and_whose_change_it_is():
    s = summary_of(records((LOGO,)))
    first, second = original_findings((s, INFO))
    assert "586 positions on LLaVA-1.5, 576 of them image patches" in first and "σ = ε/10" in first
    block = s["original"]["by_epsilon"]["0.3"]  # the largest ε the original has runs at
    assert f"Δ = {block['both']['all']['mean_delta']:+.3f} nats" in second and "one image, so no interval" in second
    assert "so the change is the clamp's" in second  # the synthetic noise is tiny beside the clamp's shift
    assert "CI" not in second  # one image: no interval printed
    assert all("nan" not in t and ", ," not in t and "at, " not in t for t in (first, second))


def test_many_images_whose_change_falls_survive():
    one, many = summary_of(records((LOGO,))), summary_of(records(PHOTOS))
    assert many["original"]["by_epsilon"]["0.3"]["both"]["all"]["verdict"] == "falls"  # -0.11 over 6 images
    last = original_findings((one, INFO), (many, INFO))[-1]
    assert last.startswith("Over 6 images") and "verdict falls" in last and "sign survives over images" in last


def test_a_change_the_images_disagree_on_cannot_be_told():
    one = summary_of(records((LOGO,)))
    recs = records(PHOTOS)
    for r in recs:  # half of the images move up by as much as the others move down
        if r["attack"] != "none" and r["image"] in PHOTOS[:3] and r["attack"] != "repeat":
            r["prompt_entropy"] += 0.4
    last = original_findings((one, INFO), (summary_of(recs), INFO))[-1]
    assert "cannot tell whether the one image's sign survives" in last


def test_any_shape_reads_whole():
    bare = [r for r in records((LOGO,), eps=(0.3,)) if r["attack"] != "original_clamp"]
    no_code = original_findings((summary_of(bare, code=None), INFO))
    assert len(no_code) == 1 and "the clamp alone" not in no_code[0] and "the perturbation moves" in no_code[0]
    assert original_findings(None) == [] and original_findings(({"original": None}, INFO)) == []
