"""runs.py and plot.py over hand-made runs (a note.log and a metrics.csv written here, nothing trained): metrics.csv
read back, the runs table, a run's curves and comparisons of runs, and the commands' errors. Neither this file nor
runs.py and plot.py change with the answers given at baking; the metric's name (runfiles.py) does with the task."""

import csv
import math
import os
import shutil
import subprocess
import sys

import pytest

import plot
import runfiles
import runs
from conftest import PROJECT, SHOWN_E9, run_as_command
from runfiles import METRICS_COLUMNS, OPTIONAL_METRICS_COLUMNS, RunError, read_metrics_rows


def hand_made_run(folder, config, valid_losses, valid_metrics=None, grad_norms=None, seconds=None, data=None):
    """A finished run's note.log and metrics.csv, one epoch per valid loss (valid metric 0.6 unless given;
    epoch_seconds 1.0 unless `seconds` gives (epoch_seconds, data_seconds) pairs or (epoch_seconds, data_seconds,
    train_seconds) triples; with grad_norms or `seconds`, the optional columns too, as train.py writes them:
    grad_norm (empty without grad_norms), data_seconds (0.1 unless given) and train_seconds (empty unless given)).
    `data`: note.log's data: lines (the splits' sizes), none unless given."""
    folder.mkdir(parents=True)
    (folder / 'note.log').write_text('config:\n' + ''.join(f'    {k}: {v}\n' for k, v in config.items())
                                     + ('data:\n' + ''.join(f'    {k}: {v}\n' for k, v in data.items()) if data else '')
                                     + 'status: finished at 2026-01-01 12:00:00, epoch 2, step 8\n')
    metrics = valid_metrics or [0.6] * len(valid_losses)
    timings = [(*given, '')[:3] for given in seconds or [(1.0, 0.1)] * len(valid_losses)]
    lines = [[e, 4 * e, loss + 0.1, 0.5, loss, metric, 1e-4, epoch_s]
             for e, (loss, metric, (epoch_s, _, _)) in enumerate(zip(valid_losses, metrics, timings, strict=True), 1)]
    header = METRICS_COLUMNS
    if grad_norms is not None or seconds:
        header += OPTIONAL_METRICS_COLUMNS
        norms = grad_norms if grad_norms is not None else [''] * len(lines)
        lines = [line + [norm, data_s, train_s]
                 for line, norm, (_, data_s, train_s) in zip(lines, norms, timings, strict=True)]
    with open(folder / 'metrics.csv', 'w', newline='') as f:
        csv.writer(f).writerows([header] + lines)


def test_metrics_rows_cut_short_are_skipped_and_a_missing_column_is_damage(tmp_path):
    path = tmp_path / 'metrics.csv'
    whole = [f'{e},{5 * e},1,0.5,0.{e},0.6,1e-4,1\r\n' for e in (1, 2, 3)]
    zeros, too_long = '\0' * 40 + '\r\n', 'x' * 200_000 + '\r\n'  # a power cut's; over csv's field limit
    for case, lines in enumerate([[whole[0], zeros, whole[1], too_long, whole[2]],
                                  [whole[0], '2,10,1,0.5\r\n', whole[1], '2,10,1,0.5,0.2,0.6,1e-4,x\r\n', whole[2]],
                                  [*whole, '4,20,1,0.5,0.4,0.6,1e-4,1.']]):  # no line end: cut in its last value
        path.write_text(','.join(METRICS_COLUMNS) + '\r\n' + ''.join(lines), newline='')
        assert [(row['epoch'], row['valid_loss']) for row in read_metrics_rows(path)] == [
            ('1', '0.1'), ('2', '0.2'), ('3', '0.3')], case
    path.write_text('epoch,step,loss\r\n1,5,0.3\r\n')
    with pytest.raises(ValueError, match="no column 'train_loss'"):
        read_metrics_rows(path)
    with pytest.raises(RunError, match=r"metrics\.csv' is damaged \(no column 'train_loss'\)"):
        plot.read_metrics(tmp_path)


def test_metrics_rows_start_over_where_a_resumed_run_went_back(tmp_path):
    epochs = [1, 2, 3, 4, 3, 4, 5, 2, 3]
    (tmp_path / 'metrics.csv').write_text(','.join(METRICS_COLUMNS) + ''.join(
        f'\n{e},{5 * e},1,0.5,{i},0.6,1e-4,1' for i, e in enumerate(epochs)) + '\n')
    kept = read_metrics_rows(tmp_path / 'metrics.csv')
    assert [(row['epoch'], row['valid_loss']) for row in kept] == [('1', '0'), ('2', '7'), ('3', '8')]


