"""``to_hw3.py`` on bad input: one line naming the file and the problem, a non-zero exit, and no OUT (nor any
temp folder beside it) left behind. One test per row of the README's converter "Bad input" table."""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from conftest import REPO
from converter_fixtures import (
    qupath_feature,
    qupath_nuclei,
    square,
    synthetic_instances,
    write_consep,
    write_monuseg,
    write_pannuke,
    write_png,
    write_qupath,
    write_xml,
)

from mmcell.datasets.image_io import write_image_tif

TOOL = REPO / 'tools' / 'dataset_converters' / 'to_hw3.py'
to_hw3_main = runpy.run_path(str(TOOL), run_name='to_hw3')['main']


def _fail(tmp_path, *args: str) -> str:
    """Run the CLI in-process; return its one-line error after checking nothing was written."""
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as info:
        to_hw3_main([*args, str(out), '--no-progress'] if '--format' in args else list(args))
    msg = info.value.code
    assert isinstance(msg, str) and '\n' not in msg and 'Traceback' not in msg, msg
    if '--overwrite' not in args and not msg.endswith('(pass --overwrite to replace it)'):
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.out.')]  # no temp folder left
    return msg


@pytest.fixture
def monuseg_src(tmp_path):
    return write_monuseg(tmp_path / 'src', {'a': [square(2, 2, 10, 10)], 'b': [square(5, 5, 15, 15)]})


def test_malformed_xml(tmp_path, monuseg_src):
    xml = monuseg_src / 'Annotations' / 'b.xml'
    xml.write_text('<Annotations><Annotation><Regions><Region>')
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src))
    assert msg.startswith(f'{xml}: malformed XML (no element found: line 1')


@pytest.mark.parametrize('value', ['nan', 'inf', 'abc'])
def test_vertex_nan(tmp_path, monuseg_src, value):
    xml = write_xml(monuseg_src / 'Annotations' / 'b.xml', [('x', [[(1, 1), (value, 5), (5, 5)]])])
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src))
    assert msg.startswith(f'{xml}: region 1: vertex X={value!r}') and ('not finite' in msg or 'not a number' in msg)


def test_xml_without_image(tmp_path, monuseg_src):
    xml = write_xml(monuseg_src / 'Annotations' / 'c.xml', [('x', [square(1, 1, 5, 5)])])
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src))
    assert msg.startswith(f"{xml}: no image with stem 'c' below {monuseg_src}")


def test_image_without_xml(tmp_path, monuseg_src):
    (monuseg_src / 'Annotations' / 'b.xml').unlink()
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src))
    assert msg == f"{monuseg_src / 'Tissue Images' / 'b.tif'}: no ImageScope .xml annotation with stem 'b' " \
        f'below {monuseg_src}'


def test_vertices_far_outside_the_image(tmp_path, monuseg_src):
    # the annotation of a 2000 px image given with a 48x40 one
    xml = write_xml(monuseg_src / 'Annotations' / 'b.xml', [('x', [square(5, 5, 15, 15), square(900, 5, 920, 25)])])
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src))
    assert msg.startswith(f'{xml}: vertex (920, 5) lies 872 px outside the 48x40 image')


def test_label_image_of_another_size(tmp_path):
    rgb, ids, _ = synthetic_instances(0, 40, 48)
    write_image_tif(tmp_path / 'src' / 'x.tif', rgb)
    tifffile.imwrite(tmp_path / 'src' / 'x_labels.tif', ids[:30].astype(np.uint16))
    msg = _fail(tmp_path, '--format', 'labels', str(tmp_path / 'src'))
    assert msg == f'{tmp_path / "src" / "x_labels.tif"}: annotation size (30, 48) differs from image ' \
        f'{tmp_path / "src" / "x.tif"} of size (40, 48)'


def test_label_image_fractional(tmp_path):
    rgb, ids, _ = synthetic_instances(0, 40, 48)
    write_image_tif(tmp_path / 'src' / 'x.tif', rgb)
    labels = ids.astype(np.float32)
    labels[3, 4] = 2.5
    tifffile.imwrite(tmp_path / 'src' / 'x_labels.tif', labels)
    msg = _fail(tmp_path, '--format', 'labels', str(tmp_path / 'src'))
    assert msg == f'{tmp_path / "src" / "x_labels.tif"}: label image holds non-integer value 2.5 ' \
        '(instance ids are integers)'


