"""Never lose a run, never crash on bad input: experiments/entropy_analysis.py end to end.

    python -m pytest tests/test_robustness.py -q            # the fast tier
    python -m pytest tests/test_robustness.py -q -m slow    # one real kill -9, and a plain offline process

Interruption (Ctrl-C, a torn last line, kill -9) resumes to byte-identical outputs; a rerun with
another config is refused and --fresh starts over; bad input gets one line on stderr, exit 2
and an untouched --out; odd but valid images run; non-finite logits are counted, never averaged;
the same command twice gives identical bytes. The fast tier calls main(argv) in process on the
tiny random checkpoints of conftest.py; the slow tier kills a real `python
experiments/entropy_analysis.py` mid-sweep, so the byte-for-byte comparison also spans interpreters.

"Unreadable file" for root (the tests run as root, and root reads a chmod-000 file): a directory
named x.png inside an image folder (open() fails with EISDIR for everyone) and a broken symbolic
link; a chmod-000 file is added only when the tests run as an ordinary user.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from confidence_trap.cli import main
from confidence_trap.errors import InputError
from confidence_trap.models.images import load_image, to_model_input

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "experiments", "entropy_analysis.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
           TOKENIZERS_PARALLELISM="false")
N_UNITS = 14  # 2 images × (clean + blank + 2 ε × 2 trials + repeat), in 7 batches of 2
OUTPUTS = ("records.jsonl", "summary.json", "entropy_report.txt")  # run.json holds timestamps


def sweep(model, images, out, *extra) -> list[str]:
    """The flags of the sweep most tests run."""
    return ["--model", model, "--images", *images, "--epsilons", "0.1", "0.3", "--trials", "2",
            "--max-new-tokens", "4", "--batch-size", "2", "--seed", "0", "--out", str(out), *extra]


def run(argv, capsys, env=None, monkeypatch=None) -> subprocess.CompletedProcess:
    """main(argv) in process, with its exit status, stdout and stderr."""
    capsys.readouterr()
    if env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    code = main(argv)
    got = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, got.out, got.err)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r


def outputs(out) -> dict:
    """The files a run must reproduce exactly: records, summary, report and figures."""
    names = list(OUTPUTS) + [os.path.join("figures", f)
                             for f in sorted(os.listdir(os.path.join(out, "figures")))]
    got = {}
    for name in names:
        with open(os.path.join(out, name), "rb") as f:
            got[name] = f.read()
    return got


def assert_same_outputs(out, ref):
    a, b = outputs(out), outputs(ref)
    assert sorted(a) == sorted(b)
    diffs = [name for name in a if a[name] != b[name]]
    assert not diffs, f"{out} differs from {ref} in {diffs}"


def tree(folder) -> dict:
    """{relative path: bytes} of every file, and every folder as None: to prove nothing changed."""
    got = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            got[os.path.relpath(os.path.join(root, d), folder) + "/"] = None
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                got[os.path.relpath(os.path.join(root, f), folder)] = fh.read()
    return got


def n_lines(path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def records(out) -> list[dict]:
    def no_nan(name):
        raise AssertionError(f"records.jsonl holds {name}")

    with open(os.path.join(out, "records.jsonl"), encoding="utf-8") as f:
        return [json.loads(line, parse_constant=no_nan) for line in f]


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two small noise images of different shapes (the padding path is taken)."""
    folder = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(0)
    paths = []
    for name, shape in (("a.png", (16, 24, 3)), ("b.png", (24, 16, 3))):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / name)
        paths.append(str(folder / name))
    return paths


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every run here on one thread, as the subprocesses (OMP_NUM_THREADS=1): CPU matmuls round
    differently with other thread counts, and the comparisons are byte for byte."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tiny_ckpt, pair, tmp_path_factory, one_thread):
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(sweep(tiny_ckpt, pair, out)) == 0
    return str(out)