def test_an_optional_columns_value_may_be_empty_but_nothing_else(tmp_path):
    path = tmp_path / 'metrics.csv'
    path.write_text(','.join(METRICS_COLUMNS + OPTIONAL_METRICS_COLUMNS) + '\r\n' + ''.join(
        f'{e},{5 * e},1,0.5,0.{e},0.6,1e-4,1,{norm},0.2,0.7\r\n' for e, norm in ((1, '0.5'), (2, ''), (3, 'x'))))
    assert [(row['epoch'], row['grad_norm']) for row in read_metrics_rows(path)] == [('1', '0.5'), ('2', '')]
    norms = plot.read_metrics(tmp_path)['grad_norm']
    assert norms[0] == 0.5 and math.isnan(norms[1])


def test_note_config_takes_each_resumes_overrides(tmp_path):
    (tmp_path / 'note.log').write_text('config:\n    lr: 0.0001\n    n_epoch: 5\n    dataset_dir: data\n'
                                       'status: running\n'
                                       'status: finished at 2026-01-01 12:00:00, epoch 5, step 40\n\nresumed at ...\n'
                                       'overrides: lr=0.005, dataset_dir=a, b=c, n_epoch=9\nstatus: running\n'
                                       '\nresumed at ...\noverrides: none\nstatus: running\n')
    config, _, status = runfiles.read_note(tmp_path)
    assert config == {'lr': '0.005', 'n_epoch': '9', 'dataset_dir': 'a, b=c'} and status == 'running'


@pytest.mark.draws_curves
def test_curves_tick_whole_epochs(tmp_path, drawn_figures):
    (tmp_path / 'metrics.csv').write_text(','.join(METRICS_COLUMNS) + ''.join(
        f'\n{e},{5 * e},{2 / e},0.5,{1.5 / e},0.6,1e-4,1' for e in range(1, 6)) + '\n')
    assert plot.plot_run(tmp_path) == tmp_path / 'curves.png'
    for ax in drawn_figures[0].axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 5]
        assert ticks and all(t == int(t) for t in ticks), ticks


@pytest.mark.draws_curves
@pytest.mark.parametrize('valid_losses, scale', [([1000.0, 10.0, 1.0, 0.5], 'log'), ([0.9, 0.8, 0.7], 'linear'),
                                                 ([5.0, 0.0, 0.7], 'linear')])  # a zero has no place on a log scale
