"""Public data set converters -> HW3 layout: one test per format (read back through CellInstanceDataset /
CellTestDataset), the rasterisation and overlap rules on hand-drawn polygons, class maps and the test release."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from converter_fixtures import (
    instance_pixel_sets,
    square,
    synthetic_instances,
    write_consep,
    write_monuseg,
    write_pannuke,
    write_png,
    write_xml,
)

from mmcell.datasets import CellInstanceDataset, CellTestDataset
from mmcell.datasets.converters.convert import convert_to_hw3, parse_class_map
from mmcell.datasets.converters.imagescope import polygon_pixels
from mmcell.datasets.image_io import read_image, write_image_tif
from mmcell.structures.label_image import paint_instances


def _convert(fmt, src, out, **kwargs):
    lines = []
    report = convert_to_hw3(fmt, src, out, progress=False, log=lines.append, **kwargs)
    return report, lines


def _dataset(root, classes):
    return CellInstanceDataset(data_root=str(root), split='all', cache_file=None,
                               metainfo=dict(classes=tuple(classes)))


def _label_map(sample_dir):
    """(ids, classes) maps of a written train/<stem>/ folder, read with tifffile."""
    ids = None
    classes = None
    for path in sorted(sample_dir.glob('class*.tif')):
        cmap = tifffile.imread(path)
        if ids is None:
            ids, classes = np.zeros(cmap.shape, np.int64), np.zeros(cmap.shape, np.int64)
        ids[cmap > 0] = cmap[cmap > 0]
        classes[cmap > 0] = int(path.stem[5:])
    return ids, classes


# ------------------------------------------------------------------------------------------- rasterisation
def test_pixel_centre_rule_on_hand_drawn_polygons():
    # rectangle x 1.2..4.8, y 1.2..3.8: centres c + 0.5 in [1.2, 4.8] -> c = 1..4, r + 0.5 in [1.2, 3.8] -> r = 1..3
    pix = polygon_pixels(np.array(square(1.2, 1.2, 4.8, 3.8)), 10, 10)
    rows, cols = np.divmod(pix, 10)
    assert sorted(set(cols.tolist())) == [1, 2, 3, 4] and sorted(set(rows.tolist())) == [1, 2, 3]
    assert len(pix) == 12
    # right triangle (0,0) (6.2,0) (0,6.2): centre inside iff (c + 0.5) + (r + 0.5) < 6.2 iff c + r <= 5 -> 21 px
    pix = polygon_pixels(np.array([(0, 0), (6.2, 0), (0, 6.2)]), 10, 10)
    rows, cols = np.divmod(pix, 10)
    assert len(pix) == 21 and (rows + cols <= 5).all()
    # a thin sliver between two centres holds no centre: degenerate
    assert len(polygon_pixels(np.array(square(1.6, 1.6, 2.4, 2.4)), 10, 10)) == 0
    # x is the column: a wide, low rectangle gives more columns than rows
    pix = polygon_pixels(np.array(square(0.1, 0.1, 6.9, 1.9)), 10, 10)
    assert len(pix) == 14 and set((pix // 10).tolist()) == {0, 1}


def test_polygon_clipped_at_the_border():
    pix = polygon_pixels(np.array(square(-3.0, 6.0, 3.0, 12.0)), 10, 10)  # runs past the left and bottom edges
    rows, cols = np.divmod(pix, 10)
    assert set(cols.tolist()) == {0, 1, 2} and set(rows.tolist()) == {6, 7, 8, 9}


def test_overlap_goes_to_the_smaller_instance():
    big = polygon_pixels(np.array(square(0, 0, 6, 6)), 10, 10)  # 36 px
    small = polygon_pixels(np.array(square(4, 4, 8, 8)), 10, 10)  # 16 px, 4 shared
    labels, kept, contested = paint_instances([big, small], 10, 10)
    assert contested == 4 and list(kept) == [0, 1]
    assert (labels == 2).sum() == 16 and (labels == 1).sum() == 32  # the smaller keeps all its pixels
    # equal sizes: the first listed wins; an instance hidden entirely is dropped
    a = polygon_pixels(np.array(square(0, 0, 4, 4)), 10, 10)
    b = polygon_pixels(np.array(square(2, 0, 6, 4)), 10, 10)
    inner = polygon_pixels(np.array(square(1, 1, 3, 3)), 10, 10)
    labels, kept, contested = paint_instances([a, b], 10, 10)
    assert (labels == 1).sum() == 16 and (labels == 2).sum() == 8
    labels, kept, _ = paint_instances([inner, a, inner.copy()], 10, 10)
    assert list(kept) == [0, 1] and (labels == 1).sum() == 4  # the duplicate (listed later) loses every pixel


# ----------------------------------------------------------------------------------------------- formats
def test_monuseg(tmp_path):
    polys = [square(2, 2, 10, 9), square(10, 2, 16, 9),  # two touching nuclei
             square(8, 20, 14, 30), square(12, 20, 30, 30),  # overlapping: 2x10 px contested
             [(30, 3), (40, 3)],  # 2 vertices: degenerate
             [(20, 12), (25, 12), (30, 12)],  # zero area: degenerate
             square(44, 30, 52, 38)]  # runs 4 px past the right edge (48 wide): clipped
    src = write_monuseg(tmp_path / 'src', {'img_a': polys, 'img_b': [square(5, 5, 15, 15)]})
    report, lines = _convert('monuseg', src, tmp_path / 'out')
    assert lines[0] == 'img_a: 5 instances (nucleus 5), 2 skipped, 20 contested px'
    assert report.instances == {1: 6} and report.skipped == 2 and report.contested == 20
    ids, classes = _label_map(tmp_path / 'out' / 'train' / 'img_a')
    sizes = sorted(np.bincount(ids.ravel())[1:][np.bincount(ids.ravel())[1:] > 0].tolist())
    # clipped 4x8; of the overlapping pair the smaller keeps its 6x10, the larger loses 2x10
    assert sizes == sorted([4 * 8, 6 * 7, 6 * 10, 8 * 7, 16 * 10])
    assert set(np.unique(classes)) == {0, 1}
    rgb = read_image(tmp_path / 'out' / 'train' / 'img_a' / 'image.tif')
    np.testing.assert_array_equal(rgb, read_image(src / 'Tissue Images' / 'img_a.tif'))
    dataset = _dataset(tmp_path / 'out', ['nucleus'])
    assert len(dataset) == 2 and sum(len(dataset.get_data_info(i)['instances']) for i in range(2)) == 6


def test_monuseg_png_images(tmp_path):
    src = write_monuseg(tmp_path / 'src', {'a': [square(5, 5, 15, 15)]}, suffix='.png')
    report, _ = _convert('monuseg', src, tmp_path / 'out')
    assert report.instances == {1: 1}


def test_monusac_classes_ambiguous_and_svs(tmp_path):
    rgb = synthetic_instances(3, 64, 64)[0]
    src = tmp_path / 'src' / 'patient_1'
    src.mkdir(parents=True)
    # an Aperio-like .svs: tiled JPEG 2000 (lossless), read at level 0
    tifffile.imwrite(src / 'crop.svs', rgb, tile=(32, 32), compression='jpeg2000', compressionargs={'level': 0},
                     description='Aperio Image Library v12.0.15 \n64x64 [0,0 64x64] (32x32) J2K/YUV16 Q=100')
    write_xml(src / 'crop.xml', [('Epithelial', [square(2, 2, 12, 12)]),
                                 ('Lymphocyte', [square(20, 2, 26, 8), square(30, 2, 36, 8)]),
                                 ('Ambiguous', [square(40, 40, 60, 60)]),
                                 ('Neutrophil', [square(2, 40, 10, 50)])])
    report, lines = _convert('monusac', tmp_path / 'src', tmp_path / 'out', test_release=True)
    assert lines == ['crop: 4 instances (Epithelial 1, Lymphocyte 2, Neutrophil 1), 0 skipped, 0 contested px, '
                     '1 Ambiguous ignored']
    assert report.ignored == {'Ambiguous': 1}
    out = tmp_path / 'out'
    assert sorted(p.name for p in (out / 'train' / 'crop').iterdir()) == ['class1.tif', 'class2.tif', 'class4.tif',
                                                                          'image.tif']
    np.testing.assert_array_equal(read_image(out / 'train' / 'crop' / 'image.tif'), rgb)
    ids, classes = _label_map(out / 'train' / 'crop')
    assert classes[45, 5] == 4 and classes[5, 23] == 2 and ids[50, 50] == 0  # ambiguous area left unlabelled
    test = CellTestDataset(data_root=str(out))
    assert [d['img_id'] for d in test.load_data_list()] == [1]
    gt = json.loads((out / 'test_gt_coco.json').read_text())
    assert [c['name'] for c in gt['categories']] == ['Epithelial', 'Lymphocyte', 'Macrophage', 'Neutrophil']
    assert sorted(a['category_id'] for a in gt['annotations']) == [1, 2, 2, 4]
    assert gt['images'] == [dict(id=1, file_name='crop.tif', height=64, width=64)]


def test_pannuke_round_trip(tmp_path):
    images, truths = write_pannuke(tmp_path / 'src', num=3)
    report, lines = _convert('pannuke', tmp_path / 'src', tmp_path / 'out')
    assert len(lines) == 3 and report.class_names[:2] == ['Neoplastic', 'Inflammatory']
    for i, (ids, classes) in enumerate(truths):
        sample = tmp_path / 'out' / 'train' / f'fold1_{i:04d}'
        got_ids, got_classes = _label_map(sample)
        assert instance_pixel_sets(got_ids) == instance_pixel_sets(ids)  # touching cells stay separate
        np.testing.assert_array_equal(got_classes, classes)
        np.testing.assert_array_equal(read_image(sample / 'image.tif'), images[i])
    dataset = _dataset(tmp_path / 'out', report.class_names)
    n = sum(len(dataset.get_data_info(i)['instances']) for i in range(3))
    assert n == sum(len(np.unique(t[0])) - 1 for t in truths)


def test_pannuke_fifth_class_and_contested_channels(tmp_path):
    images, truths = write_pannuke(tmp_path / 'src', num=1, float_images=False)
    masks_path = tmp_path / 'src' / 'masks' / 'fold1' / 'masks.npy'
    masks = np.load(masks_path)
    masks[0, 0:4, 0:4, 4] = 9001  # an Epithelial (class 5) nucleus, 16 px, over whatever was there
    np.save(masks_path, masks)
    report, lines = _convert('pannuke', tmp_path / 'src', tmp_path / 'out')
    got_ids, got_classes = _label_map(tmp_path / 'out' / 'train' / 'fold1_0000')
    assert (tmp_path / 'out' / 'train' / 'fold1_0000' / 'class5.tif').is_file()
    assert report.instances.get(5) == 1
    contested = int((truths[0][0][0:4, 0:4] > 0).sum())
    assert report.contested == contested and f'{contested} contested px' in lines[0]
    dataset = _dataset(tmp_path / 'out', report.class_names)
    assert 4 in [i['bbox_label'] for i in dataset.get_data_info(0)['instances']]


def test_conic(tmp_path):
    rgbs, labels, truths = [], [], []
    for i in range(2):
        rgb, ids, classes = synthetic_instances(20 + i, 40, 40)
        classes = np.where(ids > 0, (ids % 6) + 1, 0)  # use all six CoNIC classes
        rgbs.append(rgb)
        labels.append(np.stack([ids, classes], axis=-1).astype(np.int32))
        truths.append((ids, classes))
    (tmp_path / 'src' / 'data').mkdir(parents=True)
    np.save(tmp_path / 'src' / 'data' / 'images.npy', np.stack(rgbs))
    np.save(tmp_path / 'src' / 'data' / 'labels.npy', np.stack(labels))
    report, _ = _convert('conic', tmp_path / 'src', tmp_path / 'out', class_map=['Plasma=3', 'eosinophil=0'])
    # Plasma merged into Lymphocyte (3), Eosinophil dropped
    assert report.class_names == ['Neutrophil', 'Epithelial', 'Lymphocyte+Plasma', 'class4', 'class5',
                                  'Connective']
    for i, (ids, classes) in enumerate(truths):
        got_ids, got_classes = _label_map(tmp_path / 'out' / 'train' / f'data_{i:04d}')
        expected = np.where(classes == 4, 3, np.where(classes == 5, 0, classes))
        np.testing.assert_array_equal(got_classes, expected)
        assert instance_pixel_sets(got_ids) == instance_pixel_sets(np.where(expected > 0, ids, 0))


def test_dsb2018(tmp_path):
    rgb, ids, _ = synthetic_instances(5, 40, 48)
    stem = 'a1b2c3'
    write_png(tmp_path / 'src' / stem / 'images' / f'{stem}.png', np.dstack([rgb, np.full((40, 48), 255, np.uint8)]))
    for v in np.unique(ids)[1:]:
        write_png(tmp_path / 'src' / stem / 'masks' / f'm{v}.png', ((ids == v) * 255).astype(np.uint8))
    write_png(tmp_path / 'src' / stem / 'masks' / 'empty.png', np.zeros((40, 48), np.uint8))
    report, lines = _convert('dsb2018', tmp_path / 'src', tmp_path / 'out')
    got_ids, _ = _label_map(tmp_path / 'out' / 'train' / stem)
    assert instance_pixel_sets(got_ids) == instance_pixel_sets(ids)
    assert report.skipped == 1 and ', 1 skipped,' in lines[0]
    np.testing.assert_array_equal(read_image(tmp_path / 'out' / 'train' / stem / 'image.tif'), rgb)


def test_labels_with_and_without_class_map(tmp_path):
    rgb, ids, classes = synthetic_instances(7, 40, 48)
    write_image_tif(tmp_path / 'src' / 'x.tif', rgb)
    tifffile.imwrite(tmp_path / 'src' / 'x_labels.tif', (ids * 3).astype(np.uint32))  # any integer ids
    tifffile.imwrite(tmp_path / 'src' / 'x_classes.tif', classes.astype(np.uint8))
    write_png(tmp_path / 'src' / 'sub' / 'y.png', rgb)
    write_png(tmp_path / 'src' / 'sub' / 'y_labels.png', (ids > 0).astype(np.uint8) * 7)  # one instance
    report, _ = _convert('labels', tmp_path / 'src', tmp_path / 'out')
    got_ids, got_classes = _label_map(tmp_path / 'out' / 'train' / 'x')
    assert instance_pixel_sets(got_ids) == instance_pixel_sets(ids)
    np.testing.assert_array_equal(got_classes, classes)
    got_ids, got_classes = _label_map(tmp_path / 'out' / 'train' / 'y')
    assert len(instance_pixel_sets(got_ids)) == 1 and set(np.unique(got_classes)) == {0, 1}
    assert report.class_names == [f'class{k}' for k in range(1, int(classes.max()) + 1)]


def test_consep_merged_types(tmp_path):
    """Type k -> class k with CoNSeP's merged names; the Overlay/ drawings are left out; names in classes.json."""
    from scipy.io import savemat

    truths = write_consep(tmp_path / 'src', ['train_3_000', 'train_3_001', 'train_12_000'])
    # a patch without nuclei, as the real patches have (inst_type of shape (0, 1))
    write_png(tmp_path / 'src' / 'Images' / 'train_12_001.png', synthetic_instances(9, 40, 48)[0])
    savemat(tmp_path / 'src' / 'Labels' / 'train_12_001.mat', dict(
        inst_map=np.zeros((40, 48), np.int32), type_map=np.zeros((40, 48), np.int32),
        inst_type=np.zeros((0, 1), np.int32), inst_centroid=np.zeros((0, 2))))
    report, lines = _convert('consep', tmp_path / 'src', tmp_path / 'out')
    assert lines[1] == 'train_12_001: 0 instances (none), 0 skipped, 0 contested px'
    assert report.class_names == ['other', 'inflammatory', 'epithelial', 'spindle'] and report.images == 4
    assert sorted(p.name for p in (tmp_path / 'out' / 'train').iterdir()) == ['train_12_000', 'train_12_001',
                                                                             'train_3_000', 'train_3_001']
    for stem, (ids, types) in truths.items():
        got_ids, got_classes = _label_map(tmp_path / 'out' / 'train' / stem)
        assert instance_pixel_sets(got_ids) == instance_pixel_sets(ids)
        np.testing.assert_array_equal(got_classes, types)
        np.testing.assert_array_equal(read_image(tmp_path / 'out' / 'train' / stem / 'image.tif'),
                                      read_image(tmp_path / 'src' / 'Images' / f'{stem}.png'))
    assert json.loads((tmp_path / 'out' / 'classes.json').read_text()) == dict(
        classes=['other', 'inflammatory', 'epithelial', 'spindle'],
        class_map=dict(other=1, inflammatory=2, epithelial=3, spindle=4))
    dataset = _dataset(tmp_path / 'out', report.class_names)
    present = {int(t) - 1 for _, types in truths.values() for t in np.unique(types) if t}
    assert {i['bbox_label'] for n in range(len(dataset)) for i in dataset.get_data_info(n)['instances']} == present
    assert len(present) >= 3


