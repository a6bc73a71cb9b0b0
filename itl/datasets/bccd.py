"""BCCD (the BCCD_Dataset repository, MIT licence): a real VOC-format detection target at small
scale, out of the source's domain (paper Section 3's PASCAL-DET, here on blood smears). 364
640x480 images with boxes of 3 classes, in its own train / val / trainval / test lists; itl
fine-tunes on train and scores on test (`itl.detection`).
"""
from __future__ import annotations

from itl.datasets.entry import DETECTION, SHARDS_FOLDER, VOC07_MAP
from itl.datasets.voc import VocSet

BCCD = VocSet(
    name="bccd", kind=DETECTION, metric=VOC07_MAP,
    classes=("Platelets", "RBC", "WBC"), class_ids="name",
    splits=("train", "val", "trainval", "test"),
    split_sizes={"train": 205, "val": 87, "trainval": 292, "test": 72},
    image_size=(480, 640), folder="BCCD",
    shards="bccd", shard_files=("bccd.tar.gz",),
    zero_area_boxes=("BloodImage_00338", "BloodImage_00343"),  # a 1-px point box each, as the
    # BCCD_Dataset repository publishes them
    fix=f"{SHARDS_FOLDER} or the BCCD_Dataset repository's BCCD folder")
ENTRIES = (BCCD,)
