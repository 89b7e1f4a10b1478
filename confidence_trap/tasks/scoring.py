"""How answers are scored: the metric registry, per-item scores and POPE's aggregate metrics.
Pure functions of strings and numbers (the analysis imports them; nothing here imports it).

    >>> score("pope", "Yes, there is a dog.", ["yes"])
    1.0
    >>> score("vqa", "Two", ["2"] * 3 + ["3"] * 7)       # 3 of 10 humans: 7/10 * 1 + 3/10 * 2/3
    0.9
    >>> pope_metrics(["yes", "no", "yes"], ["yes", "no", "no"])["precision"]
    0.5

`score(metric, answer, references)` is what a record's `correct` holds: 1.0/0.0 for "pope", a
fraction for "vqa", True/False for the manifests' "exact" and "contains"; None where the row has
no references (e.g. VQAv2 test splits). `closed_validity(records)` is the share of answers a
closed-answer metric (POPE's yes/no) can actually read, summary.json's `valid_rate`.

The registry, METRICS, holds one entry per metric: its per-item scorer, how it reads an answer
(`normalize`: two answers it would score alike read alike), the task column it needs ("answer",
one reference a row, or "answers", a list), and for a closed-answer metric its parser. Adding a
metric is one function and one entry; a task YAML names it (confidence_trap/tasks/task.py).

POPE parse. We follow LLaVA's own evaluation, llava/eval/eval_pope.py in haotian-liu/LLaVA
(commit 4241f08): keep the text before the first ".", drop commas, split on single spaces, and
call the answer "no" when one of the words is exactly "No", "no" or "not"; everything else is
"yes" (so "" and "NO" count as yes, "Not really" too — the check is case-sensitive). LLaVA's
model_vqa_loader.py strips the generated text before writing it, so we strip first as well.
lmms-eval's POPE task (lmms_eval/tasks/pope/utils.py, checked at EvolvingLMMs-Lab/lmms-eval
75571cf) differs in three ways, and we do not follow it:
  1. it compares `answer.lower().strip()` with the label exactly, so "Yes." or "Yes, there is a
     dog" score 0 and count as neither yes nor no in precision/recall;
  2. its `pope_yes_ratio` is the share of "yes" among the *labels* (0.5 by POPE's construction),
     whereas LLaVA's (and ours) is the share of "yes" among the *predictions*;
  3. it returns 0 for a precision, recall or F1 whose denominator is 0; we return None.
LLaVA's rule maps every answer to yes or no, so the confusion matrix is complete, and it is the
rule behind LLaVA-1.5's published POPE numbers (scripts/v1_5/eval/pope.sh).

VQA accuracy. The official VQA evaluation (GT-Vision-Lab/VQA, PythonEvaluationTools/
vqaEvaluation/vqaEval.py) scores an answer against the ten human answers as the mean, over the
ten ways of leaving one human out, of min(#matching humans among the other nine / 3, 1).
Normalization follows lmms-eval's VQAv2 task (lmms_eval/tasks/vqav2/utils.py with
EvalAIAnswerProcessor in lmms_eval/tasks/_task_utils/vqa_eval_metric.py, the EvalAI/MMF version
of vqaEval's processing): newlines and tabs to spaces, strip, punctuation, then lower-case,
number words to digits ("none", "zero" … "ten"), articles dropped and the contraction table
applied word by word — to the prediction and to every human answer alike. Differences from
vqaEval.py, where they matter: vqaEval's punctuation list has ":" and "'" but not "{", "}", "-",
"!"; it normalizes the human answers only when they disagree, and only their punctuation (the
official annotation files are already normalized); its leave-one-out drops every answer *equal*
to the held-out one (all answer dicts differ there, by answer_id). We leave out by position, so
answers given as plain strings behave the same as dicts with ids.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

POPE_LABELS = ("yes", "no")

# ----------------------------------------------------------------------------------- POPE

_POPE_NO_WORDS = frozenset({"No", "not", "no"})


def _pope_words(answer: str) -> list[str]:
    text = answer.strip()
    if "." in text:
        text = text.split(".")[0]
    return text.replace(",", "").split(" ")


def pope_parse(answer: str) -> str:
    """A free-form answer -> "yes" or "no", by LLaVA's eval_pope.py rule (see the module note).

    >>> [pope_parse(a) for a in ("Yes, there is a dog.", "no", "There is no dog.", "Yes. No.")]
    ['yes', 'no', 'no', 'yes']
    """
    return "no" if _POPE_NO_WORDS.intersection(_pope_words(answer)) else "yes"


def pope_answer(answer: str) -> str | None:
    """pope_parse's reading where a word of the answer states it, else None: "no" always has its
    word; "yes" needs a "yes" (any case) in the part pope_parse reads. LLaVA's rule counts an
    answer that says neither ("red circle", "") as yes; here it does not parse.

    >>> [pope_answer(a) for a in ("Yes, there is a dog.", "There is no dog.", "red circle", "YES")]
    ['yes', 'no', None, 'yes']
    """
    label = pope_parse(answer)
    stated = label == "no" or any(w.lower().strip("!?") == "yes" for w in _pope_words(answer))
    return label if stated else None


def _pope_label(label: str) -> str:
    value = str(label).strip().lower()
    if value not in POPE_LABELS:
        raise ValueError(f"a POPE label must be 'yes' or 'no', got {label!r}")
    return value


def _ratio(num: int, den: int):
    return num / den if den else None


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, precision, recall, F1 and yes-ratio of answers against yes/no labels.

    `predictions` are the model's answers (parsed with `pope_parse`, which leaves "yes"/"no" as
    they are); positive = yes. Returns {"accuracy", "precision", "recall", "f1", "yes_ratio",
    "n", "tp", "fp", "tn", "fn"}; a ratio whose denominator is 0 is None, and F1 is None when
    precision or recall is (0.0 when both are 0). yes_ratio is the share of yes *predictions*.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    tp = fp = tn = fn = 0
    for answer, label in zip(predictions, labels):
        yes = pope_parse(answer) == "yes"
        positive = _pope_label(label) == "yes"
        if yes and positive:
            tp += 1
        elif yes:
            fp += 1
        elif positive:
            fn += 1
        else:
            tn += 1
    n = tp + fp + tn + fn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": _ratio(tp + tn, n), "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": _ratio(tp + fp, n), "n": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def pope_metrics_by(predictions: Sequence[str], labels: Sequence[str],
                    categories: Sequence) -> dict:
    """`pope_metrics` per category (POPE's random / popular / adversarial) and over all ("all").

    LLaVA and the POPE paper report each category separately; "all" is lmms-eval's pooled view.
    """
    if not len(predictions) == len(labels) == len(categories):
        raise ValueError("predictions, labels and categories must have the same length")
    out = {}
    for cat in sorted({str(c) for c in categories}):
        idx = [i for i, c in enumerate(categories) if str(c) == cat]
        out[cat] = pope_metrics([predictions[i] for i in idx], [labels[i] for i in idx])
    out["all"] = pope_metrics(predictions, labels)
    return out


# ------------------------------------------------------------------------------------ VQA

# The contraction table of the VQA evaluation (vqaEval.py; the same in EvalAIAnswerProcessor),
# written here as "key=value" pairs. Keys are matched after lower-casing, so the few capitalised
# keys of the original ("Im", "Ive", "Id've", "I'dve") can never match; kept for fidelity.
_CONTRACTIONS = dict(pair.split("=") for pair in """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've
hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's
howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd
itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't
mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at
'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've
shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll
somebodys=somebody's someoned=someone'd someoned've=someone'd've someone'dve=someone'd've
someonell=someone'll someones=someone's somethingd=something'd somethingd've=something'd've
something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd
theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas
wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll
whatre=what're whats=what's whatve=what've whens=when's whered=where'd wheres=where's
whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's
whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll
yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've
you'dve=you'd've youll=you'll youre=you're youve=you've
""".split())
_NUMBERS = {w: str(i) for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))}
_NUMBERS["none"] = "0"
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
                "@", "`", ",", "?", "!")
_DIGIT_COMMA_DIGIT = re.compile(r"(?<=\d),+(?=\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")   # "dog." -> "dog", "3.5" stays


def _punctuation(text: str) -> str:
    # Each mark is deleted where it touches a space somewhere in the text (or the text has a
    # digit,digit comma), else replaced by a space; the test looks at the input text, as in
    # the original. Then periods go unless a digit follows.
    glue = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for p in _PUNCTUATION:
        out = out.replace(p, "" if glue or p + " " in text or " " + p in text else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def _digits_articles(text: str) -> str:
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_normalize(answer: str) -> str:
    """The VQA answer normalization (see the module note).

    >>> vqa_normalize("Two"), vqa_normalize("the dog."), vqa_normalize("dont"), vqa_normalize("3.5")
    ('2', 'dog', "don't", '3.5')
    """
    return _digits_articles(_punctuation(answer.replace("\n", " ").replace("\t", " ").strip()))


def vqa_accuracy(answer: str, human_answers: Sequence[str]) -> float:
    """VQA accuracy of one answer: mean over leave-one-out subsets of min(#matches / 3, 1).

    With ten humans: 3 agreeing -> 0.9, 1 agreeing -> 0.3, 4 or more -> 1.0.
    """
    humans = [vqa_normalize(h) for h in human_answers]
    if len(humans) < 2:
        raise ValueError(f"vqa accuracy needs the human answers (ten in VQA), got {len(humans)}")
    mine = vqa_normalize(answer)
    matches = sum(h == mine for h in humans)
    # Leaving out a matching human leaves matches - 1 among the others, any other leaves matches.
    total = sum(min((matches - (h == mine)) / 3, 1.0) for h in humans)
    return total / len(humans)


# ----------------------------------------------------------------- exact / contains

def _words(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def _exact(answer: str) -> str:
    return answer.strip().lower().rstrip(".").strip()


def exact_match(answer: str, references: Sequence[str]) -> bool:
    """Equal after lower-casing and trimming whitespace and a final period (the scenes' manifest)."""
    a = _exact(answer)
    return any(a == r.strip().lower() for r in references)


def contains_match(answer: str, references: Sequence[str]) -> bool:
    """A reference appears in the answer as whole words (the photos' manifest)."""
    words = f" {_words(answer)} "
    return any(f" {_words(r)} " in words for r in references)


def pope_score(answer: str, references: Sequence[str]) -> float:
    if len(references) != 1:
        raise ValueError(f"a POPE row has one yes/no label, got {len(references)}")
    return 1.0 if pope_parse(answer) == _pope_label(references[0]) else 0.0


# ---------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Metric:
    name: str
    score: Callable          # (answer, references: non-empty tuple of str) -> the record's `correct`
    normalize: Callable      # answer -> the text the scorer reads
    column: str | None = None  # the task column it needs: "answer" (one per row) or "answers" (a list)
    closed: Callable | None = None  # a closed answer's parser (answer -> label, None: no parse)
    labels: tuple = ()       # the values its one reference may take (lower-cased), () : any
    doc: str = ""


METRICS = {m.name: m for m in [
    Metric("pope", pope_score, pope_parse, "answer", pope_answer, POPE_LABELS,
           "POPE's yes/no, parsed as LLaVA's eval_pope.py parses it"),
    Metric("vqa", vqa_accuracy, vqa_normalize, "answers", doc="VQA accuracy against the human answers"),
    Metric("exact", exact_match, _exact, doc="equal after lower-casing and a final period"),
    Metric("contains", contains_match, _words, doc="a reference appears as whole words"),
]}


def get(metric: str) -> Metric:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    return METRICS[metric]


# ------------------------------------------------------------------- closed answers

def closed_validity(records) -> dict:
    """{"valid_rate": share of answers that parse} over the records whose metric reads a closed
    answer (a registry entry with a parser; a record's "metric" and "answer"), {} where none does.
    Below about 80% the metric says little: LLaVA's POPE rule counts an answer that is neither yes
    nor no as yes.

    >>> closed_validity([{"metric": "pope", "answer": a} for a in ("Yes", "No", "red circle", "no")])
    {'valid_rate': 0.75}
    """
    closed = [(METRICS[r["metric"]].closed, r.get("answer") or "") for r in records
              if r.get("metric") in METRICS and METRICS[r["metric"]].closed]
    if not closed:
        return {}
    return {"valid_rate": sum(parse(a) is not None for parse, a in closed) / len(closed)}


# ------------------------------------------------------------------------------ score

def normalize(answer: str, metric: str | None = None) -> str:
    """The answer as `metric`'s scorer reads it, so two answers compare as the scorer would:
    POPE's yes/no parse, exact's lower-cased text without a final period, contains' words;
    VQA's normalization for "vqa" and for free text (metric None).

    >>> normalize("Yes."), normalize("There is no dog.", "pope"), normalize("Two")
    ('yes', 'no', '2')
    """
    return (get(metric).normalize if metric is not None else vqa_normalize)(answer)


def score(metric: str, answer: str, references):
    """The per-item score a record's `correct` holds.

    references: the row's reference answers, a sequence of strings (a lone string is one
    reference): the yes/no label for "pope", the human answers for "vqa", the accepted answers
    for "exact" / "contains". Empty or None -> None (nothing to score against). Raises
    ValueError for an unknown metric, a POPE label other than yes/no, or one VQA answer.
    """
    m = get(metric)
    if references is None:
        return None
    refs = (references,) if isinstance(references, str) else tuple(references)
    return m.score(answer, refs) if refs else None


__all__ = ["METRICS", "POPE_LABELS", "Metric", "closed_validity", "contains_match", "exact_match", "get",
           "normalize", "pope_answer", "pope_metrics", "pope_metrics_by", "pope_parse", "score",
           "vqa_accuracy", "vqa_normalize"]
