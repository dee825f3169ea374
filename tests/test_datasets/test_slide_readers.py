"""The two slide backends behind ``SlideReader``: tiffslide and OpenSlide read the same files the project writes (a
tiled pyramidal TIFF, an SVS-like Aperio TIFF) pixel for pixel, with the same mpp; ``auto`` picks by what opens the
file; both refuse truncated copies; a file neither opens is one line."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from mmcell.datasets.slide.reader import SlideError, SlideReader
from mmcell.synthetic.hw3 import synthesize_image

pytest.importorskip('openslide')

APERIO = 'Aperio Image Library v12.0.0\r\n760x600 [0,0 760x600] (256x256) JPEG/RGB Q=70|AppMag = 40|MPP = 0.2500'


def write_tiled_slide(path, rgb: np.ndarray, svs: bool, compression: str, mpp: float = 0.25) -> str:
    """A two-level tiled TIFF (level 1 = 2x down); ``svs``: Aperio descriptions and a thumbnail page, as SVS has."""
    half = np.ascontiguousarray(rgb[::2, ::2])
    res = dict(resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit='CENTIMETER', metadata=None)
    with tifffile.TiffWriter(path) as tw:
        tw.write(rgb, tile=(256, 256), photometric='rgb', compression=compression,
                 description=APERIO if svs else None, **res)
        if svs:
            tw.write(np.ascontiguousarray(rgb[::8, ::8]), photometric='rgb', description=APERIO + '\r\nthumbnail',
                     metadata=None)
        tw.write(half, tile=(256, 256), photometric='rgb', compression=compression, subfiletype=1,
                 description=APERIO if svs else None, **{**res, 'resolution': (5e3 / mpp, 5e3 / mpp)})
    return str(path)


@pytest.fixture(scope='module')
def rgb():
    return synthesize_image(np.random.default_rng(0), 600, 760, keep_border=True, density=2.0)[0]


@pytest.mark.parametrize('name,svs,compression', [('tiled.tif', False, 'zlib'), ('aperio.svs', True, 'jpeg')])
def test_both_backends_read_identical_pixels(tmp_path, rgb, name, svs, compression):
    path = write_tiled_slide(tmp_path / name, rgb, svs, compression)
    tiff, osl, auto = (SlideReader(path, reader=r) for r in ('tiffslide', 'openslide', 'auto'))
    assert (tiff.backend, osl.backend, auto.backend) == ('tiffslide', 'openslide', 'tiffslide')
    assert tiff.dimensions == osl.dimensions == (760, 600)
    assert tiff.mpp == osl.mpp == pytest.approx(0.25)
    for level in range(min(len(tiff.level_dimensions), len(osl.level_dimensions))):
        w, h = tiff.level_dimensions[level]
        assert np.array_equal(tiff.read(level, 0, 0, w, h), osl.read(level, 0, 0, w, h))
    # a region crossing tiles and the border (padded white) is the same too
    assert np.array_equal(tiff.read(0, 700, 240, 128, 80), osl.read(0, 700, 240, 128, 80))
    if compression == 'zlib':  # lossless: both give back what was written
        assert np.array_equal(osl.read(0, 0, 0, 760, 600), rgb)


def test_forced_openslide_survives_pickling(tmp_path, rgb):
    import pickle

    reader = SlideReader(write_tiled_slide(tmp_path / 'p.tif', rgb, False, 'zlib'), reader='openslide')
    clone = pickle.loads(pickle.dumps(reader))  # DataLoader workers re-open the slide with the same backend
    assert clone.backend == 'openslide'
    assert np.array_equal(clone.read(0, 10, 10, 50, 40), reader.read(0, 10, 10, 50, 40))


@pytest.mark.parametrize('backend', ['tiffslide', 'openslide', 'auto'])
def test_truncated_slide_refused_by_every_backend(tmp_path, rgb, backend):
    path = write_tiled_slide(tmp_path / 'full.tif', rgb, False, 'zlib')
    cut = tmp_path / 'cut.tif'
    cut.write_bytes(open(path, 'rb').read()[:os.path.getsize(path) // 2])
    with pytest.raises(SlideError, match=r'cut\.tif: ') as err:
        SlideReader(str(cut), reader=backend).read(0, 0, 0, 760, 600)
    assert '\n' not in str(err.value)


def test_file_no_backend_opens_is_one_line(tmp_path):
    fake = tmp_path / 'scan.ndpi'
    fake.write_bytes(b'not a slide at all\n' * 10)
    for backend in ('auto', 'openslide', 'tiffslide'):
        with pytest.raises(SlideError, match=r'scan\.ndpi: ') as err:
            SlideReader(str(fake), reader=backend)
        assert '\n' not in str(err.value)
    with pytest.raises(SlideError, match='--reader bioformats: choose from auto, tiffslide, openslide'):
        SlideReader(str(fake), reader='bioformats')


def test_synthetic_ome_tiff_level0_identical(tmp_path):
    """The project's OME-TIFF slides (pyramid in SubIFDs): OpenSlide opens them as generic TIFF (level 0 only)."""
    from mmcell.synthetic.slide import write_synthetic_slide

    info = write_synthetic_slide(tmp_path / 'case.ome.tif', (700, 500), mpp=0.25, seed=2, tissue_fraction=0.5)
    tiff, osl = SlideReader(info['slide'], reader='tiffslide'), SlideReader(info['slide'], reader='openslide')
    assert tiff.mpp == osl.mpp == pytest.approx(0.25) and SlideReader(info['slide']).backend == 'tiffslide'
    assert np.array_equal(tiff.read(0, 0, 0, 700, 500), osl.read(0, 0, 0, 700, 500))
