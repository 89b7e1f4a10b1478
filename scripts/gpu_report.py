"""python scripts/gpu_report.py WORK RESULTS_DIR

The last step of scripts/gpu_checks.sh: reads what its command-line steps left in WORK (runs/,
logs/, steps.tsv: one line per step, name, exit status, seconds, note) and writes into RESULTS_DIR
  gpu_study.json        the study grid (configs/study.yaml) through the CLI on the default path:
                        its batch and decode path, samples/s over the generation time and over the
                        whole run, peak memory, the run's own noise floor (its null control) and
                        verdicts; and the same command again, which must load nothing
  gpu_determinism.json  two identical runs with --deterministic and two without, on a reduced grid
                        (the command is in the file): byte comparison of records.jsonl (as cmp),
                        differing answers, largest mean-entropy difference, generation times
  gpu_checks.json       every step's exit status and time, the machine, the versions, and the
                        original protocol's run (configs/original.yaml): its positions and its
                        clean and clamped prompt entropies (random weights: the path, not a finding)
then prints a summary of all gpu_*.json against the targets of issue 20. A missing file or a
failed step shows as such; nothing here raises on a partial run.
"""
from __future__ import annotations

import json
import os
import sys
import time

from confidence_trap.runner import runs

TARGET_SAMPLES_PER_S = 20.0   # the default path on the study grid (3x the 6.9 of 2026-12-04)
TARGET_FLOOR_RATIO = 3.0      # compiled decode step at batch 1 over the memory-bandwidth floor
T4_GIB = 14.5


def steps(work: str) -> list[dict]:
    out = []
    path = os.path.join(work, "steps.tsv")
    for line in open(path, encoding="utf-8").read().splitlines() if os.path.exists(path) else []:
        name, rc, seconds, note = (line.split("\t") + ["", "", "", ""])[:4]
        log = os.path.join(work, "logs", f"{name}.log")
        tail = (open(log, encoding="utf-8", errors="replace").read().strip().splitlines()[-3:]
                if os.path.exists(log) else [])
        out.append({"name": name, "rc": int(rc) if rc.lstrip("-").isdigit() else None,
                    "seconds": float(seconds) if seconds else None, "note": note, "tail": tail})
    return out


def gpu_line(work: str) -> str | None:
    """nvidia-smi's name, memory and driver line, as the script logged it."""
    path = os.path.join(work, "logs", "gpu.log")
    return open(path, encoding="utf-8").read().strip() or None if os.path.exists(path) else None


def records(folder: str) -> list[dict]:
    return runs.read_records(os.path.join(folder, "records.jsonl"))


def study(work: str, done: dict) -> dict:
    folder = os.path.join(work, "runs", "study")
    info = runs.read_info(folder)
    out = {"command": info.get("command"), "device_name": info.get("device_name"), "label": label(info),
           "step": done.get("study"), "resume": done.get("resume")}
    if info.get("generation_s"):
        n = len(records(folder))
        out.update(units=n, generated=info.get("generated"), batch_size=info.get("batch_size"),
                   decode=info.get("decode"), generation_s=info["generation_s"], wall_time_s=info.get("wall_time_s"),
                   samples_per_s=round(info["generated"] / info["generation_s"], 2) if info.get("generated") else None,
                   wall_samples_per_s=round(n / info["wall_time_s"], 2) if info.get("wall_time_s") else None,
                   peak_gpu_memory_gib=info.get("peak_gpu_memory_gib"), target_samples_per_s=TARGET_SAMPLES_PER_S)
        out["met"] = (out["samples_per_s"] or 0) >= TARGET_SAMPLES_PER_S
    s = read(os.path.join(folder, "summary.json")) or {}
    if s.get("noise"):  # the run's own null control: what SDPA's drift does to one run's answers
        keep = ("n_clusters", "mean_delta", "ci95", "floor", "max_abs_delta", "answers_changed", "exact_zero")
        out["noise"] = {k: s["noise"].get(k) for k in keep}
        out["noise_by_category"] = {c: {k: (v.get("noise") or {}).get(k) for k in keep}
                                    for c, v in (s.get("by_category") or {}).items()}
        out["verdicts"] = {k: e.get("verdict") for k, e in (s.get("by_epsilon") or {}).items()}
    log = os.path.join(work, "logs", "resume.log")
    if os.path.exists(log):
        text = open(log, encoding="utf-8", errors="replace").read()
        out["resume_loaded_no_weights"] = "no weights loaded" in text
    return out


