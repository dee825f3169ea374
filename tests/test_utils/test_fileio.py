"""mmcell.utils.fileio: the one atomic writer (modes follow the umask, failures leave nothing behind)."""
import os
import stat

import pytest

from mmcell.utils.fileio import (
    OutputPathError,
    atomic_dir,
    atomic_write,
    atomic_write_text,
    check_output_path,
    write_json,
)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize('umask, expected', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_mode_follows_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        out = atomic_write_text(tmp_path / 'a.csv', 'x\n')
    finally:
        os.umask(old)
    assert out.read_text() == 'x\n'
    assert _mode(out) == expected


def test_atomic_write_failure_keeps_previous_file(tmp_path):
    out = tmp_path / 'r.json'
    write_json(out, {'a': 1})

    def broken(tmp):
        with open(tmp, 'w') as fh:
            fh.write('{"half')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError):
        atomic_write(out, broken)
    assert out.read_text() == '{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['r.json']  # no temp file left


def test_atomic_write_keeps_suffix_for_writers(tmp_path):
    seen = []
    atomic_write(tmp_path / 'x.png', lambda tmp: (seen.append(tmp), open(tmp, 'wb').close()))
    assert seen[0].endswith('.png')


def test_atomic_dir_all_or_nothing(tmp_path):
    out = tmp_path / 'OUT'
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / 'half.txt').write_text('x')
            raise RuntimeError('boom')
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / 'a.txt').write_text('1')
    assert (out / 'a.txt').read_text() == '1' and _mode(out) == 0o777 & ~_umask()
    with pytest.raises(OutputPathError, match='exists'):
        with atomic_dir(out):
            pass
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / 'b.txt').write_text('2')
    assert sorted(p.name for p in out.iterdir()) == ['b.txt']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['OUT']


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_check_output_path(tmp_path):
    with pytest.raises(OutputPathError, match='must end with'):
        check_output_path(tmp_path / 'x.txt', suffixes=('.zip', '.json'))
    with pytest.raises(OutputPathError, match='is a folder'):
        check_output_path(tmp_path)
    (tmp_path / 'file').write_text('')
    with pytest.raises(OutputPathError, match='not a folder'):
        check_output_path(tmp_path / 'file', is_dir=True)
    assert check_output_path(tmp_path / 'new' / 'deep' / 'x.zip') == tmp_path / 'new' / 'deep' / 'x.zip'
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputPathError, match='no write permission'):
            check_output_path(locked / 'x.zip')


def test_write_results_section_keeps_one_section_per_benchmark(tmp_path):
    from mmcell.utils.fileio import write_results_section

    results = tmp_path / 'RESULTS.md'
    results.write_text('# Benchmarks\n\n## Other benchmark\nfigure 1\n\n## Speed (2026-11-21)\n- date: 2026-11-21\n'
                       '| a | 1.0x |\n\n**History** (earlier runs)\n\n| run | x |\n|---|---|\n| first | 0.9x |\n\n'
                       '## Last\nlast figure\n')
    write_results_section(results, '## Speed (2026-12-03)\n| a | 2.0x |')
    text = results.read_text()
    assert text.count('## Speed') == 1 and '## Speed (2026-11-21)' not in text
    speed = text[text.index('## Speed'):text.index('## Last')]
    assert speed.index('2.0x') < speed.index('**History**') < speed.index('1.0x') < speed.index('0.9x')
    assert '<summary>date: 2026-11-21</summary>' in speed
    assert text.startswith('# Benchmarks\n\n## Other benchmark\nfigure 1\n') and text.endswith('## Last\nlast figure\n')
    write_results_section(results, '## Speed\n- date: 2026-12-04\n| a | 3.0x |')
    speed = results.read_text().split('## Speed')[1].split('## Last')[0]
    assert speed.count('**History**') == 1 and speed.index('3.0x') < speed.index('2.0x') < speed.index('1.0x')
    write_results_section(results, '## New one\nfresh')
    assert results.read_text().endswith('## Last\nlast figure\n\n## New one\nfresh\n')
    assert '## Speed\n- date: 2026-12-04\n| a | 3.0x |' in results.read_text()
    with pytest.raises(ValueError, match='starts with'):
        write_results_section(results, 'no heading')
