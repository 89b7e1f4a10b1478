"""takeaways(summary, run_info, controls=None) -> the run's findings, a few sentences with their numbers.

    from confidence_trap.analysis.findings import takeaways
    for sentence in takeaways(summary, run_info, controls={"entropy_min": (s, info), ...}):
        print(sentence)

One source for what a run found, in words: the report's first lines, README.md's "What this
repository found" and the paper's abstract and conclusion all print this list, so they cannot
disagree. Each finding is one function of (summary, run_info, controls), registered with @finding
in the order the sentences are read, that returns a plain-text sentence (numbers formatted by
confidence_trap.analysis.tables) or None when the run has nothing for it. `controls` is {run name: (summary,
run.json)} of the control runs (results/controls/), or None where there are none (the report of a
single run). Adding a finding is one more function; there are at most five, so the README's
account stays short (calibration lives in the tables).
"""
from __future__ import annotations

from confidence_trap.analysis.levels import STUDY_ATTACK, eps_key, kind_name, level_phrase
from confidence_trap.analysis.tables import ci, fixed, level_name, levels, num, pct, signed

ATTACK_TITLES = {"proxy": "the study's proxy (random sign steps)", "pgd:entropy_min": "PGD lowering entropy",
                 "pgd:entropy_max": "PGD raising entropy", "pgd:ce": "PGD away from the clean answer"}
VERBS = {"rises": "raises", "falls": "lowers", "equivalent": "leaves within δ of where it was",
         "inconclusive": "leaves without a change the run can call"}
FINDINGS: list = []             # the sentence functions, in reading order
# A family of attacks registered as "family:member" is titled "member (its title)".
FAMILY_TITLES = {"corruption": "ImageNet-C"}


def attack_title(name: str) -> str:
    """An attack's name in words: "corruption:gaussian_noise" -> "gaussian noise (ImageNet-C)". A
    title only: what the attack's levels are is the records' level_kind, never its name."""
    if name in ATTACK_TITLES:
        return ATTACK_TITLES[name]
    family, _, member = name.partition(":")
    if member:
        return f"{member.replace('_', ' ')} ({FAMILY_TITLES.get(family, family.replace('_', ' '))})"
    return name.replace("_", " ")


def finding(fn):
    FINDINGS.append(fn)
    return fn


def takeaways(summary: dict, run_info: dict, controls: dict | None = None) -> list[str]:
    """Every finding that the run has numbers for, in order."""
    if not summary or not summary.get("by_attack"):
        return []
    return [t for fn in FINDINGS if (t := fn(summary, run_info or {}, controls or {}))]


def headline(summary: dict) -> str:
    """The attack the sentences are about: the study's proxy if the run has it, else the first."""
    attacks = sorted(summary["by_attack"])
    return STUDY_ATTACK if STUDY_ATTACK in attacks else attacks[0]


def _strongest(summary: dict, attack: str):
    return levels(summary["by_attack"][attack])[-1]


def at(section: dict, e: dict) -> str:
    """" at ε = 0.5 (≈128/255)", " at severity 3", or "" for an attack without levels."""
    kind = section["grouped_by"]
    phrase = level_phrase(str(int(e["level"])) if kind == "severity" else eps_key(e["level"]), kind)
    return f" at {phrase}" if phrase else ""


def _model(info: dict) -> str:
    ident = [x for x in (info.get("model_id"), info.get("dtype")) if x and x != info.get("model")]
    return f"the model {info.get('model') or 'of this run'}" + (f" ({', '.join(ident)})" if ident else "")


@finding
def effect(s, info, controls):
    """What the headline perturbation does to the mean token entropy, against the run's noise."""
    a = headline(s)
    sec = s["by_attack"][a]
    lab, e = _strongest(s, a)
    every = {x["verdict"] for _, x in levels(sec)}
    how = VERBS[e["verdict"]]
    where = (f" at every {level_name(sec)}; at the strongest,{at(sec, e)}" if len(every) == 1 and len(levels(sec)) > 1
             else f";{at(sec, e)}")
    return (f"On {_model(info)}, {attack_title(a)} {how} the mean token entropy of the answers{where}, "
            f"the mean Δ is {signed(e['mean_delta'])} nats (95% CI {ci(e['ci95'])} over "
            f"{e['n_clusters']} items, {e['n']} pairs; verdict {e['verdict']} at δ = "
            f"{s['meta']['min_effect']:g} nats). {noise_clause(s)}")


