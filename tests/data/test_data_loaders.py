"""Loaders on fixtures written in the real hub schemas; offline (HF_DATASETS_OFFLINE=1)."""

import json

import numpy as np
import pytest

from workbench.data.loaders import detect_schema, load_dataset_any
from workbench.data.pipeline import tokenize_classification, tokenize_ranking, tokenize_seq2seq
from workbench.data.tokenizer import Tokenizer, train_tokenizer


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


SST2 = [
    {"sentence": "hide new secretions from the parental units ", "label": 0, "idx": 0},
    {"sentence": "contains no wit , only labored gags ", "label": 0, "idx": 1},
    {
        "sentence": "that loves its characters and communicates something rather beautiful ",
        "label": 1,
        "idx": 2,
    },
]
BOOLQ = [
    {
        "question": "do iran and afghanistan speak the same language",
        "passage": "Persian language -- Persian ...",
        "idx": 0,
        "label": 1,
    }
]
WIC = [
    {
        "word": "place",
        "sentence1": "Do you want to come over to my place later?",
        "sentence2": "A political system with no place for the less prominent groups.",
        "start1": 31,
        "start2": 27,
        "end1": 36,
        "end2": 32,
        "idx": 0,
        "label": 0,
    }
]
MS_MARCO = [
    {
        "answers": ["Approximately $15,000 per year."],
        "passages": {
            "is_selected": [1, 0, 0],
            "passage_text": [
                "The average Walgreens salary ranges ...",
                "The average revenue ...",
                "Walgreens Pharmacy Technician ...",
            ],
            "url": ["http://a", "http://b", "http://c"],
        },
        "query": "walgreens store sales average",
        "query_id": 9652,
        "query_type": "numeric",
        "wellFormedAnswers": [],
    },
    {
        "answers": ["No Answer Present."],
        "passages": {"is_selected": [0, 0], "passage_text": ["x", "y"], "url": ["u", "v"]},
        "query": "unanswerable",
        "query_id": 1,
        "query_type": "description",
        "wellFormedAnswers": [],
    },
]
C4 = [
    {
        "text": "Beginners BBQ Class Taking Place in Missoula!",
        "timestamp": "2019-04-25T12:57:54Z",
        "url": "https://klyq.com/beginners-bbq-class-taking-place-in-missoula/",
    }
]
STSB = [
    {
        "sentence1": "A plane is taking off.",
        "sentence2": "An air plane is taking off.",
        "label": 5.0,
        "idx": 0,
    }
]
MNLI = [
    {
        "premise": "Conceptually cream skimming has two basic dimensions.",
        "hypothesis": "Product and geography.",
        "label": 1,
        "idx": 0,
    }
]


def test_hub_names_with_local_files(tmp_path):
    ds = load_dataset_any("glue/sst2", data_files=write_jsonl(tmp_path / "sst2.jsonl", SST2), split="train")
    assert set(ds.column_names) == {"text", "label"} and ds[2]["label"] == 1
    b = load_dataset_any("super_glue/boolq", data_files={"validation": write_jsonl(tmp_path / "b.jsonl", BOOLQ)})
    assert set(b["validation"].column_names) == {"text_a", "text_b", "label"}
    m = load_dataset_any("ms_marco", data_files=write_jsonl(tmp_path / "m.jsonl", MS_MARCO), split="train")
    assert m.num_rows == 1 and m[0]["label"] == 0 and len(m[0]["candidates"]) == 3
    assert m[0]["query"] == "walgreens store sales average"
    c = load_dataset_any("c4", data_files=write_jsonl(tmp_path / "c4.jsonl", C4), split="train")
    assert c.column_names == ["text"]


def test_local_paths_and_autodetect(tmp_path):
    w = load_dataset_any(write_jsonl(tmp_path / "wic.jsonl", WIC), split="train")
    r = w[0]
    assert r["text_a"][r["start_a"] : r["end_a"]] == "place" and r["label"] == 0
    s = load_dataset_any(write_jsonl(tmp_path / "stsb.jsonl", STSB), split="train")
    assert s[0]["label"] == 5.0 and s[0]["text_b"].startswith("An air")
    n = load_dataset_any(write_jsonl(tmp_path / "mnli.jsonl", MNLI), split="train", schema="nli")
    assert n[0]["text_a"].startswith("Conceptually")
    (tmp_path / "sst2.csv").write_text('sentence,label\n"a fine film",1\n"dull",0\n')
    assert load_dataset_any(tmp_path / "sst2.csv", split="train")["text"] == ["a fine film", "dull"]
    (tmp_path / "plain.txt").write_text("line one\nline two\n")
    assert load_dataset_any(tmp_path / "plain.txt", split="train")["text"] == ["line one", "line two"]
    d = tmp_path / "dir"
    d.mkdir()
    write_jsonl(d / "train.jsonl", SST2)
    write_jsonl(d / "validation.jsonl", SST2[:1])
    dd = load_dataset_any(d)
    assert set(dd) == {"train", "validation"} and dd["validation"][0]["text"].startswith("hide")
    import datasets

    datasets.Dataset.from_list(SST2).save_to_disk(str(tmp_path / "saved"))
    assert set(load_dataset_any(tmp_path / "saved").column_names) == {"text", "label"}


