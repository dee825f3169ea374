"""CellInstanceDataset / CellTestDataset / parse cache / split / COCO converter on real (synthetic) HW3 files."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from hw3_builders import touching_maps, write_sample, write_test_release

from mmcell.datasets import CellInstanceDataset, CellTestDataset
from mmcell.datasets.converters.hw3_coco import hw3_to_coco
from mmcell.datasets.hw3_annotations import load_train_annotations, split_samples
from mmcell.datasets.hw3_format import find_class_files, list_train_samples, read_class_map
from mmcell.datasets.image_io import read_image
from mmcell.datasets.transforms import LoadCellAnnotations, LoadCellImage


def _pipeline():
    return [LoadCellImage(), LoadCellAnnotations(with_bbox=True, with_mask=True)]


def _infos(dataset) -> list:
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def _truth(sample_dir: Path) -> dict:
    """{instance id: (class id, bool mask)} straight from the class maps (float64, never cast)."""
    out = {}
    for k, path in find_class_files(sample_dir).items():
        cmap = read_class_map(path)
        for value in np.unique(cmap[cmap != 0]):
            out[int(value)] = (k, cmap == value)
    return out


def _assert_round_trip(dataset: CellInstanceDataset) -> int:
    """Every sample's masks, labels, boxes and ids equal the class maps pixel for pixel; returns #instances."""
    total = 0
    for i in range(len(dataset)):
        results = dataset[i]
        sample_dir = Path(results['img_path']).parent
        truth = _truth(sample_dir)
        rgb = read_image(sample_dir / 'image.tif')
        assert results['img'].shape == rgb.shape and np.array_equal(results['img'][..., ::-1], rgb)
        masks = results['gt_masks'].masks
        ids = [inst['instance_id'] for inst in results['instances']]
        assert sorted(ids) == sorted(truth), sample_dir  # nothing lost, nothing merged, nothing invented
        assert masks.shape == (len(ids),) + rgb.shape[:2]
        for mask, inst_id, label, box in zip(masks, ids, results['gt_bboxes_labels'], results['gt_bboxes'].tensor):
            cls, expected = truth[inst_id]
            assert label == cls - 1
            assert np.array_equal(mask.astype(bool), expected), f'{sample_dir} id {inst_id}'
            ys, xs = np.nonzero(expected)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        total += len(ids)
    return total


def test_round_trip_synthetic(synthetic_hw3, tmp_path):
    dataset = CellInstanceDataset(data_root=str(synthetic_hw3), split='all', cache_file=str(tmp_path / 'c.json'),
                                  pipeline=_pipeline())
    assert len(dataset) == 6
    assert _assert_round_trip(dataset) > 20
    # the synthetic set really exercises ids > 255
    assert max(i['instance_id'] for d in _infos(dataset) for i in d['instances']) > 255


def test_ids_above_255_and_touching_cells(tmp_path):
    maps = touching_maps()
    write_sample(tmp_path, 'a', maps)
    dataset = CellInstanceDataset(data_root=str(tmp_path), split='all', cache_file=None, pipeline=_pipeline())
    results = dataset[0]
    ids = [inst['instance_id'] for inst in results['instances']]
    assert sorted(ids) == [5, 7, 256, 261, 1000]
    masks = results['gt_masks'].masks
    by_id = dict(zip(ids, masks))
    # the two touching class-2 cells stay two instances with their own pixels
    assert np.array_equal(by_id[5].astype(bool), maps[2] == 5)
    assert np.array_equal(by_id[261].astype(bool), maps[2] == 261)
    assert not (by_id[5] & by_id[261]).any()
    assert np.array_equal(by_id[256].astype(bool), maps[1] == 256)
    assert _assert_round_trip(dataset) == 5