def test_losses_that_span_more_than_two_decades_are_drawn_on_a_log_scale(tmp_path, drawn_figures, valid_losses, scale):
    hand_made_run(tmp_path / 'a', {'lr': 0.1}, valid_losses)
    hand_made_run(tmp_path / 'b', {'lr': 0.2}, [0.9, 0.8])
    plot.plot_run(tmp_path / 'a')
    plot.compare_runs([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'cmp.png')
    assert len(drawn_figures) == 2
    for figure in drawn_figures:  # the run's curves.png, then the comparison
        loss_axes = figure.axes[0]
        label = 'loss (log scale)' if scale == 'log' else 'loss'
        assert (loss_axes.get_yscale(), loss_axes.get_ylabel()) == (scale, label)


def test_the_best_epoch_is_the_lowest_valid_loss_in_metrics(tmp_path):
    (tmp_path / 'metrics.csv').write_text(','.join(METRICS_COLUMNS) + '\n1,5,2,0.1,1.5,0.2,1e-4,1\n'
                                          '2,10,1,0.5,0.7,0.6,1e-4,1\n3,15,0.5,0.8,0.9,0.5,1e-4,1\n')
    metrics = plot.read_metrics(tmp_path)
    assert metrics['valid_loss'].index(min(metrics['valid_loss'])) == 1


def test_runs_table_lists_a_named_runs_set_aside_starts_after_it_newest_first(tmp_path):
    for name in ('job', 'job.attempt-1', 'job.attempt-2', 'job.attempt-10', 'job.b', '20260101_000000'):
        (tmp_path / name).mkdir()
    names = [line.split()[0] for line in runs.table(tmp_path, sort='run', reverse=True).splitlines()[1:]]
    assert names == ['job.b', 'job', 'job.attempt-10', 'job.attempt-2', 'job.attempt-1', '20260101_000000']
    names = [line.split()[0] for line in runs.table(tmp_path, sort='run').splitlines()[1:]]
    assert names == ['20260101_000000', 'job.attempt-1', 'job.attempt-2', 'job.attempt-10', 'job', 'job.b']


def test_runs_table_of_the_runs_named_shows_what_differs_between_them(tmp_path, monkeypatch, capsys):
    hand_made_run(tmp_path / 'loggers' / 'a', {'lr': 0.001, 'batch_size': 32}, [0.9, 0.8])
    hand_made_run(tmp_path / 'loggers' / 'b', {'lr': 0.01, 'batch_size': 32}, [0.7, 0.5])
    hand_made_run(tmp_path / 'loggers' / 'c', {'lr': 0.001, 'batch_size': 64}, [0.6])
    (tmp_path / 'checkpoints' / 'c').mkdir(parents=True)
    (tmp_path / 'checkpoints' / 'c' / 'best_checkpoint.pt').write_bytes(b'')
    (tmp_path / 'loggers' / 'sweep.png').write_text('an earlier plot.py --output loggers/sweep.png')
    monkeypatch.chdir(tmp_path)

    def listed(args):
        code, stdout, stderr = run_as_command('runs.py', args, monkeypatch, capsys)
        assert (code, stderr) == (0, ''), stderr
        return [line.split() for line in stdout.splitlines()]

    header, *rows = listed(['c', 'a'])
    assert header[-1] == 'batch_size' and 'lr' not in header  # a and c share lr
    assert [row[0] for row in rows] == ['c', 'a'] and [row[-1] for row in rows] == ['64', '32']
    assert [row[0] for row in listed(['c', 'a', '--sort', 'batch_size'])[1:]] == ['a', 'c']
    left_out, header, *rows = listed(['loggers/a', 'loggers/b', 'loggers/sweep.png'])  # loggers/* matches the figure
    assert left_out == ['left', 'out', 'loggers/sweep.png:', 'a', 'file,', 'not', 'a', 'run', 'folder']
    assert header[-1] == 'lr' and 'batch_size' not in header and [row[0] for row in rows] == ['b', 'a']
    assert [row[0] for row in listed([])[1:]] == ['c', 'b', 'a']
    for args, message in [
        (['a', 'nope'], "error: no run 'nope': pass a timestamp under loggers/ or a run's loggers folder\n"),
        (['a', 'loggers/a'], "error: run 'a' is given twice; name each run once\n"),
        (['checkpoints/c'], f"error: '{os.path.join('checkpoints', 'c')}' holds a run's checkpoints, not its logs, "
                            f"which are in '{os.path.join('loggers', 'c')}': pass c\n"),
        (['a', 'c', '--sort', 'lr'], "error: cannot sort by 'lr'; choose one of: run, status, "),
    ]:
        code, stdout, stderr = run_as_command('runs.py', args, monkeypatch, capsys)
        assert (code, stdout) == (2, '') and stderr.startswith(message) and stderr.count('\n') == 1, (args, stderr)


def test_runs_and_plot_print_and_draw_a_run_name_that_is_not_utf_8_escaped(tmp_path, monkeypatch, capsys,
                                                                          drawn_figures):
    # folders named in Latin-1 (an old archive's, or --loggers_dir): capsys, as a UTF-8 terminal, encodes strictly
    names = [os.fsdecode(b'caf\xe9'), os.fsdecode(b'th\xe9')]
    for name, losses in zip(names, ([0.9, 0.8], [0.7, 0.5])):
        hand_made_run(tmp_path / 'loggers' / name, {'lr': losses[0]}, losses)
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_as_command('runs.py', [], monkeypatch, capsys)
    shown = [f'caf{SHOWN_E9}', f'th{SHOWN_E9}']
    assert code == 0 and sorted(line.split()[0] for line in stdout.splitlines()[1:]) == shown, stderr
    code, stdout, stderr = run_as_command('plot.py', [names[0]], monkeypatch, capsys)
    assert (code, stdout) == (0, f"wrote {os.path.join('loggers', shown[0], 'curves.png')}\n"), stderr
    assert drawn_figures[-1]._suptitle.get_text().startswith(f'run {shown[0]}: best valid loss 0.8 ')
    assert (tmp_path / 'loggers' / names[0] / 'curves.png').read_bytes().startswith(b'\x89PNG')
    code, stdout, stderr = run_as_command('plot.py', names, monkeypatch, capsys)
    assert (code, stdout) == (0, 'wrote comparison.png\n'), stderr
    labels = [line.get_label() for line in drawn_figures[-1].axes[0].get_lines()
              if not line.get_label().startswith('_')]
    assert labels == [f'{shown[0]} (lr=0.9)', f'{shown[1]} (lr=0.7)']
    assert drawn_figures[-1]._suptitle.get_text() == f'2 runs: lowest valid loss 0.5 ({shown[1]}, epoch 2)'
    assert (tmp_path / 'comparison.png').read_bytes().startswith(b'\x89PNG')


def test_plot_draws_a_dollar_sign_in_a_run_name_or_a_value_as_it_is(tmp_path, monkeypatch, capsys, drawn_figures):
    # two of them would start matplotlib's math text, and 'x$_$y' failed the whole figure
    names = ['x$_$y', 'z']
    hand_made_run(tmp_path / 'loggers' / names[0], {'data': 'a$^$b.csv'}, [0.9, 0.8])
    hand_made_run(tmp_path / 'loggers' / names[1], {'data': 'c.csv'}, [0.7, 0.5])
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_as_command('plot.py', [names[0]], monkeypatch, capsys)
    assert (code, stdout) == (0, f"wrote {os.path.join('loggers', names[0], 'curves.png')}\n"), stderr
    assert drawn_figures[-1]._suptitle.get_text().startswith(r'run x\$_\$y: best valid loss 0.8 ')
    code, stdout, stderr = run_as_command('plot.py', names, monkeypatch, capsys)
    assert (code, stdout) == (0, 'wrote comparison.png\n'), stderr
    labels = [line.get_label() for line in drawn_figures[-1].axes[0].get_lines()
              if not line.get_label().startswith('_')]
    assert labels == [r'x\$_\$y (data=a\$^\$b.csv)', 'z (data=c.csv)']  # drawn as 'x$_$y (data=a$^$b.csv)'
    assert drawn_figures[-1]._suptitle.get_text() == '2 runs: lowest valid loss 0.5 (z, epoch 2)'
    assert (tmp_path / 'comparison.png').read_bytes().startswith(b'\x89PNG')


def test_runs_table_gives_each_runs_median_epoch_seconds_and_its_share_waiting_for_batches(tmp_path):
    """Medians over the epochs: a first epoch slowed by the workers' start does not decide them. A run from before
    data_seconds has no data_wait."""
    loggers = tmp_path / 'loggers'
    hand_made_run(loggers / 'slow_data', {'num_workers': 0}, [0.9, 0.8, 0.7],
                  seconds=[(9.0, 6.0), (2.0, 0.5), (2.2, 0.6)])
    hand_made_run(loggers / 'workers', {'num_workers': 4}, [0.9, 0.8, 0.7],
                  seconds=[(5.0, 4.0), (1.5, 0.135), (1.4, 0.126)])
    hand_made_run(loggers / 'older', {'num_workers': 0}, [0.9, 0.8])
    metrics = loggers / 'older' / 'metrics.csv'
    metrics.write_text(metrics.read_text().replace('1.0\n', '1.25\n', 1))  # epoch_seconds 1.25 and 1.0
    timing = {name: runs.summarize(loggers / name)[0] for name in ('slow_data', 'workers', 'older')}
    assert {name: (row['s_per_epoch'], row.get('data_wait')) for name, row in timing.items()} == {
        'slow_data': ('2.20', '27%'),  # shares 0.67, 0.25, 0.27
        'workers': ('1.50', '9%'),  # 0.8, 0.09, 0.09
        'older': ('1.12', None),
    }
    text = runs.table(loggers, sort='data_wait')
    header, *lines = text.splitlines()
    assert header.split()[6:10] == ['s_per_epoch', 'samples_per_s', 'data_wait', 'num_workers']
    # by number, not as text ('27%' < '9%')
    assert [line.split()[0] for line in lines] == ['workers', 'slow_data', 'older']
    assert [line.split()[0] for line in runs.table(loggers, sort='s_per_epoch').splitlines()[1:]] == [
        'older', 'workers', 'slow_data']


def test_runs_table_gives_each_runs_training_samples_a_second(tmp_path):
    """The training split's size (note.log's data: lines) over the median epoch's train_seconds: a first epoch
    slowed by compiling does not decide it, and validation does not dilute it. Blank for a run without the column
    or the size; a config key of your own named train_samples keeps its value, and the size is data.train_samples."""
    loggers = tmp_path / 'loggers'
    data = {'train_samples': 1000, 'valid_samples': 250}
    hand_made_run(loggers / 'compiled', {'compile': True}, [0.9, 0.8, 0.7], data=data,
                  seconds=[(9.0, 0.1, 8.0), (2.0, 0.1, 0.5), (2.2, 0.1, 0.4)])
    hand_made_run(loggers / 'plain', {'compile': False}, [0.9, 0.8, 0.7], data=data, seconds=[(3.0, 0.1, 2.5)] * 3)
    hand_made_run(loggers / 'few', {'compile': False}, [0.9], data={'train_samples': 3, 'valid_samples': 1},
                  seconds=[(3.0, 0.1, 2.0)])
    hand_made_run(loggers / 'own_key', {'compile': False, 'train_samples': 7}, [0.9], data=data,
                  seconds=[(3.0, 0.1, 0.8)])
    hand_made_run(loggers / 'older', {'compile': False}, [0.9], data=data, seconds=[(3.0, 0.1)])
    hand_made_run(loggers / 'no_size', {'compile': False}, [0.9], seconds=[(3.0, 0.1, 2.0)])
    speed = {folder.name: runs.summarize(folder)[0].get('samples_per_s') for folder in loggers.iterdir()}
    assert speed == {'compiled': '2000', 'plain': '400', 'few': '1.5', 'own_key': '1250', 'older': None,
                     'no_size': None}
    config, _, _ = runfiles.read_note(loggers / 'own_key')
    assert (config['train_samples'], config['data.train_samples'], config['valid_samples']) == ('7', '1000', '250')
    header, *lines = runs.table(loggers, sort='samples_per_s').splitlines()
    assert header.split()[6:8] == ['s_per_epoch', 'samples_per_s']
    assert {'compile', 'train_samples', 'data.train_samples'} <= set(header.split())
    assert [line.split()[0] for line in lines][:4] == ['few', 'plain', 'own_key', 'compiled']  # by number


def test_runs_and_plot_answer_without_importing_torch(tmp_path):
    """`import torch` takes seconds; listing the runs and drawing a run's curves need none of it (runfiles.py)."""
    pytest.importorskip('matplotlib')
    folder = tmp_path / 'loggers' / '20260101_000000'
    hand_made_run(folder, {'lr': 0.001}, [0.8, 0.75], valid_metrics=[0.6, 0.7])
    printed = {}
    for command in (['runs.py'], ['plot.py', folder.name]):
        result = subprocess.run([sys.executable, '-X', 'importtime', str(PROJECT / command[0]), *command[1:]],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300)
        imported = {line.rsplit('|', 1)[-1].strip() for line in result.stderr.splitlines()
                    if line.startswith('import time:')}
        assert result.returncode == 0 and 'runfiles' in imported, result.stderr[-3000:]
        assert 'torch' not in imported, command
        printed[command[0]] = result.stdout
    assert printed['runs.py'].splitlines()[1].split()[:6] == [folder.name, 'finished', '2', '0.7500', '0.7000', '2']
    assert printed['plot.py'] == f"wrote {os.path.join('loggers', folder.name, 'curves.png')}\n"
    assert (folder / 'curves.png').read_bytes().startswith(b'\x89PNG')


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='no /dev/full to write to (Linux has one)')
def test_runs_and_plot_say_when_their_output_cannot_be_written_and_stop_quietly_when_its_reader_has_gone(tmp_path):
    pytest.importorskip('matplotlib')
    folder = tmp_path / 'loggers' / '20260101_000000'
    hand_made_run(folder, {'lr': 0.001}, [0.8, 0.75])
    for command in (['runs.py'], ['plot.py', folder.name]):
        def run_with(stdout, command=command):
            return subprocess.run([sys.executable, str(PROJECT / command[0]), *command[1:]], cwd=tmp_path,
                                  stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300)

        with open('/dev/full', 'w') as full:  # `python runs.py > runs.txt` on a full disk: the table is lost
            result = run_with(full)
        assert (result.returncode, result.stderr) == (
            2, 'error: cannot write to standard output (No space left on device); free some space\n'), command
        read, write = os.pipe()
        os.close(read)  # `python runs.py | head -1`: head has read its line and gone
        with os.fdopen(write, 'w') as gone:
            result = run_with(gone)
        assert (result.returncode, result.stderr) == (0, ''), command  # not 1 (or 120) with a BrokenPipeError
    assert (folder / 'curves.png').read_bytes().startswith(b'\x89PNG')


