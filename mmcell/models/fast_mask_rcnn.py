"""Fast CPU inference for Mask R-CNN: drop-in subclasses of mmdet's modules, opt-in by config.

Same parameters (checkpoints load unchanged) and, in fp32, the same masks as upstream; only inference on
CPU takes the fast path, training and CUDA run mmdet's code. Enable with :func:`fast_inference_model_cfg`
or in a config::

    model = dict(type='FastMaskRCNN',
                 roi_head=dict(type='FastStandardRoIHead',
                               bbox_roi_extractor=dict(type='FastRoIExtractor'),
                               mask_roi_extractor=dict(type='FastRoIExtractor'),
                               mask_head=dict(type='FastFCNMaskHead', precision='fp32')),
                 test_cfg=dict(rcnn=dict(mask_format='rle', mask_score_thr=0.0)))

Where upstream spends its time (748x928 input, 1000 detections, issue 6): the mask head's convolutions,
mmcv's single-threaded CPU RoIAlign and ~17k small tensor ops pasting masks one by one into a dense
``(N, H, W)`` tensor. Here: channels_last convolutions (oneDNN's fast layout), RoIAlign through
``grid_sample`` parallel over RoIs (:func:`mmcell.models.fast_ops.roi_align`), and bucketed pasting straight
into COCO RLE (:func:`mmcell.models.fast_ops.paste_masks_rle`).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, List, Optional, Tuple

import torch
from mmcv.cnn import fuse_conv_bn
from mmdet.models.detectors import MaskRCNN
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.models.utils import empty_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmcell.structures.rle import rect_rles

from .fast_ops import RLEMasks, multilevel_roi_align, paste_masks_dense, paste_masks_rle
from .precision import autocast_forward, outputs_to_fp32


def _fast_path(t: Tensor, module: nn.Module) -> bool:
    """Inference on CPU without autograd: the only case the fast kernels replace."""
    return not module.training and not t.is_cuda and not torch.is_grad_enabled()


@MODELS.register_module()
class FastRoIExtractor(SingleRoIExtractor):
    """``SingleRoIExtractor`` whose CPU inference uses :func:`mmcell.models.fast_ops.roi_align`.

    mmcv's CPU RoIAlign runs on one thread, level by level (and reads channels_last features wrongly, as it
    assumes NCHW); one weighted ``embedding_bag`` over all levels gives the same values to float rounding.

    Args:
        fast_training: use the same kernel when training on CPU too (``embedding_bag`` is differentiable; its
            backward is one scatter-add instead of mmcv's single-threaded loop: 4-5x less time for the forward and
            backward of 1,024 RoIs, 28 % of the MoNuSeg recipe's fp32 step; see benchmarks/RESULTS.md). Off by
            default, so training configs keep mmcv's kernel unless they ask.
        **kwargs: ``SingleRoIExtractor`` arguments.
    """

    def __init__(self, *args, fast_training: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_training = fast_training

    def forward(self, feats: Tuple[Tensor], rois: Tensor, roi_scale_factor: Optional[float] = None) -> Tensor:
        layer = self.roi_layers[0]
        fast = _fast_path(feats[0], self) or (self.fast_training and self.training and not feats[0].is_cuda)
        if not fast or getattr(layer, 'pool_mode', 'avg') != 'avg':
            return super().forward(feats, rois, roi_scale_factor)
        rois = rois.type_as(feats[0])
        out_size = tuple(layer.output_size)
        if len(rois) == 0:
            return feats[0].new_zeros(0, self.out_channels, *out_size)
        num_levels = len(feats)
        target_lvls = (self.map_roi_levels(rois, num_levels) if num_levels > 1
                       else rois.new_zeros(len(rois), dtype=torch.long))
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        scales = [float(lay.spatial_scale) for lay in self.roi_layers]
        out = multilevel_roi_align(feats, rois, target_lvls, out_size, scales, int(layer.sampling_ratio),
                                   bool(layer.aligned))
        if torch.is_grad_enabled():  # every level in the graph, as mmdet does (DDP needs a gradient for each)
            out = out + sum(f[(0, ) * f.dim()] for f in feats) * 0.
        return out


@MODELS.register_module()
class FastFCNMaskHead(FCNMaskHead):
    """``FCNMaskHead`` with a fast CPU inference forward.

    Args:
        precision: ``'fp32'`` (same masks as upstream), ``'bf16'`` (bfloat16 convolutions through oneDNN's
            AVX512-BF16 kernels; an opt-in cheaper path, masks differ slightly) or ``'int8'`` (dynamic
            per-RoI-batch quantisation is not available for convs in torch, so int8 uses static
            quantisation calibrated on the first batch of RoIs it sees; opt-in).
        channels_last: run the convolutions in NHWC, oneDNN's fast layout on CPU.
        **kwargs: ``FCNMaskHead`` arguments.
    """

    def __init__(self, *args, precision: str = 'fp32', channels_last: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if precision not in ('fp32', 'bf16', 'int8'):
            raise ValueError(f'FastFCNMaskHead: precision must be fp32, bf16 or int8, not {precision!r}')
        self.precision = precision
        self.channels_last = channels_last
        self._int8_model: Optional[nn.Module] = None

    def _plain_layers(self) -> nn.Sequential:
        """The head as a plain ``nn.Sequential`` (conv, relu, ..., deconv, relu, logits) for quantisation."""
        layers: List[nn.Module] = []
        for conv in self.convs:
            layers += [copy.deepcopy(conv.conv), nn.ReLU()]
            if conv.with_norm:
                raise ValueError('FastFCNMaskHead: int8 precision does not support normalised mask convs')
        if self.upsample is not None:
            if self.upsample_method != 'deconv':
                raise ValueError('FastFCNMaskHead: int8 precision needs upsample_method=deconv')
            layers += [copy.deepcopy(self.upsample), nn.ReLU()]
        layers.append(copy.deepcopy(self.conv_logits))
        return nn.Sequential(*layers).eval()

    def _build_int8(self, calib: Tensor) -> nn.Module:
        # deferred: quantization is loaded only for int8 inference
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        plain = self._plain_layers()
        with warnings.catch_warnings():  # torch >= 2.8 points FX quantisation users to torchao
            warnings.simplefilter('ignore')
            prepared = prepare_fx(plain, get_default_qconfig_mapping('x86'), example_inputs=(calib[:1],))
            with torch.no_grad():
                prepared(calib)
            return convert_fx(prepared)

    def forward(self, x: Tensor) -> Tensor:
        if not _fast_path(x, self):
            return super().forward(x)
        engine = self.__dict__.get('_mask_engine')  # the OpenVINO int8 mask head (mmcell.models.openvino_trunk)
        if engine is not None:
            return engine(x)
        if self.precision == 'int8':
            if self._int8_model is None:
                self._int8_model = self._build_int8(x.contiguous())
            return self._int8_model(x.contiguous(memory_format=torch.channels_last)).contiguous()
        if self.channels_last:
            if not getattr(self, '_is_channels_last', False):
                self.to(memory_format=torch.channels_last)
                self._is_channels_last = True
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision == 'bf16':
            with torch.autocast('cpu', dtype=torch.bfloat16):
                out = super().forward(x)
            return out.float().contiguous()
        return super().forward(x).contiguous()


def paste_instance_masks(probs: Tensor, bboxes: Tensor, img_h: int, img_w: int, threshold: float,
                         mask_format: str = 'bitmap'):
    """Paste mask probabilities of detections (boxes in target pixels) as ``'rle'`` or ``'bitmap'``."""
    if mask_format == 'rle':
        return paste_masks_rle(probs, bboxes, img_h, img_w, threshold)
    if mask_format == 'bitmap':
        return paste_masks_dense(probs, bboxes, img_h, img_w, threshold)
    raise ValueError(f'mask_format must be rle or bitmap, not {mask_format!r}')


def box_masks(bboxes: Tensor, img_h: int, img_w: int, mask_format: str = 'bitmap'):
    """Rectangular masks filling each box (the fallback for detections whose mask head was skipped)."""
    boxes = bboxes.round().long()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, img_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, img_h)
    if mask_format == 'rle':
        return RLEMasks(rect_rles(boxes.tolist(), img_h, img_w), img_h, img_w)
    out = torch.zeros((len(bboxes), img_h, img_w), dtype=torch.bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        out[i, y1:y2, x1:x2] = True
    return out


def concat_masks(parts: list, mask_format: str):
    """Concatenate mask sets in the same format (lists of RLE dicts or dense tensors)."""
    if mask_format == 'rle':
        return RLEMasks([m for part in parts for m in part], parts[0].height, parts[0].width)
    return torch.cat(parts, dim=0)


@MODELS.register_module()
class FastStandardRoIHead(StandardRoIHead):
    """``StandardRoIHead`` with batched mask pasting and a mask-head score gate at inference.

    Extra ``test_cfg`` (``rcnn``) keys:

    - ``mask_format``: ``'bitmap'`` (default; dense ``(N, H, W)`` bool like upstream) or ``'rle'`` (a list of
      COCO RLE dicts with bytes counts, which mmdet's ``CocoMetric`` and mmcell's submission writer accept;
      memory proportional to the boxes instead of N*H*W).
    - ``mask_score_thr``: run the mask head only for detections scoring at least this (default 0: all).
    - ``low_score_masks``: what the other detections get, ``'box'`` (a filled box: an ellipse-like nucleus
      covers ~78% of its box, so these still match at IoU 0.5; default) or ``'drop'`` (removed).

    With more than one class, each detection also keeps how sure the box head was of its class
    (:meth:`predict_bbox`): ``class_margin`` (its class score minus the best other class score of the same RoI;
    negative when another class scored higher) and ``runner_up`` (that other class), read from the softmax the
    box head computes anyway; boxes, scores and labels stay bit-identical to upstream.
    """

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict], rpn_results_list: List[InstanceData],
                     rcnn_test_cfg: Any, rescale: bool = False) -> List[InstanceData]:
        """mmdet's ``predict_bbox`` plus ``class_margin`` / ``runner_up`` per detection (class docstring).

        The box head's per-RoI output before NMS (its ``rcnn_test_cfg=None`` mode, what upstream's aug-test
        uses) goes through the same ``multiclass_nms`` call upstream makes, asking for the indices it keeps.
        """
        num_classes = self.bbox_head.num_classes
        if (rcnn_test_cfg is None or num_classes < 2 or getattr(self.bbox_head, 'custom_cls_channels', False)
                or any(len(r) == 0 for r in rpn_results_list)):
            return super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale)
        raw = super().predict_bbox(x, batch_img_metas, rpn_results_list, None, rescale)
        out = []
        for res in raw:
            box_dim = res.bboxes.size(-1) // (1 if self.bbox_head.reg_class_agnostic else num_classes)
            dets, labels, inds = multiclass_nms(res.bboxes, res.scores, rcnn_test_cfg.score_thr, rcnn_test_cfg.nms,
                                                rcnn_test_cfg.max_per_img, box_dim=box_dim, return_inds=True)
            fg = res.scores[torch.div(inds, num_classes, rounding_mode='floor'), :num_classes]
            own = fg.gather(1, labels[:, None])[:, 0]
            best_other, runner_up = fg.scatter(1, labels[:, None], float('-inf')).max(1)
            out.append(InstanceData(metainfo=res.metainfo, bboxes=dets[:, :-1], scores=dets[:, -1], labels=labels,
                                    class_margin=own - best_other, runner_up=runner_up))
        return out

    def mask_probs(self, x: Tuple[Tensor], bboxes: List[Tensor], labels: List[Tensor]) -> List[Tensor]:
        """Per image ``(n, 28, 28)`` probabilities of each box's class (boxes in network-input pixels)."""
        rois = bbox2roi(bboxes)
        if rois.shape[0] == 0:
            return [b.new_zeros((0, *self.mask_head_out_size())) for b in bboxes]
        preds = self._mask_forward(x, rois)['mask_preds']
        probs = mask_probs_of(self.mask_head, preds, torch.cat(labels))
        return list(probs.split([len(b) for b in bboxes], 0))

    def mask_head_out_size(self) -> Tuple[int, int]:
        size = self.mask_roi_extractor.roi_layers[0].output_size
        factor = self.mask_head.scale_factor if self.mask_head.upsample is not None else 1
        return int(size[0] * factor), int(size[1] * factor)

    def predict_mask(self, x: Tuple[Tensor], batch_img_metas: List[dict], results_list: List[InstanceData],
                     rescale: bool = False) -> List[InstanceData]:
        if not _fast_path(x[0], self) or not rescale:
            return super().predict_mask(x, batch_img_metas, results_list, rescale)
        cfg = self.test_cfg
        mask_format = cfg.get('mask_format', 'bitmap')
        score_thr = float(cfg.get('mask_score_thr', 0.0))
        low_score = cfg.get('low_score_masks', 'box')
        threshold = cfg.mask_thr_binary
        if sum(len(r) for r in results_list) == 0:
            return empty_instances(batch_img_metas, x[0].device, task_type='mask', instance_results=results_list,
                                   mask_thr_binary=threshold)
        keep = [r.scores >= score_thr for r in results_list]
        probs = self.mask_probs(x, [r.bboxes[k] for r, k in zip(results_list, keep)],
                                [r.labels[k] for r, k in zip(results_list, keep)])
        out = []
        for results, meta, k, p in zip(results_list, batch_img_metas, keep, probs):
            img_h, img_w = meta['ori_shape'][:2]
            scale = results.bboxes.new_tensor(meta['scale_factor']).repeat((1, 2))
            results.bboxes = results.bboxes / scale
            if bool(k.all()):
                results.masks = paste_instance_masks(p, results.bboxes, img_h, img_w, threshold, mask_format)
                out.append(results)
                continue
            high, low = results[k], results[~k]
            high.masks = paste_instance_masks(p, high.bboxes, img_h, img_w, threshold, mask_format)
            if low_score == 'drop' or len(low) == 0:
                out.append(high)
                continue
            low.masks = box_masks(low.bboxes, img_h, img_w, mask_format)
            merged = InstanceData(metainfo=results.metainfo)
            for key in results.keys():  # bboxes, scores, labels and the class margins when kept
                merged[key] = torch.cat([high[key], low[key]])
            merged.masks = concat_masks([high.masks, low.masks], mask_format)
            out.append(merged)
        return out