def test_consep_original_types_and_type_map_only(tmp_path):
    """The release's 7 types merge by HoVer-Net's rule (1; 2; 3,4; 5,6,7); --class-map overrides the merge; a file
    without inst_type takes each nucleus's majority type_map value."""
    truths = write_consep(tmp_path / 'src', ['test_1'], num_types=7, keys=('inst_map', 'type_map'), overlay=False)
    ids, types = truths['test_1']
    report, _ = _convert('consep', tmp_path / 'src', tmp_path / 'out', consep_types='original')
    assert report.class_names == ['other', 'inflammatory', 'epithelial', 'spindle']
    got_ids, got_classes = _label_map(tmp_path / 'out' / 'train' / 'test_1')
    assert instance_pixel_sets(got_ids) == instance_pixel_sets(ids)
    np.testing.assert_array_equal(got_classes, np.array([0, 1, 2, 3, 3, 4, 4, 4])[types])
    assert json.loads((tmp_path / 'out' / 'classes.json').read_text())['class_map'] == {
        'other': 1, 'inflammatory': 2, 'healthy epithelial': 3, 'malignant epithelial': 3, 'fibroblast': 4,
        'muscle': 4, 'endothelial': 4}
    # keep the malignant epithelium apart, drop "other"
    report, _ = _convert('consep', tmp_path / 'src', tmp_path / 'out2', consep_types='original',
                         class_map=['malignant epithelial=5', 'other=0'])
    assert report.class_names == ['class1', 'inflammatory', 'healthy epithelial', 'spindle', 'malignant epithelial']
    got_ids, got_classes = _label_map(tmp_path / 'out2' / 'train' / 'test_1')
    np.testing.assert_array_equal(got_classes, np.array([0, 0, 2, 3, 5, 4, 4, 4])[types])