@pytest.mark.parametrize('which,array,problem', [
    ('masks', np.zeros((2, 48, 48, 5)), 'expected shape (N, H, W, 6) matching images (2, 48, 48), got (2, 48, 48, 5)'),
    ('masks', np.zeros((2, 48, 48, 6), bool), 'unsupported dtype bool (expected integer or float ids)'),
    ('images', np.zeros((2, 48, 48), np.uint8), 'expected shape (N, H, W, 3), got (2, 48, 48)'),
    ('images', np.zeros((2, 48, 48, 3), np.int16), 'unsupported dtype int16 (expected uint8 or float 0..255)'),
])
def test_npy_wrong_shape_or_dtype(tmp_path, which, array, problem):
    write_pannuke(tmp_path / 'src', num=2)
    path = tmp_path / 'src' / which / 'fold1' / f'{which}.npy'
    np.save(path, array)
    msg = _fail(tmp_path, '--format', 'pannuke', str(tmp_path / 'src'))
    assert msg == f'{path}: {problem}'


def test_npy_pickled_object_array_refused(tmp_path):
    write_pannuke(tmp_path / 'src', num=1)
    path = tmp_path / 'src' / 'masks' / 'fold1' / 'masks.npy'
    np.save(path, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    msg = _fail(tmp_path, '--format', 'pannuke', str(tmp_path / 'src'))
    assert msg.startswith(f'{path}: unreadable .npy (') and 'pickle' in msg


def test_mask_png_not_binary(tmp_path):
    rgb, ids, _ = synthetic_instances(0, 40, 48)
    write_png(tmp_path / 'src' / 's1' / 'images' / 's1.png', rgb)
    write_png(tmp_path / 'src' / 's1' / 'masks' / 'm1.png', ((ids == ids.max()) * 255).astype(np.uint8))
    bad = ((ids > 0) * 255).astype(np.uint8)
    bad[0, 0] = 128
    write_png(tmp_path / 'src' / 's1' / 'masks' / 'm2.png', bad)
    msg = _fail(tmp_path, '--format', 'dsb2018', str(tmp_path / 'src'))
    assert msg.startswith(f'{tmp_path / "src" / "s1" / "masks" / "m2.png"}: mask is not binary (values 0, 128, 255')


def test_unknown_format(tmp_path, monuseg_src):
    msg = _fail(tmp_path, '--format', 'monusegg', str(monuseg_src))
    assert msg == '--format monusegg: unknown format (choose from monuseg, monusac, pannuke, conic, dsb2018, labels, ' \
        'qupath, consep)'


def test_out_exists_needs_overwrite(tmp_path, monuseg_src):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src))
    assert msg == f'{out}: exists (pass --overwrite to replace it)'
    assert (out / 'keep.txt').read_text() == 'mine'
    to_hw3_main(['--format', 'monuseg', str(monuseg_src), str(out), '--overwrite', '--no-progress'])
    assert sorted(p.name for p in (out / 'train').iterdir()) == ['a', 'b'] and not (out / 'keep.txt').exists()


def test_failure_late_in_the_run_keeps_the_previous_out(tmp_path, monuseg_src):
    out = tmp_path / 'out'
    to_hw3_main(['--format', 'monuseg', str(monuseg_src), str(out), '--no-progress'])
    before = sorted(p.relative_to(out) for p in out.rglob('*'))
    (monuseg_src / 'Annotations' / 'b.xml').write_text('<oops')  # image 'a' converts, then 'b' fails
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src), '--overwrite')
    assert 'b.xml: malformed XML' in msg
    assert sorted(p.relative_to(out) for p in out.rglob('*')) == before


@pytest.mark.slow
def test_cli_exit_code_and_stderr(tmp_path, monuseg_src):
    (monuseg_src / 'Annotations' / 'a.xml').write_text('<Annotations><Region></Annotations>')
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    proc = subprocess.run([sys.executable, str(TOOL), '--format', 'monuseg', str(monuseg_src), str(tmp_path / 'out')],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip() and '%|' not in line]
    assert lines == [f'{monuseg_src / "Annotations" / "a.xml"}: malformed XML (mismatched tag: line 1, column 23)']
    assert not (tmp_path / 'out').exists()


