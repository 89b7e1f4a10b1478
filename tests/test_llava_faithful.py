"""LLaVA-1.5 as the original code runs it: token ids, the scored vocabulary, the vision tower's dtype.

The processor files are llava-hf/llava-1.5-7b-hf's with the real Llama-2 tokenizer
(tests/fixtures/llava-1.5-7b-hf-processor, see its PROVENANCE.md). transformers picks a
different tokenizer class for that folder with and without llava's config.json beside it; the
ids must be the original's either way (docs/LLAVA_NOTES.md).
"""
import json
import os
import shutil

import pytest
import torch

from confidence_trap.models.generation import encode, generate
from confidence_trap.models.prompts import PROMPT_FORMATS, SYSTEMS, build_prompt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "llava-1.5-7b-hf-processor")
CONFIG_7B = os.path.join(REPO, "configs", "llava-1.5-7b.json")
IMAGE_INDEX, N_IMAGE = 32000, 576
SUFFIX = "\nAnswer the question using a single word or phrase."
OTHER_QUESTIONS = [
    "What is shown in this image?", "Is there a dog in the image?" + SUFFIX, "How many people are there?",
    "What color is the car?", "Describe the image in detail.", "What's written on the sign?",
    "Is this photo taken indoors or outdoors?", "Where is the cat sitting?", "What is the man holding?",
    "Count the apples: 1, 2 or 3?", "Is the light red, green or yellow?", "  Leading spaces?",
    "Trailing spaces  ", "Two\nlines of\nquestion", "Ünïcödé and émojis 😀?", "What time is it (roughly)?",
    "Is there a <b>tag</b> here?", "tab\tseparated\tquestion", "A sentence. Another sentence.",
    "Is there a person in the image? Please answer yes or no.", "1234567890", "?",
]


def bundled_questions() -> list[str]:
    out = []
    for name in ("photos", "scenes"):
        with open(os.path.join(REPO, "data", name, "manifest.json"), encoding="utf-8") as f:
            out += [e["question"] for e in json.load(f)]
    return list(dict.fromkeys(out))


def reference_ids(tokenizer, prompt: str) -> list[int]:
    """LLaVA's tokenizer_image_token (llava/mm_utils.py), written again from its definition:
    tokenise each chunk around <image> with special tokens; if the first chunk starts with BOS,
    keep that BOS once and drop the first id of every chunk; join the chunks with a sentinel,
    then expand the sentinel into the 576 image tokens the model's processor inserts."""
    chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]
    offset = 1 if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id else 0
    joined = [chunks[0][0]] if offset else []
    for k, chunk in enumerate(chunks):
        if k:
            joined.append(-200)
        joined.extend(chunk[offset:])
    out = []
    for t in joined:
        out.extend([IMAGE_INDEX] * N_IMAGE if t == -200 else [t])
    return out


@pytest.fixture(scope="module")
def processors(tmp_path_factory):
    """The fixture processor loaded from a folder without config.json and from one with it."""
    from transformers import AutoProcessor

    bare = tmp_path_factory.mktemp("processor-bare")
    shutil.copytree(FIXTURE, bare, dirs_exist_ok=True)
    full = tmp_path_factory.mktemp("processor-with-config")
    shutil.copytree(FIXTURE, full, dirs_exist_ok=True)
    shutil.copy(CONFIG_7B, full / "config.json")
    return {"without config.json": AutoProcessor.from_pretrained(bare),
            "with config.json": AutoProcessor.from_pretrained(full)}


def handed_ids(processor, prompts, batched: bool) -> list[list[int]]:
    """The ids encode() hands the model (left padding removed by the attention mask)."""
    def enc(ps):
        x = torch.zeros(len(ps), 3, 336, 336)
        e = encode(processor, ps, x, "cpu", torch.float32, original_ids=True)
        return [ids[m.bool()].tolist() for ids, m in zip(e["input_ids"], e["attention_mask"])]
    return enc(prompts) if batched else [enc([p])[0] for p in prompts]


def test_the_fixture_shows_the_difference_the_test_must_catch(processors):
    """Tokenised whole, one loading gives '<image> 13' (one token short), the other '<image> 29871 13'."""
    text = "USER: <image>\nWhat ASSISTANT:"
    whole = {k: p.tokenizer(text).input_ids for k, p in processors.items()}
    after = {k: ids[ids.index(IMAGE_INDEX) + 1:ids.index(IMAGE_INDEX) + 3] for k, ids in whole.items()}
    assert after["with config.json"] == [29871, 13]
    assert after["without config.json"] == [13, 5618]
    ref = reference_ids(processors["with config.json"].tokenizer, text)
    assert ref[:5] == [1, 3148, 1001, 29901, 29871] and ref[5 + N_IMAGE:5 + N_IMAGE + 3] == [29871, 13, 5618]


@pytest.mark.parametrize("loading", ["without config.json", "with config.json"])
@pytest.mark.parametrize("fmt", [f for f in PROMPT_FORMATS if f in SYSTEMS])
def test_ids_equal_the_originals_for_every_question_batched_and_alone(processors, loading, fmt):
    processor = processors[loading]
    reference_tok = processors["with config.json"].tokenizer  # tokenizer.json as is: the original's pieces
    questions = bundled_questions() + OTHER_QUESTIONS
    assert len(OTHER_QUESTIONS) >= 20
    prompts = [build_prompt(processor, q, fmt) for q in questions]
    want = [reference_ids(reference_tok, p) for p in prompts]
    assert handed_ids(processor, prompts, batched=True) == want
    assert handed_ids(processor, prompts[:6], batched=False) == want[:6]


