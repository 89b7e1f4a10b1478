"""The docs' other generated pieces: ε's unit, the original study's table, the benchmark and GPU
memory files, the embedded model's training, and lists taken from the code itself.

    from paper.sections import original_pieces
    original_pieces(json.load(open("paper/original_study.json")))

Each reads one source (a JSON file, configs/, or a module's constants and docstrings), so the
README and the paper never repeat by hand what those sources say.
"""
from __future__ import annotations

import os

from analysis.summary import level_label
from paper.markup import Code, Table, dig, kv_table, pct
from paper.results import EXAMPLE_EPS


def epsilon_note(repo: str) -> list:
    from experiments.config import Config, load_yaml, parse_fraction

    out = [f"ε is an L∞ budget in [0,1] pixel units of the image the model sees: after pad-to-square "
           f"and resize to the model's input resolution, before CLIP normalisation. So "
           f"ε = {level_label(repr(EXAMPLE_EPS), 'epsilon')} means a pixel may move by "
           f"{EXAMPLE_EPS:g} of its full range. The default grid (`experiments/config.py`, "
           f"as in the study): " + ", ".join(level_label(repr(float(e)), "epsilon")
                                            for e in Config().epsilons) + "."]
    small = os.path.join(repo, "configs", "small_eps.yaml")
    if os.path.exists(small):
        eps = [parse_fraction(e) for e in load_yaml(small).get("epsilons", [])]
        out[0] += (" The adversarial-robustness literature works far lower; "
                   "`configs/small_eps.yaml` runs that regime: "
                   + ", ".join(level_label(repr(e), "epsilon") for e in eps) + ".")
    return out


def original_pieces(orig: dict) -> list:
    d = orig["decimals"]
    rows = [[f"{r['epsilon']:g}", f"{r['delta']:+.{d}f}" if r["delta"] else f"{0:.{d}f}"]
            for r in orig["rows"]]
    cap = (f"The original study's numbers ({orig['label']}): {orig['model']}, {orig['dtype']} on "
           f"{orig['hardware']}; {orig['attack']}; {orig['runs']}.")
    return [Table("original", cap, ["ε", "reported Entropy Delta Δ"], rows, "paper/original_study.json")]


BENCHMARKS = ("benchmark_cpu.json", "benchmark_gpu.json")  # experiments/benchmark.py --out


def benchmark_table(rel: str, name: str, b: dict) -> Table:
    """experiments/benchmark.py's JSON: the sweep one unit at a time against batched."""
    rows = [("hardware", "hardware.device_name"), ("torch threads", "hardware.torch_threads"),
            ("model", "model.model"),
            ("parameters", "model.parameters"), ("dtype", "model.dtype"),
            ("generations timed", "work.units"), ("new tokens per answer", "work.max_new_tokens"),
            ("one at a time: samples/s", "one_at_a_time.samples_per_s"),
            ("batched: batch size", "batched.batch_size"),
            ("batched: samples/s", "batched.samples_per_s"),
            ("speedup (batched / one at a time)", "speedup"),
            ("target speedup", "target.speedup_at_least"), ("target met", "target.met"),
            ("same answers both ways", "agreement.same_answers"),
            ("answers compared", "agreement.of"),
            ("ms per decode step, batch 1", "decode_step.ms_batch_1"),
            (f"ms per decode step, batch {dig(b, 'decode_step.batch')}",
             f"decode_step.ms_batch_{dig(b, 'decode_step.batch')}"),
            ("memory-bandwidth floor of a decode step (ms)", "decode_step.floor_ms"),
            ("bandwidth (GB/s)", "decode_step.bandwidth_gb_s"),
            ("bandwidth from", "decode_step.bandwidth_from"),
            ("peak memory one at a time (GiB)", "one_at_a_time.peak_memory_gib"),
            ("peak memory batched (GiB)", "batched.peak_memory_gib"),
            ("command", "command"), ("when", "when")]
    hw = dig(b, "hardware.device_name") or "unknown hardware"
    return kv_table(name.split(".")[0], f"Throughput of the sweep, one at a time against batched "
                    f"(`experiments/benchmark.py`), measured on {hw} with {dig(b, 'model.model')} "
                    f"(`{rel}/{name}`).", b, rows, f"{rel}/{name}", skip_none=True)


def gpu_memory_table(rel: str, g: dict) -> Table:
    """experiments/gpu_memory_check.py's JSON: one true-gradient PGD step, batch 1."""
    rows = [("model", "model"), ("hardware", "device_name"), ("dtype", "dtype"),
            ("attention", "attention"), ("gradient checkpointing", "checkpointing"),
            ("parameters", "parameters"), ("prompt tokens (image included)", "prompt_tokens"),
            ("answer tokens", "answer_tokens"), ("weights (GiB)", "weights_gib"),
            ("peak GPU memory (GiB)", "peak_gib"),
            ("peak resident memory, CPU (GiB)", "peak_rss_gib"),
            ("T4 budget (GiB)", "t4_budget_gib"), ("fits the T4 budget", "fits_t4"),
            ("seconds per step", "seconds_per_step")]
    return kv_table("gpu_memory", f"Memory of one true-gradient PGD step at batch one "
                    f"(`experiments/gpu_memory_check.py`), measured on "
                    f"{g.get('device_name') or 'unknown hardware'} (`{rel}/gpu_memory.json`).",
                    g, rows, f"{rel}/gpu_memory.json", skip_none=True)


