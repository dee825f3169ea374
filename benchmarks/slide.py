"""Whole-slide benchmark of ``mmcell segment-slide``: peak memory and throughput as the slide grows (same tissue),
tiled vs whole-image AP50 at the seams, a killed-and-resumed run vs an uninterrupted one. Prints a table and appends
it to benchmarks/RESULTS.md (``--no-append``: print only); slides and outputs go to ``--work-dir``.

    python benchmarks/slide.py --config CFG --checkpoint CKPT [--sizes 4096 16384 32768]
        [--tissue-mm2 0.5] [--seam-size 4096] [--work-dir work_dirs/benchmark_slide] [--no-append]

1. Synthetic slides (``make_synthetic_slide``) of growing size with the **same tissue area**, so the model does the
   same work and only the slide grows: peak memory of the ``segment-slide`` process tree (main + DataLoader worker,
   sum of PSS so shared pages count once, sampled every 0.1 s), wall time, mm^2 of tissue per minute.
2. Seams: a ``seam-size`` x ``seam-size`` slide full of tissue, segmented by tiles and by one whole-image pass of the
   same model (:func:`mmcell.apis.slide.whole_image_cells`): AP50 of both against the ground truth and of the
   tiles against the whole image.
3. Resume: the seam slide's run killed (SIGKILL) after a third of its tiles, run again, compared with the
   uninterrupted run (label images, tables, GeoJSON, preview).
4. Engines (``--engine V ...``): the same slide through ``segment-slide --precision P --engine E`` per variant
   (``fp32``, ``bf16``: torch; ``ov-P``: OpenVINO, e.g. ``ov-int8``, ``ov-int8-bf16``; as
   ``benchmarks/inference_precision.py`` names them), interleaved ``--engine-repeat`` times: wall s, mm^2 of tissue
   per minute, peak memory, cells, and the accuracy of the label outputs (``labels.ome.tif`` + ``cells.csv.gz``,
   the cells >= ``--score-thr``) against the ground truth, ratios to the first variant. The slide: with
   ``--engine-data ROOT ...`` (HW3-layout roots of labelled tiles, e.g. converted MoNuSeg) the tiles laid side by
   side as one tiled TIFF at ``--engine-mpp``, each tile scored on its own crop of the label outputs (AP50 / AP at
   maxDets 1000, AJI, PQ; :func:`mmcell.apis.evaluate.score_tile_samples`); else the synthetic seam slide (AP50).

    python benchmarks/slide.py --config CFG --checkpoint CKPT --sizes --seam-size 0 \\
        --engine fp32 bf16 ov-int8 ov-int8-bf16 --engine-data /tmp/monuseg-val /tmp/monuseg-train \\
        [--engine-repeat 1] [--results benchmarks/results/slide_engine --tag run1] --no-append
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def tree_rss(pid: int) -> int:
    """Memory of a process and all its descendants (from /proc): the sum of their PSS (proportional set size), so
    pages a forked DataLoader worker shares with its parent count once; RSS where PSS is not available."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            try:
                with open(f'/proc/{p}/smaps_rollup') as fh:
                    total += sum(int(line.split()[1]) * 1024 for line in fh if line.startswith('Pss:'))
            except FileNotFoundError:
                with open(f'/proc/{p}/status') as fh:
                    total += sum(int(line.split()[1]) * 1024 for line in fh if line.startswith('VmRSS:'))
            for task in os.listdir(f'/proc/{p}/task'):
                with open(f'/proc/{p}/task/{task}/children') as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def run_measured(cmd: list, env: dict, kill_when=None) -> dict:
    """Run ``cmd``; sample the tree RSS; optionally SIGKILL it when ``kill_when()`` is true."""
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    killed = [False]
    out_lines: list = []
    reader = threading.Thread(target=lambda: out_lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak[0] = max(peak[0], tree_rss(proc.pid))
        if kill_when is not None and not killed[0] and kill_when():
            os.kill(proc.pid, signal.SIGKILL)
            killed[0] = True
        time.sleep(0.1)
    reader.join(timeout=5)
    return dict(seconds=time.time() - start, peak_tree=peak[0], returncode=proc.returncode, killed=killed[0],
                output=''.join(out_lines))


def machine() -> str:
    mem = 0
    with open('/proc/meminfo') as fh:
        for line in fh:
            if line.startswith('MemTotal:'):
                mem = int(line.split()[1]) / 2 ** 20
    return f'{os.cpu_count()}-core CPU, {mem:.0f} GiB'


def outputs(slide_dir: Path) -> dict:
    from mmcell.synthetic.slide import read_ground_truth

    ids, classes = read_ground_truth(slide_dir / 'labels.ome.tif')
    with gzip.open(slide_dir / 'cells.csv.gz', 'rt') as fh:
        table = fh.read()
    return dict(ids=ids, classes=classes, table=table,
                raw={n: (slide_dir / n).read_bytes() for n in ('cells.geojson.gz', 'cells.csv.gz', 'preview.png')})


def engine_precision(name: str) -> tuple:
    """(engine, precision) of a variant name: ``'ov-int8-bf16'`` -> ``('openvino', 'int8-bf16')``, ``'bf16'`` ->
    ``('torch', 'bf16')`` (the names of ``benchmarks/inference_precision.py``)."""
    return ('openvino', name[3:]) if name.startswith('ov-') else ('torch', name)


def mosaic_slide(roots: list, path: Path, mpp: float) -> list:
    """The labelled tiles of HW3 roots side by side as one tiled TIFF (empty glass where no tile falls); returns
    ``[(root, name, x, y, w, h)]``, where each tile lies."""
    import tifffile

    from mmcell.datasets.image_io import read_image

    tiles = [(r, d.name) for r in roots for d in sorted((Path(r) / 'train').iterdir()) if d.is_dir()]
    images = [read_image(Path(r) / 'train' / n / 'image.tif')[..., :3] for r, n in tiles]
    h, w = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    cols = int(np.ceil(np.sqrt(len(images) * 4 / 3)))  # a landscape slide
    rows = int(np.ceil(len(images) / cols))
    mosaic = np.full((rows * h, cols * w, 3), 240, np.uint8)
    places = []
    for k, ((root, name), img) in enumerate(zip(tiles, images)):
        y, x = divmod(k, cols)
        mosaic[y * h:y * h + img.shape[0], x * w:x * w + img.shape[1]] = img
        places.append((str(root), name, x * w, y * h, img.shape[1], img.shape[0]))
    tifffile.imwrite(path, mosaic, photometric='rgb', tile=(256, 256), compression='zlib',
                     resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit='CENTIMETER', metadata=None)
    return places


def score_mosaic(slide_dir: Path, places: list, score_thr: float) -> dict:
    """AP50 / AP / AJI / PQ of a slide run's label outputs, each tile on its own crop (its ground truth)."""
    import csv

    from mmcell.apis.evaluate import label_image_instances, score_tile_samples, tile_ground_truth
    from mmcell.synthetic.slide import read_ground_truth

    ids, _ = read_ground_truth(slide_dir / 'labels.ome.tif')
    with gzip.open(slide_dir / 'cells.csv.gz', 'rt', newline='') as fh:
        scores = {int(r['id']): float(r['score']) for r in csv.DictReader(fh)}
    samples = []
    for k, (root, name, x, y, w, h) in enumerate(places):
        crop = ids[y:y + h, x:x + w]
        present = {int(i): scores[int(i)] for i in np.unique(crop) if i and int(i) in scores}
        samples.append(dict(tile_ground_truth(root, name, k), pred_instances=label_image_instances(crop, present)))
    figures = score_tile_samples(samples, pathology_score_thr=score_thr)
    return {k: figures[k] for k in ('AP50', 'AP', 'AJI', 'PQ')}


def engine_section(args, work: Path, seg: list, env: dict) -> dict:
    """Every ``--engine`` variant through ``segment-slide`` on one slide: speed, memory, accuracy."""
    from mmcell.utils.precision import describe_units

    if args.engine_data:
        path = work / 'engine_mosaic.tif'
        places = mosaic_slide(args.engine_data, path, args.engine_mpp)
        extra = ['--mpp', str(args.engine_mpp)]
    else:
        path, places, extra = work / f'seam_{args.seam_size or 4096}.ome.tif', None, []
        if not path.exists():
            write_synthetic_slide_gt(path, args.seam_size or 4096)
    runs: dict = {}
    for _ in range(max(1, args.engine_repeat)):
        for name in args.engine:
            engine, precision = engine_precision(name)
            out = work / f'engine_{name}'
            res = run_measured(seg + extra + ['--precision', precision, '--engine', engine, str(path), '--out',
                                              str(out)], env)
            if res['returncode']:
                raise SystemExit(f'segment-slide --engine {engine} --precision {precision} failed:\n'
                                 f'{res["output"][-3000:]}')
            slide_dir = out / path.name.split('.')[0]
            summary = json.loads((slide_dir / 'summary.json').read_text())
            runs.setdefault(name, []).append(dict(seconds=res['seconds'], rss=res['peak_tree'] / 2 ** 30,
                                                  tissue=summary['tissue_mm2'], tiles=summary['tiles'],
                                                  cells=summary['cells'], inference=summary.get('inference')))
            print(name, runs[name][-1], flush=True)
    acc = {}
    for name in args.engine:
        slide_dir = work / f'engine_{name}' / path.name.split('.')[0]
        acc[name] = (score_mosaic(slide_dir, places, args.score_thr) if places is not None
                     else dict(AP50=synthetic_ap50(slide_dir, path)))
        print(name, acc[name], flush=True)
    record = dict(cpu=describe_units(), slide=str(path), tiles_of=[p[:2] for p in places] if places else None,
                  config=args.config, checkpoint=args.checkpoint, tile=args.tile, overlap=args.overlap,
                  score_thr=args.score_thr, runs=runs, accuracy=acc, threads=os.environ.get('OMP_NUM_THREADS'),
                  date=datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC'),
                  command='python ' + ' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]))
    if args.results:
        from mmcell.utils.fileio import atomic_write_text

        out = Path(args.results) / f'{args.tag}.json'
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(record, indent=1) + '\n')
        print(f'wrote {out}', flush=True)
    return record


def write_synthetic_slide_gt(path: Path, size: int) -> None:
    from mmcell.synthetic.slide import write_synthetic_slide

    write_synthetic_slide(path, size, tissue_fraction=1.0, seed=7, progress=True)


def synthetic_ap50(slide_dir: Path, path: Path) -> float:
    import csv

    from mmcell.evaluation.functional.coco import contest_ap50, label_image_to_coco
    from mmcell.synthetic.slide import read_ground_truth

    with gzip.open(slide_dir / 'cells.csv.gz', 'rt', newline='') as fh:
        scores = {int(r['id']): float(r['score']) for r in csv.DictReader(fh)}
    gt, _ = label_image_to_coco(*read_ground_truth(path.with_name(path.name.replace('.ome.tif', '_gt.ome.tif'))))
    _, res = label_image_to_coco(*read_ground_truth(slide_dir / 'labels.ome.tif'), scores)
    return contest_ap50(gt, res, 100000)


def engine_lines(rec: dict) -> list:
    """Markdown of :func:`engine_section`'s record: one row per variant, ratios to the first."""
    import statistics

    names = list(rec['runs'])
    rate = {n: statistics.median(r['tissue'] / (r['seconds'] / 60) for r in runs) for n, runs in rec['runs'].items()}
    acc = rec['accuracy']
    first = names[0]
    keys = [k for k in ('AP50', 'AP', 'AJI', 'PQ') if k in acc[first]]
    lines = [f'\nEngines on one slide ({rec["slide"]}; {rec["cpu"]}; OMP_NUM_THREADS={rec["threads"]}; '
             f'{rec["date"]}):\n',
             '| variant | precision / engine run | runs (s) | tissue mm^2 | tiles | cells | mm^2 / min | ratio | peak '
             'memory (GiB) | ' + ' | '.join(keys) + ' | ' + ' | '.join(f'{k} change' for k in keys[:2]) + ' |',
             '|---' * (9 + len(keys) + min(2, len(keys))) + '|']
    for n in names:
        runs = rec['runs'][n]
        inf = runs[0].get('inference') or {}
        lines.append(f'| {n} | {inf.get("precision")} / {inf.get("engine")} | '
                     + ', '.join(f'{r["seconds"]:.0f}' for r in runs)
                     + f' | {runs[0]["tissue"]:.3f} | {runs[0]["tiles"]} | {runs[0]["cells"]} | {rate[n]:.3f} | '
                     f'{rate[n] / rate[first]:.2f}x | {max(r["rss"] for r in runs):.2f} | '
                     + ' | '.join(f'{acc[n][k]:.4f}' for k in keys) + ' | '
                     + ' | '.join(f'{acc[n][k] - acc[first][k]:+.4f}' for k in keys[:2]) + ' |')
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', required=True)
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--sizes', type=int, nargs='*', default=[4096, 16384, 32768],
                        help='memory/speed slide sides (none: skip)')
    parser.add_argument('--tissue-mm2', type=float, default=0.5, help='tissue area of every memory/speed slide')
    parser.add_argument('--seam-size', type=int, default=4096, help='side of the seam / resume slide (0: skip)')
    parser.add_argument('--no-resume', action='store_true', help='skip the kill -9 / resume check')
    parser.add_argument('--tile', type=int, default=1024)
    parser.add_argument('--overlap', type=int, default=128)
    parser.add_argument('--score-thr', type=float, default=0.5)
    parser.add_argument('--work-dir', default='work_dirs/benchmark_slide')
    parser.add_argument('--no-append', action='store_true', help='do not append to benchmarks/RESULTS.md')
    parser.add_argument('--engine', nargs='*', default=[],
                        help='engine/precision variants on one slide: fp32, bf16 (torch), ov-P (OpenVINO, precision '
                             'P: fp32, bf16, int8, int8-bf16)')
    parser.add_argument('--engine-data', nargs='*', default=[],
                        help='HW3 roots of labelled tiles laid out as the engines\' slide (default: the synthetic '
                             'seam slide)')
    parser.add_argument('--engine-mpp', type=float, default=0.25, help='microns per pixel of --engine-data tiles')
    parser.add_argument('--engine-repeat', type=int, default=1, help='runs per engine variant (interleaved)')
    parser.add_argument('--results', help='folder for the engines\' JSON record (<tag>.json)')
    parser.add_argument('--tag', default='run', help='name of the JSON record')
    args = parser.parse_args()

    from mmcell.synthetic.slide import read_ground_truth, write_synthetic_slide

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    seg = [sys.executable, '-m', 'mmcell.cli', 'segment-slide', '--config', args.config, '--checkpoint',
           args.checkpoint, '--tile', str(args.tile), '--overlap', str(args.overlap), '--score-thr',
           str(args.score_thr), '--overwrite']
    rows = []
    for size in args.sizes:
        path = work / f'synthetic_{size}.ome.tif'
        if not path.exists():
            t = time.time()
            write_synthetic_slide(path, size, tissue_mm2=args.tissue_mm2, seed=size, progress=True)
            print(f'{path}: written in {time.time() - t:.0f} s', flush=True)
        res = run_measured(seg + [str(path), '--out', str(work / 'out')], env)
        if res['returncode']:
            raise SystemExit(f'segment-slide failed on {path}:\n{res["output"][-3000:]}')
        summary = json.loads((work / 'out' / path.name.split('.')[0] / 'summary.json').read_text())
        rows.append(dict(size=size, tissue=summary['tissue_mm2'], tiles=summary['tiles'], cells=summary['cells'],
                         seconds=res['seconds'], rss=res['peak_tree'] / 2 ** 30,
                         rate=summary['tissue_mm2'] / (res['seconds'] / 60)))
        print(rows[-1], flush=True)

    seam = resume = None
    if args.seam_size:
        from mmcell.apis.slide.reference import whole_image_cells
        from mmcell.evaluation.functional.coco import contest_ap50, label_image_to_coco

        path = work / f'seam_{args.seam_size}.ome.tif'
        if not path.exists():
            write_synthetic_slide(path, args.seam_size, tissue_fraction=1.0, seed=7, progress=True)
        ref_dir = work / 'seam_ref'
        t = time.time()
        res = run_measured(seg + [str(path), '--out', str(ref_dir)], env)
        tiled_seconds = time.time() - t
        if res['returncode']:
            raise SystemExit(f'segment-slide failed on {path}:\n{res["output"][-3000:]}')
        slide_dir = ref_dir / path.name.split('.')[0]
        ref = outputs(slide_dir)
        t = time.time()
        w_ids, w_classes, w_scores = whole_image_cells(str(path), args.config, args.checkpoint, args.score_thr)
        whole_seconds = time.time() - t
        import csv
        import io
        scores = {int(r['id']): float(r['score']) for r in csv.DictReader(io.StringIO(ref['table']))}
        gt, _ = label_image_to_coco(*read_ground_truth(work / f'seam_{args.seam_size}_gt.ome.tif'))
        whole_gt, whole_res = label_image_to_coco(w_ids, w_classes, w_scores)
        _, tiled_res = label_image_to_coco(ref['ids'], ref['classes'], scores)
        seam = dict(size=args.seam_size, ap_whole=contest_ap50(gt, whole_res, 100000),
                    ap_tiled=contest_ap50(gt, tiled_res, 100000),
                    agreement=contest_ap50(whole_gt, tiled_res, 100000), cells_whole=len(whole_res),
                    cells_tiled=len(tiled_res), gt=len(gt['annotations']), whole_seconds=whole_seconds,
                    tiled_seconds=tiled_seconds)
        print(seam, flush=True)
    if args.seam_size and not args.no_resume:
        # resume: kill -9 after a third of the tiles, run again, compare
        res_dir = work / 'seam_resume'
        manifest = res_dir / slide_dir.name / '.work' / 'tiles-0of1.jsonl'
        plan = json.loads((slide_dir / 'summary.json').read_text())
        third = max(1, plan['tiles'] // 3)
        first = run_measured(seg + [str(path), '--out', str(res_dir)], env, kill_when=lambda: manifest.exists()
                             and manifest.read_bytes().count(b'\n') >= third)
        done_at_kill = manifest.read_bytes().count(b'\n') if manifest.exists() else 0
        second = run_measured([c for c in seg if c != '--overwrite'] + [str(path), '--out', str(res_dir)], env)
        again = outputs(res_dir / slide_dir.name)
        resume = dict(killed=first['killed'], tiles_at_kill=done_at_kill, tiles=plan['tiles'],
                      equal=bool(np.array_equal(again['ids'], ref['ids']) and np.array_equal(again['classes'],
                                                                                           ref['classes'])
                                 and again['raw'] == ref['raw']), returncode=second['returncode'])
        print(resume, flush=True)

    engines = engine_section(args, work, seg, env) if args.engine else None

    cmd = 'python ' + ' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    lines = [f'\n## segment-slide: memory, throughput, seams, resume ({datetime.date.today()})\n',
             f'Machine: {machine()} (2-core CPU dev box, shared); command: `{cmd}`; tile {args.tile}, overlap '
             f'{args.overlap}, score thr {args.score_thr}.' + (
                 f' Synthetic slides at 0.25 um/px, the same tissue area each ({args.tissue_mm2} mm^2 asked), so '
                 'the model work is constant and only the slide grows.' if rows else '') + '\n']
    if rows:
        lines += ['| slide (px) | tissue mm^2 | tiles | cells | wall s | peak memory, tree PSS (GiB) | '
                  'mm^2 tissue / min |', '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["size"]}^2 | {r["tissue"]:.3f} | {r["tiles"]} | {r["cells"]} | {r["seconds"]:.0f} | '
                     f'{r["rss"]:.2f} | {r["rate"]:.3f} |')
    if rows:
        rss = [r['rss'] for r in rows]
        lines.append(f'\nPeak RSS max/min across sizes: {max(rss) / min(rss):.2f}x (goal <= 1.5x, <= 3 GB).')
    if seam:
        lines.append(f'\nSeams ({seam["size"]}^2 slide full of tissue, {seam["gt"]} ground-truth nuclei): AP50 '
                     f'whole-image {seam["ap_whole"]:.4f} ({seam["cells_whole"]} cells, {seam["whole_seconds"]:.0f}'
                     f' s), tiles {seam["ap_tiled"]:.4f} ({seam["cells_tiled"]} cells, {seam["tiled_seconds"]:.0f} '
                     f's), |dAP50| = {abs(seam["ap_tiled"] - seam["ap_whole"]):.4f} (goal <= 0.005); AP50 of the '
                     f'tiles scored against the whole-image cells: {seam["agreement"]:.4f}.')
    if resume:
        lines.append(f'\nResume: killed with SIGKILL after {resume["tiles_at_kill"]} of {resume["tiles"]} tiles, '
                     f'run again: final files equal to the uninterrupted run: {"yes" if resume["equal"] else "NO"} '
                     '(label images decoded; GeoJSON, table and preview byte for byte).')
    if engines:
        lines += engine_lines(engines)
    text = '\n'.join(lines) + '\n'
    print(text)
    if not args.no_append:
        results = REPO / 'benchmarks' / 'RESULTS.md'
        from mmcell.utils.fileio import write_results_section

        write_results_section(results, text)


if __name__ == '__main__':
    main()
