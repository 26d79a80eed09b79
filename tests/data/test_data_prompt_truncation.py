"""Text-to-text prompts are cut in their passage, never in the instruction, question or answer options."""

from __future__ import annotations

import pytest

from workbench.data import cache_dir
from workbench.data.pipeline import _water_fill, fit_prompt, prompt_rows_that_fit, tokenize_seq2seq
from workbench.data.tasks import PASSAGE_FIELDS, TEMPLATES, format_text_to_text, parse_prompt
from workbench.data.tokenizer import Tokenizer, train_tokenizer

LONG = " ".join(f"river{i % 37} stone{i % 11} walked" for i in range(150))
EXAMPLES = {
    "sentiment_binary": {"text": LONG, "label": 1},
    "sentiment_regression": {"text": LONG, "label": 1.5},
    "wic": {"word": "bank", "text_a": "alpha " + LONG, "text_b": "beta " + LONG, "label": 1},
    "definition": {"word": "bank", "sentence": LONG, "targets": "a sloping land"},
    "retrieval": {"word": "bank", "sentence": LONG, "candidates": [f"meaning number {j} of it" for j in range(10)],
                  "label": 6},
    "genre": {"text": LONG, "label": 3},
}
CASES = [(task, i) for task in EXAMPLES for i in range(len(TEMPLATES[task]))]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    texts = [format_text_to_text(EXAMPLES[t], t, i)["inputs"] for t, i in CASES] * 20 + [LONG] * 20
    path = tmp_path_factory.mktemp("tok") / "tok.model"
    train_tokenizer(texts, path, vocab_size=400, num_sentinels=4, hard_vocab_limit=False)
    return Tokenizer.load(path, num_sentinels=4)


def _no_passage(task: str, i: int) -> str:
    empty = dict.fromkeys(PASSAGE_FIELDS[task], "")
    return format_text_to_text({**EXAMPLES[task], **empty}, task, i)["inputs"]


def _decode(tok, row) -> str:
    return tok.decode([int(t) for t in row if t not in (0, tok.eos_id)])


@pytest.mark.parametrize(("task", "template"), CASES)
def test_overlong_passage_is_cut_and_the_rest_survives(tok, task, template):
    prompt = format_text_to_text(EXAMPLES[task], task, template)["inputs"]
    max_len = len(tok.encode(_no_passage(task, template))) + 1 + 12  # room for about 12 passage tokens
    assert len(tok.encode(prompt)) > 3 * max_len
    out = tokenize_seq2seq({"inputs": [prompt], "targets": ["x"], "task": [task]}, tok, max_len, 4)
    row = [int(t) for t in out["inputs"][0]]
    assert row[-1] == tok.eos_id or row[row.index(0) - 1] == tok.eos_id
    src, want = parse_prompt(prompt, task)
    got = parse_prompt(_decode(tok, row), task)
    assert got is not None and got[0] == src, _decode(tok, row)
    for name, value in got[1].items():
        if name in PASSAGE_FIELDS[task]:
            assert value and want[name].startswith(value) and len(value) < len(want[name]), (name, value)
        else:  # instruction, question, word, options: whole
            assert value == want[name], name


def test_short_prompts_and_plain_inputs_are_unchanged(tok):
    short = format_text_to_text({"text": "river1 walked", "label": 0}, "sentiment_binary", 1)["inputs"]
    out = tokenize_seq2seq({"inputs": [short], "targets": ["x"], "task": ["sentiment_binary"]}, tok, 64, 4)
    ids = tok.encode(short) + [tok.eos_id]
    assert [int(t) for t in out["inputs"][0][: len(ids)]] == ids and not out["inputs"][0][len(ids):].any()
    plain = tokenize_seq2seq({"inputs": [LONG], "targets": ["x"]}, tok, 16, 4)  # no task column: the first tokens
    assert [int(t) for t in plain["inputs"][0]] == tok.encode(LONG)[:15] + [tok.eos_id]


def test_too_small_budget_names_task_and_lengths(tok):
    prompt = format_text_to_text(EXAMPLES["genre"], "genre", 0)["inputs"]
    need = len(tok.encode(_no_passage("genre", 0))) + 1
    with pytest.raises(ValueError, match=rf"genre: 1 of 1 rows, up to max_input_len {need} needed"):
        tokenize_seq2seq({"inputs": [prompt], "targets": ["x"], "task": ["genre"]}, tok, need - 1, 4)
    fitted = tokenize_seq2seq({"inputs": [prompt], "targets": ["x"], "task": ["genre"]}, tok, need, 4)
    assert _decode(tok, fitted["inputs"][0]) == _no_passage("genre", 0)  # passage gone, the rest whole
    with pytest.raises(ValueError, match="matches no template"):
        fit_prompt("not a genre prompt " + LONG, "genre", tok, 20)


def test_rows_that_fit_drop_only_prompts_whose_options_overflow(tok):
    huge = {**EXAMPLES["retrieval"], "candidates": [LONG] * 10}
    ds = {"inputs": [format_text_to_text(e, "retrieval")["inputs"] for e in (EXAMPLES["retrieval"], huge)]
          + [LONG], "task": ["retrieval", "retrieval", "other"]}
    assert prompt_rows_that_fit(ds, tok, 120) == [0, 2]


def test_water_fill_shares_room():
    assert _water_fill([10, 100], 50) == [10, 40]
    assert _water_fill([100, 100], 51) == [26, 25]
    assert _water_fill([3, 4], 50) == [3, 4] and _water_fill([5], 0) == [0]


@pytest.mark.skipif(not (cache_dir() / "tasks" / "mixture" / "validation.jsonl").is_file()
                    or not (cache_dir() / "tokenizer" / "tokenizer.model").is_file(),
                    reason="real data not prepared (workbench data prepare)")
def test_real_mixture_prompts_keep_their_questions():
    from workbench.data import load_task, load_tokenizer

    tok = load_tokenizer()
    ds = load_task("mixture")["validation"].select(range(300))
    ds = ds.select(prompt_rows_that_fit(ds, tok, 128))
    out = tokenize_seq2seq(ds, tok, 128, 24)
    cut = 0
    for row, prompt, task in zip(out["inputs"], ds["inputs"], ds["task"], strict=True):
        src, want = parse_prompt(prompt, task)
        got = parse_prompt(_decode(tok, row), task)
        assert got is not None and got[0] == src
        assert {k: v for k, v in got[1].items() if k not in PASSAGE_FIELDS[task]} == \
            {k: v for k, v in want.items() if k not in PASSAGE_FIELDS[task]}
        cut += got[1] != want
    assert cut > 0  # genre passages do not fit in 128 tokens
