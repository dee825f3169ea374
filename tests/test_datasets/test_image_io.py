"""The one image reader (mmcell.datasets.image_io): every kind of file decodes to RGB uint8 by one rule."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from mmcell.datasets.image_io import read_image, read_raw, to_rgb_uint8
from mmcell.utils.errors import HW3FileNotFoundError, HW3FormatError


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)


def test_lossless_kinds_decode_to_the_same_pixels(rgb, tmp_path):
    alpha = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    files = {
        'rgb.tif': lambda p: tifffile.imwrite(p, rgb),
        'rgba_lzw.tif': lambda p: tifffile.imwrite(p, alpha, photometric='rgb', compression='lzw',
                                                   extrasamples=['unassalpha']),
        'uint16.tif': lambda p: tifffile.imwrite(p, rgb.astype(np.uint16) * 257),
        'planar.tif': lambda p: tifffile.imwrite(p, np.ascontiguousarray(rgb.transpose(2, 0, 1)),
                                                 planarconfig='separate'),
        'float.tif': lambda p: tifffile.imwrite(p, rgb.astype(np.float32) / 255),
        'rgb.png': lambda p: Image.fromarray(rgb).save(p),
        'rgba.png': lambda p: Image.fromarray(alpha).save(p),
        'rgb.bmp': lambda p: Image.fromarray(rgb).save(p),
    }
    for name, write in files.items():
        write(tmp_path / name)
        out = read_image(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == rgb.shape, name
        assert np.array_equal(out, rgb), name


def test_grey_and_jpeg(rgb, tmp_path):
    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / 'grey.png')
    assert np.array_equal(read_image(tmp_path / 'grey.png'), np.repeat(grey[..., None], 3, axis=2))
    Image.fromarray(np.dstack([grey, grey])).convert('LA').save(tmp_path / 'grey_alpha.png')
    assert np.array_equal(read_image(tmp_path / 'grey_alpha.png'), np.repeat(grey[..., None], 3, axis=2))
    grey16 = grey.astype(np.uint16) * 257
    Image.fromarray(grey16).save(tmp_path / 'grey16.png')
    assert read_raw(tmp_path / 'grey16.png').dtype.itemsize == 2 or read_raw(tmp_path / 'grey16.png').max() > 255
    assert np.array_equal(read_image(tmp_path / 'grey16.png'), np.repeat(grey[..., None], 3, axis=2))
    smooth = np.full((32, 32, 3), (200, 120, 180), np.uint8)
    Image.fromarray(smooth).save(tmp_path / 'flat.jpg', quality=95)
    assert np.abs(read_image(tmp_path / 'flat.jpg').astype(int) - smooth).max() <= 3


def test_uint16_rule_rounds():
    values = np.array([[0, 128, 257, 32767, 65535]], np.uint16)
    assert to_rgb_uint8(values)[0, :, 0].tolist() == [0, 0, 1, 127, 255]


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(HW3FileNotFoundError, match='missing.png: file not found'):
        read_image(tmp_path / 'missing.png')
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(HW3FormatError, match='notes.png: unreadable image'):
        read_image(tmp_path / 'notes.png')
    (tmp_path / 'x.tif').write_bytes(b'II*\x00garbage')
    with pytest.raises(HW3FormatError, match='x.tif: unreadable TIFF'):
        read_image(tmp_path / 'x.tif')
    tifffile.imwrite(tmp_path / 'five.tif', np.zeros((16, 16, 5), np.uint8), photometric='minisblack',
                     planarconfig='contig')
    with pytest.raises(HW3FormatError, match='unsupported image shape'):
        read_image(tmp_path / 'five.tif')
