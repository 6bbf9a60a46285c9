"""Resume continues the same run exactly: same folders, appended logs, restored scheduler, counters and RNG."""

import hashlib
import io
import json
import os
import pickle
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import runfiles
import runs
import train
import utils
from conftest import {{ 'AUGMENT, ' if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' }}EXACT_ON_THIS_DEVICE, epoch_lines, load, only_run, run, run_in, snapshot
from dataset import build_datasets
from runfiles import RunError, read_metrics_rows, read_note
from test_train import WIDTH, ConstantModel
from utils import check_same_data, classes_of, data_fingerprint, get_rng_state, save_checkpoint, set_rng_state, unwrap

# warmup covers the whole run, so n_epoch may grow
EXACT = ['--warmup_steps', '1000', '--early_stop', '3', *EXACT_ON_THIS_DEVICE]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def straight_run(root, data_args, n_epoch, extra=()):
    """Train n_epoch epochs without a stop in `root`; return (final weights, train lines, val lines)."""
    checkpoint, train_lines, val_lines = run_in(root, data_args + ['--n_epoch', n_epoch, *extra])
    return checkpoint['model'], train_lines, val_lines


@pytest.mark.parametrize('extra', [[]{{ ", ['--class_weights', 'balanced']" if cookiecutter.task == 'classification' }}])
def test_resume_continues_bitwise_equal_to_a_straight_run(workdir, data_args, extra):
    weights, train_lines, val_lines = straight_run(workdir / 'straight', data_args, 4, EXACT + extra)
    assert run(data_args + ['--n_epoch', 2] + EXACT + extra) == 0
    logs, ckpts = only_run(workdir)
    assert run(['--resume', logs.name, '--n_epoch', 4]) == 0
    assert only_run(workdir) == (logs, ckpts)  # the same folders, no new run
    assert_same_weights(load(ckpts / 'latest_checkpoint.pt')['model'], weights)
    assert epoch_lines(logs / 'train.log') == train_lines  # epochs and steps carry on, lr did not restart
    assert epoch_lines(logs / 'val.log') == val_lines
    note = (logs / 'note.log').read_text()
    assert 'resumed at' in note and '(epoch 2, step 16, 0 samples of epoch 3 trained)' in note
    for log in ('train.log', 'val.log'):  # both mark where the epoch lines go on from
        lines = [line.split(' | ', 1)[-1] for line in (logs / log).read_text().splitlines()]
        marks = [line.split()[1] if line.startswith('epoch ') else line
                 for line in lines if line.startswith(('epoch ', 'resumed'))]
        resumed = (f'resumed from checkpoints/{ckpts.name}/latest_checkpoint.pt (epoch 2, step 16, 0 samples of epoch '
                   '3 trained)')
        assert marks == ['1', '2', resumed, '3', '4']
    assert 'overrides: n_epoch=4' in note


{% if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' -%}
def test_resume_with_random_flips_and_shifts_in_loader_workers_is_bitwise_equal(workdir, data_args):
    # the draws are the main process's, from the RNG state a checkpoint keeps, not the workers'
    augmenting = [*AUGMENT, '--num_workers', 1, *EXACT]
    weights, train_lines, val_lines = straight_run(workdir / 'straight', data_args, 3, augmenting)
    plain, *_ = straight_run(workdir / 'plain', data_args, 3, ['--num_workers', 1, *EXACT])
    assert not all(torch.equal(weights[key], plain[key]) for key in weights)  # the augmentation trained on other pixels
    assert run(data_args + ['--n_epoch', 1] + augmenting) == 0
    logs, ckpts = only_run(workdir)
    assert run(['--resume', logs.name, '--n_epoch', 3]) == 0
    assert_same_weights(load(ckpts / 'latest_checkpoint.pt')['model'], weights)
    assert (epoch_lines(logs / 'train.log'), epoch_lines(logs / 'val.log')) == (train_lines, val_lines)


{% endif -%}
def test_resume_accepts_a_checkpoint_file_or_folder(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, ckpts = only_run(workdir)
    assert run(['--resume', ckpts / 'best_checkpoint.pt', '--n_epoch', 2]) == 0
    assert run(['--resume', ckpts, '--n_epoch', 3]) == 0
    assert [line.split()[1] for line in epoch_lines(logs / 'train.log')] == ['1', '2', '3']
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 3


def test_a_runs_loggers_folder_given_for_its_checkpoints_names_them(workdir, data_args):
    # loggers/<run> and checkpoints/<run> look alike: --resume and --init_from given the first name the second
    assert run(data_args + ['--n_epoch', 1, '--loggers_dir', 'runs/logs', '--checkpoints_dir', 'runs/my ckpts']) == 0
    before = snapshot(workdir)
    for option in ('--resume', '--init_from'):
        message = (f"'runs/logs' is a run's loggers folder; its checkpoints are in 'runs/my ckpts': pass {option} "
                   "'runs/my ckpts'")
        with pytest.raises(RunError, match=f'^{re.escape(message)}$'):
            run(data_args + [option, 'runs/logs', '--n_epoch', 2])
    assert snapshot(workdir) == before
    assert run(['--resume', 'runs/my ckpts', '--n_epoch', 2]) == 0  # the folder it names
    assert load(workdir / 'runs' / 'my ckpts' / 'latest_checkpoint.pt')['epoch'] == 2


def test_resume_from_a_checkpoint_behind_the_runs_latest_goes_on_as_a_new_run(workdir, data_args):
    assert run(data_args + ['--n_epoch', 2] + EXACT) == 0
    logs, ckpts = only_run(workdir)
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'epoch2.pt')
    assert run(['--resume', logs.name, '--n_epoch', 4]) == 0
    os.replace(workdir / 'epoch2.pt', ckpts / 'best_checkpoint.pt')  # as if epochs 3 and 4 had not improved
    source = snapshot(workdir)
    assert run(['--resume', ckpts / 'best_checkpoint.pt', '--n_epoch', 4]) == 0
    assert {path: stamp for path, stamp in snapshot(workdir).items() if path in source} == source  # untouched
    branch_logs, = set((workdir / 'loggers').iterdir()) - {logs}
    branch_ckpts, = set((workdir / 'checkpoints').iterdir()) - {ckpts}
    assert branch_logs.name == branch_ckpts.name
    note = (branch_logs / 'note.log').read_text()
    assert f'branched from {ckpts}/best_checkpoint.pt (epoch 2, step 16, 0 samples of epoch 3 trained)' in note
    assert (branch_logs / 'train.log').read_text().splitlines()[0].endswith(
        f'branched from {ckpts}/best_checkpoint.pt (epoch 2, step 16, 0 samples of epoch 3 trained)')
    assert 'config:' in note and 'Total params' in note  # a new run's full note

    def metrics(folder):
        return [{k: v for k, v in row.items() if k not in ('epoch_seconds', 'data_seconds', 'train_seconds')}
                for row in read_metrics_rows(folder / 'metrics.csv')]
    # metrics.csv starts with the source's epochs 1-2; epochs 3-4 are trained again, exactly
    assert metrics(branch_logs) == metrics(logs) and len(metrics(logs)) == 4
    assert epoch_lines(branch_logs / 'train.log') == epoch_lines(logs / 'train.log')[2:]
    assert_same_weights(load(branch_ckpts / 'latest_checkpoint.pt')['model'],
                        load(ckpts / 'latest_checkpoint.pt')['model'])
    assert run(['--resume', branch_logs.name, '--n_epoch', 5, '--early_stop', 10]) == 0  # its own latest: in place
    assert len(list((workdir / 'loggers').iterdir())) == 2
    assert [row['epoch'] for row in read_metrics_rows(branch_logs / 'metrics.csv')] == ['1', '2', '3', '4', '5']


def test_run_folders_given_on_resume_place_a_branch_and_are_refused_in_place(workdir, data_args):
    assert run(data_args + ['--n_epoch', 2]) == 0
    logs, ckpts = only_run(workdir)
    before = snapshot(workdir)
    with pytest.raises(RunError, match='--loggers_dir and --checkpoints_dir place a new run; .* drop them$') as error:
        run(['--resume', logs.name, '--n_epoch', 3, '--loggers_dir', workdir / 'elsewhere'])
    assert error.value.code == 2 and snapshot(workdir) == before  # before, it went on as a branch in 'elsewhere'
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'copy.pt')  # away from its run: a branch, placed as asked
    assert run(['--resume', workdir / 'copy.pt', '--n_epoch', 3, '--loggers_dir', workdir / 'branch_logs',
                '--checkpoints_dir', workdir / 'branch_ckpts']) == 0
    assert (workdir / 'branch_ckpts' / 'latest_checkpoint.pt').is_file()
    assert 'branched from' in (workdir / 'branch_logs' / 'note.log').read_text()
    # the source run's history comes along (before, it was looked for in the branch's own folder)
    assert [row['epoch'] for row in read_metrics_rows(workdir / 'branch_logs' / 'metrics.csv')] == ['1', '2', '3']


@pytest.mark.parametrize('away', ['a copy elsewhere', 'no loggers folder'])
def test_resume_away_from_the_runs_folders_goes_on_as_a_new_run(workdir, data_args, away):
    assert run(data_args + ['--n_epoch', 2] + EXACT) == 0
    logs, ckpts = only_run(workdir)
    if away == 'a copy elsewhere':  # resuming in place would write checkpoints beside the copy
        target = workdir / 'shared' / 'model.pt'
        target.parent.mkdir()
        shutil.copy(ckpts / 'latest_checkpoint.pt', target)
        reason = f"it is not in its run's checkpoints folder 'checkpoints/{ckpts.name}'"
    else:  # from another machine, say: before, a one-line error and no way to go on exactly
        shutil.rmtree(logs)
        target = ckpts / 'latest_checkpoint.pt'
        reason = f"its run's loggers folder 'loggers/{logs.name}' is not here"
    source = snapshot(workdir)
    assert run(['--resume', target, '--n_epoch', 3]) == 0
    assert {path: stamp for path, stamp in snapshot(workdir).items() if path in source} == source
    assert list(target.parent.iterdir()) == [target] or away != 'a copy elsewhere'
    branch_logs, = set((workdir / 'loggers').iterdir()) - {logs}
    branch_note = (branch_logs / 'note.log').read_text()
    assert f'branched from {target} (epoch 2, step 16, 0 samples of epoch 3 trained): {reason}, so' in branch_note
    assert load(workdir / 'checkpoints' / branch_logs.name / 'latest_checkpoint.pt')['epoch'] == 3


def test_a_branch_starts_with_the_best_checkpoint_of_the_history_it_continues(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))  # best stays at epoch 1
    assert run(data_args + ['--n_epoch', 3, '--early_stop', 10]) == 0
    logs, ckpts = only_run(workdir)
    source_best = load(ckpts / 'best_checkpoint.pt')
    assert (source_best['epoch'], load(ckpts / 'latest_checkpoint.pt')['epoch']) == (1, 3)
    assert run(['--resume', ckpts / 'best_checkpoint.pt', '--n_epoch', 3]) == 0  # no epoch improves on it
    branch_logs, = set((workdir / 'loggers').iterdir()) - {logs}
    branch_ckpts = workdir / 'checkpoints' / branch_logs.name
    best = load(branch_ckpts / 'best_checkpoint.pt')
    assert best['epoch'] == 1 and best['best_loss'] == source_best['best_loss']
    assert_same_weights(best['model'], source_best['model'])
    assert Path(best['config']['checkpoints_dir']).resolve() == branch_ckpts.resolve()
    assert 'best_checkpoint.pt starts as its epoch 1' in (branch_logs / 'note.log').read_text()
    assert run(data_args + ['--init_from', branch_logs.name, '--n_epoch', 1]) == 0  # as from any run


def test_resume_keeps_a_best_checkpoint_saved_after_the_latest_one(workdir, data_args, monkeypatch):
    assert run(data_args + ['--n_epoch', 2]) == 0
    logs, ckpts = only_run(workdir)
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'epoch2.pt')
    assert run(['--resume', logs.name, '--n_epoch', 3]) == 0
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'epoch3.pt')
    os.replace(workdir / 'epoch3.pt', ckpts / 'best_checkpoint.pt')  # best at epoch 3, latest at epoch 2:
    os.replace(workdir / 'epoch2.pt', ckpts / 'latest_checkpoint.pt')  # killed between the two saves
    best = (ckpts / 'best_checkpoint.pt').read_bytes()
    with monkeypatch.context() as patch, pytest.raises(RunError, match='no data'):
        patch.setattr(train, 'build_datasets', lambda config: (_ for _ in ()).throw(RunError('no data')))
        run(['--resume', logs.name, '--n_epoch', 3])
    assert not list(ckpts.glob('best_checkpoint.*.pt'))  # a resume that stops before training changes no file
    assert run(['--resume', logs.name, '--n_epoch', 3, '--lr', 3e-3, '--early_stop', 10]) == 0  # epoch 3 another way
    kept, = ckpts.glob('best_checkpoint.epoch3.step*.pt')
    assert kept.read_bytes() == best
    assert f'best_checkpoint.pt was saved after this checkpoint; kept as {kept.name}' in (logs / 'note.log').read_text()
    assert run(['--resume', logs.name, '--n_epoch', 4, '--early_stop', 10]) == 0  # an ordinary resume keeps nothing
    assert len(list(ckpts.glob('best_checkpoint.*.pt'))) == 1