def mask_probs_of(mask_head: nn.Module, mask_preds: Tensor, labels: Tensor) -> Tensor:
    """``(N, h, w)`` sigmoid probabilities of each detection's class from ``(N, C, h, w)`` logits."""
    if mask_preds.shape[0] == 0:
        return mask_preds.new_zeros((0, *mask_preds.shape[2:]))
    channel = torch.zeros_like(labels) if getattr(mask_head, 'class_agnostic', False) else labels
    return mask_preds[torch.arange(len(labels)), channel].sigmoid()


def detect_boxes(det: nn.Module, img: Tensor, sample: Any) -> Tuple[Tuple[Tensor], Any, InstanceData]:
    """Preprocess one ``(C, H, W)`` image, run backbone + RPN + box head of a two-stage detector, no rescale.

    The detector sequence that TTA views (:class:`mmcell.models.CellTTAModel`) and tiles
    (:class:`mmcell.models.TiledDetector`) share: they then map the boxes back themselves and run the mask head
    on the returned features once the boxes are final.

    Returns:
        ``(features, preprocessed sample, detections)`` with detections in the (augmented / tile) image's pixels.
    """
    batch = det.data_preprocessor(dict(inputs=[img], data_samples=[sample]), False)
    feats = det.extract_feat(batch['inputs'])
    sample = batch['data_samples'][0]
    rpn = det.rpn_head.predict(feats, [sample], rescale=False)
    res = det.roi_head.predict_bbox(feats, [sample.metainfo], rpn, rcnn_test_cfg=det.roi_head.test_cfg,
                                    rescale=False)[0]
    return feats, sample, res