def test_plot_compares_runs_in_one_figure_labelled_with_what_differs(tmp_path, drawn_figures):
    loggers = tmp_path / 'loggers'
    common = {'seed': 1, 'batch_size': 64, 'dataset_dir': 'x', 'loggers_dir': 'y'}
    hand_made_run(loggers / 'a', {**common, 'lr': 0.001, 'dataset_dir': 'elsewhere'}, [0.9, 0.8])
    hand_made_run(loggers / 'b', {**common, 'lr': 0.01}, [0.7, 0.5, 0.6])
    (loggers / 'c').mkdir()  # no readable note.log, but metrics: its name alone
    shutil.copy(loggers / 'a' / 'metrics.csv', loggers / 'c')
    assert plot.run_labels([loggers / 'a', loggers / 'b', loggers / 'c']) == ['a (lr=0.001)', 'b (lr=0.01)', 'c']
    (loggers / 'new').mkdir()  # started, no epoch yet: left out
    output, left_out = plot.compare_runs([loggers / 'a', loggers / 'new', loggers / 'b'], tmp_path / 'sweep.png')
    assert output == tmp_path / 'sweep.png' and output.read_bytes().startswith(b'\x89PNG')
    assert left_out == [(loggers / 'new', 'no epochs yet')]
    loss_axes = drawn_figures[0].axes[0]
    labelled = {line.get_label(): list(line.get_ydata()) for line in loss_axes.get_lines()
                if not line.get_label().startswith('_')}
    assert labelled == {'a (lr=0.001)': [0.9, 0.8], 'b (lr=0.01)': [0.7, 0.5, 0.6]}  # valid losses, per run
    assert drawn_figures[0]._suptitle.get_text() == '2 runs: lowest valid loss 0.5 (b, epoch 2)'
    assert not list(tmp_path.glob('.sweep.png.*'))  # the temporary file became sweep.png


