"""Adaptation continues the stand-ins' learning-rate schedule: no re-warm above where pretraining ended.

The adapted models and the decoder-only baselines of 02-04 both start from a stand-in whose cosine schedule
ended at `learning_rate * end_lr_fraction`; a higher adaptation LR would first undo pretraining (the baselines got
worse during "continuation" when it was 3x higher) and bias every adapted-vs-original claim.
"""

import pytest

from workbench import notebook as nb
from workbench.train import TrainConfig


def _final_pretraining_lr(scale: str) -> float:
    train = nb.read_preset("pretrain", scale)["train"]
    return train["learning_rate"] * train.get("end_lr_fraction", TrainConfig.end_lr_fraction)


@pytest.mark.parametrize("scale", ["smoke", "cpu", "gpu"])
def test_adaptation_starts_where_pretraining_ended(scale):
    final = _final_pretraining_lr(scale)
    adaptations = {"objectives": nb.read_preset("objectives", scale)["adapt_train"],
                   "sizes": nb.read_preset("sizes", scale)["pt"],
                   "scratch": nb.read_preset("scratch", scale)["adapt_train"]}
    for name, tc in adaptations.items():
        assert tc["learning_rate"] <= final * (1 + 1e-9), (scale, name, tc["learning_rate"], final)
        assert tc["schedule"] == "constant", (scale, name)
