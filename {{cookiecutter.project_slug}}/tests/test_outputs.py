{%- set classification = cookiecutter.task == 'classification' -%}
"""What a run leaves to look at: metrics.csv, curves.png, tensorboard, provenance, runs.py, predict.py (runs.py and
plot.py over hand-made runs: test_runs_and_plots.py)."""

import builtins
import csv
import io
import itertools
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import tqdm.std

import plot
import predict
import runfiles
import runs
import train
import utils
from conftest import (
    PROJECT,
    SHOWN_E9,
    SMALL_MODEL,
{%- if cookiecutter.task == 'classification' %}
    TEST_DATA_CONFIG,
{%- endif %}
    epoch_lines,
    load,
    only_run,
    rows,
    run,
    run_as_command,
    snapshot,
)
{%- if cookiecutter.dataset == 'csv' %}
from dataset import DATA_CONFIG
{%- endif %}
from runfiles import METRICS_COLUMNS, OPTIONAL_METRICS_COLUMNS, RunError, read_metrics_rows
from test_faults import FillingFile
from test_runs_and_plots import hand_made_run
from test_train import WIDTH, ChangedSamples, ConstantModel, target_changed
from utils import provenance


def without(monkeypatch, package, error=None):
    """Make `import package` fail, as if it were not installed (or with `error`: installed, but failing to import)."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == package or name.startswith(package + '.'):
            raise error or ModuleNotFoundError(f'No module named {package!r}', name=package)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake_import)


def test_metrics_csv_has_one_row_per_epoch_and_resume_appends(workdir, data_args):
    assert run(data_args + ['--n_epoch', 2]) == 0
    logs, _ = only_run(workdir)
    assert run(['--resume', logs.name, '--n_epoch', 3]) == 0
    table = rows(logs / 'metrics.csv')
    assert list(table[0]) == list(METRICS_COLUMNS + OPTIONAL_METRICS_COLUMNS)
    assert [r['epoch'] for r in table] == ['1', '2', '3']
    assert all(float(r['epoch_seconds']) > 0 for r in table) and float(table[0]['lr']) > 0
    assert all(0 <= float(r['data_seconds']) < float(r['epoch_seconds']) for r in table), table
    # no validation in train_seconds (test_faults' mid-epoch stops show it apart): both are rounded to the
    # millisecond, and two validation batches of this size can take less
    assert all(0 < float(r['train_seconds']) <= float(r['epoch_seconds']) for r in table), table
    train_seconds = statistics.median(float(r['train_seconds']) for r in table)
    assert float(runs.summarize(logs)[0]['samples_per_s']) == pytest.approx(128 / train_seconds, rel=0.01)
    val = (logs / 'val.log').read_text()
    assert f"loss {float(table[-1]['valid_loss']):.6f}" in val
    assert not (logs / 'traceback.txt').exists()  # opened for a crash's stack, removed when none came


def test_epochs_trained_again_after_a_resume_from_an_earlier_point_replace_the_logged_ones(workdir, data_args):
    assert run(data_args + ['--n_epoch', 2]) == 0
    logs, ckpts = only_run(workdir)
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'epoch2.pt')
    assert run(['--resume', logs.name, '--n_epoch', 3]) == 0
    os.replace(workdir / 'epoch2.pt', ckpts / 'latest_checkpoint.pt')  # as if killed after epoch 3's log line
    assert run(['--resume', logs.name, '--n_epoch', 3, '--lr', 3e-3]) == 0  # epoch 3 again, another way
    table = rows(logs / 'metrics.csv')
    assert [row['epoch'] for row in table] == ['1', '2', '3', '3']  # the file keeps every row
    metrics = plot.read_metrics(logs)
    assert metrics['epoch'] == [1, 2, 3]
    assert metrics['valid_loss'] == [float(row['valid_loss']) for row in table[:2] + table[3:]]
    assert runs.summarize(logs)[0]['epochs'] == '3'
    best = min(table[:2] + table[3:], key=lambda row: float(row['valid_loss']))
    assert runs.summarize(logs)[0]['best_epoch'] == best['epoch']


def test_a_row_cut_short_by_a_crash_is_skipped_and_the_resumed_run_logs_that_epoch_on_a_line_of_its_own(workdir,
                                                                                                      data_args):
    assert run(data_args + ['--n_epoch', 2]) == 0
    logs, _ = only_run(workdir)
    for name, cut in (('metrics.csv', '3,24,0.4'), ('val.log', '2026-01-01 12:00:00 | epoch 3 st')):
        with open(logs / name, 'a', newline='') as f:  # killed (or the disk full) while logging epoch 3
            f.write(cut)
    assert [row['epoch'] for row in read_metrics_rows(logs / 'metrics.csv')] == ['1', '2']
    summary = runs.summarize(logs)[0]
    assert summary['epochs'] == '2' and 'damaged' not in summary['status']
    assert run(['--resume', logs.name, '--n_epoch', 3]) == 0  # epoch 3 had no checkpoint: trained and logged again
    lines = (logs / 'metrics.csv').read_text().splitlines()
    assert lines[-2] == '3,24,0.4' and lines[-1].count(',') == len(METRICS_COLUMNS + OPTIONAL_METRICS_COLUMNS) - 1
    table = read_metrics_rows(logs / 'metrics.csv')
    assert [row['epoch'] for row in table] == ['1', '2', '3'] and plot.read_metrics(logs)['epoch'] == [1, 2, 3]
    val_lines = (logs / 'val.log').read_text().splitlines()
    cut = val_lines.index('2026-01-01 12:00:00 | epoch 3 st')  # the resumed run's lines follow on lines of their own
    assert 'resumed from' in val_lines[cut + 1] and re.match(r'\d{4}-\d\d-\d\d ', val_lines[cut + 1])
    logged = f"epoch 3 step {table[-1]['step']} loss {float(table[-1]['valid_loss']):.6f}"
    assert any(logged in line for line in val_lines[cut + 1:])


@pytest.mark.draws_curves
def test_grad_norm_is_each_epochs_mean_norm_before_clipping(workdir, data_args, monkeypatch, drawn_figures):
    norms, clip = [], torch.nn.utils.clip_grad_norm_

    def recording(*args, **kwargs):
        norm = clip(*args, **kwargs)
        norms.append(norm.item())
        return norm

    monkeypatch.setattr(torch.nn.utils, 'clip_grad_norm_', recording)
    assert run(data_args + ['--n_epoch', 2, '--clip_max_norm', 0.01]) == 0
    logs, _ = only_run(workdir)
    table = rows(logs / 'metrics.csv')
    steps = [0] + [int(row['step']) for row in table]
    means = [sum(norms[start:end]) / (end - start) for start, end in zip(steps, steps[1:])]
    assert len(norms) == steps[-1] and min(norms) > 0.01  # one per optimizer step, each taken before clipping
    assert [float(row['grad_norm']) for row in table] == pytest.approx(means, rel=1e-12)
    assert [line.split(' grad_norm ')[1] for line in epoch_lines(logs / 'train.log')] == [f'{m:.6f}' for m in means]
    figure = drawn_figures[-1]  # curves.png's
    assert [ax.get_title() for ax in figure.axes][-1] == 'gradient norm (before clipping)'
    assert list(figure.axes[-1].get_lines()[0].get_ydata()) == pytest.approx(means, rel=1e-12)


@pytest.mark.draws_curves
def test_without_clipping_no_grad_norm_is_measured_and_the_curves_leave_its_panel_out(workdir, data_args,
                                                                                     drawn_figures):
    assert run(data_args + ['--n_epoch', 2, '--clip_flag', 'false']) == 0
    logs, _ = only_run(workdir)
    assert [row['grad_norm'] for row in rows(logs / 'metrics.csv')] == ['', '']
    lines = epoch_lines(logs / 'train.log')
    assert len(lines) == 2 and not any('grad_norm' in line for line in lines)
    assert [ax.get_title() for ax in drawn_figures[-1].axes] == ['loss', plot.METRIC_LABEL, 'learning rate']


def test_a_metrics_csv_begun_without_grad_norm_keeps_its_columns_when_a_resume_appends(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    with open(logs / 'metrics.csv', newline='', encoding='utf-8') as f:
        begun = [line[:len(METRICS_COLUMNS)] for line in csv.reader(f)]
    with open(logs / 'metrics.csv', 'w', newline='', encoding='utf-8') as f:
        csv.writer(f).writerows(begun)  # as the code before grad_norm wrote it
    assert run(['--resume', logs.name, '--n_epoch', 2]) == 0
    lines = (logs / 'metrics.csv').read_text().splitlines()
    assert lines[:2] == [','.join(line) for line in begun] and lines[2].count(',') == len(METRICS_COLUMNS) - 1
    assert [row['epoch'] for row in read_metrics_rows(logs / 'metrics.csv')] == ['1', '2']
    metrics = plot.read_metrics(logs)
    assert metrics['epoch'] == [1, 2] and all(math.isnan(norm) for norm in metrics['grad_norm'])
    assert runs.summarize(logs)[0]['epochs'] == '2'


@pytest.mark.draws_curves
def test_curves_png_at_the_end_of_a_run_and_on_demand(workdir, data_args):
    pytest.importorskip('matplotlib')
    assert run(data_args + ['--n_epoch', 3]) == 0
    logs, _ = only_run(workdir)
    png = logs / 'curves.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    png.unlink()
    result = subprocess.run([sys.executable, str(PROJECT / 'plot.py'), logs.name], cwd=workdir, capture_output=True,
                            text=True)
    assert result.returncode == 0 and png.exists(), result.stderr
    with pytest.raises(RunError, match="no run 'no_such_run'"):
        runfiles.resolve_run('no_such_run')


@pytest.mark.draws_curves
def test_curves_that_cannot_be_written_are_a_one_line_message_not_a_failed_run(workdir, data_args, monkeypatch):
    pytest.importorskip('matplotlib')
    draw = plot.plot_run

    def blocked(folder):  # curves.png is a folder: savefig fails as on a full disk or a read-only folder
        (Path(folder) / 'curves.png').mkdir()
        (Path(folder) / 'curves.png' / 'kept.txt').write_text('mine')
        return draw(folder)

    monkeypatch.setattr(plot, 'plot_run', blocked)
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    assert (logs / 'curves.png' / 'kept.txt').read_text() == 'mine'
    last = (logs / 'train.log').read_text().splitlines()[-1]
    assert last.endswith(f"no curves.png: cannot write 'loggers/{logs.name}/curves.png' (Is a directory); fix that, "
                         f'then python plot.py {logs.name}')


def test_a_plotting_bug_is_a_log_line_and_the_run_still_succeeds(workdir, data_args, monkeypatch):
    def broken(folder):
        raise ValueError('bad axis')

    monkeypatch.setattr(plot, 'plot_run', broken)
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    last = (logs / 'train.log').read_text().splitlines()[-1]
    assert last.endswith(f'no curves.png: drawing failed (ValueError: bad axis); python plot.py {logs.name} '
                         'shows the traceback')


def test_without_matplotlib_the_run_finishes_and_says_how_to_get_curves(workdir, data_args, monkeypatch):
    without(monkeypatch, 'matplotlib')
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    assert not (logs / 'curves.png').exists()
    assert f'pip install matplotlib, then python plot.py {logs.name}' in (logs / 'train.log').read_text()


def test_a_matplotlib_that_fails_to_import_is_named_so_not_as_missing(workdir, data_args, monkeypatch, capsys):
    # one built for NumPy 1 next to NumPy 2 (matplotlib 3.5, say): before, "matplotlib is not installed"
    without(monkeypatch, 'matplotlib', ImportError('\nnumpy.core.multiarray failed to import\n'))
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    problem = 'matplotlib fails to import (numpy.core.multiarray failed to import); pip install --upgrade matplotlib'
    assert f'no curves.png: {problem}, then python plot.py {logs.name}' in (logs / 'train.log').read_text()
    capsys.readouterr()  # the run's own output
    assert run_as_command('plot.py', [logs.name], monkeypatch, capsys) == (2, '', f'error: {problem}\n')


def test_bars_in_a_file_are_lines_a_minute_apart_and_at_a_terminal_as_tqdm_draws_them(workdir, data_args, monkeypatch,
                                                                                     capsys):
    for key in ('TQDM_MININTERVAL', 'TQDM_MAXINTERVAL', 'TQDM_DELAY'):
        monkeypatch.delenv(key, raising=False)

    def bars(is_terminal, seconds_per_look):
        clock = itertools.count(0.0, seconds_per_look)  # tqdm's clock moves this much at each look
        monkeypatch.setattr(tqdm.std, 'time', lambda: next(clock))
        monkeypatch.setattr(sys.stderr, 'isatty', lambda: is_terminal)
        where = f'{is_terminal}_{seconds_per_look:g}'
        capsys.readouterr()
        assert run(data_args + ['--n_epoch', '1', '--loggers_dir', f'loggers/{where}', '--checkpoints_dir',
                                f'checkpoints/{where}']) == 0
        return capsys.readouterr().err

    at_terminal = bars(True, 1.0)  # tqdm's 0.1 s: a redraw at each of the 8 or so batches, over the last one
    assert at_terminal.count('epoch 1/1 train') >= 5 and '\r' in at_terminal, at_terminal
    assert 'epoch 1/1 train' not in bars(False, 1.0)  # in a file, a loop done within its first minute draws nothing
    in_a_file = bars(False, 60.0)  # a look each minute: a redraw at each batch, each a line of its own
    lines = [line for line in in_a_file.split('\n') if 'epoch 1/1 train' in line]
    assert len(lines) >= 5 and '\r' not in in_a_file, in_a_file
    assert all(re.fullmatch(r'epoch 1/1 train: +\d+%\|.*\]', line) for line in lines), lines
    valid = [line for line in in_a_file.split('\n') if 'epoch 1 valid' in line]  # with its total, so a percentage
    assert valid and all(re.fullmatch(r'epoch 1 valid: +\d+%\|.*\]', line) for line in valid), in_a_file
    assert not [line for line in in_a_file.split('\n') if line and not line.strip()], in_a_file  # no blank clearing


def test_bars_in_a_pipe_take_their_rate_and_delay_from_tqdms_variables(monkeypatch):
    # the README's `TQDM_MININTERVAL=1 TQDM_DELAY=0 python train.py 2>&1 | tee run.log`
    monkeypatch.setattr(sys.stderr, 'isatty', lambda: False)
    monkeypatch.setenv('TQDM_MININTERVAL', '1')
    monkeypatch.setenv('TQDM_DELAY', '0')
    monkeypatch.delenv('TQDM_MAXINTERVAL', raising=False)
    options = utils.bar_options()
    assert sorted(options) == ['file', 'maxinterval'] and isinstance(options['file'], utils.BarLines), options


def test_a_nested_bar_in_a_file_is_lines_too():
    # a bar of your own inside another (position=1) moves the cursor down, redraws, and moves it back up
    stream = io.StringIO()
    for _ in tqdm.std.tqdm(range(2), desc='outer', file=utils.BarLines(stream), mininterval=0):
        for _ in tqdm.std.tqdm(range(3), desc='inner', file=utils.BarLines(stream), position=1, leave=False,
                               mininterval=0):
            pass
    lines = stream.getvalue().split('\n')
    assert lines.pop() == '' and {line.split(':')[0] for line in lines} == {'outer', 'inner'}, lines
    assert all(re.fullmatch(r'(outer|inner): +\d+%\|.*\]', line) for line in lines), lines


def test_the_console_shows_each_log_line_and_names_the_log_of_a_timed_one(workdir, data_args, capsys):
    capsys.readouterr()
    assert run(data_args + ['--n_epoch', 2]) == 0
    logs, _ = only_run(workdir)
    console = capsys.readouterr().out.splitlines()
    for name, label in (('train.log', 'train'), ('val.log', 'val  ')):  # their epoch lines read alike
        lines = (logs / name).read_text().splitlines()
        assert len(lines) >= 2, lines
        for line in lines:
            time_stamp, message = line.split(' | ', 1)
            assert f'{time_stamp} | {label} | {message}' in console, (line, console)
    note = (logs / 'note.log').read_text().splitlines()
    assert note[-1].startswith('status: finished') and note[-1] in console  # untimed, as in the file


class Unwritable(io.StringIO):
    """A console that raises `error` at every write: stdout on a full disk, or a pipe whose reader has gone."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def write(self, text):
        raise self.error