def original(work: str, done: dict) -> dict:
    """The original protocol's run on the 7B architecture: what its records say."""
    recs = records(os.path.join(work, "runs", "original"))
    out = {"step": done.get("original"), "records": len(recs)}
    clean = next((r for r in recs if r.get("attack") == "none"), None)
    clamp = next((r for r in recs if r.get("attack") == "original_clamp"), None)
    keys = ("prompt_entropy", "prompt_entropy_image", "prompt_entropy_text", "prompt_entropy_last")
    if clean:
        out.update(n_positions=clean.get("n_positions"), n_image_positions=clean.get("n_image_positions"),
                   clean={k: clean.get(k) for k in keys})
    if clean and clamp and all(isinstance(clean.get(k), float) and isinstance(clamp.get(k), float) for k in keys):
        out["clamp_delta"] = {k: clamp[k] - clean[k] for k in keys}
    return out


def label(info: dict) -> str:
    """What the README says a table was measured on: the GPU, random weights, commit, date."""
    return (f"{info.get('device_name') or 'no run'}; LLaVA-1.5-7B architecture, random weights; "
            f"git {(info.get('git_commit') or '')[:7]}; {str(info.get('started') or '')[:10]}")


def grid(info: dict) -> str | None:
    """The reduced grid the pairs ran, in words."""
    c = info.get("config") or {}
    if not c:
        return None
    return (f"configs/study.yaml at ε {', '.join(map(str, c.get('epsilons', [])))}, {c.get('trials')} trials, "
            f"{c.get('max_new_tokens')} new tokens, --batch-size {c.get('batch_size')}")


def pair(work: str, a: str, b: str) -> dict:
    fa, fb = (os.path.join(work, "runs", x) for x in (a, b))
    ra, rb = records(fa), records(fb)
    out = {"runs": [fa, fb], "records": [len(ra), len(rb)],
           "generation_s": [runs.read_info(f).get("generation_s") for f in (fa, fb)],
           "decode": runs.read_info(fa).get("decode")}
    if not ra or len(ra) != len(rb):
        return {**out, "identical": False, "note": "missing or unequal records"}
    data = [open(os.path.join(f, "records.jsonl"), "rb").read() for f in (fa, fb)]
    diffs = [abs(x["mean_entropy"] - y["mean_entropy"]) for x, y in zip(ra, rb)
             if x.get("mean_entropy") is not None and y.get("mean_entropy") is not None]
    return {**out, "identical": data[0] == data[1],
            "differing_answers": sum(x["answer"] != y["answer"] for x, y in zip(ra, rb)), "of": len(ra),
            "max_mean_entropy_diff": max(diffs, default=None)}


def determinism(work: str, done: dict) -> dict:
    info = runs.read_info(os.path.join(work, "runs", "det_a"))
    out = {"step": done.get("determinism"), "deterministic": pair(work, "det_a", "det_b"),
           "default": pair(work, "def_a", "def_b"), "label": label(info), "command": info.get("command"),
           "grid": grid(info),
           "note": "each pair's two runs ran side by side on one GPU, so both pairs' generation times share it alike"}
    times = [t for k in ("deterministic", "default") for t in out[k]["generation_s"] if t]
    if len(times) == 4:
        det, default = sum(times[:2]) / 2, sum(times[2:]) / 2
        out["slowdown"] = round(det / default, 2)
    return out