def test_monusac_unknown_class(tmp_path):
    rgb = synthetic_instances(0, 40, 48)[0]
    write_image_tif(tmp_path / 'src' / 'p' / 'x.tif', rgb)
    xml = write_xml(tmp_path / 'src' / 'p' / 'x.xml', [('Epithelial', [square(1, 1, 6, 6)]),
                                                       ('Stroma', [square(10, 10, 16, 16)])])
    msg = _fail(tmp_path, '--format', 'monusac', str(tmp_path / 'src'))
    assert msg == f"{xml}: unknown annotation class 'Stroma' (expected one of Epithelial, Lymphocyte, Macrophage, " \
        'Neutrophil, Ambiguous)'


def test_conic_class_out_of_range(tmp_path):
    rgb, ids, _ = synthetic_instances(0, 32, 32)
    (tmp_path / 'src' / 'data').mkdir(parents=True)
    np.save(tmp_path / 'src' / 'data' / 'images.npy', rgb[None])
    np.save(tmp_path / 'src' / 'data' / 'labels.npy', np.stack([ids, np.where(ids > 0, 9, 0)], -1)[None])
    msg = _fail(tmp_path, '--format', 'conic', str(tmp_path / 'src'))
    assert msg == f'{tmp_path / "src" / "data" / "labels.npy"}: patch 0: class values must be integers 0..6'


def test_dsb2018_mask_of_another_size(tmp_path):
    rgb, ids, _ = synthetic_instances(0, 40, 48)
    write_png(tmp_path / 'src' / 's1' / 'images' / 's1.png', rgb)
    mask = write_png(tmp_path / 'src' / 's1' / 'masks' / 'm1.png', np.zeros((20, 20), np.uint8))
    msg = _fail(tmp_path, '--format', 'dsb2018', str(tmp_path / 'src'))
    assert msg.startswith(f'{mask}: annotation size (20, 20) differs from image')


# ------------------------------------------------------------------------------------------ QuPath GeoJSON exports
@pytest.fixture
def qupath_src(tmp_path):
    """Two slides with their exports; ``b.geojson`` is the one the tests spoil."""
    rgb, ids, classes = synthetic_instances(0, 40, 48)
    src = tmp_path / 'src'
    write_qupath(src, 'a', rgb, qupath_nuclei(ids, classes, 'ABCD'))
    write_qupath(src, 'b', rgb, qupath_nuclei(ids, classes, 'ABCD'))
    return src


def _spoil(src, feature: dict) -> str:
    """Add ``feature`` (id ``bad-1``) to ``b.geojson``; returns that file."""
    path = src / 'b.geojson'
    data = json.loads(path.read_text())
    data['features'].insert(1, {'id': 'bad-1', **feature})
    path.write_text(json.dumps(data))
    return path


def test_qupath_geojson_does_not_parse(tmp_path, qupath_src):
    (qupath_src / 'b.geojson').write_text('{"type": "FeatureCollection", "features": [')
    msg = _fail(tmp_path, '--format', 'qupath', str(qupath_src))
    assert msg.startswith(f'{qupath_src / "b.geojson"}: not valid GeoJSON (Expecting value: line 1')


@pytest.mark.parametrize('geometry,problem', [
    ('absent', 'no geometry'),  # "geometry": null is valid GeoJSON (skipped and counted); no member at all is not
    ({'type': 'LineString', 'coordinates': [[1, 1], [5, 5]]}, 'geometry is a LineString, expected a Polygon or '
     'MultiPolygon (a nucleus or region outline)'),
    ({'type': 'Point', 'coordinates': [3, 4]}, 'geometry is a Point, expected a Polygon or MultiPolygon'),
    ({'type': 'Polygon', 'coordinates': [[[1, 1], [5, 5], [1, 1]]]}, 'geometry ring has 2 distinct vertices (at least '
     '3 needed)'),
    ({'type': 'Polygon', 'coordinates': [[[1, 1], [float('nan'), 5], [5, 9], [1, 1]]]}, 'geometry has a coordinate '
     'that is not a finite number (NaN)'),
    ({'type': 'MultiPolygon', 'coordinates': [[[[1, 1], [5, 1], [5, 5], [1, 1]]], [[[1, 1], [None, 1], [5, 5]]]]},
     'geometry has a coordinate that is not a finite number (NaN)'),
])
def test_qupath_bad_geometry(tmp_path, qupath_src, geometry, problem):
    feature = qupath_feature(geometry, 'A')
    if geometry == 'absent':
        del feature['geometry']
    path = _spoil(qupath_src, feature)
    msg = _fail(tmp_path, '--format', 'qupath', str(qupath_src))
    assert msg.startswith(f'{path}: feature bad-1: {problem}')