def test_a_comparison_against_time_puts_each_epoch_where_its_run_reached_it(tmp_path, drawn_figures, monkeypatch,
                                                                          capsys):
    loggers = tmp_path / 'loggers'
    hand_made_run(loggers / 'fast', {'amp': 'bf16'}, [0.9, 0.8, 0.7], seconds=[(30.0, 1.0), (20.0, 1.0), (20.0, 1.0)])
    hand_made_run(loggers / 'slow', {'amp': 'none'}, [0.85, 0.6, 0.65], seconds=[(60.0, 1.0)] * 3)
    monkeypatch.chdir(tmp_path)
    assert run_as_command('plot.py', ['fast', 'slow', '--x', 'time'], monkeypatch, capsys) == (
        0, 'wrote comparison.png\n', '')
    *panels, key = drawn_figures[0].axes
    assert {panel.get_xlabel() for panel in panels} == {'time (minutes: training and validation)'}  # 3 minutes at most
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in panels[0].get_lines()}
    assert drawn['fast (amp=bf16)'] == (pytest.approx([0.5, 50 / 60, 70 / 60]), [0.9, 0.8, 0.7])
    assert drawn['slow (amp=none)'] == ([1.0, 2.0, 3.0], [0.85, 0.6, 0.65])
    best_marks = [list(line.get_xdata()) for line in panels[0].get_lines() if line.get_marker() == 'o']
    assert best_marks == [pytest.approx([70 / 60]), [2.0]]  # each run's best epoch, at its own time
    assert plot.elapsed([{'epoch_seconds': [3600.0, 5400.0]}]) == ([[1.0, 2.5]], 'hours')
    assert plot.elapsed([{'epoch_seconds': [50.0, 70.0]}, {'epoch_seconds': [1.5]}]) == (
        [[50.0, 120.0], [1.5]], 'seconds')
    assert run_as_command('plot.py', ['fast', '--x', 'time'], monkeypatch, capsys) == (2, '', (
        "error: --x time is for a comparison of two or more runs (one run's curves.png is against epochs); name more "
        'runs, or leave --x out\n'))
    assert run_as_command('plot.py', ['fast', 'slow', '--output', 'by_epoch.png'], monkeypatch, capsys)[0] == 0
    assert drawn_figures[-1].axes[0].get_xlabel() == 'epoch'


