"""``to_hw3.py --format qupath``: QuPath GeoJSON exports on their slides -> HW3 training images. Nuclei outlined by
mmcell's own pixel-edge outline come back pixel for pixel; classes by first appearance, the HW3 map for MoNuSAC
names, or ``--class-map``; Region annotations cut training images; Ignore* skipped and counted."""
from __future__ import annotations

import json

import numpy as np
import pytest
from converter_fixtures import qupath_feature, qupath_nuclei, square, synthetic_instances, write_qupath
from test_converters import _dataset, _label_map  # the same readers as the other formats

from mmcell.datasets.converters.convert import convert_to_hw3
from mmcell.datasets.image_io import read_image


def _convert(src, out, **kwargs):
    lines = []
    report = convert_to_hw3('qupath', src, out, progress=False, log=lines.append, **kwargs)
    return report, lines


def _polygon(x0, y0, x1, y1) -> dict:
    return {'type': 'Polygon', 'coordinates': [[*map(list, square(x0, y0, x1, y1)), [x0, y0]]]}


def _same_instances(ids_a, cls_a, ids_b, cls_b) -> None:
    """Same pixel sets with the same classes (ids may be renumbered)."""
    assert np.array_equal(ids_a > 0, ids_b > 0)
    pairs = {(int(a), int(b)) for a, b in zip(ids_a[ids_a > 0], ids_b[ids_b > 0])}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # one to one
    assert np.array_equal(cls_a, cls_b)


def test_whole_image_first_appearance_classes(tmp_path):
    rgb, ids, classes = synthetic_instances(0, 64, 80)
    names = ('Tumor', 'Stroma', 'Immune cells', 'Necrosis')
    features = qupath_nuclei(ids, classes, names)
    write_qupath(tmp_path / 'src', 'slide1', rgb, features)
    report, lines = _convert(tmp_path / 'src', tmp_path / 'out')
    first = []
    for f in features:
        if f['properties']['classification']['name'] not in first:
            first.append(f['properties']['classification']['name'])
    assert lines[0] == 'classes: ' + ', '.join(f'{n} -> class{k}' for k, n in enumerate(first, start=1))
    assert report.images == 1 and report.class_names == first
    assert json.loads((tmp_path / 'out' / 'classes.json').read_text()) == dict(
        classes=first, class_map={n: k for k, n in enumerate(first, start=1)})
    got_ids, got_cls = _label_map(tmp_path / 'out' / 'train' / 'slide1')
    expect_cls = np.zeros_like(classes)
    for k, n in enumerate(names, start=1):
        expect_cls[classes == k] = first.index(n) + 1 if n in first else 0
    _same_instances(got_ids, got_cls, ids, expect_cls)  # pixel for pixel: the outlines follow pixel edges
    assert np.array_equal(read_image(tmp_path / 'out' / 'train' / 'slide1' / 'image.tif'), rgb)
    assert len(_dataset(tmp_path / 'out', first)) == 1


def test_monusac_names_take_the_hw3_ids_and_class_map_overrides(tmp_path):
    rgb, ids, classes = synthetic_instances(1, 48, 48)
    hw3 = ('Epithelial', 'Lymphocyte', 'Macrophage', 'Neutrophil')
    features = qupath_nuclei(ids, classes, [n.lower() for n in hw3])  # case-insensitive
    write_qupath(tmp_path / 'src', 's', rgb, features, suffix='.geojson.gz', collection=False)
    report, _ = _convert(tmp_path / 'src', tmp_path / 'out')
    got_ids, got_cls = _label_map(tmp_path / 'out' / 'train' / 's')
    _same_instances(got_ids, got_cls, ids, classes)
    # --class-map: every name listed; K = 0 drops a class
    cmap = [f'{n.lower()}={k}' for k, n in zip((1, 1, 2, 0), hw3)]
    report, lines = _convert(tmp_path / 'src', tmp_path / 'out2', class_map=cmap)
    assert report.class_names == ['epithelial+lymphocyte', 'macrophage']
    assert lines[0].endswith('neutrophil dropped')
    got_ids, got_cls = _label_map(tmp_path / 'out2' / 'train' / 's')
    expect = np.select([classes == 1, classes == 2, classes == 3], [1, 1, 2], 0)
    assert np.array_equal(got_cls, expect)