def test_early_stop_counter_survives_resume(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))
    assert run(data_args + ['--n_epoch', 2, '--early_stop', 3]) == 0
    logs, ckpts = only_run(workdir)
    assert load(ckpts / 'latest_checkpoint.pt')['early_stop_count'] == 1
    assert run(['--resume', logs.name, '--n_epoch', 20]) == 0
    # a reset counter would run to epoch 5; the kept one stops at epoch 4
    assert len(epoch_lines(logs / 'val.log')) == 4 and 'early stop' in (logs / 'val.log').read_text()


def test_resuming_a_run_with_nothing_left_to_train_writes_nothing_and_exits_0(workdir, data_args, monkeypatch, capsys):
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))  # best stays at epoch 1
    assert run(data_args + ['--n_epoch', 2, '--early_stop', 10]) == 0
    logs, ckpts = only_run(workdir)
    before = snapshot(workdir)
    capsys.readouterr()
    assert run(['--resume', logs.name]) == 0  # n_epoch 2 again: a requeued job that finds its run done
    assert capsys.readouterr().out == ('nothing to do: the run stopped at epoch 2 (n_epoch 2); '
                                       'pass a larger --n_epoch to go on\n')
    assert run(['--resume', logs.name, '--n_epoch', 1]) == 0
    assert 'stopped at epoch 2 (n_epoch 1)' in capsys.readouterr().out
    assert run(['--resume', logs.name, '--n_epoch', 5, '--early_stop', 1]) == 0  # 1 epoch without improvement
    assert capsys.readouterr().out == ('nothing to do: the run early-stopped at epoch 2, 1 epoch without a lower '
                                       'valid loss (early_stop 1); pass a larger --early_stop (0: off) to go on\n')
    assert snapshot(workdir) == before  # no log line, no status, no curves, no branch folders
    assert run(['--resume', logs.name, '--n_epoch', 3, '--early_stop', 0]) == 0  # and with more to do, it goes on
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 3


def test_a_named_run_starts_and_then_resumes_with_the_same_command(workdir, data_args, capsys):
    weights, train_lines, val_lines = straight_run(workdir / 'straight', data_args, 4, EXACT)
    assert run(data_args + ['--n_epoch', 1, '--seed', 1]) == 0
    source, _ = only_run(workdir)
    # as a requeued batch job: the same options every time, only --n_epoch grows here to stop in between
    command = data_args + EXACT + ['--run_name', 'exp-1.b', '--init_from', source.name, '--init_partial', 'true']
    assert run(command + ['--n_epoch', 2]) == 0
    logs, ckpts = workdir / 'loggers' / 'exp-1.b', workdir / 'checkpoints' / 'exp-1.b'
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 2
    assert run(command + ['--n_epoch', 4]) == 0  # resumed in place: --init_from applied when the run started
    assert sorted(p.name for p in (workdir / 'loggers').iterdir()) == sorted([source.name, 'exp-1.b'])
    assert [line.split()[1] for line in epoch_lines(logs / 'train.log')] == ['1', '2', '3', '4']
    note = (logs / 'note.log').read_text()
    assert 'resumed at' in note and '\noverrides: n_epoch=4\n' in note  # the repeated options are no change
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 4
    before = snapshot(workdir)
    capsys.readouterr()
    assert run(command + ['--n_epoch', 4]) == 0  # requeued once more after the end: nothing to do
    assert capsys.readouterr().out.startswith('nothing to do: the run ')  # n_epoch reached, or early-stopped at 4
    assert snapshot(workdir) == before
    # without --init_from, the same two steps give the straight run's weights bitwise
    plain = data_args + EXACT + ['--run_name', 'plain']
    assert run(plain + ['--n_epoch', 2]) == 0 and run(plain + ['--n_epoch', 4]) == 0
    assert_same_weights(load(workdir / 'checkpoints' / 'plain' / 'latest_checkpoint.pt')['model'], weights)
    assert epoch_lines(workdir / 'loggers' / 'plain' / 'val.log') == val_lines


def test_a_named_run_resumes_from_the_further_on_of_its_latest_and_best_checkpoints(workdir, data_args):
    command = data_args + EXACT + ['--run_name', 'job']
    assert run(command + ['--n_epoch', 1]) == 0
    ckpts = workdir / 'checkpoints' / 'job'
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'epoch1.pt')
    assert run(command + ['--n_epoch', 2]) == 0
    shutil.copy(ckpts / 'latest_checkpoint.pt', workdir / 'epoch2.pt')
    os.replace(workdir / 'epoch2.pt', ckpts / 'best_checkpoint.pt')  # as if epoch 2 improved (a best at once)
    os.replace(workdir / 'epoch1.pt', ckpts / 'latest_checkpoint.pt')  # and was killed before its latest save
    assert run(command + ['--n_epoch', 3]) == 0
    note = (workdir / 'loggers' / 'job' / 'note.log').read_text()
    assert 'from checkpoints/job/best_checkpoint.pt (epoch 2, step 16, 0 samples of epoch 3 trained)' in note
    assert [line.split()[1] for line in epoch_lines(workdir / 'loggers' / 'job' / 'train.log')] == ['1', '2', '3']
    (ckpts / 'latest_checkpoint.pt').unlink()  # killed before its first latest save: the best still counts
    assert run(command + ['--n_epoch', 4, '--early_stop', 10]) == 0
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 4


@pytest.mark.parametrize('argv, message', [
    (['--run_name', 'a/b'], "--run_name must be a folder name of letters, digits, '_', '-' and '.', not starting "
                            "with '.' or '-', got 'a/b'"),
    (['--run_name', '..'], "--run_name must be a folder name .+ got '..'"),
    (['--run_name=-x'], "--run_name must be a folder name of letters, digits, '_', '-' and '.', not starting with '.' "
                        "or '-', got '-x'"),  # a later --resume -x, plot.py -x would read it as an option
    (['--run_name', 'x.attempt-2'], "--run_name 'x.attempt-2' is how a start of run 'x' that saved no checkpoint is "
                                    r'set aside \(NAME.attempt-K\); choose another name'),
    (['--run_name', ''], r"^--run_name is empty \(an unset shell variable\?\); give it a value, or leave --run_name "
                         'out for a timestamped run$'),
    (['--run_name', 'x', '--resume', 'x'], 'pass --run_name or --resume, not both'),
    (['--run_name', 'x', '--checkpoints_dir', 'elsewhere'], 'drop --checkpoints_dir'),
    (['--run_name', 'moved'], r"run moved cannot go on in its own folders: its run's loggers folder '.*loggers/moved' "
                              r'is not here; continue it once as a new run with --resume checkpoints/moved/latest'),
    (['--run_name', 'copied'], "run copied cannot go on in its own folders: it is not in its run's checkpoints folder "
                               "'checkpoints/done'; continue it once as a new run with --resume checkpoints/copied/"),
    (['--run_name', 'done', '--seed', '1'], r'cannot change seed when resuming: .+; start a new run instead \(another '
                                            r'--run_name\)$'),
])
def test_run_name_refusals_are_one_line_errors_that_write_nothing(workdir, data_args, argv, message):
    if {'done', 'copied'} & set(argv):
        assert run(data_args + ['--run_name', 'done', '--n_epoch', 1]) == 0
    if 'moved' in argv:  # its checkpoints copied to another machine, without its loggers folder
        assert run(data_args + ['--run_name', 'moved', '--n_epoch', 1]) == 0
        shutil.rmtree(workdir / 'loggers' / 'moved')
    if 'copied' in argv:  # another run's checkpoint put under this name
        (workdir / 'checkpoints' / 'copied').mkdir()
        shutil.copy(workdir / 'checkpoints' / 'done' / 'latest_checkpoint.pt', workdir / 'checkpoints' / 'copied')
    before = snapshot(workdir), sorted(p.name for p in workdir.rglob('*'))
    with pytest.raises(RunError, match=message):
        train.main([str(arg) for arg in data_args + argv])
    assert (snapshot(workdir), sorted(p.name for p in workdir.rglob('*'))) == before


