"""Whole slides: the synthetic slide generator, the reader (levels, mpp, exact resampling), the tissue mask, the
tile layout, the append-only tile log and one-line errors for bad slides."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from mmcell.datasets.slide.reader import SlideError, SlideReader, slide_stem
from mmcell.datasets.slide.tiling import plan_tiles, read_tile
from mmcell.datasets.slide.tissue import tissue_mask
from mmcell.synthetic.slide import read_ground_truth, write_synthetic_slide
from mmcell.utils.fileio import AppendLog


@pytest.fixture(scope='module')
def slide(tmp_path_factory):
    return write_synthetic_slide(tmp_path_factory.mktemp('slide') / 'case.ome.tif', (1400, 1100), mpp=0.25,
                                 seed=1, tissue_fraction=0.45)


def test_synthetic_slide_is_pyramidal_with_tissue_and_ground_truth(slide):
    reader = SlideReader(slide['slide'])
    assert reader.dimensions == (1400, 1100) and reader.mpp == pytest.approx(0.25)
    assert len(reader.level_dimensions) >= 2 and reader.level_downsamples[1] == pytest.approx(4, rel=0.01)
    ids, classes = read_ground_truth(slide['ground_truth'])
    assert ids.shape == (1100, 1400) and ids.dtype == np.uint32
    assert len(np.unique(ids)) - 1 == slide['cells'] > 50
    assert set(np.unique(classes[ids > 0])) <= {1, 2, 3, 4} and not classes[ids == 0].any()
    # nuclei lie on tissue; glass is bright and unsaturated
    tissue = tissue_mask(reader)
    assert tissue.area_mm2 == pytest.approx(slide['tissue_mm2'], rel=0.15)
    glass = reader.read(0, 0, 0, 1400, 1100)[~cv2.resize(tissue.mask.astype(np.uint8), (1400, 1100)).astype(bool)]
    assert glass.mean() > 220
    ys, xs = np.nonzero(ids)
    assert tissue.mask[(ys / tissue.downsample).astype(int), (xs / tissue.downsample).astype(int)].mean() > 0.95


def test_stems():
    assert [slide_stem(p) for p in ('a/b.ome.tif', 'x.svs', 'y.OME.TIFF', 'z.tif', 'w.png', 'v.ndpi')] == \
        ['b', 'x', 'y', 'z', 'w', 'v']


def test_tiles_are_resampled_exactly_to_the_model_mpp(slide):
    reader = SlideReader(slide['slide'])
    level0 = reader.read(0, 0, 0, 1400, 1100)
    same = plan_tiles(reader, 0.25, 512, 64)
    assert same.scale == 1 and same.level == 0 and read_tile(reader, same, 5).shape == (512, 512, 3)
    x, y, w, h = same.rect(5)
    assert np.array_equal(read_tile(reader, same, 5), level0[y:y + h, x:x + w])
    # a model trained at 0.5 um/px sees 2x downsampled tiles: equal to an area average of level 0
    half = plan_tiles(reader, 0.5, 256, 32)
    assert half.tile0 == 512 and half.scale == 0.5
    x, y, w, h = half.rect(3)
    expected = cv2.resize(level0[y:y + h, x:x + w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    got = read_tile(reader, half, 3)
    assert got.shape == expected.shape and np.abs(got.astype(int) - expected).mean() < 4
    # a 0.0625 um/px model reads the same place, upsampled 4x (level 1 would be too coarse)
    fine = plan_tiles(reader, 0.0625, 256, 32)
    assert fine.level == 0 and fine.tile0 == 64
    x, y, w, h = fine.rect(40)
    small = cv2.resize(read_tile(reader, fine, 40), (w, h), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - level0[y:y + h, x:x + w]).mean() < 6


def test_tile_layout_skips_glass_and_respects_the_region(slide):
    reader = SlideReader(slide['slide'])
    tissue = tissue_mask(reader)
    full = plan_tiles(reader, 0.25, 256, 64)
    kept = plan_tiles(reader, 0.25, 256, 64, tissue)
    assert 0 < len(kept.tiles) < len(full.tiles)
    assert all(tissue.any_in(*kept.rect(t)[:2], kept.rect(t)[0] + kept.rect(t)[2], kept.rect(t)[1] + kept.rect(t)[3])
               for t in range(len(kept.tiles)))
    part = plan_tiles(reader, 0.25, 256, 64, None, (300, 200, 500, 400))
    for t in range(len(part.tiles)):
        x, y, w, h = part.rect(t)
        assert 300 <= x and x + w <= 800 and 200 <= y and y + h <= 600
    with pytest.raises(SlideError, match='not inside the slide'):
        plan_tiles(reader, 0.25, 256, 64, None, (1300, 0, 200, 100))


def test_all_background_slide_has_no_tissue(tmp_path):
    info = write_synthetic_slide(tmp_path / 'glass.ome.tif', 900, tissue_fraction=0.0)
    reader = SlideReader(info['slide'])
    assert info['cells'] == 0 and tissue_mask(reader).area_mm2 == 0
    assert plan_tiles(reader, 0.25, 256, 64, tissue_mask(reader)).tiles == []


def test_bad_slides_fail_with_one_line(tmp_path, slide):
    text = tmp_path / 'notes.svs'
    text.write_text('not a slide\n')
    with pytest.raises(SlideError, match=r'notes\.svs: not a slide'):
        SlideReader(str(text))
    with pytest.raises(SlideError, match='no such slide'):
        SlideReader(str(tmp_path / 'missing.svs'))
    # a JPEG tile overwritten with garbage: the read names the slide and the region
    import tifffile

    broken = tmp_path / 'broken.ome.tif'
    broken.write_bytes(open(slide['slide'], 'rb').read())
    with tifffile.TiffFile(str(broken)) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[3], page.databytecounts[3]
    with open(broken, 'r+b') as fh:  # tile 3 = row 1, column 0 (3 tiles per row)
        fh.seek(offset)
        fh.write(bytes(count))
    reader = SlideReader(str(broken))
    assert reader.read(0, 600, 0, 200, 200).shape == (200, 200, 3)  # other tiles still read
    with pytest.raises(SlideError, match=r'broken\.ome\.tif: cannot decode level 0') as err:
        reader.read(0, 0, 512, 200, 200)
    assert '\n' not in str(err.value)
    # truncated: cut in the middle of level 0
    cut = tmp_path / 'cut.ome.tif'
    cut.write_bytes(open(slide['slide'], 'rb').read()[:os.path.getsize(slide['slide']) // 3])
    with pytest.raises(SlideError, match=r'cut\.ome\.tif: '):
        r = SlideReader(str(cut))
        r.read(0, 0, 0, 1400, 1100)
    # a PNG has no mpp: plan_tiles asks for --mpp
    png = tmp_path / 'field.png'
    cv2.imwrite(str(png), np.full((300, 400, 3), 200, np.uint8))
    with pytest.raises(SlideError, match=r'field\.png: no microns per pixel.*--mpp'):
        plan_tiles(SlideReader(str(png)), 0.25, 256, 64)
    assert SlideReader(str(png), mpp=0.5).mpp == 0.5


def test_append_log_survives_a_kill_mid_record(tmp_path):
    data, manifest = tmp_path / 'tiles-0of1.bin', tmp_path / 'tiles-0of1.jsonl'
    with AppendLog(data, manifest) as log:
        for i in range(3):
            log.append(bytes([i]) * (10 + i), dict(tile=i))
    # a kill after the data but before the manifest line, then one in the middle of a manifest line
    with open(data, 'ab') as fh:
        fh.write(b'x' * 50)
    with open(manifest, 'ab') as fh:
        fh.write(b'{"tile": 3, "off')
    records = AppendLog.read_manifest(manifest, data)
    assert [r['tile'] for r in records] == [0, 1, 2]
    assert AppendLog.read_record(data, records[2]) == bytes([2]) * 12
    with AppendLog(data, manifest) as log:  # the restarted writer appends after the debris
        log.append(b'new', dict(tile=3))
    records = AppendLog.read_manifest(manifest, data)
    assert [r['tile'] for r in records] == [0, 1, 2, 3]
    assert AppendLog.read_record(data, records[3]) == b'new'
    assert all(json.loads(line) for line in manifest.read_text().splitlines()[-1:])
