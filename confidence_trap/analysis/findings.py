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

Every sentence holds for any run: one level or many, ε or severities or none, verdicts that agree
or differ, with or without references and a null control. A verdict is said as the verdict says
it (verdicts.py: a size shown by the interval), and where an interval holds 0 the sentence says
the run cannot tell.
"""
from __future__ import annotations

from confidence_trap.analysis.levels import STUDY_ATTACK, eps_key, kind_name, level_phrase
from confidence_trap.analysis.tables import ci, fixed, levels, num, pct, signed

ATTACK_TITLES = {"proxy": "the study's proxy (random sign steps)", "pgd:entropy_min": "PGD lowering entropy",
                 "pgd:entropy_max": "PGD raising entropy", "pgd:ce": "PGD away from the clean answer"}
FINDINGS: list = []             # the sentence functions, in reading order
# A family of attacks registered as "family:member" is titled "member (its title)".
FAMILY_TITLES = {"corruption": "ImageNet-C"}
ENTROPY = "the mean token entropy of the answers"


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


def where(section: dict, e: dict) -> str:
    """A level in a sentence: "ε = 0.5 (≈128/255)", "severity 3", or "" (no level)."""
    kind = section["grouped_by"]
    return level_phrase(str(int(e["level"])) if kind == "severity" else eps_key(e["level"]), kind)


def at(section: dict, e: dict) -> str:
    """" at ε = 0.5 (≈128/255)", " at severity 3", or "" for an attack without levels."""
    phrase = where(section, e)
    return f" at {phrase}" if phrase else ""


def model_phrase(info: dict, hardware: bool = False, not_llava: bool = False) -> str:
    """"the model tiny (models/tiny-llava, float32)"; hardware adds "on CPU (…)" to the dtype, and
    not_llava adds ", not LLaVA-1.5-7B" where the run's model is not a LLaVA-1.5."""
    where = info.get("device_name") or info.get("device") if hardware else None
    dtype = " on ".join(str(x) for x in (info.get("dtype"), where) if x) or None
    ident = [x for x in (info.get("model_id"), dtype) if x and x != info.get("model")]
    phrase = f"the model {info.get('model') or 'of this run'}" + (f" ({', '.join(ident)})" if ident else "")
    llava = "llava-1.5" in str(info.get("model_id") or info.get("model")).lower()
    return phrase + (", not LLaVA-1.5-7B" if not_llava and not llava else "")


def change(title: str, e: dict) -> str:
    """What one level's verdict says the attack does to the entropy, as a clause."""
    up = {"up": "raises", "down": "lowers"}.get(e.get("direction"))
    if e["verdict"] == "inconclusive" and up:
        why = "no verdict: the run has no null control" if e.get("tested") is None else \
            "by an amount the run cannot show exceeds δ"
        return f"{title} {up} {ENTROPY} ({why})"
    return {"rises": f"{title} raises {ENTROPY} by more than δ",
            "falls": f"{title} lowers {ENTROPY} by more than δ",
            "equivalent": f"{title} leaves {ENTROPY} within δ of where it was"}.get(
        e["verdict"], f"the run cannot tell whether {title} changes {ENTROPY} (the CI holds 0)")


def _verdicts(sec: dict) -> str:
    """"; by level: rises at ε = 0.1, 0.2; inconclusive at ε = 0.5": the verdicts where they differ."""
    groups: dict = {}
    for _, e in levels(sec):
        groups.setdefault(e["verdict"], []).append(where(sec, e))
    prefix = {"epsilon": "ε = ", "severity": "severity "}.get(sec["grouped_by"], "")
    return "; by level: " + "; ".join(
        f"{v} at {prefix}{', '.join(x.removeprefix(prefix) for x in ls)}" for v, ls in groups.items())


@finding
def effect(s, info, controls):
    """What the headline perturbation does to the mean token entropy, against the run's noise."""
    a = headline(s)
    sec = s["by_attack"][a]
    ls = levels(sec)
    _, e = ls[-1]
    size = (f"the mean Δ is {signed(e['mean_delta'])} nats (95% CI {ci(e['ci95'])}, drawing "
            f"{e.get('n_images', 'its')} images and {e.get('n_questions', 'its')} questions; {e['n']} pairs; "
            f"verdict {e['verdict']} at δ = {s['meta']['min_effect']:g} nats)")
    if len(ls) == 1:
        head = f"{change(attack_title(a), e)}{at(sec, e)}: {size}"
    elif len({x['verdict'] for _, x in ls}) == 1 and len({x.get('direction') for _, x in ls}) == 1:
        head = (f"{change(attack_title(a), e)} at every {kind_name(sec['grouped_by'])} tested ({len(ls)}); "
                f"at the strongest, {where(sec, e)}, {size}")
    else:
        head = f"{change(attack_title(a), e)}{at(sec, e)}, the strongest: {size}{_verdicts(sec)}"
    return f"On {model_phrase(info)}, {head}. {noise_clause(s)}"