def test_a_named_run_that_saved_nothing_starts_again_and_keeps_that_start(workdir, data_args, monkeypatch, capsys):
    command = data_args + EXACT + ['--run_name', 'job', '--n_epoch', 1]

    def fails_in_its_first_step(*args):
        raise ValueError('a bug in the first step')

    with monkeypatch.context() as patch:  # an error before the first save, once note.log is open
        patch.setattr(train, 'train', fails_in_its_first_step)
        with pytest.raises(ValueError):
            run(command)
    failed_start = snapshot(workdir / 'loggers' / 'job')
    assert 'status: failed (ValueError)' in (workdir / 'loggers' / 'job' / 'note.log').read_text()
    capsys.readouterr()
    assert run(command) == 0  # the requeued job: the same command starts the run again
    started_again = ('started again: an earlier start saved no checkpoint (failed (ValueError)); its files are now '
                     'in loggers/job.attempt-1')
    assert started_again in capsys.readouterr().out.splitlines()
    assert snapshot(workdir / 'loggers' / 'job.attempt-1') == failed_start  # moved whole, untouched
    assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['job']  # its empty one is not kept
    note = (workdir / 'loggers' / 'job' / 'note.log').read_text()
    assert started_again in note.splitlines() and note.rstrip().splitlines()[-1].startswith('status: finished')
    assert load(workdir / 'checkpoints' / 'job' / 'latest_checkpoint.pt')['epoch'] == 1
    statuses = {line.split()[0]: line.split()[1] for line in runs.table(workdir / 'loggers').splitlines()[1:]}
    assert statuses == {'job': 'finished', 'job.attempt-1': 'failed'}  # 'failed (ValueError)', cut at the space

    # killed hard (SIGKILL, a node failure) in its first save: note.log still says running, its process is gone
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()
    note = (workdir / 'loggers' / 'job.attempt-1' / 'note.log').read_text()
    shutil.copytree(workdir / 'loggers' / 'job.attempt-1', workdir / 'loggers' / 'killed')
    (workdir / 'loggers' / 'killed' / 'note.log').write_text(
        note + f'provenance:\n    host: {socket.gethostname()}\n    pid: {gone.pid}\nstatus: running\n')
    (workdir / 'checkpoints' / 'killed').mkdir()
    (workdir / 'checkpoints' / 'killed' / f'.latest_checkpoint.pt.{gone.pid}.tmp').write_bytes(b'half a save')
    (workdir / 'loggers' / 'killed.attempt-1').mkdir()  # a name already taken: both folders go to attempt-2
    killed_start = snapshot(workdir / 'loggers' / 'killed'), snapshot(workdir / 'checkpoints' / 'killed')
    assert run(data_args + EXACT + ['--run_name', 'killed', '--n_epoch', 1]) == 0
    assert (snapshot(workdir / 'loggers' / 'killed.attempt-2'),
            snapshot(workdir / 'checkpoints' / 'killed.attempt-2')) == killed_start
    out = capsys.readouterr().out.splitlines()
    lines = ['earlier starts of this run saved no checkpoint; their files are in loggers/killed.attempt-1',
             'started again: an earlier start saved no checkpoint (failed (process gone)); its files are now in '
             'loggers/killed.attempt-2 and checkpoints/killed.attempt-2']
    assert out[out.index(lines[0]):][:2] == lines
    assert [line for line in (workdir / 'loggers' / 'killed' / 'note.log').read_text().splitlines()
            if line in lines] == lines
    assert (workdir / 'checkpoints' / 'killed' / 'latest_checkpoint.pt').is_file()


@pytest.mark.skipif(sys.getfilesystemencoding() != 'utf-8', reason="file names here lack the letters this test's "
                    'console lacks (a Latin-1 or Windows code page locale)')
def test_a_named_runs_lines_print_escaped_where_the_console_lacks_its_letters(workdir, data_args, monkeypatch):
    command = data_args + EXACT + ['--run_name', '\u4e2d', '--n_epoch', 1]  # a run named in Chinese
    with monkeypatch.context() as patch:
        patch.setattr(train, 'train', lambda *args: 1 / 0)  # start 1 fails once note.log is open
        with pytest.raises(ZeroDivisionError):
            run(command)
    # train.main() called from a script, on a console in a Windows code page: its stdout stops at what it lacks
    console = io.TextIOWrapper(io.BytesIO(), encoding='cp1252', errors='strict', write_through=True)
    monkeypatch.setattr(sys, 'stdout', console)
    assert run(command) == 0
    line = ('started again: an earlier start saved no checkpoint (failed (ZeroDivisionError)); its files are now in '
            'loggers/{}.attempt-1')
    assert line.format('\\u4e2d') in console.buffer.getvalue().decode('cp1252').splitlines()
    note = (workdir / 'loggers' / '\u4e2d' / 'note.log').read_text(encoding='utf-8')
    assert line.format('\u4e2d') in note.splitlines() and note.splitlines()[-1].startswith('status: finished')


def test_a_run_name_that_file_names_here_cannot_hold_is_one_line(workdir, data_args, monkeypatch):
    monkeypatch.setattr(sys, 'getfilesystemencoding', lambda: 'cp1252')  # a Windows code page locale's
    with pytest.raises(RunError, match="^--run_name '\u4e2d' cannot be a folder name here: file names are in "
                                       'cp1252, which lacks some of its letters; choose another name$'):
        run(data_args + ['--run_name', '\u4e2d'])
    assert not (workdir / 'loggers').exists()


def test_a_named_run_notes_its_starts_set_aside_even_when_the_start_that_set_them_aside_failed(workdir, data_args,
                                                                                                monkeypatch, capsys):
    command = data_args + EXACT + ['--run_name', 'job', '--n_epoch', 1]
    with monkeypatch.context() as patch:
        patch.setattr(train, 'train', lambda *args: 1 / 0)  # start 1 fails once note.log is open
        with pytest.raises(ZeroDivisionError):
            run(command)
        patch.setattr(train, 'build_datasets', lambda config: 1 / 0)  # start 2 sets it aside, then fails in 3.6
        with pytest.raises(ZeroDivisionError):
            run(command)
    assert sorted(p.name for p in (workdir / 'loggers').iterdir()) == ['job.attempt-1']  # start 2 left nothing
    for name in ('job.attempt-3', 'job.attempt-10'):  # and two more earlier starts, one with a checkpoints folder
        shutil.copytree(workdir / 'loggers' / 'job.attempt-1', workdir / 'loggers' / name)
    (workdir / 'checkpoints' / 'job.attempt-3').mkdir(parents=True)
    (workdir / 'loggers' / 'other.attempt-2').mkdir()  # another run's
    capsys.readouterr()
    assert run(command) == 0
    line = ('earlier starts of this run saved no checkpoint; their files are in loggers/job.attempt-1, '
            'loggers/job.attempt-3, loggers/job.attempt-10, checkpoints/job.attempt-3')
    assert line in capsys.readouterr().out.splitlines()
    assert line in (workdir / 'loggers' / 'job' / 'note.log').read_text().splitlines()
    assert 'status: failed (ZeroDivisionError)' in (workdir / 'loggers' / 'job.attempt-1' / 'note.log').read_text()


def test_a_named_run_that_saved_nothing_is_not_moved_while_it_runs_here_and_empty_folders_are_not_kept(
        workdir, data_args, monkeypatch, capsys):
    logs, ckpts = workdir / 'loggers' / 'job', workdir / 'checkpoints' / 'job'
    logs.mkdir(parents=True)
    ckpts.mkdir(parents=True)
    (logs / 'note.log').write_text(f'provenance:\n    host: {socket.gethostname()}\n    pid: 1\nstatus: running\n')
    before = snapshot(workdir), sorted(p.name for p in workdir.rglob('*'))
    with monkeypatch.context() as patch:
        patch.setattr(utils, 'alive', lambda provenance: True)  # its process still runs, in its first epoch
        with pytest.raises(RunError, match=r'^run job is still running \(pid 1\); stop it first'):
            train.main([str(arg) for arg in data_args + ['--run_name', 'job']])
    assert (snapshot(workdir), sorted(p.name for p in workdir.rglob('*'))) == before
    # on another host (a node failure, and SLURM requeued the job here): taken as gone, as --resume does
    (logs / 'note.log').write_text('provenance:\n    host: node-b\n    pid: 1\nstatus: running\n')
    capsys.readouterr()
    assert run(data_args + ['--run_name', 'job', '--n_epoch', 1]) == 0
    assert ('started again: an earlier start saved no checkpoint (its note.log says running on host node-b, which '
            'cannot be checked from here); its files are now in loggers/job.attempt-1') in capsys.readouterr().out
    assert (workdir / 'loggers' / 'job.attempt-1' / 'note.log').read_text().startswith('provenance:\n    host: node-b')
    # killed while its data loaded (3.6): its folders are empty, and are not kept
    (workdir / 'loggers' / 'empty').mkdir()
    (workdir / 'checkpoints' / 'empty').mkdir()
    assert run(data_args + ['--run_name', 'empty', '--n_epoch', 1]) == 0
    assert 'started again' not in capsys.readouterr().out + (workdir / 'loggers' / 'empty' / 'note.log').read_text()
    assert sorted(p.name for p in (workdir / 'loggers').iterdir()) == ['empty', 'job', 'job.attempt-1']
    assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['empty', 'job']