def test_a_comparison_draws_the_gradient_norms_of_the_runs_that_measured_them(tmp_path, drawn_figures):
    hand_made_run(tmp_path / 'clipped', {'clip_flag': True}, [0.9, 0.8, 0.7], grad_norms=[2.5, 1.5, 1.25])
    hand_made_run(tmp_path / 'empty', {'clip_flag': False}, [0.9, 0.8], grad_norms=['', ''])  # as train.py writes it
    hand_made_run(tmp_path / 'older', {'clip_flag': False}, [0.6, 0.5])  # begun before the column existed
    plot.compare_runs([tmp_path / 'clipped', tmp_path / 'empty', tmp_path / 'older'], tmp_path / 'cmp.png')
    figure = drawn_figures[0]
    *panels, key = figure.axes
    assert [panel.get_title() for panel in panels[2:]] == ['learning rate', 'gradient norm (train, before clipping)']
    colours = {line.get_label(): line.get_color() for line in panels[0].get_lines()
               if not line.get_label().startswith('_')}
    drawn = [(line.get_color(), list(line.get_ydata())) for line in panels[3].get_lines()
             if any(math.isfinite(norm) for norm in line.get_ydata())]
    assert drawn == [(colours['clipped (clip_flag=True)'], [2.5, 1.5, 1.25])]  # in the run's own colour
    assert figure.get_figwidth() == pytest.approx(plot.PANELS_SIZE[0] * 4 / 3)  # the panels keep their width
    plot.compare_runs([tmp_path / 'empty', tmp_path / 'older'], tmp_path / 'none.png')  # no run measured one
    *panels, key = drawn_figures[1].axes
    assert [panel.get_title() for panel in panels[2:]] == ['learning rate']
    assert drawn_figures[1].get_figwidth() == pytest.approx(plot.PANELS_SIZE[0])