def test_a_console_that_lacks_a_character_prints_it_escaped_and_the_log_keeps_it(tmp_path, monkeypatch, capsys):
    # a console in a Windows code page, or a batch job's output in a Latin-1 locale: no box lines in it
    console = io.TextIOWrapper(io.BytesIO(), encoding='cp1252', errors='strict', write_through=True)
    monkeypatch.setattr(sys, 'stdout', console)
    logger = utils.create_logger('note', tmp_path / 'note.log', show_time=False)
    logger.info('\u251c\u2500Linear: 1-1 caf\xe9')
    logger.info('next')
    utils.close_logger(logger)
    assert console.buffer.getvalue() == b'\\u251c\\u2500Linear: 1-1 caf\xe9\nnext\n'
    assert (tmp_path / 'note.log').read_text(encoding='utf-8') == '\u251c\u2500Linear: 1-1 caf\xe9\nnext\n'
    assert 'Logging error' not in capsys.readouterr().err
    runfiles.to_stdout('run \u4e2d in caf\udce9')  # what train.py prints outside the logs: a run name, a file name
    assert console.buffer.getvalue().endswith(b'next\nrun \\u4e2d in caf\\udce9\n')
    # a batch job's output file on a full disk: the run goes on without the line
    monkeypatch.setattr(sys, 'stdout', Unwritable(OSError(28, 'No space left on device')))
    runfiles.to_stdout('run \u4e2d')


def test_tensorboard_holds_the_epoch_scalars_and_the_model_graph(workdir, data_args, recwarn):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert run(data_args + ['--n_epoch', 2, '--tensorboard', 'true']) == 0
    assert not [w for w in recwarn if issubclass(w.category, torch.jit.TracerWarning)]  # no console noise from tracing
    logs, _ = only_run(workdir)
    events = EventAccumulator(str(logs / 'tb'))
    events.Reload()
{%- if cookiecutter.model == 'transformer' %}
    # torch.jit.trace's sanity check fails on nn.TransformerEncoder, so there is no graph, and train.log says so
    assert not events.Tags()['graph']
    assert 'tensorboard: no model graph (Tracing failed sanity checks!)' in (logs / 'train.log').read_text()
{%- else %}
    assert events.Tags()['graph'] and 'Linear' in str(events.Graph())
{%- endif %}
    metrics = rows(logs / 'metrics.csv')
    for tag, column in [('loss/train', 'train_loss'), ('loss/valid', 'valid_loss'), ('metric/valid', 'valid_metric'),
                        ('lr', 'lr'), ('grad_norm/train', 'grad_norm'), ('time/epoch_seconds', 'epoch_seconds'),
                        ('time/data_seconds', 'data_seconds'), ('time/train_seconds', 'train_seconds')]:
        scalars = events.Scalars(tag)
        assert [e.step for e in scalars] == [1, 2], tag
        assert [e.value for e in scalars] == pytest.approx([float(r[column]) for r in metrics], rel=1e-5), tag