def write_heartbeat(folder, host, pid, slurm_job=None, age=0):
    """A .heartbeat as utils.Heartbeat writes it, last touched `age` seconds ago."""
    path = folder / runfiles.HEARTBEAT_FILE
    path.write_text(json.dumps({'host': host, 'pid': pid, 'slurm_job': slurm_job}))
    os.utime(path, (time.time() - age,) * 2)


def test_a_run_that_another_process_writes_is_not_taken_over_even_before_its_logs_or_on_another_host(
        workdir, data_args, monkeypatch, capsys):
    monkeypatch.delenv('SLURM_JOB_ID', raising=False)
    # on this host, in 3.5-3.10 (loading its data: no note.log yet): only its heartbeat tells
    logs, ckpts = workdir / 'loggers' / 'job', workdir / 'checkpoints' / 'job'
    logs.mkdir(parents=True)
    ckpts.mkdir(parents=True)
    write_heartbeat(logs, socket.gethostname(), 1)
    before = snapshot(workdir), sorted(p.name for p in workdir.rglob('*'))
    with monkeypatch.context() as patch:
        patch.setattr(utils, 'alive', lambda provenance: provenance['pid'] == 1)
        with pytest.raises(RunError, match=r'^run job is still running \(pid 1\); stop it first'):
            train.main([str(arg) for arg in data_args + ['--run_name', 'job']])
    assert (snapshot(workdir), sorted(p.name for p in workdir.rglob('*'))) == before
    shutil.rmtree(logs)
    shutil.rmtree(ckpts)
    assert run(data_args + EXACT + ['--run_name', 'job', '--n_epoch', 1]) == 0
    assert not (logs / runfiles.HEARTBEAT_FILE).exists()  # removed when main() ended

    # on another host that shares the folders: a fresh heartbeat is watched, and one that moves is still running
    monkeypatch.setattr(utils, 'HEARTBEAT_SECONDS', 0.2)  # watched for 0.3 s
    write_heartbeat(logs, 'node-b', 7, slurm_job='111', age=20)

    def files_but_the_heartbeat():  # which the test touches
        return ({name: stat for name, stat in snapshot(workdir).items() if not name.endswith(runfiles.HEARTBEAT_FILE)},
                sorted(p.name for p in workdir.rglob('*')))

    before = files_but_the_heartbeat()
    stop_touching = threading.Event()

    def touch_until_stopped():  # as its process on node-b does while it runs
        while not stop_touching.wait(0.02):
            os.utime(logs / runfiles.HEARTBEAT_FILE)

    toucher = threading.Thread(target=touch_until_stopped)
    toucher.start()
    try:
        for argv in (['--run_name', 'job'], ['--resume', 'job']):
            with pytest.raises(RunError, match=r'^run job is still running on host node-b \(pid 7: it touched its '
                                               r'\.heartbeat just now\); stop it first'):
                train.main([str(arg) for arg in data_args + EXACT + argv + ['--n_epoch', 2]])
    finally:
        stop_touching.set()
        toucher.join()
    assert files_but_the_heartbeat() == before
    # killed hard there a moment ago (a requeue or a chained job starts here at once): its heartbeat stays still
    write_heartbeat(logs, 'node-b', 7, slurm_job='111', age=20)
    capsys.readouterr()
    assert run(data_args + EXACT + ['--run_name', 'job', '--n_epoch', 2]) == 0
    assert re.search(r'\.heartbeat was touched 2\d s ago on host node-b: waiting up to 0 s', capsys.readouterr().out)
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 2
    # this SLURM job's, or stale: not watched
    for job, age in (('111', 20), ('222', runfiles.HEARTBEAT_STALE_SECONDS + 1)):
        monkeypatch.setenv('SLURM_JOB_ID', '111')
        write_heartbeat(logs, 'node-b', 7, slurm_job=job, age=age)
        epoch = load(ckpts / 'latest_checkpoint.pt')['epoch']
        assert run(data_args + EXACT + ['--resume', 'job', '--n_epoch', epoch + 1]) == 0
        assert 'waiting' not in capsys.readouterr().out
        assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == epoch + 1

    # a start on another host that saved nothing, killed there: set aside, its heartbeat's age named
    started = workdir / 'loggers' / 'started'
    started.mkdir()
    (started / 'note.log').write_text('provenance:\n    host: node-b\n    pid: 7\nstatus: running\n')
    write_heartbeat(started, 'node-b', 7, age=20)
    assert runs.summarize(started)[0]['status'] == 'running'  # as far as its heartbeat tells
    write_heartbeat(started, 'node-b', 7, age=180)
    assert runs.summarize(started)[0]['status'] == 'failed (process gone)'
    capsys.readouterr()
    assert run(data_args + ['--run_name', 'started', '--n_epoch', 1]) == 0
    assert re.search(r'started again: an earlier start saved no checkpoint \(running on host node-b until its '
                     r'heartbeat stopped 18\d s ago\); its files are now in loggers/started\.attempt-1\n',
                     capsys.readouterr().out)
    assert not (workdir / 'loggers' / 'started.attempt-1' / runfiles.HEARTBEAT_FILE).exists()  # its process is gone


def test_the_heartbeat_names_this_process_and_is_touched_while_the_run_goes_on(workdir, data_args, monkeypatch):
    monkeypatch.setattr(utils, 'HEARTBEAT_SECONDS', 0.05)
    real_train, seen = train.train, []

    def train_watching_the_heartbeat(train_loader, valid_loader, model, config, device, checkpoint):
        path = Path(config['loggers_dir']) / runfiles.HEARTBEAT_FILE
        seen.append(json.loads(path.read_text()))
        os.utime(path, ns=(0, 0))  # the next touch moves it on
        time.sleep(0.5)
        seen.append(path.stat().st_mtime_ns)
        return real_train(train_loader, valid_loader, model, config, device, checkpoint)

    monkeypatch.setattr(train, 'train', train_watching_the_heartbeat)
    assert run(data_args + ['--n_epoch', 1]) == 0
    owner, touched = seen
    assert owner == {'host': socket.gethostname(), 'pid': os.getpid(), 'slurm_job': os.environ.get('SLURM_JOB_ID')}
    assert touched > 0
    logs, _ = only_run(workdir)
    assert not (logs / runfiles.HEARTBEAT_FILE).exists()


def test_a_heartbeat_that_cannot_be_written_touched_or_stopped_in_time_does_not_stop_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(utils, 'HEARTBEAT_SECONDS', 0.01)
    # its folder cannot be written: no error, nothing left behind, and stop() ends it
    beat = utils.Heartbeat(tmp_path / 'removed')
    beat.stop()
    assert not beat.thread.is_alive() and list(tmp_path.iterdir()) == []

    # a touch that fails (the folder went away under it) does not end the thread
    beat, failed = utils.Heartbeat(tmp_path), threading.Event()
    real_utime = os.utime

    def utime(path, *args, **kwargs):
        if Path(path) == beat.path:
            failed.set()
            raise OSError('stale file handle')
        return real_utime(path, *args, **kwargs)

    monkeypatch.setattr(utils.os, 'utime', utime)
    assert failed.wait(5)
    time.sleep(0.05)
    assert beat.thread.is_alive()
    beat.stop()
    assert not beat.thread.is_alive() and list(tmp_path.iterdir()) == []  # its own heartbeat removed

    # a touch that hangs (a file system that does not answer): stop() waits HEARTBEAT_JOIN_SECONDS, not forever
    monkeypatch.setattr(utils, 'HEARTBEAT_JOIN_SECONDS', 0.2)
    beat, stuck, release = utils.Heartbeat(tmp_path), threading.Event(), threading.Event()

    def utime(path, *args, **kwargs):
        if Path(path) == beat.path:
            stuck.set()
            release.wait(10)
        return real_utime(path, *args, **kwargs)

    monkeypatch.setattr(utils.os, 'utime', utime)
    assert stuck.wait(5)
    started = time.monotonic()
    beat.stop()
    try:
        assert time.monotonic() - started < 2 and beat.thread.is_alive() and beat.thread.daemon
        assert not beat.path.exists()
    finally:
        release.set()
        beat.thread.join(5)

    # another process wrote its heartbeat over this one's: stop() leaves it
    beat = utils.Heartbeat(tmp_path)
    write_heartbeat(tmp_path, 'node-b', 7)
    beat.stop()
    assert json.loads(beat.path.read_text())['host'] == 'node-b'


def test_reading_a_heartbeat_from_a_clock_that_runs_ahead_or_a_file_that_is_not_one(tmp_path):
    write_heartbeat(tmp_path, 'node-b', 7, age=-3600)  # touched by a host whose clock is an hour ahead
    assert runfiles.read_heartbeat(tmp_path) == {'host': 'node-b', 'pid': 7, 'slurm_job': None, 'age': 0.0}
    write_heartbeat(tmp_path, 'node-b', 7, age=30)
    assert 29 < runfiles.read_heartbeat(tmp_path)['age'] < 60
    for text in ('{"host": "node-b"', '["node-b", 7]', ''):  # cut short while written, or not one at all
        (tmp_path / runfiles.HEARTBEAT_FILE).write_text(text)
        assert runfiles.read_heartbeat(tmp_path) is None
    (tmp_path / runfiles.HEARTBEAT_FILE).unlink()
    assert runfiles.read_heartbeat(tmp_path) is None