@pytest.mark.parametrize('n_runs', [3, 12])
def test_each_compared_run_has_a_colour_of_its_own(tmp_path, drawn_figures, n_runs):
    for i in range(n_runs):
        hand_made_run(tmp_path / f'run{i}', {'lr': i}, [0.9, 0.8])
    plot.compare_runs([tmp_path / f'run{i}' for i in range(n_runs)], tmp_path / 'cmp.png')
    colours = {line.get_label(): line.get_color() for line in drawn_figures[0].axes[0].get_lines()
               if not line.get_label().startswith('_')}
    assert len(colours) == n_runs and len({str(colour) for colour in colours.values()}) == n_runs


@pytest.mark.parametrize('n_runs, value_length', [(2, 10), (30, 10), (2, 300)])
def test_a_comparisons_legend_sits_under_the_panels_clear_of_every_curve(tmp_path, drawn_figures, n_runs,
                                                                         value_length):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for i in range(n_runs):  # labels as long as they get: four differing hyperparameters and '2 more'
        hand_made_run(tmp_path / f'20260101_1200{i:02d}', {'lr': 10.0 ** -i, 'batch_size': 2 ** i, 'seed': i,
                      'weight_decay': i / 1e4, 'augment': f'flip{i}'.rjust(value_length, '+'),
                      'clip_flag': i % 2 == 0}, [0.9, 0.8, 0.7], grad_norms=[3.0, 2.0, 1.0] if i % 2 == 0 else None)
    plot.compare_runs(sorted(tmp_path.iterdir()), tmp_path / 'cmp.png')
    figure = drawn_figures[0]
    canvas = FigureCanvasAgg(figure)  # closed figures lose theirs
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend()] + figure.legends
    assert len(legends) == 1 and len(legends[0].get_texts()) == n_runs
    key = legends[0].get_window_extent(renderer)
    assert figure.bbox.x0 <= key.x0 and key.x1 <= figure.bbox.x1 and figure.bbox.y0 <= key.y0  # nothing cut off
    panels = figure.axes[:-1]  # loss, metric, learning rate, gradient norm: their curves, ticks and titles
    assert len(panels) == 4
    for panel in panels:
        assert not key.overlaps(panel.get_tightbbox(renderer)), panel.get_title()


def test_a_comparison_names_at_most_four_differing_hyperparameters(tmp_path):
    hand_made_run(tmp_path / 'a', {f'k{i}': 1 for i in range(6)}, [0.5])
    hand_made_run(tmp_path / 'b', {f'k{i}': 2 for i in range(6)}, [0.5])
    assert plot.run_labels([tmp_path / 'a', tmp_path / 'b'])[1] == 'b (k0=2, k1=2, k2=2, k3=2, 2 more)'


def test_plot_command_compares_runs_and_never_replaces_a_file(tmp_path, monkeypatch, capsys):
    pytest.importorskip('matplotlib')
    hand_made_run(tmp_path / 'loggers' / 'a', {'lr': 0.001}, [0.9, 0.8])
    hand_made_run(tmp_path / 'loggers' / 'b', {'lr': 0.01}, [0.7, 0.5])
    (tmp_path / 'loggers' / 'new').mkdir()  # just started
    (tmp_path / 'loggers' / 'broken').mkdir()
    (tmp_path / 'loggers' / 'broken' / 'metrics.csv').write_text('epoch,loss\n1,0.5\n')
    (tmp_path / 'loggers' / 'sweep.png').write_text('an earlier --output loggers/sweep.png')  # loggers/* matches it
    monkeypatch.chdir(tmp_path)
    broken = os.path.join('loggers', 'broken')
    assert run_as_command('plot.py', ['a', 'loggers/b', 'new', 'broken', 'loggers/sweep.png'], monkeypatch, capsys) == (
        0, 'left out loggers/sweep.png: a file, not a run folder\n'
           f"left out {os.path.join('loggers', 'new')}: no epochs yet\n"
           f"left out {broken}: '{os.path.join(broken, 'metrics.csv')}' is damaged (no column 'step')\n"
           'wrote comparison.png\n', '')
    drawn = (tmp_path / 'comparison.png').read_bytes()
    for args, message in [
        (['a', 'b'], "error: 'comparison.png' already exists; pass another --output, or move it away"),
        (['a', 'loggers/a'], "error: run 'a' is given twice; name each run once"),
        (['loggers/sweep.png'], "error: no run 'loggers/sweep.png': pass a timestamp under loggers/ or a run's"),
        (['a', '--output', 'one.png'], "error: --output names a comparison of two or more runs; one run's figure is "
                                       'its curves.png'),
        (['a', 'b', '--output', 'no/such/x.png'], "error: cannot write 'no/such/x.png': the folder 'no/such' does not"),
        (['a', 'new', '--output', 'x.png'], "error: a comparison needs two runs that have finished an epoch; of these, "
                                            "only 'a' has"),
        (['a', 'b', '--output', ''], 'error: --output is empty (an unset shell variable?); give it a value, or leave '
                                     '--output out'),
        (['a', 'b', '--output', 'sweep.v2'], "error: cannot draw 'sweep.v2': not an image format matplotlib writes; "
                                             'end --output with one of '),
    ]:
        code, stdout, stderr = run_as_command('plot.py', args, monkeypatch, capsys)
        assert code == 2 and not stdout and stderr.startswith(message) and stderr.count('\n') == 1, (args, stderr)
    assert (tmp_path / 'comparison.png').read_bytes() == drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ['comparison.png', 'loggers']
    code, stdout, _ = run_as_command('plot.py', ['a', 'b', '--output', 'sweep.png'], monkeypatch, capsys)
    assert (code, stdout) == (0, 'wrote sweep.png\n')