@MODELS.register_module()
class FastMaskRCNN(MaskRCNN):
    """``MaskRCNN`` whose CPU inference runs a channels_last backbone with BatchNorm folded into the convs.

    The folded copy (mmcv's ``fuse_conv_bn``) is built lazily at the first CPU inference and kept outside the
    module tree (no extra state_dict keys); ``train()``, ``load_state_dict()`` and device moves drop it, so
    training and checkpoints always see the original modules.

    Args:
        channels_last: run backbone and neck in NHWC on CPU inference (oneDNN's fast layout).
        fuse_conv_bn: fold BatchNorm into the preceding convs for CPU inference (same outputs to rounding).
        precision: CPU inference precision of backbone, FPN, RPN head and box head, ``'fp32'`` or ``'bf16'``
            (bfloat16 autocast, float32 outputs: RoIAlign, box decoding, NMS and pasting stay float32; see
            :mod:`mmcell.models.precision`); ``'int8'`` runs these in float32 (only the mask head has an int8
            path). The mask head has its own ``precision`` (:func:`fast_inference_model_cfg` sets both).
        **kwargs: ``MaskRCNN`` arguments.
    """

    def __init__(self, *args, channels_last: bool = True, fuse_conv_bn: bool = True, precision: str = 'fp32',
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if precision not in ('fp32', 'bf16', 'int8'):
            raise ValueError(f'FastMaskRCNN: precision must be fp32, bf16 or int8, not {precision!r}')
        self.channels_last = channels_last
        self.fuse_conv_bn = fuse_conv_bn
        self.precision = precision
        if precision == 'bf16':  # heads predict under autocast in CPU inference only (training is untouched)
            autocast_forward(self.rpn_head)
            if self.with_roi_head and getattr(self.roi_head, 'bbox_head', None) is not None:
                autocast_forward(self.roi_head.bbox_head)

    def _drop_inference_backbone(self) -> None:
        self.__dict__.pop('_inference_backbone', None)

    def _get_inference_backbone(self) -> nn.Module:
        cached = self.__dict__.get('_inference_backbone')
        if cached is None:
            if self.fuse_conv_bn:

                cached = copy.deepcopy(self.backbone)
                cached.eval()  # (mmdet's ResNet.train() returns None: no chaining)
                fuse_conv_bn(cached)
            else:
                cached = self.backbone
            if self.channels_last:
                cached.to(memory_format=torch.channels_last)
                if self.with_neck:
                    self.neck.to(memory_format=torch.channels_last)
            self.__dict__['_inference_backbone'] = cached  # not a registered submodule
        return cached

    def _drop_engines(self) -> None:
        """Back to the torch modules: a compiled engine holds the weights it was built from."""
        self.__dict__.pop('_trunk_engine', None)
        mask_head = getattr(self.roi_head, 'mask_head', None) if self.with_roi_head else None
        if mask_head is not None:
            mask_head.__dict__.pop('_mask_engine', None)

    def train(self, mode: bool = True):
        self._drop_inference_backbone()
        if mode:  # training: the torch trunk and heads
            self._drop_engines()
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._drop_inference_backbone()
        self._drop_engines()  # new weights: the engines' are stale
        return super().load_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._drop_inference_backbone()
        return super()._apply(fn, *args, **kwargs)

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        engine = self.__dict__.get('_trunk_engine')  # --engine openvino (mmcell.models.openvino_trunk)
        if engine is not None and _fast_path(batch_inputs, self):
            feats, rpn_outs = engine(batch_inputs)
            self.__dict__['_trunk_rpn'] = (feats[0], rpn_outs)  # the RPN head's next forward on these features
            return feats
        if not (self.channels_last or self.fuse_conv_bn or self.precision == 'bf16') or \
                not _fast_path(batch_inputs, self):
            return super().extract_feat(batch_inputs)
        backbone = self._get_inference_backbone()
        if self.channels_last:
            batch_inputs = batch_inputs.contiguous(memory_format=torch.channels_last)
        if self.precision != 'bf16':
            x = backbone(batch_inputs)
            return self.neck(x) if self.with_neck else x
        with torch.autocast('cpu', dtype=torch.bfloat16):
            x = backbone(batch_inputs)
            x = self.neck(x) if self.with_neck else x
        return outputs_to_fp32(x)  # RoIAlign and the RPN's anchors read float32 features


def fast_inference_model_cfg(model_cfg: dict, precision: str = 'fp32', mask_format: Optional[str] = None,
                             mask_score_thr: Optional[float] = None) -> dict:
    """Return a copy of a Mask R-CNN model config switched to the fast CPU inference modules.

    Args:
        model_cfg: a ``MaskRCNN`` model config (dict or ``ConfigDict``).
        precision: ``'fp32'`` / ``'bf16'`` / ``'int8'`` (already resolved, see
            :func:`mmcell.utils.precision.resolve_precision`): the model's (backbone, FPN, RPN and box head) and
            the mask head's; int8 quantises the mask head only, the rest stays float32.
        mask_format: ``'rle'`` or ``'bitmap'`` (``test_cfg.rcnn.mask_format``); None keeps the config's.
        mask_score_thr: run the mask head only above this score; None keeps the config's.
    """
    cfg = copy.deepcopy(model_cfg)
    if cfg.get('type') not in ('MaskRCNN', 'FastMaskRCNN'):
        raise ValueError(f"fast inference supports MaskRCNN models, not {cfg.get('type')!r}")
    cfg['type'] = 'FastMaskRCNN'
    cfg['precision'] = precision
    roi = cfg['roi_head']
    if roi.get('type') not in ('StandardRoIHead', 'FastStandardRoIHead'):
        raise ValueError(f"fast inference supports StandardRoIHead, not {roi.get('type')!r}")
    roi['type'] = 'FastStandardRoIHead'
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        if roi[key].get('type') in ('SingleRoIExtractor', 'FastRoIExtractor'):
            roi[key]['type'] = 'FastRoIExtractor'
    if roi['mask_head'].get('type') in ('FCNMaskHead', 'FastFCNMaskHead'):
        roi['mask_head']['type'] = 'FastFCNMaskHead'
        roi['mask_head']['precision'] = precision
    rcnn = cfg['test_cfg']['rcnn']
    if mask_format is not None:
        rcnn['mask_format'] = mask_format
    if mask_score_thr is not None:
        rcnn['mask_score_thr'] = mask_score_thr
    return cfg