def test_a_run_name_taken_while_the_run_starts_is_an_error_not_another_name(workdir, data_args, monkeypatch):
    named_run = train.named_run

    def same_job_started_twice(name, overrides):
        checkpoint, unsaved_start = named_run(name, overrides)  # no run of that name yet, so this one starts it
        (workdir / 'loggers' / name).mkdir(parents=True)  # and the other copy of the job makes its folder first
        return checkpoint, unsaved_start

    monkeypatch.setattr(train, 'named_run', same_job_started_twice)
    with pytest.raises(RunError, match='^run job was started by another process just now .+; run one job per '
                                       '--run_name$'):
        run(data_args + ['--run_name', 'job', '--n_epoch', 1])
    assert [p.name for p in (workdir / 'loggers').iterdir()] == ['job']  # no job_1, which a requeue would not find
    assert not (workdir / 'checkpoints').exists()


def test_overrides_that_change_the_model_or_the_split_are_refused(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, ckpts = only_run(workdir)
    saved = load(ckpts / 'latest_checkpoint.pt')['config']
    before = snapshot(workdir)
    shape_key = train.SHAPE_KEYS[0]
    fixes_data = 'it fixes which data trains and validates'
    for argv, message in [(['--seed', 1], f'seed when resuming: {fixes_data}; start a new run'),
                          (['--valid_ratio', 0.5], f'valid_ratio when resuming: {fixes_data};'),
                          ([f'--{shape_key}', saved[shape_key] + 1],
                           f"{shape_key} when resuming: it fixes the model's shape;"),
                          (['--seed', 1, f'--{shape_key}', saved[shape_key] + 1],
                           f"{shape_key}, seed when resuming: they fix the model's shape and which data trains and "
                           'validates; ')]:
        with pytest.raises(RunError, match=re.escape(f'cannot change {message}')):
            train.main(['--resume', logs.name, *map(str, argv)])
    assert snapshot(workdir) == before
    # a run saved before a key existed took its default: passing that value is no change
    checkpoint = load(ckpts / 'latest_checkpoint.pt')
    assert checkpoint['config']['seed'] == 6666
    del checkpoint['config']['seed']
    torch.save(checkpoint, ckpts / 'latest_checkpoint.pt')
    with pytest.raises(RunError, match=re.escape('cannot change seed when resuming')):
        train.main(['--resume', logs.name, '--seed', '1'])
    assert run(['--resume', logs.name, '--seed', 6666, '--n_epoch', 2]) == 0
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 2


{%- if cookiecutter.dataset != 'synthetic' %}


def test_data_moved_to_another_folder_resumes_with_its_new_place(workdir, data_args):
    from conftest import TEST_DATA_CONFIG
    from dataset import make_example

    assert run(data_args + ['--n_epoch', 1, '--run_name', 'moved']) == 0
    (workdir / 'data').rename(workdir / 'elsewhere')
    assert run(['--resume', 'moved', '--n_epoch', 1]) == 0  # a requeue of a finished run needs no data
    before = snapshot(workdir)
    with pytest.raises(RunError) as error:  # nothing at the run's dataset_dir now: before anything is written
        run(['--resume', 'moved', '--n_epoch', 2])
    assert str(error.value) == (f"the run's data is no longer at dataset_dir '{workdir / 'data'}'; if it moved, "
                                'resume with --dataset_dir <its new place>')
    (workdir / 'data').mkdir()  # its contents moved (mv data/* elsewhere/): an empty folder, but for a hidden file
    (workdir / 'data' / '.DS_Store').write_bytes(b'\0')
    before = snapshot(workdir)
    with pytest.raises(RunError, match=r"^the run's data is no longer at dataset_dir .+ <its new place>$"):
        run(['--resume', 'moved', '--n_epoch', 2])
    assert snapshot(workdir) == before
    assert run(['--resume', 'moved', '--n_epoch', 2, '--dataset_dir', workdir / 'elsewhere']) == 0
    checkpoint = load(workdir / 'checkpoints' / 'moved' / 'latest_checkpoint.pt')
    assert (checkpoint['epoch'], checkpoint['config']['dataset_dir']) == (2, str(workdir / 'elsewhere'))
    note = (workdir / 'loggers' / 'moved' / 'note.log').read_text()
    assert f"overrides: n_epoch=2, dataset_dir={workdir / 'elsewhere'}\n" in note
    make_example(workdir / 'other', TEST_DATA_CONFIG, n_samples=200)  # other data in its place is refused
    before = snapshot(workdir / 'checkpoints')
    with pytest.raises(RunError, match=r'^the data changed since .+ \(train samples \d+ -> \d+; valid samples'):
        run(['--resume', 'moved', '--n_epoch', 3, '--dataset_dir', workdir / 'other'])
    assert snapshot(workdir / 'checkpoints') == before
{%- endif %}


def test_lr_and_weight_decay_overrides_on_resume_are_applied_and_recorded(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1, '--scheduler_flag', 'false']) == 0
    logs, ckpts = only_run(workdir)
    assert run(['--resume', logs.name, '--n_epoch', 2, '--lr', 5e-3, '--weight_decay', 0.02]) == 0
    assert ' lr 5.0000e-03 grad_norm ' in epoch_lines(logs / 'train.log')[-1]
    assert 'lr=0.005' in (logs / 'note.log').read_text() and 'weight_decay=0.02' in (logs / 'note.log').read_text()
    assert {key: runs.summarize(logs)[1][key] for key in ('lr', 'n_epoch')} == {'lr': '0.005', 'n_epoch': '2'}
    groups = load(ckpts / 'latest_checkpoint.pt')['optimizer']['param_groups']
    assert [group['weight_decay'] for group in groups] == [0.02, 0.0]  # biases and norms still do not decay


def as_saved_before_format_3(checkpoint):
    """`checkpoint` as the code before format 3 saved it: AdamW with one group, which decays every parameter."""
    params = list(train.build_model(checkpoint['config']).parameters())
    order = [i for i, p in enumerate(params) if p.ndim >= 2] + [i for i, p in enumerate(params) if p.ndim < 2]
    optimizer, scheduler = checkpoint['optimizer'], checkpoint['scheduler']
    group = {**optimizer['param_groups'][0], 'params': list(range(len(params)))}
    optimizer = {'state': {order[i]: state for i, state in optimizer['state'].items()}, 'param_groups': [group]}
    scheduler = {**scheduler, **{key: scheduler[key][:1] for key in ('base_lrs', '_last_lr', 'lr_lambdas')}}
    return {**checkpoint, 'format_version': 2, 'optimizer': optimizer, 'scheduler': scheduler}


def test_a_checkpoint_with_one_optimizer_group_resumes_with_it_exactly(workdir, data_args, monkeypatch):
    # saved before format 3, a run goes on decaying every parameter, as it trained: resuming twice equals once
    assert run(data_args + ['--n_epoch', 2] + EXACT) == 0
    logs, ckpts = only_run(workdir)
    save_checkpoint(as_saved_before_format_3(load(ckpts / 'latest_checkpoint.pt')), ckpts / 'latest_checkpoint.pt')
    for folder in ('loggers', 'checkpoints'):
        shutil.copytree(workdir / folder, workdir / 'once' / folder)
    assert run(['--resume', logs.name, '--n_epoch', 3]) == 0
    assert run(['--resume', logs.name, '--n_epoch', 4]) == 0
    monkeypatch.chdir(workdir / 'once')
    assert run(['--resume', logs.name, '--n_epoch', 4]) == 0
    twice, once = (load(root / 'checkpoints' / ckpts.name / 'latest_checkpoint.pt')
                   for root in (workdir, workdir / 'once'))
    assert_same_weights(twice['model'], once['model'])
    n_params = len(list(train.build_model(once['config']).parameters()))
    for checkpoint in (twice, once):
        assert checkpoint['epoch'] == 4
        assert [(len(g['params']), g['weight_decay']) for g in checkpoint['optimizer']['param_groups']] == [
            (n_params, checkpoint['config']['weight_decay'])]


