"""Training: `train(TrainConfig(...))` runs or resumes a run; see `loop.py` for the order of things.

    from plmkit.train import TrainConfig, train
    summary = train(TrainConfig(data="DATA", model="gpt:tiny", out="RUN", max_steps=100))

`train` is imported on first use, so the CLI reads `plmkit.train.config` without loading torch.
"""

from plmkit.train.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "train":
        from plmkit.train.loop import train

        return train
    raise AttributeError(name)
