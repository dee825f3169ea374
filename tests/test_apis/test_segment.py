"""Label images, cell tables, mmcell.apis.segment and the `mmcell segment` command."""
from __future__ import annotations

import csv
import glob
import os
import os.path as osp
import stat

import numpy as np
import pycocotools.mask as mask_util
import pytest

from mmcell.exporters.image import cell_table
from mmcell.structures.label_image import label_image
from mmcell.structures.rle import rle_counts


def _random_instances(n: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        masks[i, y:y + rng.integers(1, 14), x:x + rng.integers(1, 14)] = True
    masks[1, :, 0] = True  # a full first column (run starting at pixel 0)
    masks[2, -1, -1] = True  # last pixel
    return masks, rng.random(n), rng.integers(0, 4, n)


def test_rle_counts_decodes_coco_strings():
    masks, _, _ = _random_instances(30, 23, 37)
    for m, rle in zip(masks, mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))):
        counts = rle_counts(rle['counts'])
        assert counts.sum() == m.size
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
        assert np.array_equal(flat.reshape(37, 23).T, m)


def test_label_image_overlaps_go_to_the_higher_score():
    h, w = 31, 40
    masks, scores, labels = _random_instances(40, h, w)
    ids, classes, order = label_image(masks, scores, labels, h, w)
    assert ids.dtype == np.uint16 and ids.shape == (h, w)
    expected = np.zeros((h, w), dtype=np.int64)
    best = np.full((h, w), -1.0)
    for i in range(len(masks)):
        better = masks[i] & (scores[i] > best)
        best[better] = scores[i]
        expected[better] = np.nonzero(order == i)[0][0] + 1
    assert np.array_equal(ids, expected)
    assert np.all(np.diff(scores[order]) <= 0)  # label 1 = best score
    assert np.array_equal(classes, np.where(ids > 0, labels[order][np.maximum(ids.astype(int) - 1, 0)] + 1, 0))
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    ids_rle, _, _ = label_image(rles, scores, labels, h, w, dtype=np.uint32)
    assert ids_rle.dtype == np.uint32 and np.array_equal(ids_rle, ids)
    with pytest.raises(ValueError, match='scores'):
        label_image(masks, scores[:-1], labels, h, w)


def test_cell_table_measures_visible_pixels():
    ids = np.zeros((6, 8), dtype=np.uint16)
    ids[1:3, 1:4] = 1  # 6 px
    ids[4, 5:8] = 2  # 3 px
    image = np.zeros((6, 8, 3), dtype=np.uint8)
    image[..., 0] = 30
    image[1:3, 1:4, 1] = 90
    rows = cell_table(ids, np.array([1, 0, 2]), [0.5, 0.9, 0.1], [2, 0, 1], image, ['epi', 'lym', 'mac', 'neu'])
    assert [r['id'] for r in rows] == [1, 2]  # id 3 has no visible pixel
    first = rows[0]
    assert (first['class_id'], first['class'], first['score'], first['area']) == (1, 'epi', 0.9, 6)
    assert (first['centroid_x'], first['centroid_y']) == (2.0, 1.5)
    assert (first['bbox_x1'], first['bbox_y1'], first['bbox_x2'], first['bbox_y2']) == (1, 1, 4, 3)
    assert (first['mean_r'], first['mean_g'], first['mean_b'], first['mean_intensity']) == (30, 90, 0, 40)
    assert rows[1]['class'] == 'mac' and rows[1]['area'] == 3