# --- the scored vocabulary and the vision tower, on a tiny random model in LLaVA-1.5 layout -------

@pytest.fixture(scope="module")
def llava15_tiny(tmp_path_factory):
    """A random Llava with the real processor (576 image tokens) and llava-hf's 32064-row output
    layer, in a folder named like LLaVA-1.5. The 64 rows no ordinary token maps to are made the
    likeliest, so a decoder over all rows would pick them."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    folder = tmp_path_factory.mktemp("models") / "llava-1.5-tiny-random"
    shutil.copytree(FIXTURE, folder)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2, image_size=336, patch_size=14, hidden_act="quick_gelu")
    text = LlamaConfig(vocab_size=32064, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2,
                       pad_token_id=32001, tie_word_embeddings=False)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_INDEX,
                         image_seq_length=N_IMAGE, vision_feature_layer=-2, pad_token_id=32001,
                         vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head[32000:] *= 30.0
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 2, 32001
    model.save_pretrained(folder)
    return str(folder)


def plain_entropies(model, tokenizer, prompt, answer, pixels) -> torch.Tensor:
    """Token entropies by plain transformers: one forward pass from the original-style ids and
    the answer, the first 32000 logits of each answer position, in float64."""
    ids = reference_ids(tokenizer, prompt) + answer[:-1]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), pixel_values=pixels).logits[0, -len(answer):]
    logp = torch.log_softmax(logits.double()[:, :32000], -1)
    return -(logp.exp() * logp).sum(-1)


def test_entropies_are_over_the_originals_32000_rows_and_decoding_never_leaves_them(llava15_tiny):
    from confidence_trap.models import load
    from confidence_trap.models.architectures import pixel_layout
    from confidence_trap.models.prompts import default_format, original_ids
    from confidence_trap.models.vocab import scored_vocab

    model, processor = load(llava15_tiny, device="cpu")
    fmt = default_format(llava15_tiny)
    assert fmt == "llava_v1" and original_ids(fmt)
    vocab = scored_vocab(model, processor)
    assert vocab.size == 32000 and vocab.is_tail and vocab.rows == 32064
    x = torch.rand(2, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    prompts = [build_prompt(processor, q, fmt) for q in ("What is shown?", "Is there a dog in the image?" + SUFFIX)]
    out = generate(model, processor, x, prompts, max_new_tokens=5, original_ids=True)
    assert out.logits.shape[-1] == 32000
    assert (out.token_ids < 32000).all()
    pv = pixel_layout(processor).pixel_values(x)
    for b in range(2):
        answer = out.token_ids[b][out.mask[b]].tolist()
        want = plain_entropies(model, processor.tokenizer, prompts[b], answer, pv[b:b + 1])
        from probes.entropy import token_entropy

        got = token_entropy(out.logits[b][out.mask[b]])
        assert torch.allclose(got.double(), want, atol=1e-4)
        # the test can fail: over all 32064 rows the first token would be one of the padding rows
        ids = reference_ids(processor.tokenizer, prompts[b])
        with torch.no_grad():
            full = model(input_ids=torch.tensor([ids]), pixel_values=pv[b:b + 1]).logits[0, -1]
        assert int(full.argmax()) >= 32000


def test_the_vision_tower_runs_in_its_own_dtype_and_feeds_the_projector_in_the_models(llava15_tiny):
    from confidence_trap.models import load, vision_dtype_for, vision_dtype_of
    from confidence_trap.models.prompts import default_format

    assert vision_dtype_for("auto", "llava-hf/llava-1.5-7b-hf", "cuda", torch.float16) == torch.float32
    assert vision_dtype_for("auto", "/x/llava-1.5-tiny-random", "cuda:1", torch.float16) == torch.float32
    assert vision_dtype_for("auto", "Qwen/Qwen2-VL-2B-Instruct", "cuda", torch.float16) == torch.float16
    assert vision_dtype_for("auto", "llava-hf/llava-1.5-7b-hf", "cpu", torch.float32) == torch.float32
    assert vision_dtype_for("float16", "llava-hf/llava-1.5-7b-hf", "cuda", torch.float16) == torch.float16

    model, processor = load(llava15_tiny, device="cpu", dtype="bfloat16", vision_dtype="float32")
    assert vision_dtype_of(model) == "float32"
    assert model.get_output_embeddings().weight.dtype == torch.bfloat16
    seen = {}

    def tower(module, args, output):
        seen["tower"] = output.hidden_states[-2].dtype

    def projector(module, args, output):
        seen["projector_in"] = args[0].dtype

    model.model.vision_tower.register_forward_hook(tower)
    model.model.multi_modal_projector.register_forward_hook(projector)
    x = torch.rand(1, 3, 336, 336, generator=torch.Generator().manual_seed(1))
    prompt = build_prompt(processor, "What is shown?", default_format(llava15_tiny))
    out = generate(model, processor, x, [prompt], max_new_tokens=2, original_ids=True)
    assert seen == {"tower": torch.float32, "projector_in": torch.bfloat16}
    assert torch.isfinite(out.logits).all()