def test_test_release_scores_through_the_project_metric(tmp_path):
    """The converted test release is a complete evaluation set: ids json + COCO GT that CellCocoMetric reads."""
    write_pannuke(tmp_path / 'src', num=2)
    report, _ = _convert('pannuke', tmp_path / 'src', tmp_path / 'out', test_release=True)
    out = tmp_path / 'out'
    ids = json.loads((out / 'test_image_name_to_ids.json').read_text())
    assert [(e['file_name'], e['id']) for e in ids] == [('fold1_0000.tif', 1), ('fold1_0001.tif', 2)]
    gt = json.loads((out / 'test_gt_coco.json').read_text())
    per_image = [len(_dataset(out, report.class_names).get_data_info(i)['instances']) for i in range(2)]
    assert [sum(a['image_id'] == i for a in gt['annotations']) for i in (1, 2)] == per_image
    np.testing.assert_array_equal(read_image(out / 'test_release' / 'fold1_0000.tif'),
                                  read_image(out / 'train' / 'fold1_0000' / 'image.tif'))


def test_class_map_parsing():
    names = ('Neoplastic', 'Inflammatory', 'Connective', 'Dead', 'Epithelial')
    assert parse_class_map(['epithelial=1', '4=0'], names) == {1: 1, 2: 2, 3: 3, 4: 0, 5: 1}
    with pytest.raises(ValueError, match='unknown source class'):
        parse_class_map(['Stroma=1'], names)
    with pytest.raises(ValueError, match='expected SOURCE=K'):
        parse_class_map(['Dead'], names)
