"""Run by tests/test_devices.py, alone or under torchrun: a few AlexNet steps on fixed data,
held in memory, or (argument `shards`) in two shards read by the input path's threads."""
import sys
from pathlib import Path

import torch

from itl import data, train
from itl.datasets.images import DiskImages
from itl.train import PretrainConfig

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
g = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (64, 3, 64, 64), dtype=torch.uint8, generator=g)
if sys.argv[2:] == ["shards"]:
    x = DiskImages([x[:40], x[40:]])
images = data.ImageSet(x, torch.arange(64) % 4, ("a", "b", "c", "d"))
cfg = PretrainConfig(model="alexnet", epochs=2, batch_size=16, lr=0.01, dropout=0.0)
train.pretrain(cfg, images, images, 64, 0, out)