def test_tensorboard_shows_each_epoch_once_after_a_resume_trains_logged_epochs_again(workdir, data_args):
    """A hard kill after epoch 4, whose last save was at epoch 2: the resume trains epochs 3 and 4 again (here with
    another lr). Tensorboard's own reader (the one `tensorboard --load_fast false` and Windows use) showed both."""
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    args = data_args + ['--tensorboard', 'true']
    assert run(args + ['--n_epoch', 2]) == 0
    logs, ckpts = only_run(workdir)
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'epoch2.pt')
    assert run(['--resume', ckpts.name, '--n_epoch', 4]) == 0
    os.replace(workdir / 'epoch2.pt', ckpts / 'latest_checkpoint.pt')  # as if the run was killed after epoch 4
    assert run(['--resume', ckpts.name, '--n_epoch', 4, '--lr', 0.002]) == 0
    metrics = read_metrics_rows(logs / 'metrics.csv')  # the epochs trained again replace those logged before
    assert [row['epoch'] for row in metrics] == ['1', '2', '3', '4']
    events = EventAccumulator(str(logs / 'tb'))
    events.Reload()
    for tag, column in [('loss/train', 'train_loss'), ('loss/valid', 'valid_loss'), ('lr', 'lr')]:
        scalars = events.Tensors(tag)
        assert [e.step for e in scalars] == [1, 2, 3, 4], tag
        assert [float(make_ndarray(e.tensor_proto)) for e in scalars] == pytest.approx(
            [float(row[column]) for row in metrics], rel=1e-5), tag


@pytest.mark.parametrize('version, warned', [('2.11.2', True), ('2.12.0', False), ('2.20.0a20250101', False)])
def test_a_tensorboard_that_hangs_on_a_full_disk_is_a_warning(workdir, data_args, monkeypatch, version, warned):
    # before 2.12 its writer thread ends on a failed write without a word, and the next flush waits for it for ever
    tensorboard = pytest.importorskip('tensorboard')
    monkeypatch.setattr(tensorboard, '__version__', version)
    assert run(data_args + ['--n_epoch', 1, '--tensorboard', 'true']) == 0
    logs, _ = only_run(workdir)
    line = (f"warning: tensorboard {version}'s writer hangs the run if the disk fills up (fixed in 2.12); pip install "
            "-U 'tensorboard>=2.12'")
    assert (line in (logs / 'train.log').read_text()) == warned
    assert list((logs / 'tb').glob('events.out.tfevents.*'))  # the scalars are written all the same


@pytest.mark.parametrize('error, problem', [
    # what torch.utils.tensorboard raises without the package: its `import tensorboard` fails
    (ModuleNotFoundError("No module named 'tensorboard'", name='tensorboard'),
     'tensorboard is not installed, so nothing goes to tb/: pip install tensorboard'),
    # one built for another protobuf: before, this TypeError ended the run with a traceback
    (TypeError('Descriptors cannot be created directly.\nIf this call came from a _pb2.py file, ...'),
     'tensorboard fails to import (Descriptors cannot be created directly.), so nothing goes to tb/: '
     'pip install --upgrade tensorboard'),
], ids=['missing', 'failing'])
def test_without_a_working_tensorboard_the_run_finishes_with_a_clear_line(workdir, data_args, monkeypatch, error,
                                                                          problem):
    without(monkeypatch, 'torch.utils.tensorboard', error)
    assert run(data_args + ['--n_epoch', 1, '--tensorboard', 'true']) == 0
    logs, _ = only_run(workdir)
    assert f'{problem}, or pass --tensorboard false' in (logs / 'train.log').read_text()
    assert not (logs / 'tb').exists()


