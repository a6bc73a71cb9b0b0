"""An independent port of py-faster-rcnn's box lines, numpy only and no itl import, to pin
itl's box frame (`itl.detection.voc_to_detector`, `hflip`, `pyfrcnn_to_voc`, `voc_results`)
against.

Ported from rbgirshick/py-faster-rcnn at 781a917 (Python 2 there; the lines below unchanged but
for the names of their inputs):
- lib/datasets/pascal_voc.py, `_load_pascal_annotation` (reading a box: "Make pixel indexes
  0-based") and `_write_voc_results_file` (writing a detection: "the VOCdevkit expects 1-based
  indices");
- lib/datasets/imdb.py, `append_flipped_images` (a training image's mirrored boxes);
- lib/fast_rcnn/bbox_transform.py, `bbox_transform` (regression targets), `bbox_transform_inv`
  (decoding) and `clip_boxes`, as lib/fast_rcnn/test.py's `im_detect` calls them
  (`pred_boxes = bbox_transform_inv(boxes, box_deltas)`, `pred_boxes = clip_boxes(pred_boxes,
  im.shape)`).
"""
from __future__ import annotations

import numpy as np


def load_boxes(bndboxes: list[dict[str, str]]) -> np.ndarray:
    """_load_pascal_annotation's box lines, for the text of each object's <bndbox> fields."""
    boxes = np.zeros((len(bndboxes), 4), dtype=np.uint16)
    for ix, bbox in enumerate(bndboxes):
        # Make pixel indexes 0-based
        x1 = float(bbox['xmin']) - 1
        y1 = float(bbox['ymin']) - 1
        x2 = float(bbox['xmax']) - 1
        y2 = float(bbox['ymax']) - 1
        boxes[ix, :] = [x1, y1, x2, y2]
    return boxes


def flipped(boxes: np.ndarray, width: int) -> np.ndarray:
    """append_flipped_images's lines for one image of `width` px."""
    boxes = boxes.copy()
    oldx1 = boxes[:, 0].copy()
    oldx2 = boxes[:, 2].copy()
    boxes[:, 0] = width - oldx2 - 1
    boxes[:, 2] = width - oldx1 - 1
    assert (boxes[:, 2] >= boxes[:, 0]).all()
    return boxes


def bbox_transform(ex_rois, gt_rois):
    ex_widths = ex_rois[:, 2] - ex_rois[:, 0] + 1.0
    ex_heights = ex_rois[:, 3] - ex_rois[:, 1] + 1.0
    ex_ctr_x = ex_rois[:, 0] + 0.5 * ex_widths
    ex_ctr_y = ex_rois[:, 1] + 0.5 * ex_heights

    gt_widths = gt_rois[:, 2] - gt_rois[:, 0] + 1.0
    gt_heights = gt_rois[:, 3] - gt_rois[:, 1] + 1.0
    gt_ctr_x = gt_rois[:, 0] + 0.5 * gt_widths
    gt_ctr_y = gt_rois[:, 1] + 0.5 * gt_heights

    targets_dx = (gt_ctr_x - ex_ctr_x) / ex_widths
    targets_dy = (gt_ctr_y - ex_ctr_y) / ex_heights
    targets_dw = np.log(gt_widths / ex_widths)
    targets_dh = np.log(gt_heights / ex_heights)

    targets = np.vstack(
        (targets_dx, targets_dy, targets_dw, targets_dh)).transpose()
    return targets


def bbox_transform_inv(boxes, deltas):
    if boxes.shape[0] == 0:
        return np.zeros((0, deltas.shape[1]), dtype=deltas.dtype)

    boxes = boxes.astype(deltas.dtype, copy=False)

    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights

    dx = deltas[:, 0::4]
    dy = deltas[:, 1::4]
    dw = deltas[:, 2::4]
    dh = deltas[:, 3::4]

    pred_ctr_x = dx * widths[:, np.newaxis] + ctr_x[:, np.newaxis]
    pred_ctr_y = dy * heights[:, np.newaxis] + ctr_y[:, np.newaxis]
    pred_w = np.exp(dw) * widths[:, np.newaxis]
    pred_h = np.exp(dh) * heights[:, np.newaxis]

    pred_boxes = np.zeros(deltas.shape, dtype=deltas.dtype)
    # x1
    pred_boxes[:, 0::4] = pred_ctr_x - 0.5 * pred_w
    # y1
    pred_boxes[:, 1::4] = pred_ctr_y - 0.5 * pred_h
    # x2
    pred_boxes[:, 2::4] = pred_ctr_x + 0.5 * pred_w
    # y2
    pred_boxes[:, 3::4] = pred_ctr_y + 0.5 * pred_h

    return pred_boxes


def clip_boxes(boxes, im_shape):
    """
    Clip boxes to image boundaries.
    """

    # x1 >= 0
    boxes[:, 0::4] = np.maximum(np.minimum(boxes[:, 0::4], im_shape[1] - 1), 0)
    # y1 >= 0
    boxes[:, 1::4] = np.maximum(np.minimum(boxes[:, 1::4], im_shape[0] - 1), 0)
    # x2 < im_shape[1]
    boxes[:, 2::4] = np.maximum(np.minimum(boxes[:, 2::4], im_shape[1] - 1), 0)
    # y2 < im_shape[0]
    boxes[:, 3::4] = np.maximum(np.minimum(boxes[:, 3::4], im_shape[0] - 1), 0)
    return boxes


def results_lines(index: str, dets: np.ndarray) -> list[str]:
    """_write_voc_results_file's lines for one image and class: `dets` rows x1, y1, x2, y2,
    score (after NMS)."""
    lines = []
    # the VOCdevkit expects 1-based indices
    for k in range(dets.shape[0]):
        lines.append('{:s} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}\n'.
                     format(index, dets[k, -1],
                            dets[k, 0] + 1, dets[k, 1] + 1,
                            dets[k, 2] + 1, dets[k, 3] + 1))
    return lines
