"""Each malformed HW3 input gives one line ``"<path>: <problem>"`` naming the bad file, and nothing is cached."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hw3_builders import touching_maps, write_sample, write_test_release

from mmcell.datasets import CellInstanceDataset, CellTestDataset
from mmcell.datasets.hw3_annotations import load_train_annotations
from mmcell.datasets.hw3_format import write_class_map
from mmcell.datasets.image_io import read_image
from mmcell.utils.errors import HW3FormatError


def _load_error(root, cache=None) -> str:
    with pytest.raises(HW3FormatError) as info:
        load_train_annotations(root, cache_file=cache, progress=False)
    msg = str(info.value)
    assert '\n' not in msg
    return msg


@pytest.fixture
def sample(tmp_path):
    return write_sample(tmp_path, 'good', touching_maps())


def test_missing_image(tmp_path, sample):
    (sample / 'image.tif').unlink()
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{sample / "image.tif"}: ') and 'missing image.tif' in msg
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for callers that catch that
        load_train_annotations(tmp_path, cache_file=None)


def test_truncated_tiff(tmp_path, sample):
    path = sample / 'image.tif'
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    cache = tmp_path / 'cache.json'
    msg = _load_error(tmp_path, cache)
    assert msg.startswith(f'{path}: truncated TIFF')
    assert not cache.exists()  # nothing half-written
    with pytest.raises(HW3FormatError, match='truncated TIFF'):
        read_image(path)


def test_unreadable_tiff(tmp_path, sample):
    path = sample / 'class2.tif'
    path.write_bytes(b'this is not a TIFF file at all')
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{path}: unreadable TIFF')


def test_mask_shape_differs(tmp_path, sample):
    write_class_map(sample / 'class3.tif', np.ones((10, 10)))
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{sample / "class3.tif"}: mask shape (10, 10) differs from image shape (40, 48)')


@pytest.mark.parametrize('value,problem', [(2.5, 'non-integer'), (np.nan, 'NaN'), (-3.0, 'negative')])
def test_bad_ids(tmp_path, sample, value, problem):
    cmap = touching_maps()[4]
    cmap[0, 0] = value
    write_class_map(sample / 'class4.tif', cmap)
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{sample / "class4.tif"}: ') and problem in msg


def test_id_in_two_class_files(tmp_path, sample):
    cmap = np.zeros((40, 48))
    cmap[38:40, 40:44] = 261  # 261 is already a class-2 cell
    write_class_map(sample / 'class3.tif', cmap)
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{sample / "class3.tif"}: instance id 261 also used in class2.tif')


def test_empty_folder(tmp_path, sample):
    (tmp_path / 'train' / 'empty').mkdir()
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{tmp_path / "train" / "empty"}: empty sample folder')
    with pytest.raises(HW3FormatError, match='empty sample folder'):  # the dataset surfaces the same error
        CellInstanceDataset(data_root=str(tmp_path), split='all', cache_file=None)


def test_class7(tmp_path, sample):
    cmap = np.zeros((40, 48))
    cmap[30:34, 2:6] = 999
    write_class_map(sample / 'class7.tif', cmap)
    with pytest.raises(HW3FormatError) as info:  # a 4-class data set refuses class 7
        CellInstanceDataset(data_root=str(tmp_path), split='all', cache_file=None).full_init()
    assert str(info.value).startswith(f'{sample / "class7.tif"}: unexpected class file: the dataset has 4 classes')
    names = tuple(f'c{k}' for k in range(1, 8))  # ... and a 7-class one reads it
    dataset = CellInstanceDataset(data_root=str(tmp_path), split='all', cache_file=None, metainfo=dict(classes=names))
    assert 6 in [i['bbox_label'] for i in dataset.get_data_info(0)['instances']]


def test_class0(tmp_path, sample):
    write_class_map(sample / 'class0.tif', np.zeros((40, 48)))
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{sample / "class0.tif"}: unexpected class file')


def test_no_train_folder(tmp_path):
    msg = _load_error(tmp_path)
    assert msg.startswith(f'{tmp_path / "train"}: training folder not found')


def test_lzw_without_imagecodecs(tmp_path, sample, monkeypatch):
    tifffile = pytest.importorskip('tifffile')
    # what tifffile sees when imagecodecs is not installed: no module, and no LZW decoder resolved yet
    monkeypatch.setattr(tifffile.tifffile, 'imagecodecs', None)
    monkeypatch.setattr(tifffile.TIFF.DECOMPRESSORS, '_codecs', {1: tifffile.tifffile.identityfunc})
    with pytest.raises(HW3FormatError) as info:
        read_image(sample / 'image.tif')
    msg = str(info.value)
    assert msg.startswith(f'{sample / "image.tif"}: ') and 'pip install imagecodecs' in msg and '\n' not in msg


def test_ids_json_misses_a_test_file(tmp_path):
    path = write_test_release(tmp_path, {'a.tif': (20, 30), 'b.tif': (25, 30)})
    entries = json.loads(path.read_text())
    path.write_text(json.dumps([e for e in entries if e['file_name'] != 'b.tif']))
    with pytest.raises(HW3FormatError) as info:
        CellTestDataset(data_root=str(tmp_path))
    assert str(info.value).startswith(f'{path}: misses test image b.tif')


def test_ids_json_names_absent_file(tmp_path):
    path = write_test_release(tmp_path, {'a.tif': (20, 30)})
    entries = json.loads(path.read_text()) + [dict(file_name='ghost.tif', id=9, height=5, width=5)]
    path.write_text(json.dumps(entries))
    with pytest.raises(HW3FormatError) as info:
        CellTestDataset(data_root=str(tmp_path))
    assert str(info.value).startswith(f'{path}: names ghost.tif, which is not in')