def test_segment_api_and_cli(trained_quickstart, tmp_path):
    import tifffile

    from mmcell.apis import segment
    from mmcell.cli import main

    test_dir = osp.join(trained_quickstart.data_root, 'test_release')
    out = tmp_path / 'labels'
    old_umask = os.umask(0o022)
    try:
        results = segment(test_dir, trained_quickstart.config, trained_quickstart.checkpoint, out_dir=str(out),
                          score_thr=0.05, progress=False)
    finally:
        os.umask(old_umask)
    # ordinary files, as `open(path, 'w')` would make them (they were private 0600 before mmcell.utils.fileio)
    assert {stat.S_IMODE(os.stat(p).st_mode) for seg in results for p in seg.files.values()} == {0o644}
    assert len(results) == len(glob.glob(osp.join(test_dir, '*.tif')))
    for seg in results:
        labels = tifffile.imread(seg.files['labels'])
        classes = tifffile.imread(seg.files['classes'])
        assert labels.dtype == np.uint16 and labels.shape == classes.shape == seg.labels.shape
        assert np.array_equal(labels, seg.labels)
        assert set(np.unique(classes[labels > 0])) <= {1, 2, 3, 4} and not classes[labels == 0].any()
        with open(seg.files['table']) as fh:
            rows = list(csv.DictReader(fh))
        assert sorted(int(r['id']) for r in rows) == sorted(set(np.unique(labels)) - {0})
        assert all(float(r['score']) >= 0.05 for r in rows)
        for r in rows[:5]:
            assert int(r['area']) == int((labels == int(r['id'])).sum())
        import json
        with open(seg.files['geojson']) as fh:  # the same cells as QuPath detections
            features = json.load(fh)['features']
        assert [f['properties']['measurements']['Label'] for f in features] == [int(r['id']) for r in rows]
        for f, r in zip(features, rows):  # pixel-edge outlines: QuPath's polygon area is the pixel count
            assert _geometry_area(f['geometry']) == int(r['area'])
            assert 'Nucleus: Perimeter px' in f['properties']['measurements']  # no --mpp: sizes in pixels
        assert all(f['properties']['objectType'] == 'detection' for f in features)
    assert sum(len(s.table) for s in results) > 0
    # the console command, tiled, writes the same kind of files
    main(['segment', test_dir, '--config', trained_quickstart.config, '--checkpoint', trained_quickstart.checkpoint,
          '--out', str(tmp_path / 'cli'), '--tile', '192', '--tile-overlap', '48', '--mpp', '0.5'])
    assert len(glob.glob(str(tmp_path / 'cli' / '*_labels.tif'))) == len(results)
    import json

    with open(sorted(glob.glob(str(tmp_path / 'cli' / '*_cells.geojson')))[0]) as fh:
        collection = json.load(fh)
    assert collection['metadata']['checkpoint'] == osp.basename(trained_quickstart.checkpoint)
    assert collection['metadata']['mpp'] == 0.5
    if collection['features']:
        assert {'Nucleus: Area µm^2', 'Nucleus: Circularity', 'Nucleus: Hematoxylin OD std dev'} <= set(
            collection['features'][0]['properties']['measurements'])
    with pytest.raises(SystemExit, match='no such image'):
        main(['segment', str(tmp_path / 'missing.tif'), '--config', trained_quickstart.config, '--checkpoint',
              trained_quickstart.checkpoint, '--out', str(tmp_path / 'x')])


def test_segment_reads_every_image_kind_once(trained_quickstart, tmp_path, monkeypatch):
    """`mmcell segment` on TIFF, PNG and JPEG (RGB, RGBA, grey, uint16, channels-first) in a folder whose name has
    spaces and non-ASCII letters: lossless kinds give exactly the labels of the original, each file is decoded once."""
    import tifffile
    from PIL import Image

    from mmcell.cli import main
    from mmcell.datasets import image_io

    source = sorted(glob.glob(osp.join(trained_quickstart.data_root, 'test_release', '*.tif')))[0]
    rgb = image_io.read_image(source)
    folder = tmp_path / 'my slides ü é'
    folder.mkdir()
    tifffile.imwrite(folder / 'a_rgb.tif', rgb)
    Image.fromarray(rgb).save(folder / 'b_rgb.png')
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(folder / 'c_rgba.png')
    tifffile.imwrite(folder / 'd_uint16.tif', rgb.astype(np.uint16) * 257)
    tifffile.imwrite(folder / 'e_channels_first.tif', np.ascontiguousarray(rgb.transpose(2, 0, 1)),
                     planarconfig='separate')
    grey = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).round().astype(np.uint8)
    Image.fromarray(grey).save(folder / 'f_grey.png')
    Image.fromarray(rgb).save(folder / 'g_rgb.jpg', quality=95)
    decoded = []
    read_raw = image_io.read_raw
    monkeypatch.setattr(image_io, 'read_raw', lambda path: decoded.append(str(path)) or read_raw(path))
    out = tmp_path / 'out'
    main(['segment', str(folder), '--config', trained_quickstart.config, '--checkpoint', trained_quickstart.checkpoint,
          '--out', str(out), '--score-thr', '0.05'])
    names = sorted(p.name for p in folder.iterdir())
    assert sorted(osp.basename(p) for p in decoded) == names  # one decode per image, none twice
    labels = {n: tifffile.imread(out / f'{osp.splitext(n)[0]}_labels.tif') for n in names}
    reference = labels['a_rgb.tif']
    assert reference.shape == rgb.shape[:2] and reference.max() > 0
    for name in ('b_rgb.png', 'c_rgba.png', 'd_uint16.tif', 'e_channels_first.tif'):
        assert np.array_equal(labels[name], reference), name
    for name in ('f_grey.png', 'g_rgb.jpg'):  # other pixels, same geometry, cells found
        assert labels[name].shape == reference.shape and labels[name].max() > 0, name
    with open(out / 'f_grey_cells.csv') as fh:  # grey is repeated into R, G and B
        assert all(r['mean_r'] == r['mean_g'] == r['mean_b'] for r in csv.DictReader(fh))


def _geometry_area(geometry: dict) -> float:
    from mmcell.structures.cells import polygon_rings

    def shoelace(ring):
        pts = np.asarray(ring, np.float64)
        return abs(0.5 * float(np.dot(pts[:-1, 0], pts[1:, 1]) - np.dot(pts[1:, 0], pts[:-1, 1])))

    return sum(shoelace(p[0]) - sum(shoelace(r) for r in p[1:]) for p in polygon_rings(geometry))