def test_converter_round_trip(synthetic_hw3, tmp_path):
    out = tmp_path / 'coco.json'
    assert hw3_to_coco(synthetic_hw3, out, cache_file=None, progress=False) == [out]
    coco = json.loads(out.read_text())
    assert [c['id'] for c in coco['categories']] == [1, 2, 3, 4]
    samples = list_train_samples(synthetic_hw3)
    assert [im['file_name'] for im in coco['images']] == [f'train/{s.name}/image.tif' for s in samples]
    n = 0
    for image, sample in zip(coco['images'], samples):
        truth = _truth(sample)
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        assert sorted(a['hw3_instance_id'] for a in anns) == sorted(truth)
        for ann in anns:
            cls, expected = truth[ann['hw3_instance_id']]
            assert ann['category_id'] == cls
            rle = dict(ann['segmentation'], counts=ann['segmentation']['counts'].encode())
            assert np.array_equal(mask_utils.decode(rle).astype(bool), expected)
            assert ann['area'] == expected.sum()
            x, y, w, h = ann['bbox']
            ys, xs = np.nonzero(expected)
            assert [x, y, x + w, y + h] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            n += 1
    assert n == len(coco['annotations']) > 20
    # ids > 255 survive the converter too
    write_sample(tmp_path / 'tiny', 'a', touching_maps())
    hw3_to_coco(tmp_path / 'tiny', tmp_path / 'tiny.json', cache_file=None, progress=False)
    tiny = json.loads((tmp_path / 'tiny.json').read_text())
    assert sorted(a['hw3_instance_id'] for a in tiny['annotations']) == [5, 7, 256, 261, 1000]


def test_converter_split_matches_dataset(synthetic_hw3, tmp_path):
    written = hw3_to_coco(synthetic_hw3, tmp_path / 'x.json', val_ratio=0.34, seed=3, cache_file=None,
                          progress=False)
    assert [p.name for p in written] == ['x_train.json', 'x_val.json']
    train, val = (json.loads(p.read_text()) for p in written)
    val_ds = CellInstanceDataset(data_root=str(synthetic_hw3), split='val', val_ratio=0.34, seed=3, cache_file=None)
    assert len(val['images']) == 2 and len(train['images']) == 4
    assert {im['file_name'] for im in val['images']} == {
        os.path.relpath(d['img_path'], synthetic_hw3) for d in _infos(val_ds)}
    assert not {im['id'] for im in train['images']} & {im['id'] for im in val['images']}


def test_split_reproducible_disjoint(synthetic_hw3, tmp_path):
    def names(split, **kw):
        ds = CellInstanceDataset(data_root=str(synthetic_hw3), split=split, cache_file=None, **kw)
        return [Path(d['img_path']).parent.name for d in _infos(ds)], [d['img_id'] for d in _infos(ds)]

    train, train_ids = names('train', val_ratio=0.34, seed=1)
    val, val_ids = names('val', val_ratio=0.34, seed=1)
    assert (train, val) == (names('train', val_ratio=0.34, seed=1)[0], names('val', val_ratio=0.34, seed=1)[0])
    assert not set(train) & set(val) and not set(train_ids) & set(val_ids)
    assert sorted(train + val) == [s.name for s in list_train_samples(synthetic_hw3)]
    assert len(val) == 2
    # another seed permutes differently (over many seeds at least one differs)
    all_names = sorted(train + val)
    assert len({tuple(split_samples(all_names, 'val', 0.34, s)) for s in range(10)}) > 1
    # an explicit list file wins over the ratio
    txt = tmp_path / 'val.txt'
    txt.write_text(f'# my split\ntrain/{all_names[4]}\n{all_names[0]}\n')
    assert names('val', split_file=str(txt))[0] == [all_names[0], all_names[4]]
    assert names('train', split_file=str(txt))[0] == all_names[1:4] + all_names[5:]
    js = tmp_path / 'split.json'
    js.write_text(json.dumps(dict(train=all_names[:2], val=all_names[2:3])))
    assert names('train', split_file=str(js))[0] == all_names[:2]
    assert names('val', split_file=str(js))[0] == all_names[2:3]


