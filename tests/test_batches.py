"""The input path (itl.batches): a batch is a pure function of (seed, step), whichever way its
images are read -- in the loop or by threads ahead of it, from memory or from shards, on a CPU
or a GPU, by one process or as the ranks' slices."""
import threading

import pytest
import torch

from itl import batches, data, devices, rng
from itl.datasets.images import DiskImages, ImageSet


def _images(n=40, px=12, classes=4):
    g = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (n, 3, px, px), dtype=torch.uint8, generator=g),
                    torch.arange(n) % classes, tuple("abcd"[:classes]))


def _reference(images, step, batch, pad, seed, crop=None):
    """What train_one_epoch drew before the input path was its own module (one process)."""
    idx = batches.batch_indices(len(images), step, batch, seed)
    room = data.crop_room(images.x.shape[-2], images.x.shape[-1], pad, crop)
    params = data.augment_params(batch, pad, rng.generator("augment", seed, step), room)
    return data.apply_augment(images.x[idx], pad, *params, crop=crop), images.y[idx]


def _all(images, first, n, batch, pad, seed, crop=None, reader=batches.Reader(),
         device=torch.device("cpu")):
    return list(batches.stream(images, first, n, batch, pad, seed, device, crop, reader))


@pytest.mark.parametrize("crop", [None, 9])
def test_stream_is_the_seeded_batch_of_each_step(crop):
    im = _images()
    got = _all(im, 3, 5, 8, 2, seed=7, crop=crop)
    assert len(got) == 5
    for k, b in enumerate(got):
        x, y = _reference(im, 3 + k, 8, 2, 7, crop)
        assert torch.equal(b.x, x) and torch.equal(b.y, y)
    assert got[0].x.shape == ((8, 3, 12, 12) if crop is None else (8, 3, 9, 9))


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_shards_read_ahead_give_the_same_batches_as_memory(ahead):
    im = _images()
    disk = ImageSet(DiskImages([im.x[:13], im.x[13:29], im.x[29:]]), im.y, im.classes)
    want = _all(im, 0, 9, 8, 2, seed=1, crop=10)
    got = _all(disk, 0, 9, 8, 2, seed=1, crop=10, reader=batches.Reader(ahead=ahead))
    assert len(got) == len(want) == 9
    for a, b in zip(got, want):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_a_resumed_stream_replays_the_same_steps():
    im = _images()
    whole = _all(im, 0, 8, 8, 2, seed=3)
    later = _all(im, 5, 3, 8, 2, seed=3)
    for a, b in zip(whole[5:], later):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


class _Counting(DiskImages):
    """DiskImages that records which rows were read."""
    read: list

    def _read(self, rows):
        self.read.extend(rows.tolist())
        return super()._read(rows)


def test_each_rank_reads_only_its_slice_and_the_slices_make_the_batch(monkeypatch):
    im = _images()
    whole = _all(im, 2, 4, 8, 2, seed=5, crop=10)
    parts = []
    for rank in (0, 1):
        disk = _Counting([im.x])
        disk.read = []
        monkeypatch.setattr(devices, "rank", lambda r=rank: r)
        monkeypatch.setattr(devices, "world", lambda: 2)
        got = _all(ImageSet(disk, im.y, im.classes), 2, 4, 8, 2, seed=5, crop=10,
                   reader=batches.Reader(ahead=2))
        mine = torch.cat([batches.batch_indices(len(im), s, 8, 5)[4 * rank:4 * rank + 4]
                          for s in range(2, 6)])
        assert sorted(disk.read) == sorted(mine.tolist())  # nothing of the other rank's half
        parts.append(got)
    for k, b in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][k].x, parts[1][k].x]), b.x)
        assert torch.equal(torch.cat([parts[0][k].y, parts[1][k].y]), b.y)


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(monkeypatch):
    monkeypatch.setattr(devices, "world", lambda: 3)
    with pytest.raises(ValueError, match="batch size 8 is not divisible by 3 processes"):
        _all(_images(), 0, 1, 8, 0, 0)


def test_leaving_a_stream_early_stops_its_threads():
    im = _images()
    disk = ImageSet(DiskImages([im.x]), im.y, im.classes)
    before = threading.active_count()
    it = batches.stream(disk, 0, 50, 8, 2, 0, torch.device("cpu"), reader=batches.Reader(4))
    next(it)
    assert any(t.name.startswith("itl-read") for t in threading.enumerate())
    it.close()
    assert threading.active_count() == before
    assert not any(t.name.startswith("itl-read") for t in threading.enumerate())


def test_reader_refuses_a_negative_lookahead():
    with pytest.raises(ValueError, match="ahead=-1"):
        batches.Reader(ahead=-1)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("where", ["host", "shards", "gpu"])
def test_gpu_batches_equal_cpu_batches(where):
    """The GPU path (pinned host rows copied without blocking, or images kept on the GPU;
    crops and flips on the GPU) gives the CPU path's batches bit for bit."""
    cuda = torch.device("cuda")
    im = _images(n=64, px=40)
    src = {"host": im, "shards": ImageSet(DiskImages([im.x[:30], im.x[30:]]), im.y, im.classes),
           "gpu": ImageSet(im.x.to(cuda), im.y, im.classes)}[where]
    want = _all(im, 0, 6, 16, 0, seed=2, crop=32)
    got = _all(src, 0, 6, 16, 0, seed=2, crop=32, device=cuda)
    for a, b in zip(got, want):
        assert a.x.device.type == "cuda"
        assert torch.equal(a.x.cpu(), b.x) and torch.equal(a.y.cpu(), b.y)