def test_resume_refuses_data_that_changed_since_the_checkpoint(tmp_path, config):
    config = {**config, 'n_samples': 160} if 'n_samples' in config else config
{%- if cookiecutter.dataset != 'synthetic' %}
    from dataset import make_example

    make_example(tmp_path / 'data', config, n_samples=160)
    config['dataset_dir'] = str(tmp_path / 'data')
{%- endif %}
    train_set, valid_set = build_datasets(config)
    saved = {'data': data_fingerprint(train_set, valid_set), 'classes': classes_of(train_set)}
    assert saved['data']['train'] == 128 and saved['data']['valid'] == 32
    check_same_data(saved, train_set, valid_set, 'x.pt')  # the same data resumes
    check_same_data({}, train_set, valid_set, 'x.pt')  # so does a checkpoint from before data was recorded
    changed = [({**saved, 'data': {**saved['data'], 'train': 120}}, 'train samples 120 -> 128'),
               ({**saved, 'data': {**saved['data'], 'samples_sha256': '0' * 16}}, 'as many samples, but other files'),
               ({**saved, 'classes': ['a', 'b', 'c']},
                'other class names' if len(saved['classes'] or []) == 3
                else f"class names 3 -> {len(saved['classes'] or [])}")]
    for checkpoint, expected in changed:
        with pytest.raises(RunError, match=f"the data changed since 'x.pt' was saved \\(.*{expected}") as error:
            check_same_data(checkpoint, train_set, valid_set, 'x.pt')
        assert str(error.value).endswith("start a new run from these weights with --init_from 'x.pt'")
{%- if cookiecutter.dataset in ['csv', 'synthetic'] %}
    # inputs held in memory are hashed too: one value edited (a CSV cell, say) is noticed
    inputs = train_set.dataset.inputs  # a tensor, or a list of them (sequences)
    inputs = inputs[len(inputs) // 2]
    inputs.view(-1)[inputs.numel() // 2] += 1
    with pytest.raises(RunError, match="the data changed since 'x.pt' was saved \\(the same samples, but other input "
                                       "values\\); resume with the data the run started with, or start a new run"):
        check_same_data(saved, train_set, valid_set, 'x.pt')
    check_same_data({**saved, 'data': {k: v for k, v in saved['data'].items() if k != 'inputs_sha256'}},
                    train_set, valid_set, 'x.pt')  # a checkpoint from before inputs were hashed resumes
{%- else %}
    assert saved['data']['inputs_sha256'] is None  # files are not read for the fingerprint
{%- endif %}


def test_resume_notices_labels_kept_in_a_list_that_changed():
    # a dataset of your own that keeps its labels in a list, as torchvision does: before, only a tensor was hashed
    labels = [0, 1, 2, 1] * 10
    dataset = torch.utils.data.TensorDataset(torch.zeros(40, 1), torch.tensor(labels))
    dataset.targets = list(labels)
    train_set, valid_set = torch.utils.data.Subset(dataset, range(32)), torch.utils.data.Subset(dataset, range(32, 40))
    saved = {'data': data_fingerprint(train_set, valid_set)}
    dataset.targets = torch.tensor(labels)
    assert data_fingerprint(train_set, valid_set) == saved['data']  # the labels, however they are kept
    dataset.targets[5] = 0
    with pytest.raises(RunError, match=re.escape("the data changed since 'x.pt' was saved (as many samples, but other "
                                                 'files or labels), so the split and the labels would differ')):
        check_same_data(saved, train_set, valid_set, 'x.pt')
    # saved by code that did not read a list: nothing known of the labels, so it resumes as it did
    check_same_data({'data': {**saved['data'], 'samples_sha256': None}}, train_set, valid_set, 'x.pt')


def test_the_labels_hash_is_the_one_checkpoints_saved_before_whatever_the_labels_dtype_or_layout():
    # it hashed struct.pack of each label as an 8-byte float or int; the labels' memory, read in place now, must
    # hash the same, or every run saved before would be refused on resume as relabelled
    def packed(targets):
        values = targets.flatten().tolist()
        kind = 'd' if targets.is_floating_point() else 'q'
        return hashlib.sha256(struct.pack(f'<{len(values)}{kind}', *values)).hexdigest()[:16]

    labels = [torch.arange(12) % 3, (torch.arange(12) % 3).to(torch.uint8), torch.arange(12) % 2 == 0, torch.randn(12),
              torch.randn(12, dtype=torch.float16), torch.randn(12, 1, dtype=torch.float64),
              torch.randn(2, 12).t(), torch.arange(24)[::2]]  # the last two are not contiguous
    for targets in labels:
        dataset = torch.utils.data.TensorDataset(torch.zeros(12, 1), targets)
        dataset.targets = targets
        assert data_fingerprint(dataset, dataset)['samples_sha256'] == packed(targets), targets
{%- if cookiecutter.dataset in ['csv', 'synthetic'] %}


def test_the_first_batch_does_not_wait_for_the_inputs_hash_which_the_checkpoint_still_records(workdir, data_args,
                                                                                               monkeypatch):
    # inputs held in memory (gigabytes: seconds to hash) are hashed on a thread while training starts
    events, real_hash, real_train, to_device = [], utils.inputs_sha256, train.train, train.to_device

    def slow_hash(inputs):
        time.sleep(1)
        events.append('hashed')
        return real_hash(inputs)

    def logged_train(*args, **kwargs):
        events.append('train')
        return real_train(*args, **kwargs)

    def logged_to_device(*args):
        events.append('batch')
        return to_device(*args)

    monkeypatch.setattr(utils, 'inputs_sha256', slow_hash)
    monkeypatch.setattr(train, 'train', logged_train)
    monkeypatch.setattr(train, 'to_device', logged_to_device)
    assert run(data_args + ['--n_epoch', 1]) == 0
    assert events.index('batch', events.index('train')) < events.index('hashed')
    checkpoint = load(only_run(workdir)[1] / 'latest_checkpoint.pt')
    train_set, valid_set = build_datasets(checkpoint['config'])
    assert checkpoint['data'] == data_fingerprint(train_set, valid_set)
    assert checkpoint['data']['inputs_sha256'] is not None


def test_an_error_of_the_inputs_hash_on_its_thread_is_raised_and_no_checkpoint_goes_without_it(workdir, data_args,
                                                                                               monkeypatch):
    def failing_hash(inputs):
        raise RuntimeError('the hash failed')

    monkeypatch.setattr(utils, 'inputs_sha256', failing_hash)
    with pytest.raises(RuntimeError, match='the hash failed'):
        run(data_args + ['--n_epoch', 1])
    assert not list((workdir / 'checkpoints').rglob('*.pt'))
{%- endif %}
{%- if cookiecutter.dataset != 'synthetic' %}


@pytest.mark.parametrize('change', ['removed', 'replaced'{{ ", 'edited'" if cookiecutter.dataset == 'csv' else '' }}])
def test_resume_after_the_data_changed_is_refused_and_touches_nothing(workdir, data_args, change):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, ckpts = only_run(workdir)
    assert load(ckpts / 'latest_checkpoint.pt')['data']['train'] == 128
    data = workdir / 'data'
{%- if cookiecutter.dataset == 'image_folder' %}
    last = sorted(data.rglob('*.png'))[-1]
    if change == 'removed':
        last.unlink()
    else:
        last.rename(last.with_name('renamed.png'))
{%- else %}
    listing = data / {{ "'data.csv'" if cookiecutter.dataset == 'csv' else "'index.csv'" }}
    header, *rows = listing.read_text().splitlines()
    if change == 'removed':
        rows = rows[:-1]
{%- if cookiecutter.dataset == 'csv' %}
    elif change == 'edited':  # one feature value, in the middle of the file
        cells = rows[len(rows) // 2].split(',')
        rows[len(rows) // 2] = ','.join([str(float(cells[0]) + 1), *cells[1:]])
{%- endif %}
    else:  # as many rows, in another order: the same row numbers or files, but other labels at them
        rows = rows[1:] + rows[:1]
    listing.write_text('\n'.join([header, *rows]) + '\n')
{%- endif %}
    before = snapshot(workdir)
    expected = {'removed': 'train samples 128 -> 127', 'replaced': 'as many samples, but other files or labels',
                'edited': 'the same samples, but other input values'}[change]
    with pytest.raises(RunError, match=f'the data changed .*{expected}'):
        run(['--resume', logs.name, '--n_epoch', 2])
    assert snapshot(workdir) == before
    assert run(data_args + ['--n_epoch', 1, '--init_from', ckpts / 'latest_checkpoint.pt']) == 0  # what it advises
    assert len(list((workdir / 'loggers').iterdir())) == 2
{%- endif %}


def record_starting_weights(monkeypatch):
    """Patch train.train to keep a copy of the weights it is called with (after 3.9 loaded them)."""
    starting_weights, real_train = {}, train.train

    def recording_train(train_loader, valid_loader, model, config, device, checkpoint):
        starting_weights.update({k: v.clone() for k, v in unwrap(model).state_dict().items()})
        return real_train(train_loader, valid_loader, model, config, device, checkpoint)

    monkeypatch.setattr(train, 'train', recording_train)
    return starting_weights


def test_init_from_starts_a_new_run_from_another_runs_best_weights(workdir, data_args, monkeypatch):
    assert run(data_args + ['--n_epoch', 2]) == 0
    source_logs, source_ckpts = only_run(workdir)
    source = snapshot(workdir)
    starting_weights = record_starting_weights(monkeypatch)
    assert run(data_args + ['--n_epoch', 1, '--init_from', source_logs.name]) == 0
    assert_same_weights(starting_weights, load(source_ckpts / 'best_checkpoint.pt')['model'])
    assert {k: v for k, v in snapshot(workdir).items() if k in source} == source  # the source run is untouched
    [logs] = [p for p in (workdir / 'loggers').iterdir() if p != source_logs]
    new = load(workdir / 'checkpoints' / logs.name / 'latest_checkpoint.pt')
    # fresh counters
    assert new['epoch'] == 1 and new['step'] == load(source_ckpts / 'latest_checkpoint.pt')['step'] // 2
    recorded = Path(read_note(logs)[0]['init_from'])  # note.log's config names the weights the run started from
    assert recorded.resolve() == (source_ckpts / 'best_checkpoint.pt').resolve()
    assert 'start fresh' not in (logs / 'note.log').read_text()
{%- if cookiecutter.task == 'classification' %}


def test_init_from_with_another_num_classes_starts_only_the_output_layer_fresh(workdir, data_args, monkeypatch):
    # fine-tuning on a new label set: every weight but the output layer's comes from the checkpoint
    assert run(data_args + ['--n_epoch', 1]) == 0
    source_logs, source_ckpts = only_run(workdir)
    source_weights = load(source_ckpts / 'best_checkpoint.pt')['model']
    num_classes = load(source_ckpts / 'best_checkpoint.pt')['config']['num_classes']
    new_labels = ['--num_classes', num_classes + 3]
{%- if cookiecutter.dataset != 'synthetic' %}
    from conftest import TEST_DATA_CONFIG
    from dataset import make_example

    make_example(workdir / 'new_labels', {**TEST_DATA_CONFIG, 'num_classes': num_classes + 3}, n_samples=160)
    new_labels += ['--dataset_dir', workdir / 'new_labels']  # class names must fill num_classes (image folders)
{%- endif %}
    starting_weights = record_starting_weights(monkeypatch)
    assert run(data_args + ['--n_epoch', 1, '--init_from', source_logs.name] + new_labels) == 0
    fresh = [k for k in source_weights if starting_weights[k].shape != source_weights[k].shape]
    # the head's weight and bias
    assert len(fresh) == 2 and all(starting_weights[k].shape[0] == num_classes + 3 for k in fresh), fresh
    assert_same_weights({k: v for k, v in starting_weights.items() if k not in fresh},
                        {k: v for k, v in source_weights.items() if k not in fresh})
    [logs] = [p for p in (workdir / 'loggers').iterdir() if p != source_logs]
    new = load(workdir / 'checkpoints' / logs.name / 'latest_checkpoint.pt')
    assert new['config']['num_classes'] == num_classes + 3
{%- if cookiecutter.dataset == 'image_folder' %}
    # class folders are names: each class of the source run keeps its values, whatever its number here
    old_classes, classes = load(source_ckpts / 'best_checkpoint.pt')['classes'], new['classes']
    added = [name for name in classes if name not in old_classes]
    assert len(added) == 3  # with 10 classes, class_10 sorts before class_2: class_2..class_9 are renumbered
    for key in fresh:
        for i, name in enumerate(classes):
            row = starting_weights[key][i]
            if name in added:  # fresh: none of the source run's rows
                assert not any(torch.equal(row, old_row) for old_row in source_weights[key]), (key, name)
            else:
                assert torch.equal(row, source_weights[key][old_classes.index(name)]), (key, name)
    assert (f"init_from: {', '.join(fresh)} take the checkpoint's values class by class, by name; 3 of "
            f"{num_classes + 3} classes, which it does not name, start fresh: {', '.join(map(repr, added))}"
            in (logs / 'note.log').read_text())
{%- else %}
    assert f"init_from: {', '.join(fresh)} start fresh" in (logs / 'note.log').read_text()
{%- endif %}


def test_init_from_onto_another_label_set_follows_the_class_names(config):
    # a class keeps its row of the output layer whatever number it has in each label set; a new one starts fresh
    from model import build_model

    config = {**config, 'num_classes': 3, 'init_from': 'x.pt', 'init_partial': False}
    old = build_model(config).state_dict()
    own = build_model(config).state_dict()
    dims = utils.class_dims(build_model, config)
    assert len(dims) == 2 and all(own[key].shape[dim] == 3 for key, dim in dims.items())  # the head's weight, bias
    state, fresh = utils.follow_class_names(own, old, dims, ['cat', 'dog', 'eel'], ['bird', 'cat', 'dog'])
    assert fresh == ['bird']
    for key, dim in dims.items():
        assert torch.equal(state[key].select(dim, 0), own[key].select(dim, 0))  # bird: fresh
        assert torch.equal(state[key].select(dim, 1), old[key].select(dim, 0))  # cat: 0 -> 1
        assert torch.equal(state[key].select(dim, 2), old[key].select(dim, 1))  # dog: 1 -> 2
    assert all(torch.equal(state[key], old[key]) for key in old if key not in dims)
    model = build_model(config)
    state, _ = utils.follow_class_names(model.state_dict(), old, dims, ['cat', 'dog', 'eel'], ['bird', 'cat', 'dog'])
    note, fresh = utils.load_init_state(model, {'model': old, 'resized': False, 'classes': ['cat', 'dog', 'eel'],
                                                'feature_columns': None}, config, ['bird', 'cat', 'dog'], build_model)
    assert fresh == [] and all(torch.equal(model.state_dict()[key], state[key]) for key in dims)
    assert note == (f"init_from: {', '.join(dims)} take the checkpoint's values class by class, by name; 1 of 3 "
                    "classes, which it does not name, start fresh: 'bird'")
    same = utils.load_init_state(model, {'model': old, 'resized': False, 'classes': ['a', 'b', 'c'],
                                         'feature_columns': None}, config, ['a', 'b', 'c'], build_model)
    assert same == ('', []) and all(torch.equal(model.state_dict()[key], old[key]) for key in old)

    def two_a_class(config):  # a layer per class, then two outputs a class: not a slice per class throughout
        return torch.nn.Sequential(torch.nn.Linear(4, config['num_classes']),
                                   torch.nn.Linear(config['num_classes'], 2 * config['num_classes']))

    assert utils.class_dims(two_a_class, config) == {}
    assert utils.class_dims(lambda config: torch.nn.Linear(4, 2 * config['num_classes']), config) == {}
    key, dim = next(iter(dims.items()))
    other = {**old, key: old[key].narrow(1 - dim, 0, 1) if old[key].dim() == 2 else old[key][None]}  # another width
    other_init = {'model': other, 'resized': False, 'classes': ['cat', 'dog', 'eel'], 'feature_columns': None}
    with pytest.raises(RunError, match="checkpoint 'x.pt' does not fit this model .+ or pass --init_partial true"):
        utils.load_init_state(model, other_init, config, ['bird', 'cat', 'dog'], build_model)
    # with init_partial, the classes follow their names where they can, then what fits loads and the rest starts fresh
    fresh_value = model.state_dict()[key].clone()
    note, fresh = utils.load_init_state(model, other_init, {**config, 'init_partial': True}, ['bird', 'cat', 'dog'],
                                        build_model)
    assert fresh == [key] and torch.equal(model.state_dict()[key], fresh_value)
    followed = ', '.join(other for other in dims if other != key)  # `key` was saved from another architecture
    assert note == (f"init_from: {followed} take the checkpoint's values class by class, by name; 1 of 3 "
                    "classes, which it does not name, start fresh: 'bird'\n"
                    f"init_from: {len(old) - 1} of the model's {len(old)} tensors loaded by name and shape "
                    f"(init_partial); 1 start fresh: {key!r}; the checkpoint's tensors of another shape not loaded: "
                    f'{key!r}')
    wider = build_model({**config, 'num_classes': 4}).state_dict()  # saved with more outputs than class names
    note, fresh = utils.load_init_state(model, {'model': wider, 'resized': True, 'classes': ['a', 'b', 'c'],
                                                'feature_columns': None}, config, ['a', 'b', 'c'], build_model)
    assert note == f"init_from: {', '.join(dims)} take the checkpoint's values class by class, by name" and not fresh
    assert all(torch.equal(model.state_dict()[key], wider[key].narrow(dim, 0, 3)) for key, dim in dims.items())


def test_init_from_by_class_name_with_a_model_that_the_meta_device_cannot_build():
    config = {'num_classes': 3}

    def needs_values(config):  # .item() in __init__: an error on the meta device
        return torch.nn.Linear(int(torch.full((1,), 4).item()), config['num_classes'])

    with pytest.raises(RuntimeError), torch.device('meta'):
        needs_values(config)
    rng = torch.get_rng_state()
    assert utils.class_dims(needs_values, config) == {'weight': 0, 'bias': 0}  # built on the CPU instead
    assert torch.equal(torch.get_rng_state(), rng)  # its initialisation drew no numbers from this run's RNG

    def three_classes_only(config):
        assert config['num_classes'] == 3
        return torch.nn.Linear(4, 3)

    assert utils.class_dims(three_classes_only, config) == {}  # which tensors follow num_classes cannot be told


def test_init_from_onto_other_class_names_that_cannot_be_mapped_says_they_keep_their_numbers():
    def two_a_class(config):  # two outputs a class, side by side: not one slice per class
        return torch.nn.Linear(4, 2 * config['num_classes'])

    config = {'num_classes': 3, 'init_from': 'x.pt', 'init_partial': False}
    old, model = two_a_class(config).state_dict(), two_a_class(config)
    note, _ = utils.load_init_state(model, {'model': old, 'resized': False, 'classes': ['cat', 'dog', 'eel'],
                                            'feature_columns': None}, config, ['ant', 'bee', 'cat'], two_a_class)
    assert note == ("init_from: the classes are not the checkpoint's ('ant', 'bee', 'cat'; it has 'cat', 'dog', "
                    "'eel'), and no tensor of the model holds one slice per class to map them by name: the output "
                    "layer keeps the checkpoint's values by class number")
    assert all(torch.equal(model.state_dict()[key], old[key]) for key in old)
    same = utils.load_init_state(model, {'model': old, 'resized': False, 'classes': ['cat', 'dog', 'eel'],
                                         'feature_columns': None}, config, ['cat', 'dog', 'eel'], two_a_class)
    assert same == ('', [])
{%- endif %}


@pytest.mark.parametrize('problem', ['other size', 'no such run', 'while resuming', 'partial alone',
                                     'partial while resuming'])
def test_init_from_errors_are_one_line_and_write_nothing(workdir, data_args, problem):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    key = next(key for key in train.SHAPE_KEYS if key != 'num_classes')  # another num_classes is fine-tuning
    saved = load(workdir / 'checkpoints' / logs.name / 'latest_checkpoint.pt')['config'][key]
    argv, expected = {
        'other size': (data_args + ['--init_from', logs.name, f'--{key}', saved + 1],
                       f'holds a model of another size \\({key} {saved}, not {saved + 1}\\); pass --{key} {saved}, or '
                       '--init_partial true to load the tensors that fit and start the rest fresh$'),
        'no such run': (data_args + ['--init_from', '19990101_000000'], "nothing for --init_from at '19990101_000000'"),
        'while resuming': (['--resume', logs.name, '--init_from', logs.name], 'drop it when resuming'),
        'partial alone': (data_args + ['--init_partial', 'true'], '^init_partial loads part of the weights that '
                          '--init_from names; pass --init_from too, or drop --init_partial$'),
        'partial while resuming': (['--resume', logs.name, '--init_partial', 'false'],
                                   '^--init_partial applies when --init_from starts a new run; drop it when resuming$'),
    }[problem]
    before = snapshot(workdir)
    with pytest.raises(RunError, match=expected) as error:
        run(argv)
    assert error.value.code == 2 and '\n' not in str(error.value)
    assert snapshot(workdir) == before and len(list((workdir / 'loggers').iterdir())) == 1


def test_init_partial_loads_the_tensors_that_fit_and_starts_the_rest_fresh(workdir, data_args, monkeypatch):
    # a shape key changed since the run ({{ 'other image channels' if cookiecutter.model == 'cnn' else 'one more layer' }}): the tensors of the same name and shape
    # come over, the others start fresh
    assert run(data_args + ['--n_epoch', 1]) == 0
    source_logs, source_ckpts = only_run(workdir)
    source = load(source_ckpts / 'best_checkpoint.pt')
{%- if cookiecutter.model == 'cnn' %}
    key, value = 'image_channels', 3 if source['config']['image_channels'] == 1 else 1
{%- else %}
    key, value = 'n_layers', source['config']['n_layers'] + 1
{%- endif %}
    starting_weights = record_starting_weights(monkeypatch)
    argv = data_args + ['--n_epoch', 1, '--init_from', source_logs.name, f'--{key}', value, '--init_partial', 'true']
    assert run(argv + ['--seed', 7]) == 0  # another training split: scaling buffers refitted would differ
    saved = source['model']
    fits = [k for k, v in starting_weights.items() if k in saved and saved[k].shape == v.shape]
    fresh = [k for k in starting_weights if k not in fits]
    assert fits and fresh
    assert_same_weights({k: starting_weights[k] for k in fits}, {k: saved[k] for k in fits})
{%- if cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] or cookiecutter.task == 'regression' %}
    for part in ('feature', 'target'):  # a part whose buffers start fresh is fitted to this data, not left at 0 and 1
        if f'{part}_std' in fresh:
            assert not torch.equal(starting_weights[f'{part}_std'], torch.ones_like(starting_weights[f'{part}_std']))
{%- endif %}
    reshaped = [k for k in saved if k in starting_weights and k not in fits]
    [logs] = [p for p in (workdir / 'loggers').iterdir() if p != source_logs]
    expected = (f"init_from: {len(fits)} of the model's {len(starting_weights)} tensors loaded by name and shape "
                f"(init_partial); {len(fresh)} start fresh: {', '.join(map(repr, fresh))}"
                + (f"; the checkpoint's tensors of another shape not loaded: {', '.join(map(repr, reshaped))}"
                   if reshaped else ''))
    assert expected + '\n' in (logs / 'note.log').read_text()
    assert read_note(logs)[0]['init_partial'] == 'True'
    assert run(['--resume', logs.name, '--n_epoch', 2]) == 0  # resume goes on from the run's own weights
    assert load(workdir / 'checkpoints' / logs.name / 'latest_checkpoint.pt')['epoch'] == 2


def test_init_partial_names_what_it_loads_and_refuses_a_checkpoint_of_which_nothing_fits():
    saved = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).state_dict()
    edited = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    fresh_values = {k: v.clone() for k, v in edited.state_dict().items()}
    note, fresh = utils.load_fitting_state(edited, {**saved, 'old.scale': torch.ones(1)}, 'x.pt')
    assert fresh == ['1.weight', '1.bias', '2.weight', '2.bias']
    assert note == ("2 of the model's 6 tensors loaded by name and shape (init_partial); 4 start fresh: '1.weight', "
                    "'1.bias', '2.weight', '2.bias'; the checkpoint's tensors of another shape not loaded: '2.weight', "
                    "'2.bias'; the checkpoint's tensors not in this model not loaded: 'old.scale'")
    assert_same_weights({k: v for k, v in edited.state_dict().items() if k.startswith('0.')},
                        {k: v for k, v in saved.items() if k.startswith('0.')})
    assert_same_weights({k: v for k, v in edited.state_dict().items() if not k.startswith('0.')},
                        {k: v for k, v in fresh_values.items() if not k.startswith('0.')})
    other = torch.nn.Sequential(torch.nn.Linear(5, 7))
    with pytest.raises(RunError) as error:
        utils.load_fitting_state(other, saved, 'x.pt')
    assert str(error.value) == ("--init_from 'x.pt' holds no tensor of this model's names and shapes (not in this "
                                "model: '2.weight', '2.bias'; another shape: '0.weight', '0.bias' ('0.weight': [8, 4] "
                                'in it, [7, 5] here)); it holds another model: leave out --init_from')


def test_a_checkpoint_of_another_model_names_the_tensors_that_do_not_fit():
    """model.py edited since the run saved (a layer added, the head resized): the error names the tensors, where
    torch's first line says only 'Error(s) in loading state_dict'."""
    saved = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).state_dict()
    edited = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    shorter = torch.nn.Sequential(torch.nn.Linear(4, 8))
    for model, why in [(edited, "not in it: '1.weight', '1.bias'; another shape: '2.weight', '2.bias' ('2.weight': "
                                "[3, 8] in it, [2, 8] here)"),
                       (shorter, "not in this model: '2.weight', '2.bias'")]:
        with pytest.raises(RunError) as error:
            utils.load_model_state(model, saved, 'x.pt')
        assert str(error.value) == (f"checkpoint 'x.pt' does not fit this model ({why}); it was saved from another "
                                    'architecture or size: use the model.py it was trained with')


class Payload:
    def __reduce__(self):
        return (open, ('pwned.txt', 'w'))


@pytest.mark.parametrize('problem', ['unknown timestamp', 'missing file', 'only a best', 'no checkpoint yet',
                                     'truncated', 'garbage', 'text', 'code', 'architecture', 'empty', 'not a run'])
def test_resume_errors_are_one_line_exit_2_and_touch_nothing(workdir, data_args, problem, capsys):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, ckpts = only_run(workdir)
    latest = ckpts / 'latest_checkpoint.pt'
    target, expected = str(latest), ''
    if problem == 'unknown timestamp':
        target, expected = '19990101_000000', 'nothing for --resume'
    elif problem == 'missing file':
        target, expected = str(ckpts / 'nope.pt'), 'nothing for --resume'
    elif problem == 'only a best':  # killed before the first latest save: the error names the file there is
        latest.unlink()
        target = logs.name
        expected = "no latest_checkpoint.pt in '.+'; pass one of its files with --resume: .+best_checkpoint.pt$"
    elif problem == 'no checkpoint yet':  # killed in its first epoch
        (ckpts.parent / 'empty').mkdir()
        (ckpts.parent / 'empty' / '.latest_checkpoint.pt.123.tmp').write_bytes(b'an unfinished save')
        target, expected = 'empty', "no checkpoint in '.+': its run stopped before it saved one; start a new run$"
    elif problem == 'truncated':
        target, expected = str(workdir / 'cut.pt'), 'truncated or corrupt'
        (workdir / 'cut.pt').write_bytes(latest.read_bytes()[:1000])
    elif problem == 'garbage':
        target, expected = str(workdir / 'junk.pt'), 'corrupt'
        (workdir / 'junk.pt').write_bytes(b'this is not a checkpoint at all')
    elif problem == 'text':  # a log passed by mistake: not a pickle at all
        target, expected = str(logs / 'train.log'), 'not a file that torch.save wrote'
    elif problem == 'code':
        target, expected = str(workdir / 'evil.pt'), 'refused to load'
        (workdir / 'evil.pt').write_bytes(pickle.dumps({'format_version': 1, 'x': Payload()}, protocol=2))
    elif problem == 'not a run':  # the project folder: not "its run stopped before it saved one"
        target, expected = '.', (r"^'\.' is not a run's checkpoints folder \(no \.pt file in it\); pass --resume a "
                                 "run's timestamp or name, its checkpoints folder, or a checkpoint file$")
    elif problem == 'empty':  # "$CHECKPOINT" of an unset variable: not a new run in its place
        target, expected = '', (r'^--resume is empty \(an unset shell variable\?\); give it a value, or leave --resume '
                                'out for a new run$')
    elif problem == 'architecture':  # another project's checkpoint: its model and its data both differ
        checkpoint = load(latest)
        name = next(iter(checkpoint['model']))
        checkpoint['model'][name] = torch.zeros(7, 7, 7)
        checkpoint['data']['train'] += 1  # the model's error comes first: the data error advises --init_from
        torch.save(checkpoint, workdir / 'other.pt')
        target, expected = str(workdir / 'other.pt'), (
            rf"does not fit this model \(another shape: '{re.escape(name)}' \('{re.escape(name)}': \[7, 7, 7\] in it, "
            r'\[[0-9, ]+\] here\)\); it was saved from another architecture or size: use the model\.py it was '
            'trained with$')
    before = snapshot(workdir)
    with pytest.raises(RunError, match=expected) as error:
        train.main(['--resume', target, '--n_epoch', '2'])  # an epoch left to train, so the model is built
    assert error.value.code == 2 and '\n' not in str(error.value)
    assert snapshot(workdir) == before
    assert not (workdir / 'pwned.txt').exists()


def test_resume_refuses_a_run_whose_process_still_runs(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    note = logs / 'note.log'
    finished = note.read_text()

    def pretend_running(process):  # what note.log says while a (resumed) run trains
        note.write_text(finished + f'provenance:\n    host: {socket.gethostname()}\n    pid: {process.pid}\n'
                        'status: running\n')

    sleep = [sys.executable, '-c', 'import time; time.sleep(60)']
    other = subprocess.Popen(sleep)  # the pid now belongs to another program: the run itself is gone
    stand_in = subprocess.Popen(sleep + ['train.py'])  # its command line names train.py, as the run's does
    for process in (other, stand_in):  # until exec, a child's command line is still pytest's
        cmdline, deadline = Path(f'/proc/{process.pid}/cmdline'), time.time() + 30
        while cmdline.exists() and b'time.sleep(60)' not in cmdline.read_bytes() and time.time() < deadline:
            time.sleep(0.01)
    try:
        pretend_running(other)
        assert runs.summarize(logs)[0]['status'] == 'failed (process gone)'
        pretend_running(stand_in)
        assert runs.summarize(logs)[0]['status'] == 'running'
        before = snapshot(workdir)
        with pytest.raises(RunError, match=rf'run {logs.name} is still running \(pid {stand_in.pid}\); stop it first'):
            train.main(['--resume', logs.name, '--n_epoch', '2'])
        assert snapshot(workdir) == before
    finally:
        for process in (other, stand_in):
            process.kill()
            process.wait()
    assert runs.summarize(logs)[0]['status'] == 'failed (process gone)'
    assert run(['--resume', logs.name, '--n_epoch', 2]) == 0


def draws():
    return random.random(), torch.rand(3).tolist()


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    torch.manual_seed(2)
    draws()
    save_checkpoint({'rng': get_rng_state()}, tmp_path / 'rng.pt')
    expected = draws()
    draws()  # move on, then go back
    set_rng_state(load(tmp_path / 'rng.pt')['rng'])
    assert draws() == expected


def test_rng_states_from_checkpoints_that_stored_lists_still_load():
    random.seed(3)
    state = get_rng_state()
    expected = draws()
    version, internal, gauss = state['python']
    state['python'] = [version, internal.tolist(), gauss]  # how checkpoints stored it before
    if state['numpy'] is not None:
        state['numpy'][1] = state['numpy'][1].tolist()
    set_rng_state(state)
    assert draws() == expected