def test_qupath_feature_outside_the_slide(tmp_path, qupath_src):
    path = _spoil(qupath_src, qupath_feature({'type': 'Polygon', 'coordinates': [[[40, 30], [60, 30], [60, 39],
                                                                                  [40, 30]]]}, 'A'))
    msg = _fail(tmp_path, '--format', 'qupath', str(qupath_src))
    assert msg == f'{path}: feature bad-1: vertex (60, 30) lies outside the slide b.tif (48 x 40 px; coordinates ' \
        'are level-0 pixels)'


def test_qupath_class_not_in_class_map(tmp_path, qupath_src):
    path = _spoil(qupath_src, qupath_feature({'type': 'Polygon', 'coordinates': [[[1, 1], [5, 1], [5, 5], [1, 1]]]},
                                             'Mitosis'))
    msg = _fail(tmp_path, '--class-map', 'A=1', 'B=1', 'C=2', 'D=0', '--format', 'qupath', str(qupath_src))
    assert msg == f"{path}: feature bad-1: class 'Mitosis' is not in --class-map (A, B, C, D); add Mitosis=K (K=0 " \
        'drops it)'


def test_qupath_slide_no_reader_opens(tmp_path, qupath_src):
    (qupath_src / 'b.tif').unlink()
    (qupath_src / 'b.ndpi').write_bytes(b'not a slide\n' * 4)
    msg = _fail(tmp_path, '--format', 'qupath', str(qupath_src))
    assert msg.startswith(f'{qupath_src / "b.ndpi"}: ') and 'OpenSlide' in msg


def test_qupath_slide_without_export_and_the_reverse(tmp_path, qupath_src):
    (qupath_src / 'b.geojson').rename(qupath_src / 'c.geojson')
    msg = _fail(tmp_path, '--format', 'qupath', str(qupath_src))
    assert msg == f"{qupath_src / 'c.geojson'}: no slide with stem 'c' below {qupath_src}"
    (qupath_src / 'c.geojson').unlink()
    msg = _fail(tmp_path, '--format', 'qupath', str(qupath_src))
    assert msg == f"{qupath_src / 'b.tif'}: no QuPath GeoJSON export (b.geojson, .json or .geojson.gz) below " \
        f'{qupath_src}'


def test_qupath_80k_slide_without_region(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    # 80,000 x 80,000 px RGB: an empty (sparse) TIFF, 20 kB on disk; never read, only measured
    tifffile.imwrite(src / 'huge.tif', shape=(80000, 80000, 3), dtype='uint8', photometric='rgb', rowsperstrip=64)
    (src / 'huge.geojson').write_text(json.dumps([qupath_feature(
        {'type': 'Polygon', 'coordinates': [[[10, 10], [20, 10], [20, 20], [10, 10]]]}, 'Tumor')]))
    msg = _fail(tmp_path, '--format', 'qupath', str(src))
    assert msg == f'{src / "huge.geojson"}: no Region* annotation, and the slide huge.tif is 80000 x 80000 px (more ' \
        'than 8192 a side): draw Region annotations around the fully annotated areas'


def test_qupath_options_refused_for_other_formats(tmp_path, monuseg_src):
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src), '--reader', 'openslide')
    assert msg == '--reader applies to --format qupath only'


# ------------------------------------------------------------------------------------ CoNSeP / HoVer-Net .mat files
@pytest.fixture
def consep_src(tmp_path):
    """Two patches in the HoVer-Net layout; ``Labels/train_2_000.mat`` is the one the tests spoil."""
    src = tmp_path / 'src'
    write_consep(src, ['train_1_000', 'train_2_000'])
    return src


