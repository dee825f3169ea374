"""Post-training int8 by NNCF of the OpenVINO trunk (backbone, FPN, RPN head) and mask head: ``--engine openvino
--precision int8`` / ``int8-bf16``.

    python tools/misc/quantize.py CONFIG CKPT --data DATA_ROOT [--subset 300] [--val VAL_ROOT]

Calibrates on the images of ``DATA_ROOT`` (an HW3-layout root, ``train/<name>/image.tif``, or a folder of images):
each goes through the model's test pipeline and data preprocessor, as at inference (the trunk's calibration), and
through the torch fp32 model, whose mask head's RoI features (at most ``--mask-rois`` in all, spread over the images)
calibrate the mask head (its conv tower, deconv and logits; RoIAlign stays torch). Writes ``trunk-int8.xml/.bin`` and
``mask_head-int8.xml/.bin`` into the engine cache beside the checkpoint (``CKPT.openvino/``; the box head stays
torch), then scores torch fp32 and OpenVINO int8 on ``--val`` (default: ``DATA_ROOT`` when it is an HW3 root;
``--val none`` skips it) and prints the change of segm AP50 / AP (class-agnostic, maxDets 1000).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import torch

from mmcell.utils import ToolArgumentParser, exit_on_bad_input

IMAGE_SUFFIXES = ('.tif', '.tiff', '.png', '.jpg', '.jpeg')


def parse_args(argv: List[str] | None = None):
    parser = ToolArgumentParser(description='int8 OpenVINO trunk by NNCF post-training quantisation')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data', required=True, help='calibration images: an HW3 data root or a folder of images')
    parser.add_argument('--subset', type=int, default=300, help='calibration images used at most (default 300)')
    parser.add_argument('--mask-rois', type=int, default=4096,
                        help='RoI features calibrating the mask head, at most (default 4096; 0: trunk only)')
    parser.add_argument('--val', help="HW3 data root to score fp32 torch vs int8 on (default: --data; 'none': skip)")
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint that weights_only refuses (it can run code: only files you trust)')
    return parser.parse_args(argv)


def calibration_images(data: str) -> List[str]:
    """Image files of an HW3 root (``train/<name>/image.*``) or of a plain folder, sorted."""
    from mmcell.utils.errors import HW3FileNotFoundError, HW3FormatError

    root = Path(data)
    if not root.is_dir():
        raise HW3FileNotFoundError(root, 'calibration data not found (an HW3 data root or a folder of images)')
    train = root / 'train'
    files = (sorted(p for d in train.iterdir() if d.is_dir() for p in d.glob('image.*')) if train.is_dir()
             else sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not files:
        raise HW3FormatError(root, 'no images to calibrate on (train/<name>/image.tif or *.tif/*.png)')
    return [str(p) for p in files]


def calibration_inputs(model: torch.nn.Module, images: List[str]):
    """Each image as the trunk sees it at inference: the test pipeline, then the data preprocessor (normalised,
    padded), as a numpy ``(1, 3, H, W)`` array (generator: one image in memory at a time)."""
    from mmcell.apis.builder import build_test_pipeline
    from mmcell.utils.checkpoint import detector_of

    pipeline = build_test_pipeline(model.cfg)
    det = detector_of(model)
    for i, path in enumerate(images):
        data = pipeline(dict(img_path=path, img_id=i))
        batch = det.data_preprocessor(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
        yield batch['inputs'].float().numpy()


def mask_head_inputs(model: torch.nn.Module, images: List[str], limit: int = 4096, batch: int = 128):
    """The mask head's input (RoI features) of the torch model on each image, at most ``limit`` RoIs in all (evenly
    spaced over each image's detections, the same share per image), as numpy ``(n, C, h, w)`` batches of ``batch``."""
    from mmcell.apis.builder import build_test_pipeline
    from mmcell.utils.checkpoint import detector_of

    pipeline = build_test_pipeline(model.cfg)
    head = detector_of(model).roi_head.mask_head
    share = max(1, limit // max(1, len(images)))
    seen: List[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    rois = []
    try:
        for i, path in enumerate(images):
            data = pipeline(dict(img_path=path, img_id=i))
            seen.clear()
            with torch.no_grad():
                model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
            x = torch.cat(seen) if seen else torch.zeros(0)
            if len(x):
                rois.append(x[torch.linspace(0, len(x) - 1, min(share, len(x))).round().long()].float().contiguous())
    finally:
        hook.remove()
    if not rois:
        return []
    x = torch.cat(rois)[:limit]
    return [x[i:i + batch].numpy() for i in range(0, len(x), batch)]


def quantize(config: str, checkpoint: str, data: str, subset: int = 300, trust_checkpoint: bool = False,
             mask_rois: int = 4096) -> Path:
    """Quantise the trunk (and, with ``mask_rois``, the mask head) of ``checkpoint`` and store them in its engine
    cache; returns the ``trunk-int8.xml`` path."""
    import nncf

    from mmcell.apis import init_cell_model
    from mmcell.models.openvino_trunk import EngineError, export_mask_head, export_trunk, save_quantized
    from mmcell.utils.checkpoint import detector_of

    images = calibration_images(data)[:subset]
    model = init_cell_model(config, checkpoint, precision='fp32', engine='torch', trust_checkpoint=trust_checkpoint)
    det = detector_of(model)
    ov_model = export_trunk(det)
    with torch.no_grad():
        inputs = list(calibration_inputs(model, images))
    quantized = nncf.quantize(ov_model, nncf.Dataset(inputs), subset_size=len(inputs))
    path = save_quantized(checkpoint, det, quantized, 'trunk')
    print(f'{path}: int8 trunk calibrated on {len(inputs)} images of {data}', flush=True)
    if mask_rois <= 0 or getattr(getattr(det, 'roi_head', None), 'mask_head', None) is None:
        return path
    try:
        head = export_mask_head(det)
    except EngineError as err:  # a head OpenVINO cannot convert: the int8 routes run the torch head
        print(f'{checkpoint}: mask head not quantised ({err}); the int8 routes run it in torch', flush=True)
        return path
    batches = mask_head_inputs(model, images, mask_rois)
    if not batches:
        print(f'{checkpoint}: mask head not quantised (no detections on {data} to calibrate it); the int8 routes '
              'run it in torch', flush=True)
        return path
    quantized = nncf.quantize(head, nncf.Dataset(batches), subset_size=len(batches))
    head_path = save_quantized(checkpoint, det, quantized, 'mask_head')
    print(f'{head_path}: int8 mask head calibrated on {sum(len(b) for b in batches)} RoIs of {len(images)} images',
          flush=True)
    return path


def main(argv: List[str] | None = None) -> None:
    args = parse_args(argv)
    exit_on_bad_input(quantize, args.config, args.checkpoint, args.data, args.subset, args.trust_checkpoint,
                      args.mask_rois)
    val = args.val or (args.data if (Path(args.data) / 'train').is_dir() else None)
    if val is None or val == 'none':
        return
    from mmcell.apis.evaluate import evaluate_data_root

    scores = {}
    for name, engine, precision in (('torch fp32', 'torch', 'fp32'), ('openvino int8', 'openvino', 'int8')):
        scores[name] = exit_on_bad_input(evaluate_data_root, args.config, args.checkpoint, val, class_agnostic=True,
                                         trust_checkpoint=args.trust_checkpoint, precision=precision, engine=engine)
    ref, got = scores['torch fp32'], scores['openvino int8']
    print(f'{val}: segm AP50 {ref["segm_mAP_50_md1000"]:.4f} -> {got["segm_mAP_50_md1000"]:.4f} '
          f'({got["segm_mAP_50_md1000"] - ref["segm_mAP_50_md1000"]:+.4f}), segm AP {ref["segm_mAP_md1000"]:.4f} -> '
          f'{got["segm_mAP_md1000"]:.4f} ({got["segm_mAP_md1000"] - ref["segm_mAP_md1000"]:+.4f}) '
          '(torch fp32 -> OpenVINO int8)')


if __name__ == '__main__':
    sys.exit(main())
