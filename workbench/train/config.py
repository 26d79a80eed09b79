"""`TrainConfig`: every knob of one training run (frozen, JSON-able except the `trainable` predicate)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

Schedule = Literal["cosine", "constant", "linear"]
Optimizer = Literal["adamw", "adafactor"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Schedule: linear warm-up to `learning_rate` over `warmup_steps` (update i uses lr * (i+1)/warmup), then
    cosine/linear decay to `learning_rate * end_lr_fraction` at the last step, or constant.
    Weight decay is decoupled (AdamW style: `p -= lr * wd * p`) and applied only to matrices (ndim >= 2)
    that are not embeddings: RMSNorm scales, biases, the attention-pooling query and embedding tables
    (tied to the LM head) are not decayed unless `decay_embeddings=True`.
    Freezing: for updates `0 .. freeze_steps-1` only params whose path satisfies `trainable` change; the
    others and their optimizer state are left bit-identical (no decay either). `trainable=None` = all.
    `grad_accum`: the batch from `get_batch` is split along axis 0 into that many equal micro-batches;
    loss, metrics and grads are the mean over micro-batches.
    `mesh_shape` = (data, fsdp, tensor); None = all devices on 'data'.
    """

    steps: int = 1000
    batch_size: int = 8  # documentation only: get_batch decides the real batch
    learning_rate: float = 3e-4
    warmup_steps: int = 100
    schedule: Schedule = "cosine"
    end_lr_fraction: float = 0.1
    optimizer: Optimizer = "adamw"
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    decay_embeddings: bool = False
    clip_norm: float | None = 1.0
    grad_accum: int = 1
    freeze_steps: int = 0
    trainable: Callable[[str], bool] | None = None
    compute_dtype: Literal["float32", "bfloat16"] = "float32"
    ema_decay: float | None = None
    keep_last_k: int = 1
    max_to_keep: int = 3
    checkpoint_every: int = 100
    log_every: int = 1
    seed: int = 0
    mesh_shape: tuple[int, int, int] | None = None
    out_dir: str | None = None

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.schedule not in ("cosine", "constant", "linear"):
            raise ValueError(f"schedule must be cosine|constant|linear, got {self.schedule!r}")
        if self.optimizer not in ("adamw", "adafactor"):
            raise ValueError(f"optimizer must be adamw|adafactor, got {self.optimizer!r}")
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype must be float32|bfloat16 (never float16), got {self.compute_dtype!r}")
        if self.grad_accum < 1 or self.warmup_steps < 0 or self.freeze_steps < 0:
            raise ValueError("grad_accum must be >= 1, warmup_steps and freeze_steps >= 0")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.keep_last_k < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("keep_last_k, checkpoint_every and log_every must be >= 1")
        if self.mesh_shape is not None and len(self.mesh_shape) != 3:
            raise ValueError(f"mesh_shape is (data, fsdp, tensor), got {self.mesh_shape}")

    def replace(self, **kw) -> TrainConfig:
        return dataclasses.replace(self, **kw)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["trainable"] = None if self.trainable is None else getattr(self.trainable, "__name__", repr(self.trainable))
        return d
