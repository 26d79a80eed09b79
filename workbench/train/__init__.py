"""Training engine: optax optimizers and schedules, a jitted sharded step, orbax checkpoints with exact
resume, EMA and last-k averaging, JSONL/CSV metrics, and a command line (`python -m workbench.train`).

    from workbench.train import TrainConfig, train
    result = train(loss_fn, params, get_batch, TrainConfig(steps=100), out_dir="runs/x")
"""

from workbench.train.checkpoint import average_checkpoints, restore_params
from workbench.train.config import TrainConfig
from workbench.train.loop import Stepper, TrainResult, make_step, train
from workbench.train.optim import decay_mask, ema_update, make_optimizer, schedule
from workbench.train.sharding import DEFAULT_RULES, logical_axes, make_mesh, shard_params

__all__ = [
    "DEFAULT_RULES",
    "Stepper",
    "TrainConfig",
    "TrainResult",
    "average_checkpoints",
    "decay_mask",
    "ema_update",
    "logical_axes",
    "make_mesh",
    "make_optimizer",
    "make_step",
    "restore_params",
    "schedule",
    "shard_params",
    "train",
]