def read(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def problems(data, where: str) -> list[tuple[str, str]]:
    """(where, what) of every {"error": ...} or {"skipped": ...} in a JSON tree."""
    if not isinstance(data, dict):
        return []
    found = [(where, str(data[k])) for k in ("error", "skipped") if k in data]
    return found + [p for k, v in data.items() for p in problems(v, f"{where}/{k}")]


def summary(res: str) -> list[str]:
    """A few lines: each figure issue 20 sets a target for, and what it is."""
    def get(data, *keys):
        for k in keys:
            data = data.get(k) if isinstance(data, dict) else None
        return data

    s, d = read(os.path.join(res, "gpu_study.json")) or {}, read(os.path.join(res, "gpu_determinism.json")) or {}
    t = read(os.path.join(res, "gpu_throughput.json")) or {}
    mem = {n: read(os.path.join(res, n)) or {} for n in ("gpu_memory.json", "gpu_memory_fp16_vision.json")}
    lines = [f"GPU checks: {t.get('label') or s.get('device_name') or 'no throughput file'}"]
    lines.append(f"  study grid, default path: {s.get('samples_per_s')} samples/s over generation "
                 f"(target >= {TARGET_SAMPLES_PER_S}), {s.get('wall_samples_per_s')} over the whole run; "
                 f"batch {s.get('batch_size')}, {get(s, 'decode', 'path')} ({get(s, 'decode', 'path_why')})")
    lines.append(f"  resume of the finished run: {get(s, 'resume', 'seconds')} s, no weights loaded: "
                 f"{s.get('resume_loaded_no_weights')}")
    by = t.get("by_batch") or {}
    lines.append("  samples/s by batch (eager | compiled): " + ", ".join(
        f"{k}: {v.get('eager')} | {v.get('compiled')}" for k, v in by.items()))
    ds = t.get("decode_step") or {}
    lines.append(f"  decode step at batch 1: eager {ds.get('eager_ms_batch_1')} ms, compiled "
                 f"{ds.get('compiled_ms_batch_1')} ms, floor {ds.get('floor_ms')} ms: "
                 f"{ds.get('compiled_over_floor')}x the floor (target <= {TARGET_FLOOR_RATIO})")
    ea = t.get("eager_attention") or {}
    lines.append(f"  eager attention at batch {ea.get('batch')}: {get(ea, 'eager_attention', 'samples_per_s')} "
                 f"samples/s vs SDPA {ea.get('sdpa_samples_per_s')} (time ratio {ea.get('slowdown')}); one batch "
                 f"run twice repeats bit for bit: SDPA {ea.get('sdpa_repeat_identical')}, eager "
                 f"{get(ea, 'eager_attention', 'repeat_identical')}")
    compiled = [v for v in (t.get("compiled") or {}).values() if isinstance(v, dict)]
    agree = next((v["agreement_with_eager"] for v in compiled if v.get("agreement_with_eager")), {})
    lines.append(f"  compiled vs eager records: same {agree.get('same_answers')}/{agree.get('of')}, near-ties "
                 f"{agree.get('near_ties')}, other differences {agree.get('other_differences')}, token "
                 f"entropies within {agree.get('max_token_entropy_diff')} nats: "
                 f"{'agree' if agree.get('agree') else 'NOT agreed'}")
    for k in ("deterministic", "default"):
        p = d.get(k) or {}
        lines.append(f"  two identical runs, {k}: byte-identical {p.get('identical')}, differing answers "
                     f"{p.get('differing_answers')}/{p.get('of')}, max |dH| {p.get('max_mean_entropy_diff')}")
    lines.append(f"  --deterministic's generation time over the default's: {d.get('slowdown')} "
                 f"(reduced grid, each pair side by side)")
    o = (read(os.path.join(res, "gpu_checks.json")) or {}).get("original") or {}
    size = f"{o.get('records')} records, {o.get('n_positions')} positions ({o.get('n_image_positions')} image)"
    clean, clamp = get(o, "clean", "prompt_entropy"), get(o, "clamp_delta", "prompt_entropy")
    lines.append(f"  original protocol (configs/original.yaml): {size}, clean prompt entropy {clean}, clamp Δ {clamp}")
    b = t.get("budget") or {}
    lines.append(f"  T4 budget {T4_GIB} GiB: PGD step peak {get(mem, 'gpu_memory.json', 'peak_gib')} GiB "
                 f"(CLIP fp32), {get(mem, 'gpu_memory_fp16_vision.json', 'peak_gib')} (fp16); batch picked "
                 f"under --max-memory: {b.get('batch_size')} on {b.get('path')}, peak {b.get('peak_gib')} GiB")
    stops = [f"{where}: {what}" for where, what in problems(t, "gpu_throughput")]
    if stops:
        lines.append(f"  not measured ({len(stops)}): " + "; ".join(stops)[:600])
    return lines


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python scripts/gpu_report.py WORK RESULTS_DIR", file=sys.stderr)
        return 2
    work, res = args
    os.makedirs(res, exist_ok=True)
    done = {s["name"]: s for s in steps(work)}
    runs.atomic_write_json(os.path.join(res, "gpu_study.json"), study(work, done))
    runs.atomic_write_json(os.path.join(res, "gpu_determinism.json"), determinism(work, done))
    runs.atomic_write_json(os.path.join(res, "gpu_checks.json"), {
        "steps": list(done.values()), "total_s": round(sum(s["seconds"] or 0 for s in done.values()), 1),
        "failed": [s["name"] for s in done.values() if s["rc"] != 0], "versions": runs.versions(),
        "gpu": gpu_line(work), "original": original(work, done),
        "git_commit": runs.git_commit(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    print("\n".join(summary(res)))
    for s in done.values():
        print(f"  step {s['name']}: rc {s['rc']}, {s['seconds']} s{' (' + s['note'] + ')' if s['note'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