def test_schema_detection_and_errors(tmp_path):
    assert detect_schema(["question", "sentence", "label", "idx"]) == "qnli"
    assert detect_schema(["sentence", "label", "idx"]) == "sst2"
    assert detect_schema(["inputs", "targets"]) == "ours"
    with pytest.raises(KeyError, match="neither a local path"):
        load_dataset_any("no/such_dataset")
    (tmp_path / "x.bin").write_text("?")
    with pytest.raises(ValueError, match="format"):
        load_dataset_any(tmp_path / "x.bin")


def test_bad_local_files_name_file_and_line(tmp_path):
    from workbench.data.files import DataError

    good = json.dumps(SST2[0])
    cases = {
        "malformed.jsonl": (f"{good}\n{good[:-1]}\n", r"malformed.jsonl:2: invalid JSON"),
        "list.jsonl": (f"{good}\n\n[1, 2]\n", r"list.jsonl:3: expected a JSON object, got list"),
        "empty.jsonl": ("", r"empty.jsonl: empty file, no rows"),
        "blank.jsonl": ("\n \n", r"blank.jsonl: empty file, no rows"),
        "nolabel.jsonl": (f"{good}\n\n" + json.dumps({"sentence": "no label here", "idx": 9}) + "\n",
                          r"nolabel.jsonl: row 2 \(line 3\): no label"),
        "nolabel.csv": ('sentence,label\n"fine",1\n"missing",\n', r"nolabel.csv: row 2: no label"),
    }
    for name, (text, match) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=match):
            load_dataset_any(tmp_path / name, split="train")
    with pytest.raises(DataError, match=r"m.jsonl:1: invalid JSON"):
        load_dataset_any("glue/sst2", data_files=str(write_text(tmp_path / "m.jsonl", "{oops\n")))


def write_text(path, text):
    path.write_text(text)
    return path


def test_damaged_prepared_task_names_file_and_how_to_rebuild(tmp_path):
    from workbench.data.files import DataError
    from workbench.data.tasks import tasks_dir

    d = tasks_dir(tmp_path) / "wic"
    d.mkdir(parents=True)
    row = {"word": "w", "text_a": "a w", "text_b": "b w", "start_a": 2, "end_a": 3, "start_b": 2, "end_b": 3,
           "label": 1}
    for split in ("train", "validation", "test"):
        write_jsonl(d / f"{split}.jsonl", [row, row])
    assert load_dataset_any("wic", cache=tmp_path)["test"][1]["label"] == 1
    (d / "validation.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row)[:30] + "\n")  # torn write
    with pytest.raises(DataError, match=r"task 'wic' is damaged: .*validation.jsonl:2: invalid JSON.*"
                                        r"workbench data prepare --sources wordnet"):
        load_dataset_any("wic", cache=tmp_path)
    write_jsonl(d / "validation.jsonl", [row, {k: v for k, v in row.items() if k != "label"}])
    with pytest.raises(DataError, match=r"validation.jsonl: row 2 \(line 2\): no label"):
        load_dataset_any("wic", cache=tmp_path)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "t.model"
    text = [r["sentence"] for r in SST2] * 50 + [p for r in MS_MARCO for p in r["passages"]["passage_text"]] * 50
    train_tokenizer(text, path, vocab_size=350, num_sentinels=4, hard_vocab_limit=False)
    return Tokenizer.load(path, num_sentinels=4)


def test_tokenize_task_arrays(tmp_path, tok):
    import datasets

    ds = datasets.Dataset.from_list(
        [
            {"inputs": "a fine film " * 20, "targets": "positive"},
            {"inputs": "dull", "targets": "negative film " * 20},
        ]
    )
    arr = tokenize_seq2seq(ds, tok, 16, 8)
    assert arr["inputs"].shape == (2, 16) and arr["targets"].shape == (2, 8)
    for row in arr["targets"]:
        nz = row[row != 0]
        assert nz[-1] == 1
    assert arr["inputs"][0, -1] == 1 and (arr["inputs"][1, 3:] == 0).all() or arr["inputs"][1].tolist().count(1) == 1
    pairs = datasets.Dataset.from_list([{"text_a": "a fine film " * 20, "text_b": "dull", "label": 1}])
    c = tokenize_classification(pairs, tok, 12)
    row = c["tokens"][0].tolist()
    assert row.count(1) == 2 and c["labels"].dtype == np.int32 and len(row) == 12
    reg = datasets.Dataset.from_list([{"text": "dull", "label": -1.5}])
    assert tokenize_classification(reg, tok, 8)["labels"].dtype == np.float32
    m = load_dataset_any("ms_marco", data_files=write_jsonl(tmp_path / "m.jsonl", MS_MARCO), split="train")
    r = tokenize_ranking(m, tok, 16)
    assert r["tokens"].shape == (1, 3, 16) and r["labels"].tolist() == [0]