PROJECT_GPU = "paper/project_gpu_measurements.json"


def project_gpu_tables(m: dict) -> list:
    """The GPU figures measured for this project outside this repository's scripts, labelled so."""
    who = f"{m['model']}, {m['dtype']}, on {m['hardware']}; {m['label']}"
    g = m["gradient_step"]
    grad = [("setup", "gradient_step.setup"), ("T4 budget (GiB)", "t4_budget_gib"),
            ("weights (GiB)", "weights_gib")]
    for key, name in (("sdpa_checkpointing", "SDPA + checkpointing"),
                      ("eager_checkpointing", "eager + checkpointing"),
                      ("sdpa", "SDPA, no checkpointing"), ("eager", "eager, no checkpointing")):
        if key in g:
            grad += [(f"{name}: peak (GiB)", f"gradient_step.{key}.peak_gib"),
                     (f"{name}: saved by the forward (GiB)", f"gradient_step.{key}.saved_by_forward_gib"),
                     (f"{name}: seconds per step", f"gradient_step.{key}.seconds")]
    grad += [("pixels with a nonzero gradient", "gradient_step.grad_nonzero_pixels", pct),
             ("the T4 path", "gradient_step.t4_path")]
    dec = [("setup", "decode.setup"), ("versions", "decode.versions")]
    for key in sorted(m.get("decode", {}), key=lambda k: (not k.startswith("batch_"), len(k), k)):
        if key.startswith("batch_"):
            n = key.split("_", 1)[1]
            dec += [(f"batch {n}: ms per decode step", f"decode.{key}.ms_per_step"),
                    (f"batch {n}: samples/s", f"decode.{key}.samples_per_s"),
                    (f"batch {n}: peak (GiB)", f"decode.{key}.peak_gib")]
    return [kv_table("project_gradient_step", f"True-gradient PGD, one step: {who}.", m, grad, PROJECT_GPU,
                     skip_none=True),
            kv_table("project_decode", f"Greedy generation by batch size: {who}.", m, dec, PROJECT_GPU,
                     skip_none=True)]


def measured_pieces(rel: str, benches: dict, gpu: dict | None, project_gpu: dict | None = None) -> list:
    out = []
    for name, data in benches.items():
        if data is not None:
            out.append(benchmark_table(rel, name, data))
    if not any(benches.values()):
        out.append(f"`{rel}/benchmark_cpu.json` is not present in this version "
                   f"(`python experiments/benchmark.py --model tiny --out {rel}/benchmark_cpu.json`).")
    if benches.get("benchmark_gpu.json") is None:
        out.append(f"`{rel}/benchmark_gpu.json` is not present in this version: the benchmark has not "
                   f"been run on a GPU (`python experiments/benchmark.py --random-weights "
                   f"configs/llava-1.5-7b.json --max-memory 14.5GiB --out {rel}/benchmark_gpu.json`, "
                   f"or `bash scripts/gpu_checks.sh` for both GPU measurements).")
    out.append(gpu_memory_table(rel, gpu) if gpu else
               f"`{rel}/gpu_memory.json` is not present in this version: no GPU memory was measured "
               f"(`python experiments/gpu_memory_check.py --out {rel}/gpu_memory.json`, on a GPU).")
    if project_gpu:
        out += project_gpu_tables(project_gpu)
    return out


def training_pieces(training: dict | None) -> list:
    if training is None:
        return ["`models/tiny-llava/training.json` is not present yet: the embedded model has not "
                "been trained in this checkout (`python models/tiny-llava/train.py`)."]
    m = training.get("machine", {})
    hw = m.get("gpu") or m.get("cpu") or "unknown hardware"
    rows = [("command", "command"), ("parameters", "parameters", str),
            ("steps", "steps"), ("batch size", "batch_size"),
            ("training time (s)", "train_wall_seconds", lambda v: f"{v:.1f}"),
            ("total time incl. evaluation (s)", "total_wall_seconds", lambda v: f"{v:.1f}"),
            ("device", "machine.device"), ("CPU", "machine.cpu"),
            ("CPU cores", "machine.nproc"), ("torch threads", "machine.threads"),
            ("torch", "machine.torch")]
    rows += [(f"held-out accuracy: {t}", f"eval.per_type.{t}.accuracy", pct)
             for t in sorted((training.get("eval") or {}).get("per_type", {}))]
    return [kv_table("training", f"Training of the embedded model on {hw} "
                     f"(`models/tiny-llava/training.json`).", training, rows,
                     "models/tiny-llava/training.json")]


def outputs_pieces() -> list:
    from analysis.figures import FIGURE_NAMES
    from experiments.runs import OUTPUT_FILES

    return [Code("\n".join(f"OUT/{n}" for n in OUTPUT_FILES)
                 + "\n" + "\n".join(f"OUT/figures/{n}" for n in FIGURE_NAMES))]


def corruption_pieces() -> list:
    from attacks.corruptions import CORRUPTIONS

    return [", ".join(f"`{c}`" for c in CORRUPTIONS)]


def summary_keys_pieces() -> list:
    import analysis.summary

    return [Code(analysis.summary.__doc__.strip())]