def test_regions_cells_ignore_and_older_exports(tmp_path):
    rgb, ids, classes = synthetic_instances(2, 80, 96)
    names = ('A', 'B', 'C', 'D')
    features = qupath_nuclei(ids, classes, names, kind='cell')
    for f in features:  # cell objects: the nucleus in nucleusGeometry, the cell outline (bigger) in geometry
        f['nucleusGeometry'] = f['geometry']
        f['geometry'] = _polygon(0, 0, 96, 80)
    features[0]['properties']['classification'] = features[0]['properties']['classification']['name']  # older
    regions = [qupath_feature(_polygon(0, 0, 40, 30), 'Region*', fid='r1'),
               qupath_feature(_polygon(50.0, 40.0, 96.0, 80.0), 'Region', fid='r2'),
               qupath_feature(_polygon(60, 60, 70, 70), 'Ignore*', fid='ig'),
               qupath_feature(None, 'A', fid='null-1'), qupath_feature(None, None, kind='cell', fid='null-2')]
    write_qupath(tmp_path / 'src', 'wsi', rgb, regions + features, suffix='.json')
    report, lines = _convert(tmp_path / 'src', tmp_path / 'out')
    assert sorted(p.name for p in (tmp_path / 'out' / 'train').iterdir()) == ['wsi_region1', 'wsi_region2']
    # a feature with "geometry": null (valid GeoJSON) is skipped and counted, as Ignore* objects are
    assert report.ignored == {'Ignore* (wsi.json)': 1, 'null geometry (wsi.json)': 2}
    assert lines[1].endswith(', 1 Ignore* (wsi.json) ignored, 2 null geometry (wsi.json) ignored')
    for stem, (x0, y0, x1, y1) in (('wsi_region1', (0, 0, 40, 30)), ('wsi_region2', (50, 40, 96, 80))):
        got_ids, got_cls = _label_map(tmp_path / 'out' / 'train' / stem)
        assert np.array_equal(read_image(tmp_path / 'out' / 'train' / stem / 'image.tif'), rgb[y0:y1, x0:x1])
        # every nucleus with pixels in the region, cut at its edge (instances cut in two stay one)
        crop_ids = ids[y0:y1, x0:x1]
        assert np.array_equal(got_ids > 0, crop_ids > 0)
        names_first = report.class_names
        for v in np.unique(crop_ids[crop_ids > 0]):
            got = np.unique(got_ids[crop_ids == v])
            assert len(got) == 1
            k = int(classes[ids == v][0])
            assert names_first[int(got_cls[crop_ids == v][0]) - 1] == names[k - 1]


def test_non_rectangular_region_whites_out_the_rest(tmp_path):
    rgb, ids, classes = synthetic_instances(3, 40, 40)
    tri = {'type': 'Polygon', 'coordinates': [[[0, 0], [40.3, 0], [0, 40.3], [0, 0]]]}  # no centre on an edge
    write_qupath(tmp_path / 'src', 't', rgb, [qupath_feature(tri, 'Region')] + qupath_nuclei(ids, classes, 'ABCD'))
    _convert(tmp_path / 'src', tmp_path / 'out')
    image = read_image(tmp_path / 'out' / 'train' / 't_region1' / 'image.tif')
    got_ids, _ = _label_map(tmp_path / 'out' / 'train' / 't_region1')
    r, c = np.mgrid[0:40, 0:40]
    inside = (c + 0.5) + (r + 0.5) < 40.3
    assert (image[~inside] == 255).all() and np.array_equal(image[inside], rgb[inside])
    assert np.array_equal(got_ids > 0, (ids > 0) & inside)


def test_mpp_resamples_the_region(tmp_path):
    import tifffile

    rgb, ids, classes = synthetic_instances(4, 64, 64)
    src = tmp_path / 'src'
    src.mkdir()
    tifffile.imwrite(src / 'm.tif', rgb, photometric='rgb', tile=(32, 32), resolution=(1e4 / 0.25, 1e4 / 0.25),
                     resolutionunit='CENTIMETER')
    (src / 'm.geojson').write_text(json.dumps(qupath_nuclei(ids, classes, 'ABCD')))
    _convert(src, tmp_path / 'out', mpp=0.5)
    got_ids, _ = _label_map(tmp_path / 'out' / 'train' / 'm')
    assert got_ids.shape == (32, 32)
    assert abs(int((got_ids > 0).sum()) * 4 - int((ids > 0).sum())) < 0.1 * (ids > 0).sum()


def test_both_readers_give_the_same_training_image(tmp_path):
    pytest.importorskip('openslide')
    import tifffile

    rgb, ids, classes = synthetic_instances(5, 64, 80)
    src = tmp_path / 'src'
    src.mkdir()
    tifffile.imwrite(src / 'w.tif', rgb, photometric='rgb', tile=(32, 32), compression='zlib')  # tiled: both open it
    (src / 'w.geojson').write_text(json.dumps(qupath_nuclei(ids, classes, 'ABCD')))
    for reader in ('tiffslide', 'openslide'):
        _convert(src, tmp_path / reader, reader=reader)
    for name in ('image.tif', 'class1.tif'):
        a, b = (read_image(tmp_path / r / 'train' / 'w' / name) for r in ('tiffslide', 'openslide'))
        assert np.array_equal(a, b)
    assert np.array_equal(read_image(tmp_path / 'openslide' / 'train' / 'w' / 'image.tif'), rgb)