def _spoil_mat(src, **changes):
    """Rewrite ``train_2_000.mat`` with ``changes`` (None drops a key); returns that file."""
    from scipy.io import loadmat, savemat

    path = src / 'Labels' / 'train_2_000.mat'
    mat = {k: v for k, v in loadmat(str(path)).items() if not k.startswith('__')}
    for key, value in changes.items():
        if value is None:
            mat.pop(key)
        else:
            mat[key] = value
    savemat(path, mat)
    return path


def test_consep_mat_without_inst_map(tmp_path, consep_src):
    path = _spoil_mat(consep_src, inst_map=None)
    msg = _fail(tmp_path, '--format', 'consep', str(consep_src))
    assert msg == f'{path}: no inst_map (keys: inst_centroid, inst_type, type_map; expected the HoVer-Net layout: ' \
        'inst_map, type_map, inst_type, inst_centroid)'


def test_consep_mat_without_types(tmp_path, consep_src):
    path = _spoil_mat(consep_src, inst_type=None, type_map=None)
    msg = _fail(tmp_path, '--format', 'consep', str(consep_src))
    assert msg == f'{path}: no inst_type or type_map (keys: inst_centroid, inst_map): the nuclei have no types'


def test_consep_inst_type_rows_do_not_match_the_ids(tmp_path, consep_src):
    from scipy.io import loadmat

    n = int(loadmat(str(consep_src / 'Labels' / 'train_2_000.mat'))['inst_map'].max())
    path = _spoil_mat(consep_src, inst_type=np.ones((n - 1, 1), np.int32))
    msg = _fail(tmp_path, '--format', 'consep', str(consep_src))
    assert msg == f'{path}: inst_type has {n - 1} rows but the highest inst_map id is {n} ({n} nuclei; row k-1 is ' \
        'the type of nucleus k)'


def test_consep_inst_map_of_another_size(tmp_path, consep_src):
    from scipy.io import loadmat

    inst_map = loadmat(str(consep_src / 'Labels' / 'train_2_000.mat'))['inst_map']
    path = _spoil_mat(consep_src, inst_map=inst_map[:30])
    msg = _fail(tmp_path, '--format', 'consep', str(consep_src))
    assert msg == f'{path}: annotation size (30, 48) differs from image ' \
        f'{consep_src / "Images" / "train_2_000.png"} of size (40, 48)'


def test_consep_unreadable_mat(tmp_path, consep_src):
    path = consep_src / 'Labels' / 'train_2_000.mat'
    path.write_bytes(b'MATLAB 5.0 MAT-file, but cut short')
    msg = _fail(tmp_path, '--format', 'consep', str(consep_src))
    assert msg.startswith(f'{path}: unreadable .mat (')


@pytest.mark.parametrize('types,extra,problem', [
    ([7], [], 'inst_type: nucleus 1 has type 7 (expected 1..4: other, inflammatory, epithelial, spindle; the '
              "release's 7 types need --consep-types original)"),
    ([0], [], 'inst_type: nucleus 1 has type 0 (expected 1..4: other, inflammatory, epithelial, spindle)'),
    ([9], ['--consep-types', 'original'], 'inst_type: nucleus 1 has type 9 (expected 1..7: other, inflammatory, '
                                          'healthy epithelial, malignant epithelial, fibroblast, muscle, endothelial)'),
])
def test_consep_type_outside_the_scheme(tmp_path, consep_src, types, extra, problem):
    from scipy.io import loadmat

    inst_type = loadmat(str(consep_src / 'Labels' / 'train_2_000.mat'))['inst_type'].copy()
    inst_type[0] = types[0]
    path = _spoil_mat(consep_src, inst_type=inst_type)
    msg = _fail(tmp_path, *extra, '--format', 'consep', str(consep_src))
    assert msg == f'{path}: {problem}'


def test_consep_option_refused_for_other_formats(tmp_path, monuseg_src):
    msg = _fail(tmp_path, '--format', 'monuseg', str(monuseg_src), '--consep-types', 'original')
    assert msg == '--consep-types applies to --format consep only'