def odd_image_files(folder) -> dict:
    """Valid images that are not 8-bit RGB, or are tiny, huge or rotated by EXIF."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
    files = {}

    def save(name, im, **kw):
        files[name] = str(folder / name)
        im.save(files[name], **kw)

    save("gray.png", Image.fromarray(rgb[..., 0]))
    rgba = np.dstack([rgb, np.tile(np.linspace(0, 255, 18, dtype=np.uint8), (12, 1))])
    save("rgba.png", Image.fromarray(rgba))
    pal = Image.fromarray(rgb).quantize(8)
    save("palette.png", pal, transparency=0)
    save("palette.gif", pal, transparency=0)
    save("gray16.png", Image.fromarray(rgb[..., 1].astype(np.uint16) * 257))
    save("la.png", Image.fromarray(rgba).convert("LA"))
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    save("one.png", Image.new("RGB", (1, 1), (200, 30, 60)))
    save("huge.jpg", Image.new("RGB", (8000, 6000), (40, 90, 200)), quality=50)  # 48 MP, ~0.7 MB
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: the camera was turned; show it rotated 90° clockwise
    save("exif6.jpg", Image.fromarray(rgb), exif=exif.tobytes(), quality=95)
    save("plain.jpg", Image.fromarray(rgb), quality=95)  # the same pixels without the tag
    return files


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    return folder, odd_image_files(folder)


# --- images: what load_image + to_model_input make of them ----------------------------------

@pytest.mark.parametrize("name", ["gray.png", "rgba.png", "palette.png", "palette.gif",
                                  "gray16.png", "la.png", "cmyk.jpg", "one.png", "exif6.jpg"])
def test_odd_images_become_model_input(odd_images, name):
    _, files = odd_images
    im = load_image(files[name])
    assert im.mode == "RGB"
    x = to_model_input(im, 32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


def test_odd_images_keep_their_pixels(odd_images):
    _, files = odd_images
    rgb = np.random.default_rng(1).integers(0, 256, (12, 18, 3), dtype=np.uint8)
    gray = np.asarray(load_image(files["gray.png"]))
    assert (gray == rgb[..., :1]).all()                        # L -> R = G = B
    g16 = np.asarray(load_image(files["gray16.png"]))
    assert (g16 == rgb[..., 1:2]).all()                        # 16 bits scaled, not clipped
    rgba = np.asarray(load_image(files["rgba.png"])).astype(int)
    assert (rgba[:, 0] == 255).all()                           # alpha 0 -> white
    assert (rgba[:, -1] == rgb[:, -1]).all()                   # alpha 255 -> the pixel
    pal = Image.open(files["palette.png"])
    clear = np.asarray(pal) == 0
    assert clear.any() and (np.asarray(load_image(files["palette.png"]))[clear] == 255).all()
    assert load_image(files["one.png"]).getpixel((0, 0)) == (200, 30, 60)
    huge = load_image(files["huge.jpg"])  # loaded once here: 48 MP take a second
    assert huge.size == (8000, 6000) and huge.mode == "RGB"
    x = to_model_input(huge, 32)  # pad 8000×6000 to a square with the mean colour, then resize
    assert x.shape == (3, 32, 32) and x.min() >= 0 and x.max() <= 1
    mean_colour = torch.tensor([int(m * 255) for m in (0.48145466, 0.4578275, 0.40821073)]) / 255
    assert torch.allclose(x[:, 0, 16], mean_colour, atol=1 / 255)    # the padded band
    assert torch.allclose(x[:, 16, 16], torch.tensor([40, 90, 200]) / 255, atol=4 / 255)


def test_exif_rotation_is_applied(odd_images):
    _, files = odd_images
    rotated = load_image(files["exif6.jpg"])
    expected = load_image(files["plain.jpg"]).transpose(Image.Transpose.ROTATE_270)
    assert rotated.size == (12, 18) == expected.size
    assert np.array_equal(np.asarray(rotated), np.asarray(expected))
    assert torch.equal(to_model_input(rotated, 32), to_model_input(expected, 32))
    assert not torch.equal(to_model_input(rotated, 32),
                           to_model_input(load_image(files["plain.jpg"]), 32))


def bad_image_files(folder) -> dict:
    """Files that look like images by name and cannot be decoded in full."""
    files = {"missing": str(folder / "missing.png")}
    files["not_an_image"] = str(folder / "notes.jpg")
    (folder / "notes.jpg").write_text("these are notes, not pixels\n")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90)
    files["truncated_jpeg"] = str(folder / "truncated.jpg")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    files["directory"] = str(folder / "dir.png")
    os.makedirs(files["directory"], exist_ok=True)
    files["broken_link"] = str(folder / "link.png")
    if not os.path.lexists(files["broken_link"]):
        os.symlink(str(folder / "gone.png"), files["broken_link"])
    return files


@pytest.mark.parametrize("kind, words", [
    ("missing", "image not found"), ("not_an_image", "cannot identify image file"),
    ("truncated_jpeg", "truncated"), ("directory", "Is a directory"),
    ("broken_link", "broken symbolic link")])
def test_bad_image_files_raise_one_line(tmp_path, kind, words):
    path = bad_image_files(tmp_path)[kind]
    with pytest.raises(InputError) as e:
        load_image(path)
    assert words in str(e.value) and "\n" not in str(e.value)


# --- records.jsonl: torn tails and damage ----------------------------------------------------

def test_read_records_drops_a_torn_tail_and_completes_a_cut_newline(tmp_path):
    from confidence_trap.runner.runs import read_records

    path = tmp_path / "records.jsonl"
    lines = [json.dumps({"image": "a", "answer": "é😀", "i": i}, ensure_ascii=False) + "\n"
             for i in range(3)]
    whole = "".join(lines).encode()
    torn = whole + lines[0].encode()[: lines[0].encode().index("😀".encode()) + 2]  # mid-character
    path.write_bytes(torn)
    assert len(read_records(str(path))) == 3 and path.read_bytes() == torn  # readers leave it
    assert len(read_records(str(path), repair=True)) == 3 and path.read_bytes() == whole
    path.write_bytes(whole[:-1])  # the last record whole, its newline cut off
    assert len(read_records(str(path), repair=True)) == 3 and path.read_bytes() == whole
    path.write_bytes(lines[0].encode() + b'{"image": "b", "ans\n' + lines[1].encode())
    with pytest.raises(ValueError, match="line 2"):
        read_records(str(path), repair=True)


def test_damage_before_the_last_line_is_refused_untouched(tmp_path):
    from confidence_trap.runner.runs import check_out

    view = {"model": "m", "epsilons": [0.1]}
    (tmp_path / "run.json").write_text(json.dumps({"result_view": view}))
    good = json.dumps({"image": "a", "question": "q", "attack": "none", "epsilon": 0.0,
                       "trial": 0}) + "\n"
    (tmp_path / "records.jsonl").write_text(good + '{"image": "a", "quest\n' + good)
    before = tree(tmp_path)
    with pytest.raises(InputError, match="line 2 is not valid JSON.*--fresh"):
        check_out(str(tmp_path), view, fresh=False)
    with pytest.raises(InputError, match=r"another config \(epsilons: \[0.1\] -> \[0.2\]\)"):
        check_out(str(tmp_path), dict(view, epsilons=[0.2]), fresh=False)
    assert tree(tmp_path) == before


# --- interruption: Ctrl-C and a torn last line, then the same command again --------------------

def test_ctrl_c_then_a_torn_line_then_rerun_gives_the_uninterrupted_outputs(tiny_ckpt, pair, reference,
                                                                           tmp_path, capsys, monkeypatch):
    import confidence_trap.runner.pipeline as pipeline

    out = tmp_path / "interrupted"
    real, calls = pipeline.run_batch, []

    def interrupted(sweep, units):
        calls.append(len(units))
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of the third batch
        return real(sweep, units)

    monkeypatch.setattr(pipeline, "run_batch", interrupted)
    r = run(sweep(tiny_ckpt, pair, out), capsys)
    assert r.returncode == 130 and "run the same command again to resume" in r.stderr
    assert "Traceback" not in r.stderr and n_lines(out / "records.jsonl") == 4
    monkeypatch.setattr(pipeline, "run_batch", real)
    path = out / "records.jsonl"
    last = path.read_bytes().splitlines()[-1]
    with open(path, "ab") as f:
        f.write(last[: len(last) // 2])  # what a kill in the middle of a write leaves
    ok(run(sweep(tiny_ckpt, pair, out), capsys))
    keys = [(x["image"], x["attack"], x["epsilon"], x["trial"]) for x in records(out)]
    assert len(keys) == len(set(keys)) == N_UNITS
    assert_same_outputs(out, reference)  # no record lost, none twice, same bytes


@pytest.mark.slow
def test_kill_9_mid_sweep_then_rerun_gives_the_uninterrupted_outputs(tiny_ckpt, pair, reference, tmp_path):
    """One real kill: a plain `python experiments/entropy_analysis.py`, killed with SIGKILL once
    it has written some records, then the same command in a fresh interpreter."""
    out = tmp_path / "killed"
    argv = [sys.executable, SCRIPT, *sweep(tiny_ckpt, pair, out)]
    p = subprocess.Popen(argv, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while n_lines(out / "records.jsonl") < 3 and p.poll() is None:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    n = n_lines(out / "records.jsonl")
    assert p.returncode == -signal.SIGKILL and 0 < n < N_UNITS, "the kill must land mid-sweep"
    final = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert final.returncode == 0 and "Traceback" not in final.stderr, final.stderr
    assert f"generated {N_UNITS - n} of {N_UNITS} generations ({n} were already in" in final.stderr
    assert_same_outputs(out, reference)


def test_a_finished_run_says_nothing_was_generated(tiny_ckpt, pair, reference, tmp_path, capsys):
    out = tmp_path / "again"
    shutil.copytree(reference, out)
    before = tree(out / "figures"), (out / "records.jsonl").read_bytes(), (out / "run.json").read_bytes()
    r = ok(run(sweep(tiny_ckpt, pair, out), capsys))
    assert f"nothing to generate: all {N_UNITS} generations were already in" in r.stderr
    assert "--fresh" in r.stderr
    assert (tree(out / "figures"), (out / "records.jsonl").read_bytes(), (out / "run.json").read_bytes()) == before


# --- determinism ---------------------------------------------------------------------------

def test_same_command_twice_gives_identical_bytes(tiny_ckpt, pair, reference, tmp_path, capsys):
    ok(run(sweep(tiny_ckpt, pair, tmp_path / "again"), capsys))
    assert_same_outputs(tmp_path / "again", reference)


# --- non-finite logits ------------------------------------------------------------------------

def test_nonfinite_logits_are_counted_not_averaged(nonfinite_ckpt, pair, tmp_path, capsys):
    out = tmp_path / "nonfinite"
    r = ok(run(sweep(nonfinite_ckpt, pair, out), capsys))
    recs = records(out)
    assert len(recs) == N_UNITS
    bad = [x for x in recs if x["n_nonfinite"] > 0]
    assert bad, "the checkpoint was meant to overflow"
    for x in recs:
        h = x["mean_entropy"]
        assert h is None or math.isfinite(h)
        assert x["n_nonfinite"] == sum(e is None for e in x["token_entropies"])
        finite = [e for e in x["token_entropies"] if e is not None]
        assert (h is None) == (not finite)
        if finite:
            assert h == pytest.approx(sum(finite) / len(finite), rel=1e-9)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)  # json.load takes NaN silently; the dump below would not
    json.dumps(summary, allow_nan=False)
    assert summary["nonfinite"]["count"] == len(bad)
    assert len(summary["nonfinite"]["records"]) == len(bad)
    with open(os.path.join(out, "entropy_report.txt"), encoding="utf-8") as f:
        report = f.read()
    assert "non-finite: excluded for non-finite logits" in report
    assert f"Excluded for non-finite logits ({len(bad)})" in report
    assert f"{len(bad)} of {N_UNITS} generations had non-finite logits" in r.stderr
    assert bad[0]["image"] in r.stderr


# --- a different config, --fresh, and odd images end to end ----------------------------------

def test_fresh_starts_over_and_odd_images_run(tiny_ckpt, odd_images, tmp_path, capsys):
    folder, files = odd_images
    out = tmp_path / "fresh"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"result_view": {"model": "another"}}))
    (out / "records.jsonl").write_text(json.dumps({"image": "old.png", "question": "q", "attack": "none",
                                                   "epsilon": 0.0, "trial": 0}) + "\n")
    (out / "notes.txt").write_text("mine")
    r = ok(run(["--model", tiny_ckpt, "--images", str(folder), "--epsilons", "0.2", "--trials", "1",
                "--max-new-tokens", "3", "--out", str(out), "--fresh"], capsys))
    recs = records(out)
    assert {os.path.basename(x["image"]) for x in recs} == set(files)  # nothing of the old run
    assert len(recs) == 4 * len(files)  # clean, blank, one ε, repeat
    assert all(x["mean_entropy"] is not None and x["n_nonfinite"] == 0 for x in recs), r.stderr
    with open(out / "summary.json") as f:
        assert json.load(f)["meta"]["n_records"] == len(recs)
    with open(out / "run.json") as f:
        assert json.load(f)["result_view"]["epsilons"] == [0.2]
    assert (out / "notes.txt").read_text() == "mine"  # --fresh removes the pipeline's files only


# --- bad input: one line, exit 2, --out untouched ---------------------------------------------

def bad_cases(tiny_ckpt, pair, folder) -> list[tuple[str, list, dict, list]]:
    """(name, argv, extra environment, words the message must hold)."""
    files = bad_image_files(folder)
    os.makedirs(folder / "empty", exist_ok=True)
    os.makedirs(folder / "with_dir", exist_ok=True)
    shutil.copy(pair[0], folder / "with_dir" / "a.png")
    os.makedirs(folder / "with_dir" / "x.png", exist_ok=True)
    os.makedirs(folder / "not_a_checkpoint", exist_ok=True)
    (folder / "not_a_checkpoint" / "weights.bin").write_bytes(b"\0" * 16)
    (folder / "malformed.yaml").write_text("epsilons: [0.1, 0.3\ntrials: 2\n")
    (folder / "unknown.yaml").write_text("epsilonz: [0.1]\n")
    c = []

    def case(name, words, images=pair, env=None, **flags):
        argv = ["--model", tiny_ckpt, "--images", *images, "--epsilons", "0.1", "0.3", "--trials",
                "2", "--max-new-tokens", "4", "--batch-size", "2", "--seed", "0"]
        for flag, value in flags.items():
            flag = "--" + flag.replace("_", "-")
            if flag in argv:
                i = argv.index(flag)
                end = next((j for j in range(i + 1, len(argv)) if argv[j].startswith("--")), len(argv))
                del argv[i:end]
            if value is not None:  # None: just drop the flag
                argv += [flag, *value] if isinstance(value, list) else [flag, value]
        c.append((name, argv, env or {}, words))

    case("missing file", ["image not found", "missing.png"], images=[files["missing"]])
    case("broken symlink", ["broken symbolic link"], images=[files["broken_link"]])
    case("unreadable entry: a directory named x.png", ["cannot read image", "Is a directory"],
         images=[str(folder / "with_dir")])
    if os.geteuid() != 0:  # root reads chmod-000 files
        locked = folder / "locked.png"
        shutil.copy(pair[0], locked)
        os.chmod(locked, 0)
        case("chmod 000", ["Permission denied"], images=[str(locked)])
    case("not an image", ["cannot identify image file"], images=[files["not_an_image"]])
    case("truncated JPEG", ["truncated"], images=[files["truncated_jpeg"]])
    case("empty folder", ["no images in folder"], images=[str(folder / "empty")])
    case("ε below 0", ["ε must lie in [0, 1]"], epsilons=["-0.1"])
    case("ε above 1", ["ε must lie in [0, 1]"], epsilons=["0.1", "1.5"])
    case("trials 0", ["--trials must be at least 1"], trials="0")
    case("max-new-tokens 0", ["--max-new-tokens must be at least 1"], max_new_tokens="0")
    case("not an integer", ["--trials must be an integer", "'two'"], trials="two")
    case("unknown attack", ["unknown attack 'corruption:gaussain_noise'", "corruption:gaussian_noise"],
         attack="corruption:gaussain_noise", epsilons=None)
    case("unknown objective", ["unknown --objective 'entropy_mn'", "entropy_min"], attack="pgd",
         objective="entropy_mn")
    case("a flag the attack does not use", ["--objective applies to --attack pgd, not proxy"], objective="ce")
    case("severities for an ε attack", ["--severities applies to attacks with a severity"], severities=["2"])
    case("unknown prompt format", ["unknown prompt format 'llava_v2'", "vicuna_v1"], prompt_format="llava_v2")
    case("unknown vision dtype", ["unknown --vision-dtype 'float8'"], vision_dtype="float8")
    case("unknown model", ["unknown model 'llava-9'", "llava-1.5-7b", "tiny"], model="llava-9")
    case("not a checkpoint folder", ["not a Hugging Face checkpoint folder", "config.json"],
         model=str(folder / "not_a_checkpoint"))
    case("malformed YAML", ["malformed YAML", "malformed.yaml", "line 2, column 7"], config=str(folder / "malformed.yaml"))
    case("a flag's prefix (no abbreviations)", ["unrecognized arguments: --epsilon 0.1"], epsilon="0.1")
    case("unknown YAML key", ["unknown key 'epsilonz'", "known keys"],
         config=str(folder / "unknown.yaml"))
    case("hub model offline", ["llava-hf/llava-1.5-7b-hf", "not in the local Hugging Face cache",
                               "--model tiny"], env={"HF_HUB_OFFLINE": "1"}, model="llava-1.5-7b")
    if not torch.cuda.is_available():
        case("cuda without a GPU", ["no CUDA GPU", "--device cpu"], device="cuda")
    case("another config", ["holds a run with another config", "epsilons: [0.1, 0.3] -> [0.2]",
                            "--fresh"], epsilons=["0.2"])
    return c


def test_bad_input_one_line_exit_2_out_untouched(tiny_ckpt, pair, reference, tmp_path, capsys, monkeypatch):
    out = tmp_path / "finished"
    shutil.copytree(reference, out)
    before = tree(out)
    failures = []
    for name, argv, env, words in bad_cases(tiny_ckpt, pair, tmp_path):
        with monkeypatch.context() as m:
            r = run(argv + ["--out", str(out)], capsys, env, m)
        lines = r.stderr.splitlines()
        problems = [p for p, bad in [
            (f"exit {r.returncode}", r.returncode != 2),
            (f"{len(lines)} lines on stderr", len(lines) != 1 or not r.stderr.strip()),
            ("a traceback", "Traceback" in r.stderr),
            ("output on stdout", r.stdout != ""),
            ("--out changed", tree(out) != before),
            (f"no {[w for w in words if w not in r.stderr]}", any(w not in r.stderr for w in words)),
        ] if bad]
        if problems:
            failures.append(f"{name}: {', '.join(problems)}: {r.stderr!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_hub_model_offline_fails_at_once_as_a_plain_process(pair, tmp_path):
    """A plain process, as a user runs it: one line, exit 2, no network tried, nothing written."""
    argv = ["--model", "llava-1.5-7b", "--images", pair[0], "--out", str(tmp_path / "out")]
    r = subprocess.run([sys.executable, SCRIPT, *argv], cwd=REPO, env=dict(ENV, HF_HUB_OFFLINE="1"),
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and r.stdout == "", r.stderr
    assert "llava-hf/llava-1.5-7b-hf" in r.stderr and "hf download llava-hf/llava-1.5-7b-hf" in r.stderr
    assert "--model tiny" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "out")