def test_a_comparison_is_written_in_the_format_its_name_ends_with(tmp_path):
    pytest.importorskip('matplotlib')
    hand_made_run(tmp_path / 'a', {'lr': 0.001}, [0.9, 0.8])
    hand_made_run(tmp_path / 'b', {'lr': 0.01}, [0.7, 0.5])
    for output, written, starts in [('cmp.svg', 'cmp.svg', b'<?xml'), ('cmp.PDF', 'cmp.PDF', b'%PDF-'),
                                    ('cmp.jpg', 'cmp.jpg', b'\xff\xd8\xff'), ('cmp', 'cmp.png', b'\x89PNG')]:
        path, _ = plot.compare_runs([tmp_path / 'a', tmp_path / 'b'], tmp_path / output)
        assert path == tmp_path / written and path.read_bytes().startswith(starts), output
    with pytest.raises(RunError, match=r"'.*cmp\.png' already exists"):  # no suffix: the .png that is there
        plot.compare_runs([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'cmp')


def test_a_comparison_never_replaces_a_file_that_appears_while_drawing(tmp_path, monkeypatch):
    pytest.importorskip('matplotlib')
    from matplotlib.figure import Figure

    hand_made_run(tmp_path / 'a', {'lr': 0.001}, [0.9])
    hand_made_run(tmp_path / 'b', {'lr': 0.01}, [0.7])
    savefig = Figure.savefig

    def another_writer(figure, *args, **kwargs):  # another plot.py, or a user, writes the file first
        (tmp_path / 'cmp.png').write_text('theirs')
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, 'savefig', another_writer)
    with pytest.raises(RunError, match=r"'.*cmp\.png' appeared while drawing; pass another --output"):
        plot.compare_runs([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'cmp.png')
    assert (tmp_path / 'cmp.png').read_text() == 'theirs' and not list(tmp_path.glob('.cmp.png.*'))


@pytest.mark.draws_curves
def test_a_comparison_or_curves_that_cannot_be_written_are_a_one_line_error_leaving_no_file(tmp_path, monkeypatch):
    pytest.importorskip('matplotlib')
    from matplotlib.figure import Figure

    hand_made_run(tmp_path / 'a', {'lr': 0.001}, [0.9])
    hand_made_run(tmp_path / 'b', {'lr': 0.01}, [0.7])

    def full_disk(figure, *args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(Figure, 'savefig', full_disk)
    with pytest.raises(RunError, match=r"cannot write '.*cmp\.png' \(No space left on device\); free space, or pass"):
        plot.compare_runs([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'cmp.png')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a', 'b']

    def failing_disk(figure, *args, **kwargs):
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(Figure, 'savefig', failing_disk)  # not a full disk: freeing space is no advice
    with pytest.raises(RunError, match=r"cannot write '.*cmp\.png' \(Input/output error\); fix that, or pass "):
        plot.compare_runs([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'cmp.png')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a', 'b']
    with pytest.raises(RunError, match=r"^cannot write '.*a/curves\.png' \(Input/output error\); fix that, then python "
                                       r'plot\.py a$'):
        plot.plot_run(tmp_path / 'a')
    monkeypatch.setattr(Figure, 'savefig', full_disk)
    with pytest.raises(RunError, match=r"\(No space left on device\); free some space, then python plot\.py a$"):
        plot.plot_run(tmp_path / 'a')