def noise_clause(s) -> str:
    """The run's own noise floor, in one sentence: what a verdict had to clear."""
    n = s.get("noise")
    if not n:
        return ("The run has no null control, so it has no noise floor and calls no fall or rise "
                "(run without --no-null-control).")
    how = ("every repeated input gave exactly the same entropy" if n["exact_zero"] else
           f"{pct(n['answers_changed'])} of the answers changed and the mean Δ moved by "
           f"{num(n['mean_delta'], sign=True)} nats")
    return (f"Its noise floor, from generating the {n['n_clusters']} clean inputs again in other "
            f"batches ({how}), is {num(n['floor'])} nats.")


@finding
def floor(s, info, controls):
    """Whether a fall in entropy could have shown at all (the entropy floor)."""
    lab, e = _strongest(s, headline(s))
    f = e.get("floor")
    if not f:
        return None
    could = ("so a rise, or no change, is forced by construction there" if f["majority_at_floor"]
             else "so a fall could have shown")
    return (f"{pct(f['share_clean_below_0.01'])} of the pairs have a clean answer under 0.01 nats, and the mean Δ "
            f"could have fallen to {signed(f['delta_bound'])} nats, {could}.")


@finding
def control(s, info, controls):
    """The control: an attack built to lower entropy, beside the proxy at the same ε."""
    pairs = {}
    for name, (cs, _) in controls.items():
        for a in cs.get("by_attack", {}):
            for lab, e in levels(cs["by_attack"][a]):
                pairs.setdefault(lab, {})[a] = e
    common = [lab for lab, runs in pairs.items() if "pgd:entropy_min" in runs and STUDY_ATTACK in runs]
    if not common:
        return None
    lab = max(common, key=lambda k: pairs[k]["pgd:entropy_min"]["level"])
    low, proxy = pairs[lab]["pgd:entropy_min"], pairs[lab][STUDY_ATTACK]
    lead = ("The pipeline sees a fall where one exists" if low["verdict"] == "falls" else
            "The control built to lower entropy shows no fall the run can call")
    return (f"{lead}: true-gradient PGD built to lower entropy gives a mean Δ of {signed(low['mean_delta'])} nats "
            f"(95% CI {ci(low['ci95'])}) at ε = {lab}, where the study's proxy at the same ε gives "
            f"{signed(proxy['mean_delta'])} ({ci(proxy['ci95'])}, verdict {proxy['verdict']}).")


@finding
def prior(s, info, controls):
    """Whether the perturbed answers go to the language prior, and entropy with them."""
    p = (s.get("prior") or {}).get("by_attack", {}).get(headline(s))
    if not p:
        return None
    lab, e = levels(p)[-1]
    to, other = e["classes"]["to_prior"], e["classes"]["not_prior"]
    if e["agreement_difference"] is None or not to["n_pairs"] or not other["n_pairs"]:
        return None
    return (f"Against the blank image's answer (the item's language prior), {pct(e['agreement_clean'])} of "
            f"clean and {pct(e['agreement_perturbed'])} of perturbed answers{at(p, e)} are the prior's "
            f"({fixed(e['agreement_difference'] * 100, 1, sign=True)} points, 95% CI "
            f"{ci([x * 100 for x in e['agreement_difference_ci95']], lambda x: fixed(x, 1, sign=True))}); where the answer becomes "
            f"the prior's the mean Δ is {signed(to['mean_delta'])} nats, elsewhere {signed(other['mean_delta'])}.")


@finding
def safety(s, info, controls):
    """Whether the entropy filter lets perturbed inputs through more easily than clean ones."""
    a = headline(s)
    lab, e = _strongest(s, a)
    inverted = [(l, p) for l, x in levels(s["by_attack"][a]) for p, v in x["inverted_safety"].items() if v]
    pk = "p90" if "p90" in e["pass_rate"] else next(iter(e["pass_rate"]))
    rate = e["pass_rate"][pk]
    kind = kind_name(s["by_attack"][a]["grouped_by"])
    status = (f"is inverted at {len(inverted)} of its settings of {kind} and τ (first at {kind} {inverted[0][0]}, "
              f"τ = {inverted[0][1]})" if inverted else f"is inverted at no {kind} and τ")
    return (f"The entropy filter's safety {status}: with τ at {pk} of the clean entropies it passes "
            f"{pct(rate['clean'])} of clean and {pct(rate['perturbed'])} of perturbed inputs"
            f"{at(s['by_attack'][a], e)}.")
