"""The takeaways of the original protocol's runs, in sentences the README, the report and the paper print.

    from confidence_trap.analysis.original_findings import original_findings
    original_findings((summary, run_info))                          # one image (configs/original.yaml)
    original_findings((summary, run_info), (summary2, run_info2))   # and over many (original_photos)

Each sentence reads summary["original"] alone and holds for any run shape: no original code block,
no clamp, no noise-alone runs, one ε, one image or many. A change over many images is called by its
verdict (a CI beyond δ, the noise inside the test: confidence_trap/analysis/verdicts.py); where the
verdict is inconclusive the sentence says the run cannot tell. One image gives no interval, and the
sentences say so rather than print one.
"""
from __future__ import annotations

from confidence_trap.analysis.findings import model_phrase
from confidence_trap.analysis.original import shown_epsilon
from confidence_trap.analysis.tables import ci, signed


def measured(block: dict) -> str | None:
    """What the study's code measured, from its code block (paper/original_study.json)."""
    code, p = block.get("theirs"), (block.get("theirs") or {}).get("positions")
    if not code:
        return None
    where = (f" ({p['n_positions']} positions on LLaVA-1.5, {p['n_image_positions']} of them image patches, "
             "so only the last is about the answer)" if p else "")
    return ("The study's code measured something other than its paper describes: one teacher-forced forward "
            f"pass over the prompt, with no generated answer, the entropy averaged over every position{where}, "
            f"on one image, perturbed by noise of {block['pairing'].split(',')[0]} added to the CLIP-normalised "
            "tensor, which is then clamped to [0, 1].")


def _part(e: dict | None, kind: str = "all") -> float | None:
    return ((e or {}).get(kind) or {}).get("mean_delta")


def decomposed(block: dict, info: dict) -> str | None:
    """The protocol's Δ on one image at the shown ε, taken apart into clamp and noise, by position."""
    key = shown_epsilon(block)
    e = block["by_epsilon"].get(key) if key else None
    both, clamp, noise = _part((e or {}).get("both")), _part(block.get("clamp")), _part((e or {}).get("noise"))
    if both is None:
        return None
    model = model_phrase(info, hardware=True, not_llava=True)
    out = (f"On {model}, that protocol gives Δ = {signed(both)} nats over every position at ε = "
           f"{e['epsilon']:g} (σ = {e['sigma']:g}; {'one image, so no interval' if block['one_cluster'] else 'mean over images'})")
    if clamp is not None and noise is not None:
        out += f"; the clamp alone gives {signed(clamp)} and the noise alone {signed(noise)}"
        if clamp * both > 0 and abs(noise) < abs(clamp) / 2:
            out += ", so the change is the clamp's"
    c = block.get("clamp") or e["both"]
    if all(_part(c, k) is not None for k in ("image", "text", "last")):
        out += (f". By position, the {'clamp' if block.get('clamp') else 'perturbation'} moves the image positions "
                f"by {signed(_part(c, 'image'))}, the text positions by {signed(_part(c, 'text'))} and the last "
                f"position, the answer's first token, by {signed(_part(c, 'last'))}")
    return out + "."


def beyond(one: dict, many: dict, info: dict) -> str | None:
    """Whether the one image's change holds over many images: the original perturbation at the shown
    ε, every position and the last, each by its verdict over images."""
    key = shown_epsilon(one)
    e = many["by_epsilon"].get(key) if key else None
    if not e or not e.get("both") or many["one_cluster"]:
        return None
    parts = []
    for kind, name in (("all", "over every position"), ("last", "at the last position")):
        m = e["both"].get(kind)
        if m and m["mean_delta"] is not None:
            parts.append(f"{name} its mean Δ is {signed(m['mean_delta'])} nats (95% CI {ci(m['ci95'])}, "
                         f"verdict {m['verdict']})")
    if not parts:
        return None
    verdict, mine = (e["both"].get("all") or {}).get("verdict"), _part(one["by_epsilon"][key]["both"])
    if verdict in ("falls", "rises") and mine:
        tell = f"the one image's sign {'survives' if (verdict == 'falls') == (mine < 0) else 'reverses'} over images"
    elif verdict == "equivalent":
        tell = "over images the change stays within ±δ, whatever the one image showed"
    else:
        tell = "the run cannot tell whether the one image's sign survives beyond it"
    return (f"Over {many['n_images']} images, the same perturbation at ε = {e['epsilon']:g}: "
            + "; ".join(parts) + f". So {tell}.")


def original_findings(one: tuple | None, many: tuple | None = None) -> list[str]:
    """The sentences, in order; [] without a run of the original protocol on one image."""
    if not one or not one[0].get("original"):
        return []
    block, info = one[0]["original"], one[1] or {}
    out = [measured(block), decomposed(block, info)]
    if many and many[0].get("original"):
        out.append(beyond(block, many[0]["original"], many[1] or {}))
    return [s for s in out if s]


__all__ = ["beyond", "decomposed", "measured", "original_findings"]