def test_parse_cache_hit_and_reparse(synthetic_hw3, tmp_path):
    root = tmp_path / 'root'
    shutil.copytree(synthetic_hw3 / 'train', root / 'train')
    cache = tmp_path / 'cache.json'
    stats = {}
    first = load_train_annotations(root, cache_file=cache, progress=False, stats=stats)
    assert stats == dict(parsed=6, cached=0) and cache.is_file()
    second = load_train_annotations(root, cache_file=cache, progress=False, stats=stats)
    assert stats == dict(parsed=0, cached=6)
    assert second == first
    # change one class map: that folder (only) is re-parsed and the new content is returned
    sample = list_train_samples(root)[2]
    path = sorted(find_class_files(sample).values())[0]
    cmap = read_class_map(path)
    cmap[cmap == cmap.max()] = 4321
    from mmcell.datasets.hw3_format import write_class_map
    write_class_map(path, cmap)
    os.utime(path, ns=(1, 1))  # a distinct mtime even on coarse-clock file systems
    third = load_train_annotations(root, cache_file=cache, progress=False, stats=stats)
    assert stats == dict(parsed=1, cached=5)
    assert 4321 in [i['instance_id'] for i in third[2]['instances']]
    assert third[:2] == first[:2] and third[3:] == first[3:]
    # the default cache through the dataset: second build is a pure cache hit
    CellInstanceDataset(data_root=str(root), split='all')
    stats = {}
    load_train_annotations(root, progress=False, stats=stats)
    assert stats == dict(parsed=0, cached=6)


def test_test_dataset_ids_and_sizes(synthetic_hw3):
    entries = json.loads((synthetic_hw3 / 'test_image_name_to_ids.json').read_text())
    dataset = CellTestDataset(data_root=str(synthetic_hw3), pipeline=[LoadCellImage()])
    by_name = {Path(d['img_path']).name: d for d in _infos(dataset)}
    assert len(by_name) == len(entries) == 3
    for e in entries:
        d = by_name[e['file_name']]
        assert (d['img_id'], d['height'], d['width']) == (e['id'], e['height'], e['width'])
        assert d['instances'] == []
    for i in range(len(dataset)):
        results = dataset[i]
        assert results['img'].shape == (results['height'], results['width'], 3)
        assert results['ori_shape'] == (results['height'], results['width'])


def test_test_dataset_sizes_from_tiff(tmp_path):
    path = write_test_release(tmp_path, {'b.tif': (33, 86), 'a.tif': (70, 20)}, ids={'a.tif': 17, 'b.tif': 4})
    entries = json.loads(path.read_text())
    for e in entries:  # sizes are optional in the file: they then come from the TIFF header
        del e['height'], e['width']
    path.write_text(json.dumps(entries))
    dataset = CellTestDataset(data_root=str(tmp_path))
    assert [(Path(d['img_path']).name, d['img_id'], d['height'], d['width']) for d in _infos(dataset)] == [
        ('b.tif', 4, 33, 86), ('a.tif', 17, 70, 20)]


@pytest.mark.parametrize('dtype,channels', [(np.uint8, 4), (np.uint8, 3), (np.uint8, 1), (np.uint16, 3)])
def test_image_formats(tmp_path, dtype, channels):
    import tifffile
    rng = np.random.default_rng(1)
    rgb8 = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    if channels == 1:
        rgb8 = np.repeat(rgb8[..., :1], 3, axis=2)
    data = rgb8.astype(np.uint16) * 257 if dtype == np.uint16 else rgb8
    if channels == 4:
        data = np.concatenate([data, np.full((9, 11, 1), 255, dtype)], axis=2)
    elif channels == 1:
        data = data[..., 0]
    path = tmp_path / 'img.tif'
    tifffile.imwrite(path, data, compression='lzw')
    results = LoadCellImage().transform(dict(img_path=str(path)))
    assert results['img'].dtype == np.uint8 and np.array_equal(results['img'][..., ::-1], rgb8)