def test_note_log_records_provenance(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    note = (logs / 'note.log').read_text()
    for key in ('command', 'git', 'python', 'torch', 'cuda', 'device', 'host', 'world_size: 1'):
        assert f'    {key}' in note
    assert f'torch: {torch.__version__}' in note


def test_a_datasets_warnings_go_to_train_log_as_a_run_starts_not_on_resume_and_predict_prints_them(
        workdir, data_args, monkeypatch, capsys):
    build_datasets, build_predict_dataset = train.build_datasets, predict.build_predict_dataset
    warning = "warning: a line of the data's own"

    def with_warnings(dataset):
        getattr(dataset, 'dataset', dataset).warnings = [warning]  # the dataset behind a split
        return dataset

    monkeypatch.setattr(train, 'build_datasets', lambda config: [with_warnings(d) for d in build_datasets(config)])
    monkeypatch.setattr(predict, 'build_predict_dataset',
                        lambda *args, **kwargs: with_warnings(build_predict_dataset(*args, **kwargs)))
    assert run(data_args + ['--n_epoch', 1, '--run_name', 'first']) == 0
    log = workdir / 'loggers' / 'first' / 'train.log'
    assert [line.split(' | ')[-1] for line in log.read_text().splitlines() if 'of the data' in line] == [warning]
    assert run(data_args + ['--n_epoch', 2, '--resume', 'first']) == 0
    assert log.read_text().count(warning) == 1
    capsys.readouterr()
    data = {{ "None" if cookiecutter.dataset == 'synthetic' else "str(workdir / 'data')" }}
    predict.predict(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt', data, workdir / 'p.csv')
    assert capsys.readouterr().err.splitlines()[0] == warning


def test_note_log_records_the_splits_sizes_and_runs_py_shows_them_where_runs_differ(workdir, data_args):
    # the same options on a data folder that has grown differ only there: dataset_dir is where a run trains, not how
    assert run(data_args + ['--n_epoch', 1, '--run_name', 'fifth']) == 0
    assert run(data_args + ['--n_epoch', 1, '--run_name', 'quarter', '--valid_ratio', 0.25]) == 0
    header, *lines = runs.table(workdir / 'loggers', sort='run').splitlines()
    assert {'train_samples', 'valid_samples'} <= set(header.split())
    sizes = {}
    for line in lines:
        row = dict(zip(header.split(), line.split(), strict=True))
        data = load(workdir / 'checkpoints' / row['run'] / 'latest_checkpoint.pt')['data']  # len() of each split
        note = (workdir / 'loggers' / row['run'] / 'note.log').read_text()
        assert f"\ndata:\n    train_samples: {data['train']}\n    valid_samples: {data['valid']}\nprovenance:\n" in note
        sizes[row['run']] = (row['train_samples'], row['valid_samples'])
        assert sizes[row['run']] == (str(data['train']), str(data['valid']))
    assert len(sizes) == 2 and sizes['fifth'] != sizes['quarter']
    assert run(['--resume', 'fifth', '--n_epoch', 2]) == 0  # same data: a resume does not write them again
    assert (workdir / 'loggers' / 'fifth' / 'note.log').read_text().count('\ndata:\n') == 1


def test_note_log_keeps_every_line_when_a_value_is_not_utf_8(workdir, data_args, monkeypatch, capsys):
    # a file name's byte that is not UTF-8 (an old archive's Latin-1 'cafe') reaches Python as a surrogate
    name = os.fsdecode(b'caf\xe9.json')
    (workdir / name).write_text('{"lr": 0.002}')
    argv = [str(arg) for arg in data_args + ['--config', name, '--n_epoch', 1]]
    monkeypatch.setattr(sys, 'argv', ['train.py', *argv])
    assert run(argv) == 0
    logs, _ = only_run(workdir)
    note = (logs / 'note.log').read_text(encoding='utf-8')
    assert '\nconfig:\n' in note and '    lr: 0.002\n' in note and '\nprovenance:\n' in note
    assert f"--config 'caf{SHOWN_E9}.json'" in note  # escaped, as Python writes the surrogate
    out, err = capsys.readouterr()
    assert f"--config 'caf{SHOWN_E9}.json'" in out and 'Logging error' not in err  # the console's lines too


def test_provenance_names_the_slurm_job_under_slurm(monkeypatch):
    monkeypatch.delenv('SLURM_JOB_ID', raising=False)
    assert 'slurm_job' not in provenance(torch.device('cpu'), 1)
    monkeypatch.setenv('SLURM_JOB_ID', '4242')
    assert provenance(torch.device('cpu'), 1)['slurm_job'] == '4242'


def test_provenance_names_the_commit_and_whether_it_is_dirty(tmp_path):
    git = ['git', '-c', 'user.name=t', '-c', 'user.email=t@t', '-C', str(tmp_path)]
    subprocess.run(git[:5] + ['init', '-q', str(tmp_path)], check=True)
    (tmp_path / 'a.txt').write_text('a')
    subprocess.run(git + ['add', '.'], check=True)
    subprocess.run(git + ['commit', '-qm', 'a'], check=True)
    commit = subprocess.run(git + ['rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()
    assert provenance(torch.device('cpu'), 1, project=tmp_path)['git'] == f'{commit} (clean)'
    (tmp_path / 'a.txt').write_text('b')
    assert provenance(torch.device('cpu'), 1, project=tmp_path)['git'] == f'{commit} (dirty: uncommitted changes)'
    assert provenance(torch.device('cpu'), 1, project=tmp_path / 'nowhere')['git'] == 'not a git repository'


def test_provenance_does_not_call_a_tree_clean_when_git_status_fails(monkeypatch):
    monkeypatch.setattr(utils, '_git', lambda folder, *args: 'abc123' if args[0] == 'rev-parse' else None)
    assert provenance(torch.device('cpu'), 1)['git'] == 'abc123 (unknown: git status failed)'


def test_runs_table_lists_every_run_and_survives_broken_folders(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train.time, 'strftime', lambda fmt, *a: '20260101_000000' if '%Y%m%d' in fmt else 'now')
    assert run(data_args + ['--n_epoch', 2, '--lr', 1e-3]) == 0
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))
    monkeypatch.setattr(train.time, 'strftime', lambda fmt, *a: '20260102_000000' if '%Y%m%d' in fmt else 'now')
    assert run(data_args + ['--n_epoch', 9, '--early_stop', 1]) == 0
    (workdir / 'loggers' / '20260103_000000').mkdir()  # damaged: logs, but no note.log
    (workdir / 'loggers' / '20260103_000000' / 'train.log').write_text('')
    partial = workdir / 'loggers' / '20260104_000000'
    partial.mkdir()
    (partial / 'note.log').write_text('run cut short\n')
    (workdir / 'loggers' / '20260105_000000').mkdir()  # a run that stopped (or is) before 3.10 opens the logs
    (workdir / 'loggers' / '20260105_000000' / runfiles.HEARTBEAT_FILE).write_text('{}')  # made in 3.5
    for name, metrics in (('20260106_000000', b'epoch,step\n1,4\n'), ('20260107_000000', b'\xff\xfe\x00epoch')):
        shutil.copytree(workdir / 'loggers' / '20260101_000000', workdir / 'loggers' / name)
        (workdir / 'loggers' / name / 'metrics.csv').write_bytes(metrics)  # a column missing; not UTF-8
    text = runs.table(workdir / 'loggers', sort='run')
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    header = text.splitlines()[0].split()
    assert header[:6] == ['run', 'status', 'epochs', 'valid_loss', f'valid_{train.METRIC_NAME}', 'best_epoch']
    assert 'lr' in header and 'n_epoch' in header and 'seed' not in header  # only what differs
    assert lines['20260101_000000'].split()[1:3] == ['finished', '2']
    assert lines['20260102_000000'].split()[1:3] == ['early-stopped', '2']
    assert 'corrupt' in lines['20260103_000000'] and 'partial' in lines['20260104_000000']
    assert lines['20260105_000000'].split()[1:] == ['empty', '(starting,', 'or', 'stopped', 'before', 'its', 'logs)']
    for name in ('20260106_000000', '20260107_000000'):
        assert lines[name].split()[1:4] == ['finished', '(metrics.csv', 'damaged)']
    by_loss = [line.split()[0] for line in runs.table(workdir / 'loggers', sort='valid_loss').splitlines()[1:3]]
    losses = {name: float(lines[name].split()[3]) for name in ('20260101_000000', '20260102_000000')}
    assert by_loss == sorted(losses, key=losses.get)
    with pytest.raises(RunError, match="cannot sort by 'nope'"):
        runs.table(workdir / 'loggers', sort='nope')


def test_plot_runs_and_predict_given_the_other_folder_of_a_run_say_where_to_look(workdir, data_args, monkeypatch,
                                                                                 capsys):
    assert run(data_args + ['--n_epoch', 1]) == 0
    name = only_run(workdir)[0].name
    before, _ = snapshot(workdir), capsys.readouterr()
    not_logs = f"error: 'checkpoints/{name}' holds a run's checkpoints, not its logs, which are in 'loggers/{name}': " \
               f'pass {name}\n'
    for command, message in [
        (['plot.py', f'checkpoints/{name}'], not_logs),
        (['plot.py', f'loggers/{name}', f'checkpoints/{name}'], not_logs),
        (['runs.py', '--loggers', 'checkpoints'], "error: 'checkpoints' holds runs' checkpoints, not their logs; pass "
                                                  'their loggers folder, such as --loggers loggers\n'),
        (['predict.py', '--run', f'loggers/{name}'], f"error: 'loggers/{name}' is a run's loggers folder; its "
                                                     f"checkpoints are in 'checkpoints/{name}': pass --run "
                                                     f'checkpoints/{name}\n'),
    ]:
        code, stdout, stderr = run_as_command(command[0], command[1:], monkeypatch, capsys)
        assert (code, stdout, stderr) == (2, '', message), command
    assert snapshot(workdir) == before
    assert run_as_command('plot.py', [name], monkeypatch, capsys)[0] == 0  # what it names


def test_plot_and_predict_without_a_run_suggest_the_newest(workdir, data_args, monkeypatch, capsys):
    assert run(data_args + ['--n_epoch', 1, '--run_name', 'older']) == 0
    assert run(data_args + ['--n_epoch', 1, '--run_name', 'newer']) == 0
    capsys.readouterr()
    for name in ('older', 'newer'):  # an mtime decides, not the name
        for file in (workdir / 'loggers' / name / 'metrics.csv', workdir / 'checkpoints' / name / 'best_checkpoint.pt'):
            os.utime(file, (1e9, 1e9 + (name == 'older')))
    assert run_as_command('plot.py', [], monkeypatch, capsys) == (
        2, '', 'error: name a run to draw, or two or more to compare; the newest run here: python plot.py older\n')
    assert run_as_command('predict.py', [], monkeypatch, capsys) == (
        2, '', 'error: pass --run <timestamp> (its best checkpoint) or --checkpoint <file>; the newest run here: '
               'python predict.py --run older\n')


def test_runs_left_in_the_project_folder_are_named_when_a_script_starts_from_another(tmp_path, monkeypatch, capsys):
    # `python my_project/predict.py --run a` from the folder above looks for ./checkpoints, ./loggers (and a
    # --checkpoint or --config file) there
    project, elsewhere = tmp_path / 'project', tmp_path / 'elsewhere'
    hand_made_run(project / 'loggers' / 'a', {'lr': 0.001}, [0.9, 0.8])
    (project / 'checkpoints' / 'a').mkdir(parents=True)
    (project / 'checkpoints' / 'a' / 'best_checkpoint.pt').write_bytes(b'')
    elsewhere.mkdir()
    monkeypatch.setattr(runfiles, 'PROJECT_FOLDER', project.resolve())
    monkeypatch.chdir(elsewhere)
    note = f'(paths are relative to the folder you are in, {elsewhere.resolve()}; '
    with pytest.raises(RunError) as error:
        predict.find_checkpoint('a', None)
    assert str(error.value).endswith(
        f"{note}'{project.resolve() / 'checkpoints' / 'a'}' exists: cd {project.resolve()} first)")
    with pytest.raises(RunError) as error:
        predict.predict('checkpoints/a/best_checkpoint.pt')
    assert f"{note}'{project.resolve() / 'checkpoints' / 'a' / 'best_checkpoint.pt'}' exists: cd " in str(error.value)
    (project / 'exp.json').write_text('{}')
    with pytest.raises(RunError) as error:
        utils.parse_args({'lr': 0.1}, ['--config', 'exp.json'])
    assert f"{note}'{project.resolve() / 'exp.json'}' exists: cd {project.resolve()} first); pass a JSON" in str(
        error.value)
    with pytest.raises(RunError) as error:
        runfiles.resolve_run('a')
    assert str(error.value).endswith(
        f"{note}'{project.resolve() / 'loggers' / 'a'}' exists: cd {project.resolve()} first)")
    code, _, stderr = run_as_command('runs.py', [], monkeypatch, capsys)
    assert code == 2 and f"error: no 'loggers' folder here {note}'{project.resolve() / 'loggers'}' exists" in stderr
    with pytest.raises(RunError) as error:  # in neither folder: no note
        runfiles.resolve_run('b')
    assert note not in str(error.value)
    shutil.rmtree(project / 'loggers')
    monkeypatch.chdir(project)  # a project that has no run yet
    assert run_as_command('runs.py', [], monkeypatch, capsys) == (
        2, '', "error: no 'loggers' folder here; no run has started here yet: python train.py starts one\n")
    assert run_as_command('runs.py', ['--loggers', 'old_runs'], monkeypatch, capsys) == (
        2, '', "error: no 'old_runs' folder here; run from the project folder or pass --loggers\n")
    # the project folder is the scripts' own: started from elsewhere, plot.py names its tests/ folder
    result = subprocess.run([sys.executable, str(PROJECT / 'plot.py'), 'tests'], cwd=elsewhere, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert f"'{PROJECT.resolve() / 'tests'}' exists: cd {PROJECT.resolve()} first)" in result.stderr


def test_predict_writes_the_table_its_output_names(workdir, data_args, monkeypatch, capsys):
    assert run(data_args + ['--n_epoch', 1]) == 0
    _, ckpts = only_run(workdir)
    data = {{ "None" if cookiecutter.dataset == 'synthetic' else "str(workdir / 'data')" }}
    n, _, _ = predict.predict(ckpts / 'best_checkpoint.pt', data, workdir / 'p.tsv')
    with open(workdir / 'p.tsv', newline='', encoding='utf-8') as f:
        table = list(csv.reader(f, delimiter='\t'))
    assert table[0][:2] == ['id', 'prediction'] and len(table) == n + 1
    assert all(len(row) == len(table[0]) for row in table)
{%- if classification %}
    with open(workdir / 'p_confusion.tsv', newline='', encoding='utf-8') as f:
        assert next(csv.reader(f, delimiter='\t'))[0] == 'true \\ predicted'
{%- endif %}
    for name in ('p.parquet', 'p.json'):
        with pytest.raises(RunError, match=rf"^predict.py writes a CSV or TSV table, not '{re.escape(name[1:])}'; "
                                           r'end --output with \.csv or \.tsv$'):
            predict.predict(ckpts / 'best_checkpoint.pt', data, workdir / name)
        assert not (workdir / name).exists()
    # a Latin-1 name (not UTF-8) is written as given and printed escaped: capsys, as a UTF-8 terminal, encodes strictly
    name = os.fsdecode(b'r\xe9sultat.csv')
    code, stdout, stderr = run_as_command('predict.py', ['--checkpoint', str(ckpts / 'best_checkpoint.pt'), '--output',
                                                         name{{ '' if cookiecutter.dataset == 'synthetic' else ", '--data', data" }}], monkeypatch, capsys)
    assert code == 0 and f'wrote {n} predictions to r{SHOWN_E9}sultat.csv\n' in stdout, stderr
    assert len(rows(workdir / name)) == n

    for error, expected in ((OSError(28, 'No space left on device'),
                             (2, 'error: cannot write to standard output (No space left on device); free some '
                                 'space\n')),
                            (BrokenPipeError(32, 'Broken pipe'), (0, ''))):
        monkeypatch.setattr(sys, 'stdout', Unwritable(error))
        output = f'errno{error.errno}.csv'
        args = ['--checkpoint', str(ckpts / 'best_checkpoint.pt'), '--output', output{{ '' if cookiecutter.dataset == 'synthetic' else ", '--data', data" }}]
        assert run_as_command('predict.py', args, monkeypatch, capsys)[::2] == expected
        assert len(rows(workdir / output)) == n  # written all the same


def predicted_after_a_run(workdir, data_args, monkeypatch, capsys):
    """A one-epoch run, then `python predict.py` on its best checkpoint{{ '' if cookiecutter.dataset == 'synthetic' else ' and the data' }}: (its arguments, what it
    printed)."""
    assert run(data_args + ['--n_epoch', 1]) == 0
    _, ckpts = only_run(workdir)
    args = ['--checkpoint', str(ckpts / 'best_checkpoint.pt'){{ '' if cookiecutter.dataset == 'synthetic' else ", '--data', str(workdir / 'data')" }}]
    code, stdout, stderr = run_as_command('predict.py', args, monkeypatch, capsys)
    assert code == 0, stderr
    return args, stdout


def figure_is_refused_when_there_and_optional(workdir, args, kind, what_goes_there, no_figure, monkeypatch, capsys):
    """predict.py's figure `p_<kind>.png` already there: an error before anything is written. Without matplotlib:
    the predictions, and a line that says so."""
    (workdir / f'p_{kind}.png').write_bytes(b'theirs')
    assert run_as_command('predict.py', args + ['--output', 'p.csv'], monkeypatch, capsys) == (
        2, '', f"error: 'p_{kind}.png' already exists ({what_goes_there}); pass another --output, or move it away\n")
    assert not (workdir / 'p.csv').exists() and (workdir / f'p_{kind}.png').read_bytes() == b'theirs'
    without(monkeypatch, 'matplotlib')
    code, stdout, stderr = run_as_command('predict.py', args + ['--output', 'q.csv'], monkeypatch, capsys)
    assert code == 0 and stdout.splitlines()[-1] == f'{no_figure}: matplotlib is not installed (pip install matplotlib)'
    assert (workdir / 'q.csv').exists() and not (workdir / f'q_{kind}.png').exists()


def predict_on_data_of_your_own(monkeypatch, change):
    """predict.py reads build_predict_dataset's samples passed through `change` (a reader of your own, say)."""
    import dataset

    build = dataset.build_predict_dataset

    def changed_data(config, *given, **named):
        data = build(config, *given, **named)
        changed = ChangedSamples(data, change)
        changed.ids, changed.has_labels = data.ids, data.has_labels
        return changed

    monkeypatch.setattr(dataset, 'build_predict_dataset', changed_data)


{% if classification -%}
@pytest.mark.parametrize('change, found', [(lambda target: target.float(), r'\((\d+),\) torch.float32'),
                                           (lambda target: target.view(1), r'\((\d+), 1\) torch.int64')])
{%- else -%}
@pytest.mark.parametrize('change, found', [(lambda target: target[0], r'\((\d+),\) torch.float32'),
                                           (lambda target: target.repeat(2), r'\((\d+), 2\) torch.float32')])
{%- endif %}
def test_predict_refuses_labels_that_do_not_batch_as_the_loss_needs_and_writes_nothing(workdir, data_args, monkeypatch,
                                                                                       capsys, change, found):
    # a reader of your own for prediction (train.py checks its training data's): before, a traceback part-way
    args, _ = predicted_after_a_run(workdir, data_args, monkeypatch, capsys)
    predict_on_data_of_your_own(monkeypatch, target_changed(change))
    code, stdout, stderr = run_as_command('predict.py', args + ['--output', 'p.csv'], monkeypatch, capsys)
{%- if classification %}
    needed = r'\(\1,\) torch.int64: a class index per sample'
{%- else %}
    needed = r'\(\1, 1\): one number per sample, shaped \(1,\)'
{%- endif %}
    assert code == 2 and re.fullmatch(rf"error: the data's labels batch as {found}, but the loss needs {needed}; fix "
                                      r'__getitem__ in dataset.py\n', stderr), stderr
    assert not list(workdir.glob('p.*')) and not list(workdir.glob('p_*'))
{%- if classification %}


@pytest.mark.parametrize('shift', [lambda k: k, lambda k: -k])
def test_predict_refuses_labels_outside_the_models_classes_and_writes_nothing(workdir, data_args, monkeypatch, capsys,
                                                                              shift):
    # a dataset of your own: before, a label k failed part-way with a traceback (a negative one, after being
    # named as a class counted from the end)
    args, _ = predicted_after_a_run(workdir, data_args, monkeypatch, capsys)
    k = load(Path(args[1]))['config']['num_classes']
    predict_on_data_of_your_own(monkeypatch, target_changed(lambda target: target + shift(k)))
    code, stdout, stderr = run_as_command('predict.py', args + ['--output', 'p.csv'], monkeypatch, capsys)
    label = re.fullmatch(rf'error: the data has label (-?\d+), outside the classes 0\.\.{k - 1} the model knows; '
                         r'fix the labels in dataset.py\n', stderr)
    assert code == 2 and label and not 0 <= int(label[1]) < k, stderr
    assert not list(workdir.glob('p.*')) and not list(workdir.glob('p_*'))


def test_predict_draws_the_confusion_matrix_beside_its_table_and_never_over_a_file(workdir, data_args, monkeypatch,
                                                                                 capsys, drawn_figures):
    args, stdout = predicted_after_a_run(workdir, data_args, monkeypatch, capsys)
    assert stdout.splitlines()[-2:] == ['wrote the confusion matrix, with recall and precision per class, to '
                                        'predictions_confusion.csv', 'drew it in predictions_confusion.png']
    assert (workdir / 'predictions_confusion.png').read_bytes().startswith(b'\x89PNG')
    with open(workdir / 'predictions_confusion.csv', newline='', encoding='utf-8') as f:
        table = list(csv.reader(f))
    names = table[0][1:-2]
    counts = [[int(v) for v in row[1:len(names) + 1]] for row in table[1:len(names) + 1]]
    ax, _ = drawn_figures[0].axes  # the matrix and its colour bar
    shares = [[c / sum(row) if sum(row) else 0.0 for c in row] for row in counts]  # each true class's row sums to 1
    assert ax.images[0].get_array().ravel().tolist() == pytest.approx([share for row in shares for share in row])
    assert [text.get_text() for text in ax.texts] == [str(c) for row in counts for c in row]
    assert [label.get_text() for label in ax.get_yticklabels()] == names
    n, correct = sum(map(sum, counts)), sum(counts[i][i] for i in range(len(names)))
    assert ax.get_title() == f'predictions_confusion.csv: {n} samples, accuracy {correct / n:.4f}'
    figure_is_refused_when_there_and_optional(workdir, args, 'confusion', 'the confusion matrix of labelled data goes '
                                              'there', 'no figure of it', monkeypatch, capsys)
    assert (workdir / 'q_confusion.csv').exists()


def test_a_confusion_matrix_too_large_to_read_stays_a_table(tmp_path):
    names = [f'c{i}' for i in range(predict.CONFUSION_MOST_CLASSES + 1)]
    table = tmp_path / 'p_confusion.tsv'
    with open(table, 'w', newline='', encoding='utf-8') as f:
        csv.writer(f, delimiter='\t').writerows(predict.confusion_rows(torch.eye(len(names), dtype=torch.long), names))
    assert predict.draw_confusion(table) == (f'no figure of it: {len(names)} classes are more than a figure can show '
                                             f'legibly ({len(names) - 1})')
    assert sorted(path.name for path in tmp_path.iterdir()) == ['p_confusion.tsv']
{%- else %}


def test_predict_draws_the_predictions_against_their_labels_and_never_over_a_file(workdir, data_args, monkeypatch,
                                                                                capsys, drawn_figures):
    args, stdout = predicted_after_a_run(workdir, data_args, monkeypatch, capsys)
    assert stdout.splitlines()[-1] == 'drew them against their labels in predictions_scatter.png'
    assert (workdir / 'predictions_scatter.png').read_bytes().startswith(b'\x89PNG')
    pairs = [[float(row['label']), float(row['prediction'])] for row in rows(workdir / 'predictions.csv')]
    (ax,) = drawn_figures[0].axes
    assert ax.collections[0].get_offsets().tolist() == pairs  # every sample, at (label, prediction)
    mae = sum(abs(prediction - label) for label, prediction in pairs) / len(pairs)
    assert ax.get_title() == f'predictions.csv: {len(pairs)} samples, mean absolute error {mae:.4g}'
    figure_is_refused_when_there_and_optional(workdir, args, 'scatter', 'the predictions against their labels are '
                                              'drawn there', 'no figure of them', monkeypatch, capsys)


def test_a_scatter_of_many_predictions_draws_an_even_share_of_them(tmp_path, monkeypatch, drawn_figures):
    monkeypatch.setattr(predict, 'SCATTER_MOST_POINTS', 10)
    table = tmp_path / 'p.tsv'
    with open(table, 'w', newline='', encoding='utf-8') as f:
        csv.writer(f, delimiter='\t').writerows([['id', 'prediction', 'label']] + [[i, i + 0.5, i] for i in range(25)])
    assert predict.draw_scatter(table) == f"drew them against their labels in {tmp_path / 'p_scatter.png'}"
    (ax,) = drawn_figures[0].axes
    assert ax.collections[0].get_offsets().tolist() == [[i, i + 0.5] for i in range(0, 25, 3)]  # one in 3
    assert ax.get_title() == 'p.tsv: 25 samples, mean absolute error 0.5'  # of them all
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ['prediction = label', 'one sample in 3']
{%- endif %}


def test_predict_runs_on_the_device_training_would_use(workdir, data_args, monkeypatch):
    # cuda, then mps, then cpu: predict.py once went from cuda straight to cpu, so a Mac predicted on its CPU
    assert run(data_args + ['--n_epoch', 1]) == 0
    _, ckpts = only_run(workdir)
    for cuda, mps, expected in ((True, True, 'cuda'), (False, True, 'mps'), (False, False, 'cpu')):
        monkeypatch.setattr(torch.cuda, 'is_available', lambda cuda=cuda: cuda)
        monkeypatch.setattr(torch.backends.mps, 'is_available', lambda mps=mps: mps)
        assert utils.local_device() == torch.device(expected)
    chosen = []
    monkeypatch.setattr(predict, 'local_device', lambda: chosen.append('asked') or torch.device('cpu'))
    data = {{ "None" if cookiecutter.dataset == 'synthetic' else "str(workdir / 'data')" }}
    predict.predict(ckpts / 'best_checkpoint.pt', data, workdir / 'p.csv')
    assert chosen == ['asked']
{%- if cookiecutter.dataset in ('image_folder', 'sequence') %}


def same_prediction(row, other):
    """Two rows of predictions.csv for one sample, predicted in batches of different sizes: equal but for the
    last bits of the floats."""
{%- if classification %}
    probabilities = [key for key in row if key.startswith('prob_')]
    return row['prediction'] == other['prediction'] and all(abs(float(row[k]) - float(other[k])) < 1e-5
                                                            for k in probabilities)
{%- else %}
    return abs(float(row['prediction']) - float(other['prediction'])) < 1e-4
{%- endif %}
{%- endif %}


def test_predict_writes_one_row_per_sample_and_the_test_metric(workdir, data_args, capsys):
    assert run(data_args + ['--n_epoch', 2]) == 0
    logs, ckpts = only_run(workdir)
    data = {{ "None" if cookiecutter.dataset == 'synthetic' else "str(workdir / 'data')" }}
    n, loss, metric = predict.predict(predict.find_checkpoint(logs.name, None), data, workdir / 'predictions.csv')
    table = rows(workdir / 'predictions.csv')
    assert len(table) == n > 0 and loss is not None and 0 <= metric
    # labelled data: each sample's label beside its prediction
    assert list(table[0])[:3] == ['id', 'prediction', 'label']
{%- if classification %}
    assert sum(r['prediction'] == r['label'] for r in table) / n == pytest.approx(metric, abs=1e-9)  # the accuracy
    probabilities = [[float(v) for k, v in r.items() if k.startswith('prob_')] for r in table]
    assert all(len(p) == TEST_DATA_CONFIG['num_classes'] and abs(sum(p) - 1) < 1e-4 for p in probabilities)
    with open(workdir / 'predictions_confusion.csv', newline='', encoding='utf-8') as f:
        confusion = list(csv.reader(f))
    names = [key[len('prob_'):] for key in table[0] if key.startswith('prob_')]
    assert confusion[0] == ['true \\ predicted', *names, 'samples', 'recall']
    assert [row[0] for row in confusion[1:]] == [*names, 'predicted', 'precision']
    counts = [[int(v) for v in row[1:len(names) + 1]] for row in confusion[1:len(names) + 1]]
    assert counts == [[sum((r['label'], r['prediction']) == (true, guess) for r in table) for guess in names]
                      for true in names]
    predicted = [sum(r['prediction'] == name for r in table) for name in names]
    assert [sum(column) for column in zip(*counts)] == predicted == [int(v) for v in confusion[-2][1:len(names) + 1]]
    correct = [counts[i][i] for i in range(len(names))]
    assert sum(map(sum, counts)) == n and abs(sum(correct) / n - metric) < 1e-9  # the diagonal is the accuracy
    for i, row in enumerate(confusion[1:len(names) + 1]):
        assert int(row[-2]) == sum(counts[i])
        assert row[-1] == (f'{correct[i] / sum(counts[i]):.6f}' if sum(counts[i]) else '')
    assert confusion[-1][1:len(names) + 1] == [f'{c / p:.6f}' if p else '' for c, p in zip(correct, predicted)]
{%- else %}
    pairs = [(float(r['prediction']), float(r['label'])) for r in table]
    rounding = 1e-5 * max(abs(value) for pair in pairs for value in pair)  # written to 6 significant digits
    assert sum(abs(guess - label) for guess, label in pairs) / n == pytest.approx(metric, abs=rounding)  # the MAE
{%- endif %}
{%- if classification %}
    (workdir / 'p3_confusion.csv').write_text('theirs')
    with pytest.raises(RunError, match=r"p3_confusion\.csv' already exists \(the confusion matrix of labelled data"):
        predict.predict(ckpts / 'best_checkpoint.pt', data, workdir / 'p3.csv')
    assert not (workdir / 'p3.csv').exists() and (workdir / 'p3_confusion.csv').read_text() == 'theirs'
{%- endif %}
    with pytest.raises(RunError, match='already exists'):
        predict.predict(ckpts / 'best_checkpoint.pt', data, workdir / 'predictions.csv')
{%- if cookiecutter.dataset == 'csv' %}

    unlabelled = workdir / 'unlabelled.csv'
    with open(workdir / 'data' / 'data.csv') as f:
        lines = [','.join(line.strip().split(',')[:-1]) for line in f]
    unlabelled.write_text('\n'.join(lines) + '\n')
    n, loss, _ = predict.predict(ckpts / 'best_checkpoint.pt', str(unlabelled), workdir / 'p2.csv')
    assert loss is None and len(rows(workdir / 'p2.csv')) == n == len(lines) - 1
    assert 'label' not in rows(workdir / 'p2.csv')[0]  # no labels, no column of them
    assert not (workdir / 'p2_confusion.csv').exists()  # no labels, no confusion matrix
{%- elif cookiecutter.dataset == 'image_folder' %}

    flat = workdir / 'flat'
    flat.mkdir()
    for image in list((workdir / 'data').glob('*/*.png'))[:5]:
        (flat / image.name).write_bytes(image.read_bytes())
    (flat / os.fsdecode(b'\xe9t\xe9.png')).write_bytes(image.read_bytes())  # a Latin-1 name: not UTF-8
    n, loss, _ = predict.predict(ckpts / 'best_checkpoint.pt', str(flat), workdir / 'p2.csv')
    assert loss is None and n == 6
    assert len(rows(workdir / 'p2.csv')) == 6 and 'label' not in rows(workdir / 'p2.csv')[0]
    # escaped: the table is UTF-8
    assert f'{SHOWN_E9}t{SHOWN_E9}.png' in [row['id'] for row in rows(workdir / 'p2.csv')]
    assert not (workdir / 'p2_confusion.csv').exists()  # no labels, no confusion matrix
    n, loss, _ = predict.predict(ckpts / 'best_checkpoint.pt', str(flat / image.name), workdir / 'one.csv')  # one file
    one, = rows(workdir / 'one.csv')
    same, = [row for row in rows(workdir / 'p2.csv') if row['id'] == image.name]
    assert loss is None and n == 1 and one['id'] == image.name and same_prediction(one, same)
{%- elif cookiecutter.dataset == 'sequence' %}

    index = (workdir / 'data' / 'index.csv').read_text().splitlines()
    unlabelled = workdir / 'unlabelled'
    shutil.copytree(workdir / 'data' / 'frames', unlabelled / 'frames')
    (unlabelled / 'index.csv').write_text('\n'.join(['file'] + [row.split(',')[0] for row in index[1:6]]))
    n, loss, _ = predict.predict(ckpts / 'best_checkpoint.pt', str(unlabelled), workdir / 'p2.csv')
    assert loss is None and n == 5 and 'label' not in rows(workdir / 'p2.csv')[0]
    assert not (workdir / 'p2_confusion.csv').exists()  # no labels, no confusion matrix
    file = index[1].split(',')[0]
    n, loss, _ = predict.predict(ckpts / 'best_checkpoint.pt', str(workdir / 'data' / file), workdir / 'one.csv')  # one
    one, = rows(workdir / 'one.csv')
    same, = [row for row in table if row['id'] == file]
    assert loss is None and n == 1 and one['id'] == Path(file).name and same_prediction(one, same)
{%- endif %}


def test_predict_errors_are_clear(workdir, data_args):
    with pytest.raises(RunError, match="nothing for --run at '19990101_000000'"):
        predict.find_checkpoint('19990101_000000', None)
    with pytest.raises(RunError, match='does not exist'):
        predict.predict(workdir / 'nope.pt', None, workdir / 'p.csv')
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, ckpts = only_run(workdir)
    assert predict.find_checkpoint(logs.name, None).resolve() == (ckpts / 'best_checkpoint.pt').resolve()
    (ckpts.parent / 'early').mkdir()  # a run stopped in epoch 1 by Ctrl-C has a latest checkpoint, no best yet
    shutil.copy(ckpts / 'latest_checkpoint.pt', ckpts.parent / 'early')
    with pytest.raises(RunError, match="no best_checkpoint.pt in '.+'; pass one of its files with --run: "
                                       '.+latest_checkpoint.pt$'):
        predict.find_checkpoint('early', None)
    checkpoint = load(ckpts / 'best_checkpoint.pt')
    name = next(iter(checkpoint['model']))
    checkpoint['model'][name] = torch.zeros(3, 3, 3)
    torch.save(checkpoint, workdir / 'other.pt')
    with pytest.raises(RunError, match='does not fit this model'):
        predict.predict(workdir / 'other.pt', None, workdir / 'p.csv')
    with pytest.raises(RunError, match='pass --run <timestamp>'):
        predict.find_checkpoint(None, None)
    with pytest.raises(RunError, match='pass --run <timestamp> or --checkpoint <file>, not both'):
        predict.find_checkpoint(logs.name, ckpts / 'latest_checkpoint.pt')
    data = {{ "None" if cookiecutter.dataset == 'synthetic' else "str(workdir / 'data')" }}
    best = ckpts / 'best_checkpoint.pt'
    for size in ('batch_size', 'n_samples'):
        with pytest.raises(RunError, match=f'{size} must be at least 1, got 0'):
            predict.predict(best, data, workdir / 'p.csv', **{size: 0})
    with pytest.raises(RunError, match="the folder '.*no_such_folder' does not exist"):
        predict.predict(best, data, workdir / 'no_such_folder' / 'p.csv')
    (workdir / 'notes.pt').write_text('2026-01-01 12:00:00 | epoch 1 step 26 loss 2.3\n')
    with pytest.raises(RunError, match='not a file that torch.save wrote'):
        predict.predict(workdir / 'notes.pt', data, workdir / 'p.csv')
{%- if cookiecutter.dataset == 'synthetic' %}
    with pytest.raises(RunError, match='the synthetic reader takes no --data'):
        predict.predict(best, 'data/', workdir / 'p.csv')
{%- else %}
    # what --data takes, not the training layout under dataset_dir
    nope = r"{{ "no data\\.csv at '.*nope'; --data takes a CSV file" if cookiecutter.dataset == 'csv' else "--data '.*nope' does not exist; --data takes a folder" }}"
    with pytest.raises(RunError, match=nope):
        predict.predict(best, str(workdir / 'nope'), workdir / 'p.csv')
    # data whose content is wrong: the error names what --data takes too (labels optional, one sample enough)
    (workdir / 'empty').mkdir()
{%- if cookiecutter.dataset == 'csv' %}
    (workdir / 'empty' / 'data.csv').write_text('f0,f1\n')
    found = r"'.*data\.csv' needs a header and a row; --data takes a CSV file"
{%- elif cookiecutter.dataset == 'image_folder' %}
    found = r"found 0 images in '.*empty'; --data takes a folder"
{%- else %}
    (workdir / 'empty' / 'index.csv').write_text('path\nframes/00000.pt\n')
    found = r"'.*index\.csv' needs a file column and a row; --data takes a folder holding index\.csv"
{%- endif %}
    with pytest.raises(RunError, match=found):
        predict.predict(best, str(workdir / 'empty'), workdir / 'p.csv')
{%- endif %}
{%- if cookiecutter.dataset == 'image_folder' %}
    (workdir / 'notes.txt').write_text('not an image')
    with pytest.raises(RunError, match=r"--data '.*notes\.txt' is not an image file; --data takes a folder"):
        predict.predict(best, str(workdir / 'notes.txt'), workdir / 'p.csv')
    (workdir / 'IMG_1.HEIC').write_bytes(b'not read')  # an iPhone photo
    with pytest.raises(RunError, match=r"--data '.*IMG_1\.HEIC' is a \.heic image, a format this reader leaves out: "
                                       r'convert it to JPEG or PNG; --data takes a folder'):
        predict.predict(best, str(workdir / 'IMG_1.HEIC'), workdir / 'p.csv')
{%- endif %}
{%- if cookiecutter.dataset == 'csv' %}
    # the model's sizes are fixed: the errors name what to change in the data, not an option predict.py lacks
    header, *rows = (workdir / 'data' / 'data.csv').read_text().splitlines()
    (workdir / 'fewer').mkdir()
    (workdir / 'fewer' / 'data.csv').write_text('\n'.join(line.split(',', 1)[1] for line in [header, *rows]) + '\n')
    n, label, first = DATA_CONFIG['num_features'], DATA_CONFIG['label_column'], header.split(',')[0]
    with pytest.raises(RunError, match=rf"has other feature columns than the model was trained on \(missing "
                                       rf"'{first}'\); give it the training data's feature columns, in any order, and "
                                       f"name a label column '{label}' or leave it out$"):
        predict.predict(best, str(workdir / 'fewer'), workdir / 'p.csv')
    unnamed = load(best)
    del unnamed['feature_columns']  # saved before checkpoints kept the columns' names: only their number is known
    torch.save(unnamed, workdir / 'unnamed.pt')
    with pytest.raises(RunError, match=f"has {n - 1} feature columns but num_features is {n}; give it the training "
                                       f"data's feature columns, and name a label column '{label}' or leave it out$"):
        predict.predict(workdir / 'unnamed.pt', str(workdir / 'fewer'), workdir / 'p.csv')
{%- if cookiecutter.task == 'classification' %}
    (workdir / 'more').mkdir()
    k = TEST_DATA_CONFIG['num_classes']
    out_of_range = rows[-1].rsplit(',', 1)[0] + f',{k}'
    (workdir / 'more' / 'data.csv').write_text('\n'.join([header, *rows[:-1], out_of_range]) + '\n')
    with pytest.raises(RunError, match=rf'has labels outside 0\.\.{k - 1}; the model knows {k} classes$'):
        predict.predict(best, str(workdir / 'more'), workdir / 'p.csv')
{%- endif %}
{%- endif %}
    assert not list(workdir.glob('*.csv')) and not list(workdir.glob('.*.tmp'))


def predict_with_a_hook(workdir, data_args, monkeypatch, hook):
    """Train one epoch, then predict into p.csv two samples per batch, calling hook(batch number) before each."""
    assert run(data_args + ['--n_epoch', 1]) == 0
    _, ckpts = only_run(workdir)
    build_model, calls = predict.build_model, []

    def hooked(config):
        model = build_model(config)
        forward = model.forward

        def forward_after_hook(*inputs):
            calls.append(1)
            hook(len(calls))
            return forward(*inputs)

        model.forward = forward_after_hook
        return model

    monkeypatch.setattr(predict, 'build_model', hooked)
    data = {{ "None" if cookiecutter.dataset == 'synthetic' else "str(workdir / 'data')" }}
    predict.predict(ckpts / 'best_checkpoint.pt', data, workdir / 'p.csv', batch_size=2)


@pytest.mark.parametrize('error, message', [
    (RuntimeError('shape mismatch'), "the data does not fit the model (shape mismatch); check its shape against the "
                                     "checkpoint's config"),
    # before, named a shape mismatch too
    (torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB.\nIncluding ...'),
     'out of memory in a batch of 2 samples (CUDA out of memory. Tried to allocate 2.00 GiB.); pass a smaller '
     '--batch_size'),
], ids=['shape', 'memory'])
def test_predict_leaves_no_half_written_file(workdir, data_args, monkeypatch, error, message):
    def fail_on_the_second_batch(batch):
        if batch == 2:
            raise error

    with pytest.raises(RunError, match=f'^{re.escape(message)}$'):
        predict_with_a_hook(workdir, data_args, monkeypatch, fail_on_the_second_batch)
    assert not (workdir / 'p.csv').exists() and not list(workdir.glob('.p.csv.*'))


def test_predict_with_a_model_too_large_for_memory_is_a_one_line_error_with_nothing_written(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1]) == 0
    _, ckpts = only_run(workdir)
    checkpoint = torch.load(ckpts / 'best_checkpoint.pt', weights_only=True)
    checkpoint['config'][SMALL_MODEL[0][2:]] = 10**12  # as if trained on a machine with far more memory
    torch.save(checkpoint, workdir / 'huge.pt')
    data = {{ "None" if cookiecutter.dataset == 'synthetic' else "str(workdir / 'data')" }}
    with pytest.raises(RunError, match=r"^the model does not fit in memory \(an allocation of [\d,.]+ GB failed\); "
                                       r"its sizes are the checkpoint's: predict on a machine with more memory$"):
        predict.predict(workdir / 'huge.pt', data, workdir / 'p.csv')
    assert not (workdir / 'p.csv').exists()


def test_predict_on_a_full_disk_is_one_line_and_leaves_no_half_written_file(workdir, data_args, monkeypatch):
    real_open = open

    def on_a_filling_disk(path, mode='r', **kwargs):  # the table's file, on a disk with room for 100 more bytes
        if mode != 'x':
            return real_open(path, mode, **kwargs)
        return io.TextIOWrapper(io.BufferedWriter(FillingFile(path, 'x')), **kwargs)

    monkeypatch.setattr(FillingFile, 'room', 100)
    monkeypatch.setattr(runfiles, 'open', on_a_filling_disk, raising=False)
    with pytest.raises(RunError, match=r"^cannot write '.*p\.csv' \(No space left on device\); free space, or pass "
                                       r'another --output$'):
        predict_with_a_hook(workdir, data_args, monkeypatch, lambda batch: None)
    assert not (workdir / 'p.csv').exists() and not list(workdir.glob('.p.csv.*'))


def test_predict_never_replaces_a_file_that_appears_while_it_runs(workdir, data_args, monkeypatch):
    def another_writer(batch):  # a second predict.py, or a user, writes p.csv first
        if batch == 1:
            (workdir / 'p.csv').write_text('theirs')

    with pytest.raises(RunError, match=r"'.*p\.csv' appeared while predicting; pass another --output"):
        predict_with_a_hook(workdir, data_args, monkeypatch, another_writer)
    assert (workdir / 'p.csv').read_text() == 'theirs' and not list(workdir.glob('.p.csv.*'))


@pytest.mark.parametrize('command, message', [
    (['predict.py', '--run', 'nosuch'], "error: nothing for --run at 'nosuch': no such checkpoint file, folder"),
    (['plot.py', 'nosuch'], "error: no run 'nosuch'"),
    (['runs.py', '--loggers', 'nosuch'], "error: no 'nosuch' folder here"),
    (['runs.py', '--sort', 'nosuch'], "error: cannot sort by 'nosuch'; choose one of: run, status, epochs, "),
    (['runs.py', '--sort', 'valid_los'], "error: cannot sort by 'valid_los'; did you mean 'valid_loss'? choose one of: "
                                         'run, status'),
    # argparse's own usage errors: one line too, instead of its usage text and 'prog: error:'
    (['predict.py', '--run'], 'error: argument --run: expected one argument; python predict.py --help lists'),
    (['predict.py', '--batch_size', 'x'], "error: argument --batch_size: invalid int value: 'x'"),
{%- if cookiecutter.dataset == 'synthetic' %}
    (['predict.py', '--n_samples', 'x'], "error: argument --n_samples: invalid int value: 'x'"),
{%- else %}
    # --n_samples: synthetic data only
    (['predict.py', '--n_samples', '9'], 'error: unknown option --n_samples; python predict.py --help'),
    (['dataset.py', '--make-exmple', 'x'], 'error: unknown option --make-exmple; did you mean --make-example? python '
                                           'dataset.py --help lists the options'),  # not argparse's "required
    (['dataset.py'], 'error: the following arguments are required: --make-example; python dataset.py --help'),
    (['dataset.py', '--seed', '1', 'new'], "error: unexpected argument 'new'; did you mean --make-example new? python "
                                           'dataset.py --help lists the options\n'),  # not "required"
    (['dataset.py', '--make-example', 'x', '--n_samples', 'many'], "error: argument --n_samples: invalid int"),
    (['dataset.py', '--make-example', ''], 'error: --make-example is empty (an unset shell variable?); give it a '
                                           'value\n'),  # required: not "or leave it out"
{%- endif %}
    (['predict.py', '--device', 'cpu'], 'error: --device is not an option: predict.py takes cuda, then mps, then cpu, '
                                         'as train.py does; CUDA_VISIBLE_DEVICES= python predict.py runs on the CPU'),
    (['predict.py', '--gpu=1'], 'error: --gpu=1 is not an option: predict.py takes cuda, then mps, then cpu'),
    (['predict.py', '--run', 'x', '--colour'], 'error: unknown option --colour; python predict.py --help lists'),
    (['predict.py', '--chekpoint=x'], 'error: unknown option --chekpoint; did you mean --checkpoint? python '
                                      'predict.py'),
    (['plot.py', 'r', '--ouptut', 'x'], 'error: unknown option --ouptut; did you mean --output? python plot.py --help'),
    (['runs.py', '--loggers_dir', 'x'], 'error: unknown option --loggers_dir; did you mean --loggers?'),
    (['runs.py', 'extra'], "error: no run 'extra': pass a timestamp under loggers/ or a run's loggers folder\n"),
    (['predict.py', '--batch_size', '4', '5'], "error: unexpected argument '5'; python predict.py --help lists the "
                                               'options\n'),  # a second value: no option to guess
    (['plot.py', '--run', 'r', '--x', 'time'], 'error: unknown option --run; plot.py takes runs without it: python '
                                               'plot.py r --x time\n'),
    (['plot.py', '--runs=r', 's'], 'error: unknown option --runs; plot.py takes runs without it: python plot.py r s\n'),
    # "$VAR" of an unset shell variable: never taken for the current folder
    (['predict.py', '--run', 'x', '--output', ''], 'error: --output is empty (an unset shell variable?); give it a '
                                                   'value, or leave --output out\n'),
    (['plot.py', 'x', ''], 'error: a run is empty (an unset shell variable?); give it a value\n'),
    (['runs.py', '--loggers='], 'error: --loggers is empty (an unset shell variable?); give it a value, or leave'),
    (['plot.py'], "error: name a run to draw, or two or more to compare; no run under 'loggers' has finished an "
                  'epoch yet\n'),
    (['predict.py'], 'error: pass --run <timestamp> (its best checkpoint) or --checkpoint <file>; no run under '
                     "'checkpoints' has a best_checkpoint.pt yet\n"),
    (['predict.py', '--checkpoint', 'loggers'], "error: --checkpoint 'loggers' is a folder; pass a file in it, or the "
                                                'folder to --run (its best_checkpoint.pt)\n'),
    (['runs.py', '--color'], 'error: unknown option --color; python runs.py --help lists the options'),
])
def test_the_other_commands_refuse_bad_input_as_train_py_does(tmp_path, monkeypatch, capsys, command, message):
    """One line on stderr and exit code 2 (train.py's and argparse's code for a usage error), nothing written."""
    (tmp_path / 'loggers').mkdir()
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_as_command(command[0], command[1:], monkeypatch, capsys)
    assert code == 2 and not stdout, stderr
    assert stderr.startswith(message) and stderr.count('\n') == 1, stderr
    assert [path.name for path in tmp_path.iterdir()] == ['loggers'] and not any((tmp_path / 'loggers').iterdir())


def test_a_bare_word_is_answered_with_the_option_it_names(tmp_path, monkeypatch, capsys):
    """`python predict.py RUN` (plot.py takes runs so) and the like: the error names the option, from what the
    word names here, and passes the word quoted for the shell."""
    (tmp_path / 'checkpoints' / 'my run').mkdir(parents=True)
    (tmp_path / 'loggers' / 'r').mkdir(parents=True)
    (tmp_path / 'loggers' / 'r' / 'note.log').write_text('config:\n')
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'experiment.json').write_text('{}')
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    for command, guess in [(['predict.py', 'my run'], "did you mean --run 'my run'? "),
                           (['predict.py', '--batch_size', '8', 'photos'], {{ "'did you mean --data photos? '" if cookiecutter.dataset != 'synthetic' else "''" }}),
                           (['predict.py', 'loggers/r'], 'did you mean --run loggers/r? '),  # not --data
                           (['predict.py', 'nothing_here'], '')]:
        code, stdout, stderr = run_as_command(command[0], command[1:], monkeypatch, capsys)
        assert (code, stdout) == (2, '')
        assert stderr == f"error: unexpected argument {command[-1]!r}; {guess}python predict.py --help lists the " \
                         'options\n'
    for argv, guess in [(['my run'], "did you mean --resume 'my run'? "),
                        (['--n_epoch', '3', 'experiment.json'], 'did you mean --config experiment.json? '),
                        (['--lr', '0.1', '0.2'], ''),
                        (['--n_epoch', '3', '--', 'my run'], "did you mean --resume 'my run'? "),  # not "option --"
                        (['--', '--lr'], '')]:
        with pytest.raises(RunError) as error:
            utils.parse_args({'n_epoch': 1, 'lr': 0.1}, argv)
        assert str(error.value) == f"unexpected argument {argv[-1]!r}; {guess}python train.py --help lists the options"
    assert utils.parse_args({'n_epoch': 1, 'lr': 0.1}, ['--lr', '0.2', '--']) == ({'lr': 0.2}, None, None)
    assert snapshot(tmp_path) == before