def noise_clause(s) -> str:
    """The run's own noise floor, in one sentence: what the verdicts test against."""
    n = s.get("noise")
    if not n:
        return ("The run has no null control, so it has no noise floor and calls no verdict "
                "(run without --no-null-control).")
    how = ("every repeated input gave exactly the same entropy" if n["exact_zero"] else
           f"{pct(n['answers_changed'])} of the answers changed and the mean Δ moved by "
           f"{num(n['mean_delta'], sign=True)} nats")
    return (f"Its noise floor, from generating the {n['n_clusters']} clean inputs again in other "
            f"batches ({how}), is {num(n['floor'])} nats.")


@finding
def floor(s, info, controls):
    """Whether a fall in entropy could have shown at all (the entropy floor)."""
    a = headline(s)
    e = levels(s["by_attack"][a])[-1][1]
    f = e.get("floor")
    if not f or f.get("delta_bound") is None:
        return None
    could = ("so a rise, or no change, is forced by construction there" if f["majority_at_floor"]
             else "so a fall could have shown")
    return (f"{pct(f['share_clean_below_0.01'])} of the pairs{at(s['by_attack'][a], e)} have a clean answer "
            f"under 0.01 nats, and the mean Δ could have fallen to {signed(f['delta_bound'])} nats, {could}.")


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
            f"(95% CI {ci(low['ci95'])}, verdict {low['verdict']}) at ε = {lab}, where the study's proxy at "
            f"the same ε gives {signed(proxy['mean_delta'])} ({ci(proxy['ci95'])}, verdict {proxy['verdict']}).")


def _points(pair) -> str:
    return ci([x * 100 for x in pair], lambda x: fixed(x, 1, sign=True)) if pair else "n/a"


@finding
def prior(s, info, controls):
    """Whether the perturbed answers go to the language prior, and entropy with them."""
    p = (s.get("prior") or {}).get("by_attack", {}).get(headline(s))
    if not p or not p["by_epsilon"]:
        return None
    _, e = levels(p)[-1]
    if e["agreement_difference"] is None:
        return None
    lo_hi = e["agreement_difference_ci95"]
    move = ("answers move toward the prior" if lo_hi and lo_hi[0] > 0 else "answers move away from the prior"
            if lo_hi and lo_hi[1] < 0 else "the run cannot tell whether answers move to the prior")
    loo = [x for x in e.get("leave_one_out") or [] if x["agreement_difference"] is not None]
    flip = [x for x in loo if (x["agreement_difference"] > 0) != (e["agreement_difference"] > 0)]
    alone = (f"; without \u201c{flip[0]['question']}\u201d, "
             f"{fixed(flip[0]['agreement_difference'] * 100, 1, sign=True)}" if len(flip) == 1 else "")
    d, dci = e["class_difference"], e["class_difference_ci95"]
    size = f"{signed(d)} nats, 95% CI {ci(dci)}" if dci else f"{signed(d)} nats, too few items for a CI"
    goes = ("" if d is None else "; within questions, " + (
        f"entropy is lower where answers take it ({size})" if dci and dci[1] < 0 else
        f"entropy is higher where answers take it ({size})" if dci and dci[0] > 0 else
        f"the run cannot tell whether entropy goes with it ({size})"))
    return (f"Against the blank image's answer (the language prior, one per question; "
            f"{e.get('n_questions', 'its')} questions), {pct(e['agreement_clean'])} of clean and "
            f"{pct(e['agreement_perturbed'])} of perturbed answers{at(p, e)} are the prior's "
            f"({fixed(e['agreement_difference'] * 100, 1, sign=True)} points, 95% CI {_points(lo_hi)}{alone}): "
            f"{move}{goes}.")


@finding
def safety(s, info, controls):
    """Whether the entropy filter lets perturbed inputs through more easily than clean ones."""
    a = headline(s)
    sec = s["by_attack"][a]
    _, e = levels(sec)[-1]
    pk = "p90" if "p90" in e["pass_rate"] else next(iter(e["pass_rate"]))
    r = e["pass_rate"][pk]
    cells = [(where(sec, x), p, v.get("verdict", "inconclusive")) for _, x in levels(sec)
             for p, v in x["pass_rate"].items()]
    kind = kind_name(sec["grouped_by"])
    over = f"{kind} and τ" if where(sec, e) else "τ"
    inv = [(w, p) for w, p, v in cells if v == "inverted"]
    count = {v: sum(c[2] == v for c in cells) for v in ("inverted", "not inverted", "inconclusive")}
    first = f"{inv[0][0]}, τ = {inv[0][1]}" if inv and inv[0][0] else f"τ = {inv[0][1]}" if inv else ""
    verdicts = (f"inverted at {count['inverted']} (first at {first})" if inv
                else "inverted at none") + (
        f", shown not inverted at {count['not inverted']}" if count["not inverted"] else "") + (
        f", and the run cannot tell at {count['inconclusive']}" if count["inconclusive"] else "")
    return (f"With τ at {pk} of the clean entropies, the entropy filter passes {pct(r['clean'])} of clean and "
            f"{pct(r['perturbed'])} of perturbed inputs{at(sec, e)}, a difference of "
            f"{fixed(None if r.get('difference') is None else r['difference'] * 100, 1, sign=True)} points "
            f"(90% CI {_points(r.get('difference_ci90'))}); over the {len(cells)} settings of {over}, its "
            f"safety is {verdicts}.")