def test_rle_decoder_matches_pycocotools():
    from mmcell.structures.rle import rles_to_bitmaps
    rng = np.random.default_rng(0)
    masks = [rng.random((300, 410)) < p for p in (0.0, 0.001, 0.5, 0.999, 1.0)]
    big = np.zeros((300, 410), bool)
    big[5:290, 3:400] = True  # long runs: multi-group counts and negative differences
    masks.append(big)
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    rles = [dict(size=r['size'], counts=r['counts'].decode()) for r in rles]
    assert np.array_equal(rles_to_bitmaps(rles, 300, 410).astype(bool), np.stack(masks))



@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_cell_bitmap_masks_flip_and_subset_equal_mmdet(synthetic_hw3, direction):
    from mmdet.structures.mask import BitmapMasks

    from mmcell.datasets.transforms.loading import CellBitmapMasks

    ds = CellInstanceDataset(data_root=str(synthetic_hw3), split='all', cache_file=None,
                             pipeline=[LoadCellImage(), LoadCellAnnotations(with_bbox=True, with_mask=True)])
    item = max((ds[i] for i in range(len(ds))), key=lambda r: len(r['gt_masks']))
    ours = item['gt_masks']
    assert isinstance(ours, CellBitmapMasks) and len(ours) > 3
    ref = BitmapMasks(ours.masks.copy(), ours.height, ours.width)
    flipped = ours.flip(direction)
    assert np.array_equal(flipped.masks, ref.flip(direction).masks)
    assert np.array_equal(flipped.flip(direction).masks, ref.masks)
    # boxes follow the flip: they still cover every mask pixel exactly
    for mask, (x1, y1, x2, y2) in zip(flipped.masks, flipped.boxes):
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
    keep = np.ones(len(ours), bool)
    assert np.shares_memory(flipped[keep].masks, flipped.masks)  # nothing dropped: no copy
    keep[1] = False
    assert np.array_equal(flipped[keep].flip(direction).masks, ref[keep].masks)


def test_class_agnostic_and_fixed_val_names(synthetic_hw3):
    """One-class recipes: every class file becomes label 0; a fixed val split from the config; bad names fail."""
    from mmcell.datasets import CellInstanceDataset
    from mmcell.utils.errors import HW3FormatError

    names = sorted(p.name for p in (synthetic_hw3 / 'train').iterdir())
    common = dict(data_root=str(synthetic_hw3), pipeline=[], cache_file=None)
    four = CellInstanceDataset(split='all', **common)
    labels4 = [i['bbox_label'] for k in range(len(four)) for i in four.get_data_info(k)['instances']]
    assert len(set(labels4)) > 1  # the synthetic set has several classes
    one = CellInstanceDataset(split='all', metainfo=dict(classes=('nucleus',)), class_agnostic=True, **common)
    labels1 = [i['bbox_label'] for k in range(len(one)) for i in one.get_data_info(k)['instances']]
    assert labels1 == [0] * len(labels4)

    val = CellInstanceDataset(split='val', val_names=names[-2:], **common)
    train = CellInstanceDataset(split='train', val_names=names[-2:], **common)
    assert sorted(Path(val.get_data_info(k)['img_path']).parent.name for k in range(len(val))) == names[-2:]
    assert len(train) == len(names) - 2
    with pytest.raises(HW3FormatError, match="'nope', which is not a training folder"):
        CellInstanceDataset(split='val', val_names=['nope'], **common)
    # a one-class config on multi-class files is refused unless the classes are merged on purpose
    with pytest.raises(HW3FormatError, match=r'class[2-4]\.tif: unexpected class file.*1 class'):
        CellInstanceDataset(split='all', metainfo=dict(classes=('nucleus',)), **common)
