"""Interruptions and faults: Ctrl-C and SIGTERM save and resume exactly, saves are atomic, runs never collide."""

import contextlib
import errno
import functools
import importlib.util
import io
import logging
import math
import multiprocessing
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

import train
import utils
from conftest import (
    AUGMENT,
    EXACT_ON_THIS_DEVICE,
    PROJECT,
    TEST_BATCH_SIZE,
    as_at_a_terminal,
    epoch_lines,
    failing_in_a_worker,
    load,
    needs_descriptor_sharing,
    needs_forkserver,
    only_run,
    run,
    run_as_group,
    run_process,
    script_file,
    tiny_data_args,
)
from runfiles import (
    HEARTBEAT_FILE,
    METRICS_COLUMNS,
    OPTIONAL_METRICS_COLUMNS,
    RunError,
    last_crash,
    read_metrics_rows,
    shown_status,
    stalled_since,
)
from runs import summarize
from test_resume import straight_run
from utils import (
    Interrupted,
    MetricsFile,
    RunLogFile,
    SaveTimer,
    StopRequest,
    StopSafeDataLoader,
    claim_run_dirs,
    duration_text,
    exit_on_stop,
    save_checkpoint,
    write_config_file,
    write_traceback,
)

N_EPOCH = 4
# with an image project's random flips and shifts: a resume must draw them as the straight run did
LONG = ['--n_epoch', N_EPOCH, '--log_interval', 1, *AUGMENT, *EXACT_ON_THIS_DEVICE]


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    """The data and the uninterrupted run that both signal tests compare with (it is the same for both)."""
    root = tmp_path_factory.mktemp('signals')
    data_args = tiny_data_args(root)
    return data_args, straight_run(root / 'straight', data_args, N_EPOCH, LONG[2:])


def interrupt_after_first_epoch(workdir, argv, signum, extra_signal=False):
    """Start train.py, send `signum` once epoch 1 is validated, and return (exit code, stderr)."""
    # 8 batches an epoch, 0.05 s each: the 3 epochs after the first leave 1.2 s to send it
    process = run_process(argv, workdir, pause_per_batch=0.05)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        logs = list((workdir / 'loggers').glob('*/val.log')) if (workdir / 'loggers').exists() else []
        if logs and epoch_lines(logs[0]):
            break
        time.sleep(0.02)
    process.send_signal(signum)
    if extra_signal:
        time.sleep(0.01)
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def resume_to_the_straight_runs_end(logs, ckpts, weights, train_lines, val_lines):
    """Resume the stopped run to N_EPOCH: its weights and epoch lines must equal the straight run's."""
    assert run(['--resume', logs.name]) == 0
    final = load(ckpts / 'latest_checkpoint.pt')
    assert final['epoch'] == N_EPOCH
    for key, value in weights.items():
        assert torch.equal(final['model'][key], value), key
    assert epoch_lines(logs / 'train.log') == train_lines
    assert epoch_lines(logs / 'val.log') == val_lines


@pytest.mark.parametrize('signum, code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_resume_is_bitwise_equal_to_a_straight_run(workdir, straight, signum, code):
    # the cosine schedule is on (warmup 5 steps), dropout is on and the loader shuffles
    data_args, (weights, train_lines, val_lines) = straight
    returncode, stderr = interrupt_after_first_epoch(workdir, data_args + LONG, signum, extra_signal=True)
    assert returncode == code, stderr
    assert ('Ctrl-\\ quits at once' in stderr) == (signum == signal.SIGINT)  # a hint for a person at the terminal
    logs, ckpts = only_run(workdir)
    name = signal.Signals(signum).name
    stopped = re.search(rf'interrupted by {name} (at|after) epoch (\d+)', (logs / 'train.log').read_text())
    epochs_done = int(stopped[2]) - (stopped[1] == 'at')  # "at epoch 2" (mid-way): 1 epoch done
    assert re.search(rf'^status: interrupted \({name}\) at [^,]+, {epochs_done} epochs? done, step \d+$',
                     (logs / 'note.log').read_text(), re.M)
    if importlib.util.find_spec('matplotlib'):
        assert (logs / 'curves.png').exists()  # drawn for interrupted runs too
    stopped = load(ckpts / 'latest_checkpoint.pt')
    assert 1 <= stopped['epoch'] < N_EPOCH
    resume_to_the_straight_runs_end(logs, ckpts, weights, train_lines, val_lines)
    assert only_run(workdir) == (logs, ckpts)


def test_ctrl_backslash_quits_a_stop_that_cannot_come_without_saving(workdir, data_args):
    # a training step that takes ten minutes (a stuck data loader, say): Ctrl-C's stop waits for its end
    process = run_process(data_args + ['--n_epoch', 2, '--num_workers', 2], workdir, pause_per_batch=600)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: process.stderr.buffer.read1(4096), b'')),
                              daemon=True)
    reader.start()

    def wait_for(text):
        deadline = time.time() + 120
        while text not in b''.join(stderr) and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert text in b''.join(stderr), b''.join(stderr)[-3000:]
    try:
        wait_for(b'epoch 1/2 train')  # in train()'s loop, with the signal handlers in place
        process.send_signal(signal.SIGINT)
        wait_for(b'then saving; Ctrl-\\ quits at once, without saving, and shows where it is')
        os.killpg(process.pid, signal.SIGQUIT)  # as Ctrl-\\ does: to the DataLoader workers too
        assert process.wait(timeout=30) == -signal.SIGQUIT
        reader.join(timeout=10)
        # the workers show none: a worker's stack would run through the DataLoader's _worker_loop. (Counting 'Current
        # thread' headers does not tell: the kernel may hand the main process's SIGQUIT to one of its threads that runs
        # no Python, such as a torch thread pool's, and faulthandler then heads every stack 'Thread 0x'.)
        assert b'_worker_loop' not in b''.join(stderr), b''.join(stderr)[-3000:]
        # where it is: in train()'s loop (in the pause, or still in the step it was in when Ctrl-C came)
        assert re.search(rb'File ".*train\.py", line \d+ in train\n', b''.join(stderr)), b''.join(stderr)[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone once it has quit
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(timeout=10)  # the pipe's end reached: then its files can close
        process.stdout.close()
        process.stderr.close()
    logs, ckpts = only_run(workdir)
    assert not any(ckpts.iterdir())  # nothing saved, nothing half-written
    assert summarize(logs)[0]['status'] == 'failed (process gone)'  # runs.py's view: no handler ran


# train.py's entry point, then Ctrl-\ to itself (at its default, as at a terminal)
CTRL_BACKSLASH = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
import utils
utils.show_crash_stacks()
os.kill(os.getpid(), signal.SIGQUIT)
time.sleep(10)
"""


@pytest.mark.parametrize('local_rank, shown', [(None, True), ('0', True), ('1', False)])
def test_ctrl_backslash_shows_the_stack_of_one_process_per_console(local_rank, shown):
    env = {key: value for key, value in os.environ.items() if key != 'LOCAL_RANK'}
    quitted = subprocess.run([sys.executable, '-c', CTRL_BACKSLASH, str(PROJECT)], capture_output=True, text=True,
                             timeout=60, env=env if local_rank is None else {**env, 'LOCAL_RANK': local_rank},
                             preexec_fn=as_at_a_terminal)
    assert quitted.returncode == -signal.SIGQUIT
    stack = re.search(r'^Current thread .*\n  File "<string>", line \d+ in <module>', quitted.stderr, re.M)
    assert bool(stack) == shown, quitted.stderr


@pytest.mark.parametrize('quit_ignored', [False, True])
def test_ctrl_c_names_ctrl_backslash_only_where_it_quits(capsys, quit_ignored):
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    signal.signal(signal.SIGQUIT, signal.SIG_IGN if quit_ignored else signal.SIG_DFL)  # ignored: under nohup, say
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs at the next bytecode
    finally:
        for signum, handler in saved.items():  # a requested stop keeps its handlers: the process is meant to exit
            signal.signal(signum, handler)
    assert stop.requested
    assert ('Ctrl-\\ quits at once' in capsys.readouterr().err) == (not quit_ignored)


@pytest.fixture
def signal_handlers_restored():
    """A stop keeps its handlers installed (the process is meant to exit): give the test process its own back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def at_batch(monkeypatch, n, action):
    """Make train.to_device (once per batch, training's and validation's in turn) call action() at its nth
    call, before the batch's forward pass; returns the list that counts the calls."""
    real_to_device, calls = train.to_device, []

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            action()
        return real_to_device(*args, **kwargs)

    monkeypatch.setattr(train, 'to_device', counting)
    return calls


# 8 training and 2 validation batches an epoch: to_device's call 10k - 1 is epoch k's first validation batch
@pytest.mark.parametrize('signal_at, saved_at, line', [
    (19, (1, 16, 128), 'interrupted by SIGINT at epoch 2 in validation; saved {latest} at step 16 (the epoch '
                       'trained; resume validates it again); resume with: python train.py --resume {run}'),
    (20, (2, 16, 0), 'interrupted by SIGINT after epoch 2 step 16; saved {latest}; resume with: python train.py '
                     '--resume {run}'),  # its last batch: the epoch ends
    (39, (3, 32, 128), 'interrupted by SIGINT at epoch 4 in validation; saved {latest} at step 32'),  # the last epoch
], ids=['first-batch', 'last-batch', 'last-epoch'])
def test_a_signal_during_validation_stops_it_at_once_and_resume_is_bitwise_equal(workdir, straight, monkeypatch,
                                                                                signal_handlers_restored, signal_at,
                                                                                saved_at, line):
    # a batch system's grace period (SLURM's KillWait: 30 s) may end before a long validation would
    data_args, (weights, train_lines, val_lines) = straight
    with monkeypatch.context() as patch:
        calls = at_batch(patch, signal_at, lambda: os.kill(os.getpid(), signal.SIGINT))  # handled there and then
        assert run(data_args + LONG) == 130
    assert len(calls) == signal_at  # validation's second batch was not run
    logs, ckpts = only_run(workdir)
    saved = load(ckpts / 'latest_checkpoint.pt')
    assert (saved['epoch'], saved['step'], saved['samples_done']) == saved_at
    assert line.format(latest=f'checkpoints/{ckpts.name}/latest_checkpoint.pt', run=logs.name) in (
        logs / 'train.log').read_text()
    assert last_status(logs)[0] == 'interrupted (SIGINT)'
    assert epoch_lines(logs / 'val.log') == val_lines[:saved_at[0]]
    resume_to_the_straight_runs_end(logs, ckpts, weights, train_lines, val_lines)  # each epoch's lines once


WAIT = 0.1  # seconds each batch takes to come until the stop, in the test below


# to_device's call 14 is epoch 2's 4th training batch, 19 its first validation batch (see above)
@pytest.mark.parametrize('signal_at, samples_done, older', [(14, 64, False), (19, 128, False), (19, 128, True)],
                         ids=['training', 'validation', 'validation-older-checkpoint'])
def test_an_epoch_stopped_mid_way_keeps_its_seconds_so_far_in_its_metrics_row(workdir, straight, monkeypatch,
                                                                            signal_handlers_restored, signal_at,
                                                                            samples_done, older):
    """Until the stop, each batch takes WAIT to come (training's and validation's); after the resume, none does.
    The resumed epoch's epoch_seconds, data_seconds and train_seconds count both parts, as if it had not stopped;
    train_seconds leaves out the validation before a stop in it. A checkpoint saved before train_seconds (two
    seconds_done) resumes with its epoch's seconds as the training's."""
    data_args, _ = straight
    next_batch = torch.utils.data.dataloader._BaseDataLoaderIter.__next__

    def slow_next(self):
        time.sleep(WAIT)
        return next_batch(self)

    with monkeypatch.context() as patch:
        patch.setattr(torch.utils.data.dataloader._BaseDataLoaderIter, '__next__', slow_next)
        at_batch(patch, signal_at, lambda: os.kill(os.getpid(), signal.SIGINT))
        assert run(data_args + LONG) == 130
    logs, ckpts = only_run(workdir)
    saved = load(ckpts / 'latest_checkpoint.pt')
    assert (saved['epoch'], saved['samples_done']) == (1, samples_done)
    epoch_seconds, data_seconds, train_seconds = saved['seconds_done']
    batches = samples_done // 16
    assert batches * WAIT <= data_seconds < epoch_seconds  # epoch 2's batches so far
    assert batches * WAIT <= train_seconds <= epoch_seconds
    if signal_at == 19:  # validation's first batch came WAIT after the training's end
        assert train_seconds + WAIT <= epoch_seconds
    if older:
        save_checkpoint({**saved, 'seconds_done': (epoch_seconds, data_seconds)}, ckpts / 'latest_checkpoint.pt')
        train_seconds = epoch_seconds
    assert run(['--resume', logs.name]) == 0
    rows = read_metrics_rows(logs / 'metrics.csv')
    assert [row['epoch'] for row in rows] == ['1', '2', '3', '4']
    # metrics.csv rounds to milliseconds, and the resumed part of the wait can be under half of one (no sleep)
    assert float(rows[1]['data_seconds']) >= round(data_seconds, 3)
    assert float(rows[1]['epoch_seconds']) >= round(epoch_seconds, 3)
    assert round(train_seconds, 3) <= float(rows[1]['train_seconds']) <= float(rows[1]['epoch_seconds'])
    if signal_at == 19:  # the resumed start trains no batch of epoch 2 (and none sleeps): nothing more is counted
        assert float(rows[1]['train_seconds']) < train_seconds + 0.05
    # an epoch that did not stop carries nothing over (the stopped one's wait was batches * WAIT at least); its own
    # reads take under that even on a loaded machine (0.24 s seen for the sequence reader's files, against 0.2 s)
    assert float(rows[2]['data_seconds']) < batches * WAIT
    assert load(ckpts / 'latest_checkpoint.pt')['seconds_done'] == (0.0, 0.0, 0.0)  # saved at an epoch's end


def test_the_resume_command_of_a_stopped_run_resumes_it_wherever_its_folders_are(workdir, straight, monkeypatch,
                                                                                  signal_handlers_restored):
    # a --checkpoints_dir outside ./checkpoints is not found by its name: the command names the folder
    data_args, (weights, _, _) = straight
    folders = ['--loggers_dir', 'other runs/logs', '--checkpoints_dir', 'other runs/ckpt']
    with monkeypatch.context() as patch:
        at_batch(patch, 3, lambda: os.kill(os.getpid(), signal.SIGINT))
        assert run(data_args + LONG + folders) == 130
    stopped_line, = (line for line in (workdir / 'other runs' / 'logs' / 'train.log').read_text().splitlines()
                     if 'interrupted by SIGINT' in line)
    assert stopped_line.endswith("; resume with: python train.py --resume 'other runs/ckpt'"), stopped_line
    command = shlex.split(stopped_line.split('resume with: ')[1])
    assert command[:2] == ['python', 'train.py']
    assert run(command[2:]) == 0
    final = load(workdir / 'other runs' / 'ckpt' / 'latest_checkpoint.pt')
    assert final['epoch'] == N_EPOCH
    for key, value in weights.items():
        assert torch.equal(final['model'][key], value), key


# train.py whose DataLoader worker sends a signal to the whole process group, as a terminal's Ctrl-C or
# SLURM's SIGTERM reaches every process of the job, once epoch 1's training or validation has begun: worker 0
# while it fetches a sample, or a worker while it starts (spawn and forkserver workers unpickle the dataset,
# seconds after they were started, before any worker_init_fn runs)
SIGNAL_FROM_A_WORKER = """
import multiprocessing, os, signal, sys, time, torch
sys.path.insert(0, sys.argv[1])
import train


class SignalFromAWorker(torch.utils.data.Dataset):
    def __init__(self, dataset, signum, when):
        self.dataset, self.signum, self.when = dataset, signum, when
    def __len__(self):
        return len(self.dataset)
    def signal_once(self):
        if os.path.exists('phase_started') and not os.path.exists('signalled'):
            open('signalled', 'w').close()
            os.killpg(0, self.signum)
            time.sleep(0.5)  # the signal arrives here
    def __getitem__(self, index):
        worker = torch.utils.data.get_worker_info()
        if self.when == 'fetching' and worker and worker.id == 0:
            self.signal_once()
        return self.dataset[index]
    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.when == 'starting':
            self.signal_once()


if __name__ == '__main__':
    phase, signum, when, start_method = sys.argv[2], getattr(signal, sys.argv[3]), sys.argv[4], sys.argv[5]
    if start_method != 'default':
        multiprocessing.set_start_method(start_method, force=True)
    tqdm, build_datasets = train.tqdm, train.build_datasets

    def tqdm_marking_the_phase(*args, **kwargs):
        if kwargs['desc'].startswith('epoch 1') and kwargs['desc'].endswith(phase):
            open('phase_started', 'w').close()  # before the loop starts its loader's workers, if it does
        return tqdm(*args, **kwargs)

    train.tqdm = tqdm_marking_the_phase
    train.build_datasets = lambda config: [SignalFromAWorker(d, signum, when) for d in build_datasets(config)]
    sys.exit(train.main(sys.argv[6:]))
"""


@pytest.mark.parametrize('phase, signum, code, when, start_method, num_workers', [
    ('train', 'SIGINT', 130, 'fetching', 'default', 2),
    ('valid', 'SIGINT', 130, 'fetching', 'default', 2),
    ('valid', 'SIGTERM', 143, 'fetching', 'default', 2),
    ('train', 'SIGINT', 130, 'starting', 'spawn', 1),
    ('train', 'SIGTERM', 143, 'starting', 'forkserver', 1),
], ids=['train-SIGINT', 'valid-SIGINT', 'valid-SIGTERM', 'spawn-starting-SIGINT', 'forkserver-starting-SIGTERM'])
def test_a_signal_to_the_process_group_stops_cleanly_with_dataloader_workers(workdir, tmp_path_factory, data_args,
                                                                            phase, signum, code, when, start_method,
                                                                            num_workers):
    script = script_file(tmp_path_factory, SIGNAL_FROM_A_WORKER)
    result = run_as_group([sys.executable, script, str(PROJECT), phase, signum, when, start_method]
                          + [str(a) for a in data_args + ['--n_epoch', 3, '--num_workers', num_workers]],
                          workdir, {**os.environ, 'OMP_NUM_THREADS': '1'})
    assert (workdir / 'signalled').exists()
    assert result.returncode == code, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr  # not "DataLoader worker exited unexpectedly", nor a worker's own
    assert result.stderr.count(f'{signum} received') == 1  # from the main process only
    logs, ckpts = only_run(workdir)
    latest = load(ckpts / 'latest_checkpoint.pt')
    if phase == 'train':
        assert latest['epoch'] == 0 and latest['samples_done'] > 0  # mid-epoch, at the step the signal came in
        assert f'| interrupted by {signum} at epoch 1 step ' in (logs / 'train.log').read_text()
    else:  # validation stops at once: the epoch's training is saved, and resume validates it again
        assert (latest['epoch'], latest['samples_done']) == (0, 128)
        assert f'| interrupted by {signum} at epoch 1 in validation; saved ' in (logs / 'train.log').read_text()
    assert 'killed by signal' not in (logs / 'train.log').read_text()  # curves.png was drawn, not cut short
    assert f'status: interrupted ({signum})' in (logs / 'note.log').read_text()


def note_signal_handling(path, worker_id):
    """A worker_init_fn of the user's own: writes how the worker handles the stop signals when it runs."""
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    ignored = [signal.getsignal(signum) == signal.SIG_IGN for signum in stop_signals]
    blocked = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []) & set(stop_signals))  # the stacks signal stays
    path.write_text(f'{worker_id} ignored {ignored} blocked {blocked}')


def test_a_worker_init_fn_of_your_own_runs_once_the_stop_signals_are_ignored(tmp_path):
    loader = StopSafeDataLoader(list(range(8)), batch_size=4, num_workers=1,
                                worker_init_fn=functools.partial(note_signal_handling, tmp_path / 'seen'))
    assert [batch.tolist() for batch in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert (tmp_path / 'seen').read_text() == '0 ignored [True, True] blocked []'
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()  # this process's mask is as it was


@needs_forkserver
@needs_descriptor_sharing
@pytest.mark.parametrize('counted_first', [True, False], ids=['counted-before-sharing', 'forkserver-refuses'])
def test_a_dataset_of_many_separate_tensors_is_a_clear_error_under_forkserver_and_views_of_one_tensor_load(
        counted_first, monkeypatch):
    if not counted_first:  # the error forkserver itself raises, should the count before it be too low
        monkeypatch.setattr('utils.FORKSERVER_DESCRIPTORS', 10**6)
    separate = [torch.full((2,), float(i)) for i in range(300)]
    loader = StopSafeDataLoader(separate, batch_size=100, num_workers=1, multiprocessing_context='forkserver')
    with pytest.raises(RunError, match=r'^the dataset holds 300 separate tensors, .*forkserver.*about 250 at most; '
                                       r'.*split\(lengths\).*--num_workers 0$'):
        iter(loader)
    assert separate[0].is_shared() is not counted_first  # refused before any was moved to shared memory
    views = list(torch.cat(separate).split(2))
    loader = StopSafeDataLoader(views, batch_size=100, num_workers=1, multiprocessing_context='forkserver')
    assert torch.equal(torch.cat(list(loader)), torch.stack(separate))


@needs_descriptor_sharing
def test_a_spawn_worker_handed_more_tensors_than_the_open_file_limit_is_a_clear_error_and_views_load():
    import resource

    values = torch.arange(800.0).view(400, 2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir('/dev/fd')) + 150, hard))  # room for 150 more
    try:
        views = StopSafeDataLoader(list(values), batch_size=100, num_workers=1, multiprocessing_context='spawn')
        assert torch.equal(torch.cat(list(views)), values)
        separate = [row.clone() for row in values]
        loader = StopSafeDataLoader(separate, batch_size=100, num_workers=1, multiprocessing_context='spawn')
        open_before = len(os.listdir('/dev/fd'))
        with pytest.raises(RunError, match=r'^the dataset holds 400 separate tensors, .*spawn.*more than this process '
                                           r'may open \(ulimit -n \d+\); .*split\(lengths\).*ulimit -n, or pass '
                                           r'--num_workers 0$'):
            iter(loader)
        # refused before sharing them: running out would have left the run no descriptor to log its end with (the
        # views' loader may still be closing its workers' pipes)
        assert len(os.listdir('/dev/fd')) <= open_before and not separate[0].is_shared()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize('strategy', [pytest.param('file_descriptor', marks=needs_descriptor_sharing), 'file_system'])
def test_a_worker_start_out_of_file_descriptors_blames_the_tensors_only_where_each_takes_one(strategy, monkeypatch):
    def out_of_descriptors(self, start_method):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(StopSafeDataLoader, '_iterator_with_workers', out_of_descriptors)
    saved = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy(strategy)  # file_system: the only one on macOS and Windows
    try:
        separate = [torch.zeros(2) for _ in range(8)]
        loader = StopSafeDataLoader(separate, batch_size=4, num_workers=1, multiprocessing_context='spawn')
        with pytest.raises(OSError if strategy == 'file_system' else RunError) as raised:
            iter(loader)
    finally:
        torch.multiprocessing.set_sharing_strategy(saved)
    if strategy == 'file_system':  # shared by name: the count of tensors is not the cause, so the error goes on
        assert raised.value.errno == errno.EMFILE
    else:
        assert re.match(r'^the dataset holds 8 separate tensors, .*spawn.*ulimit -n \d+', str(raised.value))


class Transformed(torch.utils.data.Dataset):
    """A dataset of your own whose samples go through `transform`."""

    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return self.transform(torch.tensor(index))


@needs_forkserver
@pytest.mark.parametrize('dataset, collate_fn, named', [
    (Transformed(lambda x: x * 2), None, 'the dataset'),
    (list(range(8)), lambda batch: torch.tensor(batch), 'collate_fn'),
], ids=['lambda-in-the-dataset', 'lambda-collate_fn'])
def test_what_a_forkserver_worker_cannot_be_pickled_is_named_in_a_one_line_error(dataset, collate_fn, named, recwarn):
    loader = StopSafeDataLoader(dataset, batch_size=4, num_workers=1, collate_fn=collate_fn,
                                multiprocessing_context='forkserver')
    with pytest.raises(RunError, match=rf'^{named} cannot be pickled: .*lambda.*; .*forkserver.*--num_workers 0$'):
        iter(loader)
    assert not [w for w in recwarn if 'pickle' in str(w.message)]  # torch's own warning would only repeat it
    forked = StopSafeDataLoader(dataset, batch_size=4, num_workers=1, collate_fn=collate_fn,
                                multiprocessing_context='fork')
    assert len(list(forked)) == 2  # fork hands nothing over by pickling


# a loader whose worker fails to read a sample, made outside main() (predict.py's, a user's own); the error is
# kept (as an interactive session keeps the last one), so its traceback keeps the loader and its worker
# processes alive until the interpreter exits
ERROR_KEPT_UNTIL_EXIT = """
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], 'tests'))
from conftest import FailsInAWorker
from torch.utils.data import Subset
from utils import StopSafeDataLoader

if __name__ == '__main__':
    loader = StopSafeDataLoader(FailsInAWorker(Subset(list(range(8)), range(8))), batch_size=4, num_workers=2)
    try:
        next(iter(loader))
    except ValueError as err:
        kept = err
    print('error kept')
"""


def test_workers_left_running_by_an_error_do_not_keep_the_process_from_exiting(tmp_path_factory):
    # they ignore SIGTERM, which is how multiprocessing stops them at exit before it waits for them
    result = subprocess.run([sys.executable, script_file(tmp_path_factory, ERROR_KEPT_UNTIL_EXIT), str(PROJECT)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0 and result.stdout.endswith('error kept\n'), result.stderr[-3000:]


def test_a_run_that_fails_in_a_worker_leaves_no_worker_running_once_main_returns(workdir, data_args, monkeypatch):
    # main() called in a process that goes on (a sweep, a notebook, these tests): the error's traceback kept the
    # loader in a reference cycle, and its workers ran on until the garbage collector freed it, seconds later
    monkeypatch.setattr(train, 'build_datasets', failing_in_a_worker(train.build_datasets))
    with pytest.raises(ValueError, match='unreadable sample') as failed:
        run(data_args + ['--n_epoch', 2, '--num_workers', 2])
    assert failed.value.__traceback__ is not None  # kept, as an interactive session keeps the last error
    assert multiprocessing.active_children() == []


def test_main_leaves_the_workers_of_loaders_made_outside_it_running(workdir, data_args):
    batches = iter(StopSafeDataLoader(list(range(8)), batch_size=4, num_workers=1))
    assert next(batches).tolist() == [0, 1, 2, 3]
    assert run(data_args + ['--n_epoch', 1, '--num_workers', 1]) == 0
    assert next(batches).tolist() == [4, 5, 6, 7]


# train.py that dies by SIGKILL at its Nth training or validation batch, as under the OOM killer or a power cut:
# no handler runs. In validation it first waits for latest_checkpoint.pt (the background writer). With timer
# 'ahead_only', its save timer is due only when it looks ahead (over the last validation's length: from epoch 2 on).
KILLED_TRAIN = """
import glob, os, signal, sys, time, torch
sys.path.insert(0, sys.argv[1])
import train
phase, n, timer = sys.argv[2], int(sys.argv[3]), sys.argv[4]
if timer == 'ahead_only':
    train.SaveTimer.due = lambda self, ahead=0.0: ahead > 0
add, batches = train.EpochMeter.add, []


def add_or_die(self, *args):
    if torch.is_inference_mode_enabled() == (phase == 'valid'):
        batches.append(None)
        if len(batches) == n:
            deadline = time.time() + 30
            while phase == 'valid' and not glob.glob('checkpoints/*/latest_checkpoint.pt') and time.time() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
    return add(self, *args)


train.EpochMeter.add = add_or_die
sys.exit(train.main(sys.argv[5:]))
"""


def killed_run(workdir, argv, phase, n, timer='as_is'):
    """Run KILLED_TRAIN; check that SIGKILL ended it, and return the run's (loggers, checkpoints) folders."""
    killed = subprocess.run([sys.executable, '-c', KILLED_TRAIN, str(PROJECT), phase, str(n), timer]
                            + [str(a) for a in argv], cwd=workdir, capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    return only_run(workdir)


def test_a_hard_kill_mid_epoch_resumes_from_the_timed_save_bitwise_equal(workdir, straight):
    data_args, (weights, train_lines, val_lines) = straight
    # save_minutes this small is due at every read (log_interval 1: every step); batch 21 is epoch 3's fifth
    logs, ckpts = killed_run(workdir, data_args + LONG + ['--save_minutes', '1e-9'], 'train', 21)
    assert 'saved' in (logs / 'train.log').read_text().splitlines()[-1]  # the mid-epoch saves are logged
    on_disk = load(ckpts / 'latest_checkpoint.pt')  # the last save may still have been in the writer's hands
    assert (on_disk['epoch'], on_disk['step']) in [(2, 19), (2, 20)], (on_disk['epoch'], on_disk['step'])
    assert on_disk['samples_done'] == (on_disk['step'] - 16) * 16  # 8 batches of 16 an epoch
    assert (logs / 'traceback.txt').read_bytes() == b''  # opened for a crash's stack, which never came
    resume_to_the_straight_runs_end(logs, ckpts, weights, train_lines, val_lines)
    assert not (logs / 'traceback.txt').exists()  # the next start removes it as it ends


# train.py whose Nth training batch crashes in native code (it reads address 0), as a bug in an extension would
CRASHED_TRAIN = """
import ctypes, glob, sys, time
sys.path.insert(0, sys.argv[1])
import train
add, batches = train.EpochMeter.add, []


def add_or_crash(self, *args):
    batches.append(None)
    if len(batches) == int(sys.argv[2]):
        deadline = time.time() + 30  # the background writer's save of the last epoch, to resume from
        while not glob.glob('checkpoints/*/latest_checkpoint.pt') and time.time() < deadline:
            time.sleep(0.05)
        ctypes.string_at(0)
    return add(self, *args)


train.EpochMeter.add = add_or_crash
sys.exit(train.main(sys.argv[3:]))
"""


def test_a_crash_in_native_code_leaves_each_threads_stack_in_traceback_txt_and_a_resume_keeps_it(workdir, data_args):
    argv = data_args + ['--n_epoch', 3, '--save_every', 1]
    crashed = subprocess.run([sys.executable, '-c', CRASHED_TRAIN, str(PROJECT), '11'] + [str(a) for a in argv],
                             cwd=workdir, capture_output=True, text=True, timeout=300)  # epoch 2's third batch
    assert crashed.returncode == -signal.SIGSEGV, crashed.stderr[-3000:]
    logs, ckpts = only_run(workdir)
    dump = (logs / 'traceback.txt').read_text()
    assert dump.startswith('Fatal Python error: Segmentation fault'), dump
    assert re.search(r'^Current thread .*\n  File ".*ctypes.*", line \d+ in string_at\n(  File .*\n)*'
                     r'  File ".*train\.py", line \d+ in train\n', dump, re.M), dump  # the crashed thread's stack
    assert re.search(r'File ".*utils\.py", line \d+ in beat\n', dump), dump  # and the other threads'
    assert 'Fatal Python error' not in crashed.stderr
    assert summarize(logs)[0]['status'] == 'failed (Segmentation fault)'  # runs.py's view
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 1  # epoch 1's save: as after a hard kill, resume goes on
    assert run(['--resume', logs.name]) == 0
    assert [line.split()[1] for line in epoch_lines(logs / 'val.log')] == ['1', '2', '3']
    assert (logs / 'traceback.txt').read_text() == dump  # a start without a crash neither adds to it nor removes it
    assert summarize(logs)[0]['status'] == 'finished'


def test_runs_py_names_a_crash_only_when_its_stack_ends_traceback_txt_after_the_last_starts_heartbeat(tmp_path):
    stack = ('Fatal Python error: Aborted\n\nCurrent thread 0x00007f (most recent call first):\n'
             '  File "train.py", line 1\n')
    beat, tracebacks = tmp_path / HEARTBEAT_FILE, tmp_path / 'traceback.txt'
    beat.write_text('{}')
    tracebacks.write_text(stack)
    os.utime(beat, ns=(1_000, 1_000))
    os.utime(tracebacks, ns=(2_000, 2_000))
    assert last_crash(tmp_path) == 'Aborted'
    os.utime(beat, ns=(3_000, 3_000))  # a later start's heartbeat: that start was killed, not crashed
    assert last_crash(tmp_path) is None
    write_traceback(ValueError('bad batch'), tmp_path)  # an error after the crash
    os.utime(tracebacks, ns=(4_000, 4_000))
    assert last_crash(tmp_path) is None
    with open(tracebacks, 'a') as f:
        f.write(stack.replace('Aborted', 'Segmentation fault'))
    os.utime(tracebacks, ns=(5_000, 5_000))
    assert last_crash(tmp_path) == 'Segmentation fault'
    for stall in ('2026-12-05 14:32:12 no batch read for 30.0 minutes (since 14:02:11): each thread\'s Python stack, '
                  'most recent call first\n', 'Timeout (0:33:00)!\n'):  # StallWatch's own, its fallback's
        with open(tracebacks, 'a') as f:  # a later start's stall: that start was not the crashed one
            f.write(stall + 'Thread 0x00007f (most recent call first):\n  File "train.py", line 1\n')
        os.utime(tracebacks, ns=(6_000, 6_000))
        assert last_crash(tmp_path) is None
        with open(tracebacks, 'a') as f:
            f.write(stack)
        os.utime(tracebacks, ns=(6_000, 6_000))
        assert last_crash(tmp_path) == 'Aborted'
    beat.unlink()  # a run from before heartbeats, or ended cleanly since: no crash to tell
    assert last_crash(tmp_path) is None


# `python <script> args` whose <module>.<function> crashes in native code (it reads address 0)
CRASHED_COMMAND = """
import ctypes, importlib, runpy, sys
project, module, function, script, *args = sys.argv[1:]
sys.path.insert(0, project)
setattr(importlib.import_module(module), function, lambda *args, **kwargs: ctypes.string_at(0))
sys.argv = [f'{project}/{script}', *args]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def crashed_command(workdir, module, function, script, args):
    return subprocess.run([sys.executable, '-c', CRASHED_COMMAND, str(PROJECT), module, function, script]
                          + [str(a) for a in args], cwd=workdir, capture_output=True, text=True, timeout=300)


def test_a_crash_before_the_runs_logs_open_shows_each_threads_stack_on_the_console_only(workdir, data_args):
    crashed = crashed_command(workdir, 'dataset', 'build_datasets', 'train.py', data_args)  # 3.6: no logs yet
    assert crashed.returncode == -signal.SIGSEGV, crashed.stderr[-3000:]
    assert crashed.stderr.startswith('Fatal Python error: Segmentation fault'), crashed.stderr[-3000:]
    assert re.search(r'File ".*train\.py", line \d+ in main\n', crashed.stderr), crashed.stderr[-3000:]
    logs, _ = only_run(workdir)
    assert summarize(logs)[0]['status'] == 'empty (starting, or stopped before its logs)'  # as after a hard kill


def test_a_crash_in_predict_py_shows_each_threads_stack_on_the_console(workdir):
    (workdir / 'model.pt').touch()
    crashed = crashed_command(workdir, 'utils', 'load_checkpoint', 'predict.py', ['--checkpoint', 'model.pt'])
    assert crashed.returncode == -signal.SIGSEGV, crashed.stderr[-3000:]
    assert crashed.stderr.startswith('Fatal Python error: Segmentation fault'), crashed.stderr[-3000:]
    assert re.search(r'File ".*predict\.py", line \d+ in predict\n', crashed.stderr), crashed.stderr[-3000:]


@pytest.mark.parametrize('stall_minutes', [0.02, 0])
def test_a_stall_leaves_each_threads_stack_in_traceback_txt_and_a_warning_and_the_run_goes_on(workdir, data_args,
                                                                                            monkeypatch, stall_minutes):
    at_batch(monkeypatch, 3, lambda: time.sleep(4))  # epoch 1's third training batch: 4 s without a read
    assert run(data_args + ['--n_epoch', 1, '--log_interval', 1, '--stall_minutes', stall_minutes]) == 0
    logs, _ = only_run(workdir)
    train_log = (logs / 'train.log').read_text()
    assert summarize(logs)[0]['status'] == 'finished'  # a stall ends nothing
    assert not any(thread.name == 'stall watch' for thread in threading.enumerate())
    if not stall_minutes:  # off
        assert not (logs / 'traceback.txt').exists() and 'no batch read' not in train_log
        return
    dump = (logs / 'traceback.txt').read_text()
    assert re.match(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d no batch read for \d s \(since \d\d:\d\d:\d\d\): '
                    r"each thread's Python stack, most recent call first\n"
                    r'Thread 0x[0-9a-f]+ "MainThread" \(most recent call first\):\n', dump), dump
    assert re.search(r'File ".*test_faults\.py", line \d+ in <lambda>\n(  File .*\n)*'
                     r'  File ".*train\.py", line \d+ in train\n', dump), dump  # where the main thread waits
    assert re.search(r'"heartbeat" .*\n(  File .*\n)*  File ".*utils\.py", line \d+ in beat\n', dump), dump  # others
    assert '"stall watch"' not in dump and 'Timeout (' not in dump, dump  # the watch's own, once; no fallback
    path = os.path.join('loggers', logs.name, 'traceback.txt')
    warned = re.search(r'warning: no batch read for \d s \(since (\d\d:\d\d:\d\d)\): each thread.s '
                       rf'Python stack is now in {re.escape(path)}; the run goes on .*--stall_minutes 0.02 sets when',
                       train_log)
    read_again = re.search(r'batches are read again, after (\d+) s without one', train_log)
    assert warned and read_again and warned.start() < read_again.start(), train_log
    assert int(read_again.group(1)) >= 4
    (logs / 'train.log').write_text(train_log[:train_log.index('\n', warned.start()) + 1])  # as while it stalled
    assert stalled_since(logs) == warned.group(1)  # runs.py reads the line train.py writes


# stalls of the main thread in Python code (a slow step's), each told by the stall watch while that code runs
STALLED_IN_PYTHON_CODE = """
import sys, time
sys.path.insert(0, sys.argv[1])
import utils


def busy_python(depth):
    return busy_python(depth - 1) if depth else sum(i for i in range(20))  # frames come and go


with utils.StallWatch(0.0002) as watch:  # 12 ms without a read, looked at every 1.2 ms
    for stall in range(200):
        watch.on_read()
        end = time.monotonic() + 0.03
        while time.monotonic() < end:
            busy_python(30)
print('done', flush=True)
"""


def test_a_stall_told_while_the_main_thread_runs_python_code_leaves_its_stack_and_the_run_goes_on():
    # faulthandler's timer, which read the stacks without the GIL, crashed such a process (CPython 3.13: in each of 4
    # runs, within 51 tells; 3.10 and 3.12 as often in a loop of the timer alone; 3.11 seldom)
    stalled = subprocess.run([sys.executable, '-c', STALLED_IN_PYTHON_CODE, str(PROJECT)], capture_output=True,
                             text=True, timeout=120)  # no run: the stacks go to the console
    assert stalled.returncode == 0 and stalled.stdout == 'done\n', stalled.stderr[-3000:]
    told = re.findall(r'no batch read for \d s .*\nThread 0x[0-9a-f]+ "MainThread" \(most recent call first\):\n'
                      r'(  File .*\n)*?  File "<string>", line \d+ in busy_python\n', stalled.stderr)
    assert len(told) >= 100, stalled.stderr[-3000:]  # of 200 stalls: one tell each, at most


# train.py whose training DataLoader worker sleeps in slow_read: 'reading', at its fourth batch's first sample (the
# batches before it read, so the worker has started), or 'starting', as it unpickles the dataset (spawn and forkserver
# workers do, before any code of ours runs in them); the main process waits for a batch, without a read, for 4 s
SLOW_IN_A_WORKER = """
import multiprocessing, sys, time, torch
sys.path.insert(0, sys.argv[1])
import train


def slow_read():
    time.sleep(4)


class SlowInAWorker(torch.utils.data.Dataset):
    def __init__(self, dataset, batch_size, when):
        self.dataset, self.batch_size, self.when, self.reads = dataset, batch_size, when, 0
        self.armed = False  # by train(): the reads of the checks before it (labels, scaling) take no time
    def __len__(self):
        return len(self.dataset)
    def __getitem__(self, index):
        if self.armed and torch.utils.data.get_worker_info() is not None:  # not the main process's reads
            self.reads += 1  # in the worker's copy
            if self.when == 'reading' and self.reads == 3 * self.batch_size + 1:
                slow_read()
        return self.dataset[index]
    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.armed and self.when == 'starting':
            slow_read()


if __name__ == '__main__':
    if sys.argv[2] != 'default':
        multiprocessing.set_start_method(sys.argv[2], force=True)
    build_datasets = train.build_datasets

    def slow_training_set(config):
        train_set, valid_set = build_datasets(config)
        return SlowInAWorker(train_set, config['batch_size'], sys.argv[3]), valid_set

    train.build_datasets = slow_training_set
    run_train = train.train

    def train_slowly(train_loader, *args):
        train_loader.dataset.armed = True  # its workers start in train(), with this copy of the dataset
        return run_train(train_loader, *args)

    train.train = train_slowly
    sys.exit(train.main(sys.argv[4:]))
"""


@pytest.mark.parametrize('start_method, when', [
    ('default', 'reading'),
    pytest.param('forkserver', 'reading', marks=needs_forkserver),
    pytest.param('forkserver', 'starting', marks=needs_forkserver),
])
def test_a_stall_in_a_dataloader_worker_leaves_that_workers_stack_in_traceback_txt(workdir, tmp_path_factory, data_args,
                                                                                 start_method, when):
    script = script_file(tmp_path_factory, SLOW_IN_A_WORKER)
    result = run_as_group([sys.executable, script, str(PROJECT), start_method, when]
                          + [str(a) for a in data_args + ['--n_epoch', 1, '--log_interval', 1, '--num_workers', 1,
                                                          '--stall_minutes', 0.02]],
                          workdir, {**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    logs, _ = only_run(workdir)
    dump = (logs / 'traceback.txt').read_text()
    # the last stall's (a worker's slow start, under load, may have been one before it): the main process's stacks
    # first, waiting for a batch, then each worker's under a line that names it: the validation loader's (started
    # at 3.10, before train(), waiting for work) and the training loader's, in the function it is stuck in
    stall = re.compile(r'^.* no batch read for .*$', re.M)  # StallWatch's line above the main process's stacks
    assert stall.match(dump), dump
    main, *workers = dump[[*stall.finditer(dump)][-1].start():].split('\nDataLoader worker ')
    assert re.search(r'File ".*dataloader\.py", line \d+ in _get_data\n', main), dump
    assert len(workers) == len({worker.split('\n')[0] for worker in workers}) == 2, dump
    if when == 'starting':
        assert any(re.match(r'0 \(pid \d+\): still starting \(no code of ours has run in it yet\), no stack\n$', worker)
                   for worker in workers), dump
        with_stacks = [re.match(r'0 \(pid \d+\):\n(Current thread|Thread) 0x', worker) for worker in workers]
        assert sum(match is not None for match in with_stacks) == 1
    else:
        assert all(re.match(r'0 \(pid \d+\):\n(Current thread|Thread) 0x', worker) for worker in workers), dump
        assert any(re.search(r'File ".*script\.py", line \d+ in slow_read\n', worker) for worker in workers), dump
    assert "each thread's Python stack and each DataLoader worker's is now in" in (logs / 'train.log').read_text()


@pytest.mark.skipif('fork' not in multiprocessing.get_all_start_methods(), reason='no fork (Windows)')
def test_a_stall_watch_asks_each_dataloader_worker_for_its_stacks_under_a_line_naming_its_rank(monkeypatch, capfd):
    loader = StopSafeDataLoader(list(range(8)), batch_size=4, num_workers=1, persistent_workers=True,
                                multiprocessing_context='fork')  # its console is this test's captured stderr
    monkeypatch.setattr(utils, 'is_distributed', lambda: True)  # as under torchrun
    monkeypatch.setattr(utils.dist, 'get_rank', lambda: 1)
    batches = iter(loader)
    assert next(batches).tolist() == [0, 1, 2, 3]  # the worker runs
    pid = batches._workers[0].pid
    with utils.StallWatch(10) as watch:  # not due: asked by hand, where a stall would ask
        assert watch.path is None and watch.dump_worker_stacks() >= 1
        time.sleep(0.5)
    assert re.search(rf"\nrank 1's DataLoader worker 0 \(pid {pid}\):\nThread 0x[0-9a-f]+ \"MainThread\" (.*\n)*?"
                     r'  File ".*worker\.py", line \d+ in _worker_loop\n', capfd.readouterr().err)
    assert next(batches).tolist() == [4, 5, 6, 7]  # it goes on


def busy_from_item_4(item):
    """Items 0-3 at once, then each later one after 0.4 s of Python code on a deep stack (a slow step's)."""
    end = time.monotonic() + 0.4 * (int(item) >= 4)
    while time.monotonic() < end:
        busy_python(30)
    return item


def busy_python(depth):
    return busy_python(depth - 1) if depth else sum(i for i in range(20))  # frames come and go


@pytest.mark.skipif('fork' not in multiprocessing.get_all_start_methods(), reason='no fork (Windows)')
def test_a_dataloader_worker_asked_for_its_stacks_while_it_runs_python_code_goes_on(capfd):
    # faulthandler's signal handler, which read them without the GIL, crashed such a worker within a few hundred asks
    # (CPython 3.12; within tens on 3.13)
    loader = StopSafeDataLoader(Transformed(busy_from_item_4), batch_size=4, num_workers=1, persistent_workers=True,
                                multiprocessing_context='fork')  # its console is this test's captured stderr
    batches = iter(loader)
    assert next(batches).tolist() == [0, 1, 2, 3]
    asked, done = [], threading.Event()

    def ask():
        with utils.StallWatch(10) as watch:  # not due: asked by hand, as often as stalls never come
            while not done.wait(0.005):
                asked.append(watch.dump_worker_stacks())

    asking = threading.Thread(target=ask)
    asking.start()
    try:
        assert next(batches).tolist() == [4, 5, 6, 7]  # 1.6 s of Python code in the worker
    finally:
        done.set()
        asking.join(10)
    answers = re.findall(r'\nDataLoader worker 0 \(pid \d+\):\n(?:.*\n)*?  File ".*test_faults\.py", line \d+ in '
                         r'busy_python\n', capfd.readouterr().err)
    assert sum(asked) >= 100 and len(answers) >= 50, (sum(asked), len(answers))


# a child forked while the stall watch's fallback timer runs, that exits as a Python program does (sys.exit: Python's
# shutdown), waited for in a stall in calls that hold the GIL (libc's, through PyDLL), where the watch thread cannot run
FORKED_WHILE_ARMED = """
import ctypes, os, sys, warnings
sys.path.insert(0, sys.argv[1])
import utils
warnings.simplefilter('ignore', DeprecationWarning)  # Python 3.12+: fork() in a process with threads
utils.STALL_FALLBACK_SECONDS = 0
libc, status = ctypes.PyDLL(None), ctypes.c_int()
with utils.StallWatch(0.04):  # 2.4 s (longer than the child's exit, with torch loaded); the fallback 3.12 s
    pid = os.fork()
    if pid == 0:
        sys.exit(7)
    libc.waitpid(pid, ctypes.byref(status), 0)
    libc.sleep(4)  # the timer, set again after the fork, fires
    print('child', os.waitstatus_to_exitcode(status.value), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='no os.fork (Windows)')
def test_a_child_forked_while_the_stall_watch_runs_exits_and_its_fallback_fires_in_a_call_that_holds_the_gil():
    forked = subprocess.run([sys.executable, '-c', FORKED_WHILE_ARMED, str(PROJECT)], capture_output=True, text=True,
                            timeout=30)  # without the fork hooks the child waits for the parent's timer thread: forever
    assert forked.returncode == 0 and forked.stdout == 'child 7\n', forked
    assert re.match(r'Timeout \(0:00:03\.1\d*\)!\nThread ', forked.stderr), forked.stderr
    sleep_line = next(n for n, line in enumerate(FORKED_WHILE_ARMED.split('\n'), 1) if 'libc.sleep' in line)
    assert f'File "<string>", line {sleep_line} in <module>\n' in forked.stderr, forked.stderr
    assert 'no batch read for' not in forked.stderr, forked.stderr  # the watch thread, once it ran, dumped no more


def test_runs_py_shows_a_live_run_whose_train_log_ends_with_the_stall_warning_as_stalled(tmp_path):
    (tmp_path / 'train.log').write_text('2026-12-05 14:00:09 | epoch 1 step 8 loss 2.3\n2026-12-05 14:32:12 | warning: '
                                        "no batch read for 31.0 minutes (since 14:01:12): each thread's Python stack\n")
    # a process whose command line names train.py stands for the run's
    waiting = 'import time; print("started", flush=True); time.sleep(60)'
    with subprocess.Popen([sys.executable, '-c', waiting, 'train.py'], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout.readline() == 'started\n'  # exec'd: its command line is no longer this process's
            provenance = {'host': socket.gethostname(), 'pid': process.pid}
            assert shown_status('running', provenance, folder=tmp_path) == 'running (no batch read since 14:01:12)'
            with open(tmp_path / 'train.log', 'a') as f:
                f.write('2026-12-05 14:40:00 | batches are read again, after 39.0 minutes without one\n')
            assert shown_status('running', provenance, folder=tmp_path) == 'running'
        finally:
            process.kill()
    assert shown_status('running', provenance, folder=tmp_path) == 'failed (process gone)'


def test_the_read_that_ends_a_stall_is_not_taken_for_another_stall_while_it_says_so(monkeypatch):
    # the watch thread looks every rearm_seconds, at any moment: here while that read writes its line to train.log
    with utils.StallWatch(10) as watch:  # 10 minutes: its own thread does not look during the test
        watch.last_read, watch.reported = time.monotonic() - watch.seconds - 1, True  # as once a stall was told
        told, info = [], logging.Logger.info

        def write_then_look(logger, message, *args, **kwargs):
            told.append(message)
            if message.startswith('batches are read again'):
                watch.check()
            return info(logger, message, *args, **kwargs)

        monkeypatch.setattr(logging.Logger, 'info', write_then_look)
        watch.on_read()
    assert len(told) == 1 and told[0].startswith('batches are read again'), told  # not a second stall's warning
    assert not watch.reported


def test_a_read_while_a_stall_is_told_writes_its_line_after_the_warning(monkeypatch):
    # the watch thread tells a stall in steps (the stacks, each DataLoader worker's asked for, then the warning): a
    # read meanwhile that wrote its line first left train.log ending with the warning, and runs.py showed it stalled
    told = []
    monkeypatch.setattr(logging.Logger, 'info', lambda logger, message, *args, **kwargs: told.append(message))
    with utils.StallWatch(10) as watch:  # 10 minutes: its own thread does not look during the test
        watch.last_read = time.monotonic() - watch.seconds - 1  # no batch read for its minutes
        dumping, dumped = threading.Event(), threading.Event()

        def slow_worker_stacks():
            dumping.set()
            dumped.wait(10)
            return 1

        monkeypatch.setattr(watch, 'dump_worker_stacks', slow_worker_stacks)
        telling = threading.Thread(target=watch.check)
        telling.start()
        assert dumping.wait(10)
        reading = threading.Thread(target=watch.on_read)
        reading.start()
        reading.join(0.5)  # it waits for the warning
        dumped.set()
        telling.join(10)
        reading.join(10)
    assert [message.split(' ')[:2] for message in told] == [['warning:', 'no'], ['batches', 'are']], told
    assert not watch.reported


def test_a_stall_is_told_in_seconds_under_a_minute_and_in_minutes_above():
    assert (duration_text(42.4), duration_text(59.6), duration_text(1890)) == ('42 s', '60 s', '31.5 minutes')


def test_the_save_timer_is_due_after_its_minutes_and_never_with_zero():
    assert SaveTimer(1e-9).due() and not SaveTimer(0).due() and not SaveTimer(30).due()
    timer = SaveTimer(0.5 / 60)
    time.sleep(0.6)
    assert timer.due()
    timer.reset()
    assert not timer.due()
    half_a_minute = SaveTimer(0.5)
    assert half_a_minute.due(ahead=31) and not half_a_minute.due(ahead=29) and not SaveTimer(0).due(ahead=1e9)


def test_a_timed_save_due_during_validation_comes_before_it_and_resume_is_bitwise_equal(workdir, straight):
    data_args, (weights, train_lines, val_lines) = straight
    logs, ckpts = killed_run(workdir, data_args + LONG, 'valid', 3, timer='ahead_only')  # 2 valid batches an epoch
    assert (logs / 'train.log').read_text().splitlines()[-1].endswith(
        'saved checkpoints/' + ckpts.name + '/latest_checkpoint.pt at epoch 2 step 16 '
        '(before validation; save_minutes 30)')
    on_disk = load(ckpts / 'latest_checkpoint.pt')
    # epoch 2 trained, not validated
    assert (on_disk['epoch'], on_disk['step'], on_disk['samples_done']) == (1, 16, 128)
    resume_to_the_straight_runs_end(logs, ckpts, weights, train_lines, val_lines)


def test_a_kill_during_a_save_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / 'latest_checkpoint.pt'
    script = textwrap.dedent("""
        import sys, torch
        project, path = sys.argv[1:]
        sys.path.insert(0, project)
        from utils import save_checkpoint
        save_checkpoint(dict(format_version=1, generation=0), path)
        print('first save done', flush=True)
        big = torch.randn(64 * 1024 * 1024)  # 256 MB: each save takes a while
        for generation in range(1, 1000):
            save_checkpoint(dict(format_version=1, generation=generation, big=big), path)
    """)
    with subprocess.Popen([sys.executable, '-c', script, str(PROJECT), str(path)], stdout=subprocess.PIPE,
                          text=True) as process:  # leaving the block waits for it and closes the pipe
        try:
            assert process.stdout.readline().strip() == 'first save done'
            deadline = time.time() + 60
            while not list(tmp_path.glob('.latest_checkpoint.pt.*.tmp')) and time.time() < deadline:
                time.sleep(0.001)
            assert list(tmp_path.glob('.latest_checkpoint.pt.*.tmp')), 'the child never started a save'
        finally:
            process.kill()
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint['format_version'] == 1 and 'generation' in checkpoint
    save_checkpoint(dict(format_version=1, generation='next'), path)  # the next save tidies up
    assert not list(tmp_path.glob('.latest_checkpoint.pt.*.tmp'))
    assert torch.load(path, weights_only=True)['generation'] == 'next'


class FilledUp:
    """A file on a disk that fills up after `room` more bytes."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)


class FillingFile(io.FileIO):
    """A file on a disk with `room` bytes left: a write gets what fits, and the next one ENOSPC."""

    room = math.inf

    def write(self, data):
        if FillingFile.room < 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = super().write(bytes(data[:min(len(data), FillingFile.room)]))
        FillingFile.room -= written
        return written


@pytest.mark.parametrize('logs_written', [True, False], ids=['config.json-alone', 'nothing'])
def test_a_disk_full_at_the_start_is_one_line_and_leaves_no_half_written_run(workdir, data_args, monkeypatch,
                                                                             logs_written):
    def disk_full(*args, **kwargs):  # config.json is the first file a new run writes that is more than a line
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(utils.json, 'dump', disk_full)
    if not logs_written:  # the disk already full as the logs open: none of their lines reach the files
        monkeypatch.setattr(FillingFile, 'room', 0)
        monkeypatch.setattr(RunLogFile, '_open', lambda self: io.TextIOWrapper(
            io.BufferedWriter(FillingFile(self.baseFilename, 'a')), encoding='utf-8'))
    with pytest.raises(RunError) as error:
        run(data_args + ['--n_epoch', 1])
    assert re.fullmatch(r"cannot write config\.json in 'loggers/[0-9_]+' \(No space left on device\); free some "
                        r'space, then run the command again', str(error.value))
    if logs_written:  # the run's note.log says how it ended
        logs, ckpts = only_run(workdir)
        assert not (logs / 'config.json').exists() and not any(ckpts.iterdir())
        assert last_status(logs)[0] == 'failed (RunError)'
    else:  # nothing of it on disk: no run left behind, as for a start that fails before its logs open
        assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()
    (workdir / 'config.json').write_text('theirs')
    with pytest.raises(FileExistsError):  # a file it did not make is never removed
        write_config_file({'seed': 1}, workdir / 'config.json')
    assert (workdir / 'config.json').read_text() == 'theirs'


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='no /dev/full to write to (Linux has one)')
@pytest.mark.parametrize('stderr_full', [True, False], ids=['stdout-and-stderr', 'stdout'])
def test_a_console_that_cannot_be_written_leaves_the_run_to_finish(workdir, data_args, stderr_full):
    # a batch job's output file on a disk that fills up (or over its quota): every bar, log line and exit flush fails
    def train_py(*args):
        with open('/dev/full', 'w') as full:
            return subprocess.run([sys.executable, str(PROJECT / 'train.py'), *map(str, args)], cwd=workdir,
                                  stdout=full, stderr=full if stderr_full else subprocess.PIPE, text=True,
                                  env={**os.environ, 'TQDM_DELAY': '0', 'TQDM_MININTERVAL': '0'})  # bars drawn at once

    result = train_py(*data_args, '--n_epoch', 2)
    assert result.returncode == 0, result.stderr  # not 1: a progress bar's write failed the run
    assert stderr_full or ('Traceback' not in result.stderr and 'Logging error' not in result.stderr), result.stderr
    logs, ckpts = only_run(workdir)
    assert last_status(logs)[0] == 'finished'
    assert [row['epoch'] for row in read_metrics_rows(logs / 'metrics.csv')] == ['1', '2']
    assert (ckpts / 'latest_checkpoint.pt').exists()
    assert train_py(*data_args, '--n_epoch', 0).returncode == 2  # bad input: its error line is lost, not its exit code


@pytest.mark.skipif(os.name != 'posix', reason='closes file descriptor 2 between fork and exec')
def test_a_run_started_without_stderr_finishes_and_so_does_predict(workdir, data_args):
    # `python train.py 2>&-` (pythonw on Windows alike): sys.stderr is None, and the bars have nowhere to go
    def without_stderr(script, *args):
        return subprocess.run([sys.executable, str(PROJECT / script), *map(str, args)], cwd=workdir, text=True,
                              stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2),
                              env={**os.environ, 'TQDM_DELAY': '0', 'TQDM_MININTERVAL': '0'})  # bars drawn at once

    trained = without_stderr('train.py', *data_args, '--n_epoch', 1)
    assert trained.returncode == 0, trained.stdout[-3000:]
    logs, ckpts = only_run(workdir)
    assert last_status(logs)[0] == 'finished' and 'finished 1 epoch' in trained.stdout
    predicted = without_stderr('predict.py', '--checkpoint', ckpts / 'best_checkpoint.pt', '--output',
                               'predictions.csv')
    assert predicted.returncode == 0 and (workdir / 'predictions.csv').exists(), predicted.stdout[-3000:]


def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_earlier_checkpoint(workdir, data_args, monkeypatch):
    real_save, saves = torch.save, []

    def disk_full_after_the_first(state, file, **kwargs):
        saves.append(1)
        # the disk fills up mid-write: torch's writer then fails to close the file, a RuntimeError hiding the OSError
        return real_save(state, file if len(saves) == 1 else FilledUp(file, 1000), **kwargs)

    monkeypatch.setattr(torch, 'save', disk_full_after_the_first)
    with pytest.raises(RunError) as error:
        run(data_args + ['--n_epoch', 4, '--lr', 3e-3])
    monkeypatch.undo()
    message = str(error.value)
    assert message.startswith('cannot write ') and message.endswith(
        '(No space left on device); the checkpoints already there are intact: free some space, then resume')
    assert '\n' not in message and len(saves) == 2
    logs, ckpts = only_run(workdir)
    assert load(ckpts / 'best_checkpoint.pt')['epoch'] == 1
    assert not list(ckpts.glob('.*.tmp'))
    assert last_status(logs) == ('failed (RunError)', f'error: {message}')
    assert not (logs / 'traceback.txt').exists()  # bad input's one line says it all


def test_a_checkpoint_write_that_fails_for_another_reason_than_space_says_to_fix_that(workdir, data_args,
                                                                                      monkeypatch):
    def folder_made_read_only(state, file, **kwargs):
        raise PermissionError(errno.EACCES, 'Permission denied')

    monkeypatch.setattr(torch, 'save', folder_made_read_only)
    with pytest.raises(RunError, match=r'^cannot write .*\(Permission denied\); the checkpoints already there are '
                                       r'intact: fix that, then resume$'):
        run(data_args + ['--n_epoch', 1])


def epoch_rows(n):
    return [{'epoch': e, 'train_loss': 1 / e, 'valid_loss': 2 / e, 'train_metric': e / 10, 'valid_metric': e / 20,
             'lr': e / 1000} for e in range(1, n + 1)]


def test_tensorboard_scalars_that_find_the_disk_full_wait_and_go_in_when_there_is_room(tmp_path, monkeypatch, capsys):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.summary.writer import event_file_writer
    from tensorboard.summary.writer.record_writer import RecordWriter
    from torch.utils.tensorboard import SummaryWriter

    # event files made in one second sort by the process's count of writers, as text (10 before 9), and the reader
    # skips a file that sorts before one it has read: count from 0, whatever wrote events earlier in this process
    monkeypatch.setattr(event_file_writer, '_global_uid', type(event_file_writer._global_uid)(0))
    real_write, full = RecordWriter.write, [False]

    def write(self, data):  # in tensorboard's writer thread, which a failed write ends
        if full[0]:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real_write(self, data)

    monkeypatch.setattr(RecordWriter, 'write', write)
    printed = []  # what a thread's uncaught error prints (its traceback)
    monkeypatch.setattr(threading, 'excepthook', lambda args: printed.append(args.exc_type))
    rows, scalars = epoch_rows(7), utils.TensorboardScalars(tmp_path / 'tb', SummaryWriter, 1)
    for epoch, row in enumerate(rows, 1):
        full[0] = epoch in (3, 4, 5)  # the disk full for three epochs
        scalars.add(row)
    scalars.close()
    err = capsys.readouterr().err
    assert err.count("warning: cannot write tensorboard's events") == 1, err
    assert printed == [] and 'Traceback' not in err, err  # the writer thread's traceback is left out
    threading.excepthook(threading.ExceptHookArgs([ValueError, ValueError(), None, None]))
    assert printed == [ValueError]  # another thread's error prints as before
    accumulator = EventAccumulator(str(tmp_path / 'tb'))
    accumulator.Reload()
    for tag, key in (('loss/train', 'train_loss'), ('loss/valid', 'valid_loss'), ('metric/train', 'train_metric'),
                     ('metric/valid', 'valid_metric'), ('lr', 'lr')):
        steps = {event.step: event.value for event in accumulator.Scalars(tag)}
        assert steps == {row['epoch']: pytest.approx(row[key]) for row in rows}, tag


def test_tensorboard_on_a_full_disk_leaves_no_empty_event_files_and_loses_no_epoch_even_at_the_end(tmp_path, capsys):
    full, dies_quietly, restarts = [True], [False], []

    class FullDiskWriter:  # as SummaryWriter over a quota: its event file is made, and stays empty
        def __init__(self, folder, purge_step):
            restarts.append(purge_step)
            folder.mkdir(exist_ok=True)
            self.file = folder / f'events.out.tfevents.{len(list(folder.iterdir()))}'
            self.file.touch()
            self.scalars, self.dead = [], False

        def add_scalar(self, tag, value, step):
            if self.dead:  # its writer thread's error, found by the next call
                raise OSError(errno.EDQUOT, 'Disk quota exceeded')
            self.scalars.append((tag, value, step))

        def flush(self):
            if full[0]:
                raise OSError(errno.EDQUOT, 'Disk quota exceeded')
            if dies_quietly[0]:  # the thread fails just after the flush returned: this epoch is not written
                self.dead, dies_quietly[0] = True, False
                return
            self.file.write_text(' '.join(str(step) for tag, _, step in self.scalars if tag == 'lr'))

        def close(self):
            pass

    rows, scalars = epoch_rows(11), utils.TensorboardScalars(tmp_path / 'tb', FullDiskWriter, 1)
    for row in rows[:3]:
        scalars.add(row)
    assert list((tmp_path / 'tb').iterdir()) == []  # three tries, no file left
    assert restarts == [1, 1, 1]  # each try marks the run's start, until one writes
    full[0] = False
    scalars.add(rows[3])
    dies_quietly[0] = True
    for row in rows[4:7]:
        scalars.add(row)
    assert [f.read_text() for f in sorted((tmp_path / 'tb').iterdir())] == ['1 2 3 4', '5 6 7']
    full[0] = True  # the last epochs find the disk full, and it has room again as the run ends: the batch sent last
    # (5-7) goes again with them
    for row in rows[7:9]:
        scalars.add(row)
    full[0] = False
    scalars.close()
    assert [f.read_text() for f in sorted((tmp_path / 'tb').iterdir())] == ['1 2 3 4', '5 6 7', '5 6 7 8 9']
    assert restarts[:4] == [1] * 4 and set(restarts[4:]) == {None}  # after a write, no writer hides this run's epochs
    assert capsys.readouterr().err.splitlines() == [
        f"warning: cannot write tensorboard's events in '{tmp_path / 'tb'}' (Disk quota exceeded); the scalars wait "
        "and go in with a later epoch's once they can be written again: free some space"]
    full[0] = True  # a run (resumed here) that ends with the disk still full names the epochs tensorboard may lack:
    # those not written, and the batch before them, sent again (epoch 10: its flush returned, its thread may have died)
    scalars = utils.TensorboardScalars(tmp_path / 'tb', FullDiskWriter, 10)
    assert restarts[-1] == 10
    full[0] = False
    scalars.add(rows[9])
    full[0] = True
    scalars.add(rows[10])
    scalars.close()
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"warning: tensorboard's events in '{tmp_path / 'tb'}' may lack epochs 10-11, which could not be written for "
        'certain before the run ended (the console printed their losses)']
    assert [f.read_text() for f in sorted((tmp_path / 'tb').iterdir())] == ['1 2 3 4', '5 6 7', '5 6 7 8 9', '10']


def test_metrics_rows_that_find_the_disk_full_wait_and_go_in_once_each_when_there_is_room(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.setattr('utils.open', lambda path, mode, buffering: FillingFile(path, mode), raising=False)
    monkeypatch.setattr(FillingFile, 'room', math.inf)
    path = tmp_path / 'metrics.csv'
    metrics = MetricsFile(str(path))
    columns = METRICS_COLUMNS + OPTIONAL_METRICS_COLUMNS
    rows = [{column: epoch for column in columns} for epoch in range(1, 5)]
    metrics.append(rows[0])
    written = path.read_bytes()
    FillingFile.room = 5  # row 2 is cut short by the full disk: taken back, so that it never stands twice
    metrics.append(rows[1])
    assert path.read_bytes() == written
    metrics.append(rows[2])  # still full
    assert path.read_bytes() == written
    FillingFile.room = math.inf
    metrics.append(rows[3])
    lines = path.read_text().splitlines()
    assert lines == [','.join(columns)] + [','.join([str(epoch)] * len(columns)) for epoch in range(1, 5)]
    err = capsys.readouterr().err
    assert err.count('warning: ') == 1
    assert err.startswith(f"warning: cannot write metrics.csv in '{tmp_path}' (No space left on device); its rows wait")
    FillingFile.room = 0  # the last epoch finds the disk full, which has room again as the run ends
    metrics.append({column: 5 for column in columns})
    FillingFile.room = math.inf
    metrics.close()
    assert path.read_text().splitlines()[-1] == ','.join(['5'] * len(columns))
    FillingFile.room = 0  # and a run that ends with the disk still full names the epochs its metrics.csv lacks
    for epoch in (6, 7):
        metrics.append({column: epoch for column in columns})
    metrics.close()
    assert capsys.readouterr().err == (f"warning: metrics.csv in '{tmp_path}' lacks epochs 6-7, which could not be "
                                       'written before the run ended (the console printed their losses)\n')
    assert path.read_text().splitlines()[-1] == ','.join(['5'] * len(columns))


def test_a_metrics_file_that_cannot_be_written_for_another_reason_names_no_full_disk(tmp_path, monkeypatch, capsys):
    def folder_made_read_only(path, *rows):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(utils, 'append_metrics', folder_made_read_only)
    MetricsFile(str(tmp_path / 'metrics.csv')).append({column: 1 for column in METRICS_COLUMNS})
    err = capsys.readouterr().err
    assert err.startswith(f"warning: cannot write metrics.csv in '{tmp_path}' (Permission denied); its rows wait")
    assert err.rstrip().endswith('fix that') and 'space' not in err


def test_a_disk_that_fills_up_for_a_while_costs_the_logs_nothing_and_training_goes_on(workdir, data_args,
                                                                                        monkeypatch, capsys):
    disk, tries = {'full': False}, []
    real_append, real_flush = utils.append_metrics, RunLogFile.flush

    def append_metrics(path, *rows):  # metrics.csv is written once an epoch: epochs 2 and 3 find the disk full, and
        tries.append(rows[-1]['epoch'])  # so does the last (5), which has room again as the run ends
        disk['full'] = rows[-1]['epoch'] in (2, 3) or tries.count(5) == 1
        if disk['full']:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_append(path, *rows)

    def flush(self):
        if disk['full']:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_flush(self)

    monkeypatch.setattr(utils, 'append_metrics', append_metrics)
    monkeypatch.setattr(RunLogFile, 'flush', flush)
    assert run(data_args + ['--n_epoch', 5]) == 0
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'Logging error' not in err, err
    logs, _ = only_run(workdir)
    warned = sorted(line.split(';')[0] for line in err.splitlines() if line.startswith('warning: '))
    assert warned == [f"warning: cannot write {name} in '{logs.relative_to(workdir)}' (No space left on device)"
                      for name in ('metrics.csv', 'train.log', 'val.log')]  # once each
    assert [row['epoch'] for row in read_metrics_rows(logs / 'metrics.csv')] == ['1', '2', '3', '4', '5']
    assert [line.split()[1] for line in epoch_lines(logs / 'train.log')] == ['1', '2', '3', '4', '5']
    assert [line.split()[1] for line in epoch_lines(logs / 'val.log')] == ['1', '2', '3', '4', '5']
    assert last_status(logs)[0] == 'finished'


def last_status(logs):
    """runs.py's status for the run, and the line after note.log's last status line."""
    lines = (logs / 'note.log').read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith('status: '))
    return summarize(logs)[0]['status'], lines[last + 1] if last + 1 < len(lines) else None


def test_a_crash_while_training_is_the_runs_last_status(workdir, data_args, monkeypatch):
    real_clip, calls = torch.nn.utils.clip_grad_norm_, []

    def crash_on_the_fourth_step(*args, **kwargs):  # stands for a bug in model code, or running out of memory
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError('boom\nsecond line')
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, 'clip_grad_norm_', crash_on_the_fourth_step)
    with pytest.raises(RuntimeError, match='boom'):  # the error itself, with its traceback, still reaches the user
        run(data_args + ['--n_epoch', 2])
    logs, ckpts = only_run(workdir)
    path = os.path.relpath(logs / 'traceback.txt')  # and its whole traceback, should the console have gone since
    assert last_status(logs) == ('failed (RuntimeError)', f'error: boom; the whole error in {path}')
    written = (logs / 'traceback.txt').read_text()
    assert written.endswith('RuntimeError: boom\nsecond line\n\n') and 'in crash_on_the_fourth_step' in written
    # inside a step (the backward pass is done, the update is not): no state to save that a resume could trust
    assert not any(ckpts.iterdir()) and 'saved' not in (logs / 'train.log').read_text()


def test_a_sigterm_while_the_failure_is_noted_does_not_cut_the_record_short(workdir, data_args, monkeypatch,
                                                                            signal_handlers_restored):
    # under torchrun: another rank's death fails this one in a collective, and torchrun's SIGTERM follows at once
    real_note_failure = utils.note_failure

    def sigterm_first(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_note_failure(*args)

    def peer_gone():
        raise RuntimeError('Connection closed by peer')

    monkeypatch.setattr(utils, 'note_failure', sigterm_first)
    at_batch(monkeypatch, 3, peer_gone)
    with pytest.raises(BaseException) as raised:  # not SIGTERM's KeyboardInterrupt, which would stop pytest
        run(data_args + ['--n_epoch', 1])
    assert raised.type is RuntimeError, raised.value
    assert last_status(only_run(workdir)[0])[0] == 'failed (RuntimeError)'


# 8 training and 2 validation batches an epoch: batch 15 is epoch 2's fifth training batch, 19 its first
# validation batch. A bad batch fails before its forward pass, so no random number was drawn for it.
@pytest.mark.parametrize('bad_batch, saved_at, where', [
    (15, (1, 12, 64), ''),  # between steps: epoch 2's first 4 steps are kept
    (19, (1, 16, 128), ' in validation'),  # all of epoch 2's training is kept; resume validates it again
])
def test_an_error_between_steps_or_in_validation_saves_the_work_and_resume_is_bitwise_equal(workdir, straight,
                                                                                            monkeypatch, bad_batch,
                                                                                            saved_at, where):
    data_args, (weights, train_lines, val_lines) = straight

    def unreadable():
        raise RunError("cannot read image 'x.png'; remove or replace it")

    with monkeypatch.context() as patch, pytest.raises(RunError, match='x.png'):
        at_batch(patch, bad_batch, unreadable)
        run(data_args + LONG)
    logs, ckpts = only_run(workdir)
    saved = load(ckpts / 'latest_checkpoint.pt')
    assert (saved['epoch'], saved['step'], saved['samples_done']) == saved_at
    assert (f'error at epoch 2{where}: saved checkpoints/{ckpts.name}/latest_checkpoint.pt at step {saved_at[1]}; '
            f'fix the cause, then resume with: python train.py --resume {logs.name}'
            ) in (logs / 'train.log').read_text()
    assert last_status(logs)[0] == 'failed (RunError)'
    assert epoch_lines(logs / 'val.log') == val_lines[:1]
    resume_to_the_straight_runs_end(logs, ckpts, weights, train_lines, val_lines)  # each epoch's lines once
    assert f'(epoch 1, step {saved_at[1]}, {saved_at[2]} samples of epoch 2 trained)' in (logs / 'note.log').read_text()


CUDA_OUT_OF_MEMORY = torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total '
                                                 'capacity of 79.19 GiB of which 1.06 GiB is free.\nIncluding ...')
MEMORY_FIX = ('out of memory (CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB '
              'of which 1.06 GiB is free.); in smaller batches, as many samples per optimizer step: ')


def test_out_of_memory_between_steps_names_the_smaller_batches_to_resume_with(workdir, data_args, monkeypatch):
    def out_of_memory():
        raise CUDA_OUT_OF_MEMORY

    with monkeypatch.context() as patch, pytest.raises(torch.cuda.OutOfMemoryError):
        at_batch(patch, 15, out_of_memory)  # epoch 2's fifth batch: its first 4 steps are saved
        run(data_args + LONG)
    logs, ckpts = only_run(workdir)
    options = ['--batch_size', str(TEST_BATCH_SIZE // 2), '--grad_accum_steps', '2']
    assert (f'error at epoch 2: saved checkpoints/{ckpts.name}/latest_checkpoint.pt at step 12; {MEMORY_FIX}'
            f"python train.py --resume {logs.name} {' '.join(options)}") in (logs / 'train.log').read_text()
    assert run(['--resume', logs.name, *options]) == 0  # the command it names goes on to the end
    saved = load(ckpts / 'latest_checkpoint.pt')
    assert saved['epoch'] == N_EPOCH and (saved['config']['batch_size'], saved['config']['grad_accum_steps']) == (
        TEST_BATCH_SIZE // 2, 2)


@pytest.mark.parametrize('resumed', [False, True])
def test_out_of_memory_with_nothing_new_saved_still_names_the_smaller_batches(workdir, data_args, monkeypatch,
                                                                             resumed):
    if resumed:
        assert run(data_args + ['--n_epoch', 1]) == 0
    logs = only_run(workdir)[0] if resumed else None

    def out_of_memory(*args, **kwargs):  # in the backward of the run's first step: nothing of it can be saved
        raise CUDA_OUT_OF_MEMORY

    monkeypatch.setattr(torch.Tensor, 'backward', out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run(['--resume', logs.name, '--n_epoch', 2] if resumed else data_args + ['--n_epoch', 1])
    logs = logs or only_run(workdir)[0]
    epoch = 2 if resumed else 1
    how = f'python train.py --resume {logs.name}' if resumed else 'start a new run with'
    assert (f'error at epoch {epoch}: {MEMORY_FIX}{how} --batch_size {TEST_BATCH_SIZE // 2} --grad_accum_steps 2'
            in (logs / 'train.log').read_text())


@pytest.mark.parametrize('batch_size, grad_accum_steps, fix', [
    (12, 3, 'python train.py --resume x --batch_size 6 --grad_accum_steps 6'),
    (9, 1, 'python train.py --resume x --batch_size 3 --grad_accum_steps 3'),  # 9 samples a step, as before
    (1, 1, None),
])
def test_out_of_memory_fix_keeps_the_samples_per_optimizer_step(batch_size, grad_accum_steps, fix):
    config = {'batch_size': batch_size, 'grad_accum_steps': grad_accum_steps}
    line = utils.out_of_memory_fix(MemoryError(), config, 'python train.py --resume x')
    assert line == (f'out of memory (MemoryError); in smaller batches, as many samples per optimizer step: {fix}' if fix
                    else 'out of memory at batch_size 1 (MemoryError); build a smaller model in model.py')
    assert utils.out_of_memory_fix(RuntimeError('mat1 and mat2 shapes cannot be multiplied'), config, 'x') is None


def test_an_error_after_validation_saves_nothing(workdir, data_args, monkeypatch):
    # the epoch's checkpoint may already be on its way: an older state must not replace it
    real_append, rows = MetricsFile.append, []

    def failing_on_the_second_row(self, row):
        rows.append(1)
        if len(rows) == 2:
            raise RuntimeError('a bug after validation')
        real_append(self, row)

    monkeypatch.setattr(MetricsFile, 'append', failing_on_the_second_row)
    with pytest.raises(RuntimeError, match='a bug after validation'):
        run(data_args + ['--n_epoch', 3])
    logs, ckpts = only_run(workdir)
    assert 'error at epoch' not in (logs / 'train.log').read_text()
    assert sorted(path.name for path in ckpts.iterdir()) == ['best_checkpoint.pt']


def test_an_error_before_the_first_step_saves_nothing(workdir, data_args, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError('bad batch')

    monkeypatch.setattr(train, 'to_device', failing)
    with pytest.raises(RuntimeError, match='bad batch'):
        run(data_args + ['--n_epoch', 2])
    logs, ckpts = only_run(workdir)
    assert not any(ckpts.iterdir()) and 'saved' not in (logs / 'train.log').read_text()


def test_an_error_after_an_unread_nan_loss_saves_nothing(workdir, data_args, monkeypatch):
    real_to_device, calls = train.to_device, []

    def nan_then_failing(*args, **kwargs):  # the NaN at batch 2 is not read yet (log_interval 5) when batch 4 fails
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError('bad batch')
        *inputs, target = real_to_device(*args, **kwargs)
        return [inputs[0] * math.nan, *inputs[1:], target] if len(calls) == 2 else [*inputs, target]

    monkeypatch.setattr(train, 'to_device', nan_then_failing)
    with pytest.raises(RuntimeError, match='bad batch'):
        run(data_args + ['--n_epoch', 2, '--log_interval', 5])
    logs, ckpts = only_run(workdir)
    assert not any(ckpts.iterdir()) and 'saved' not in (logs / 'train.log').read_text()


# A terminal's Ctrl-C, or a batch system's SIGTERM, reaches every process of the group: a child process
# (torch.compile's C++ compiler) dies of it, and its failure ends the step with an error thousands of lines long.
COMPILER_KILLED = RuntimeError('CppCompileError: C++ compile error\n' + 'warning: unused variable\n' * 1000)


@pytest.mark.parametrize('signum, where, failing_call, extra, kept', [
    # between steps: epoch 2's first 4 steps are saved
    (signal.SIGINT, 'to_device', 15, [], 'saved checkpoints/{run}/latest_checkpoint.pt at step 12; resume with: '
                                         'python train.py --resume {run}'),
    # inside a step of epoch 2 (clipping): nothing new to save, epoch 1's save stays
    (signal.SIGINT, 'clip_grad_norm_', 12, ['--save_every', 1], 'resume with: python train.py --resume {run} '
                                                                 '(from its last save)'),
    (signal.SIGTERM, 'to_device', 1, [], 'nothing saved to resume from'),  # the first batch
], ids=['between-steps', 'inside-a-step', 'first-batch'])
def test_an_error_that_the_stop_signal_causes_ends_the_run_as_interrupted(workdir, data_args, monkeypatch,
                                                                         signal_handlers_restored, signum, where,
                                                                         failing_call, extra, kept):
    owner = torch.nn.utils if where == 'clip_grad_norm_' else train
    real, calls = getattr(owner, where), []

    def signalled_then_failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == failing_call:
            signal.raise_signal(signum)
            raise COMPILER_KILLED
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, where, signalled_then_failing)
    with pytest.raises(Interrupted) as stopped:
        run(data_args + ['--n_epoch', 2, *extra])
    assert stopped.value.exit_code == 128 + signum and stopped.value.__cause__ is COMPILER_KILLED
    logs, ckpts = only_run(workdir)
    name = signal.Signals(signum).name
    line = (f'interrupted by {name} at epoch {1 + (failing_call > 10)}, which also stopped a child process '
            f'(RuntimeError: CppCompileError: C++ compile error; the whole error in '
            f'loggers/{logs.name}/traceback.txt); '
            f'{kept.format(run=logs.name)}\n')
    assert (logs / 'train.log').read_text().endswith(line)  # one line: not the compiler's thousand
    kept_error = (logs / 'traceback.txt').read_text()  # all of it, should it be a bug of its own
    assert kept_error.count('Traceback (most recent call last):') == 1 and kept_error.count('unused variable') == 1000
    assert last_status(logs) == (f'interrupted ({name})', None)
    if failing_call == 15:
        saved = load(ckpts / 'latest_checkpoint.pt')
        assert (saved['epoch'], saved['step'], saved['samples_done']) == (1, 12, 64)
    elif failing_call == 1:
        assert not any(ckpts.iterdir())
    monkeypatch.setattr(owner, where, real)
    if failing_call > 1:
        assert run(['--resume', logs.name]) == 0
    if failing_call == 15:  # resumed, and stopped so again: the first traceback stays
        calls[:] = [1] * (failing_call - 1)  # the resumed run's first batch fails
        monkeypatch.setattr(owner, where, signalled_then_failing)
        with pytest.raises(Interrupted):
            run(['--resume', logs.name, '--n_epoch', 3])
        assert (logs / 'traceback.txt').read_text().startswith(kept_error)
        assert (logs / 'traceback.txt').read_text().count('unused variable') == 2000


def test_a_traceback_after_one_cut_short_starts_on_a_line_of_its_own(tmp_path):
    kept = tmp_path / 'traceback.txt'
    kept.write_bytes(b'2026-01-01 00:00:00\nTraceback (most recent call last):\n  File "tra')  # a crash mid-write
    undecodable = b'bad\xff.png'.decode('utf-8', 'surrogateescape')  # a file name's byte that is not UTF-8
    try:
        raise OSError(f"cannot read '{undecodable}'")
    except OSError as err:
        assert write_traceback(err, tmp_path) == f'; the whole error in {kept}'
    lines = kept.read_text(encoding='utf-8').split('\n')
    assert lines[2] == '  File "tra' and re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', lines[3])
    assert lines[4] == 'Traceback (most recent call last):' and "OSError: cannot read 'bad\\udcff.png'" in lines


def test_an_interrupted_run_exits_with_the_signals_code_and_no_traceback(capsys):
    with pytest.raises(SystemExit) as exited, exit_on_stop():
        raise Interrupted(130) from COMPILER_KILLED
    assert exited.value.code == 130 and capsys.readouterr().err == ''


def test_an_error_before_training_is_noted_in_its_own_run_only(workdir, data_args, monkeypatch):
    assert run(data_args + ['--n_epoch', 1]) == 0
    first, _ = only_run(workdir)
    first_note = (first / 'note.log').read_text()
    build_model = train.build_model

    def failing_to_build(config):
        raise ValueError('bad config')

    def failing_to_run(config):  # 3.8's check passes (a forward in eval, then in training mode); 3.10's summary fails
        model = build_model(config)
        forward, calls = model.forward, []

        def forward_once(*inputs):
            calls.append(inputs)
            if len(calls) > 2:
                raise RuntimeError('bad shape')
            return forward(*inputs)

        model.forward = forward_once
        return model

    monkeypatch.setattr(train, 'build_model', failing_to_build)  # 3.8: this run has no note.log yet
    with pytest.raises(ValueError):
        run(data_args)
    assert [p.name for p in (workdir / 'loggers').iterdir()] == [first.name]  # its empty folders are gone again
    assert [p.name for p in (workdir / 'checkpoints').iterdir()] == [first.name]
    monkeypatch.setattr(train, 'build_model', failing_to_run)
    with pytest.raises(RuntimeError):
        run(data_args)
    assert (first / 'note.log').read_text() == first_note  # the earlier run's logs are never written to
    [failed] = [p for p in (workdir / 'loggers').iterdir() if p != first]
    assert last_status(failed)[0] == 'failed (RuntimeError)'
    assert (workdir / 'checkpoints' / failed.name).is_dir()  # a run with logs keeps both its folders


@pytest.mark.parametrize('step', ['dataset', 'dataloader', 'model'])
def test_a_ctrl_c_before_the_logs_leaves_no_empty_run_behind(workdir, data_args, monkeypatch, step):
    (workdir / 'loggers' / 'mine').mkdir(parents=True)  # empty folders that are not this run's stay
    (workdir / 'checkpoints').mkdir()

    def pressed_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, {'dataset': 'build_datasets', 'dataloader': 'StopSafeDataLoader',
                                'model': 'build_model'}[step], pressed_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run(data_args + ['--n_epoch', 1])
    assert [p.name for p in (workdir / 'loggers').iterdir()] == ['mine']
    assert not any((workdir / 'checkpoints').iterdir())


def test_a_resume_that_fails_before_its_logs_keeps_the_run(workdir, data_args, monkeypatch):
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, checkpoints = only_run(workdir)
    before = sorted(p.name for p in logs.iterdir()), sorted(p.name for p in checkpoints.iterdir())

    def failing_to_build(config):
        raise ValueError('bad config')

    monkeypatch.setattr(train, 'build_model', failing_to_build)
    with pytest.raises(ValueError):
        run(data_args + ['--n_epoch', 2, '--resume', str(checkpoints / 'latest_checkpoint.pt')])
    assert (sorted(p.name for p in logs.iterdir()), sorted(p.name for p in checkpoints.iterdir())) == before


def test_a_ctrl_c_before_the_loop_is_the_runs_last_status(workdir, data_args, monkeypatch):
    def pressed_ctrl_c(*args, **kwargs):  # while train() sets up: the first optimizer takes a second or two
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.optim, 'AdamW', pressed_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run(data_args + ['--n_epoch', 1])
    logs, _ = only_run(workdir)
    assert last_status(logs)[0] == 'interrupted (SIGINT)'


# train.py run as a script, sent SIGTERM while its data loads (a batch job preempted during set-up)
SIGTERM_WHILE_LOADING = """
import os, runpy, signal, sys, time
project = sys.argv[1]
sys.path.insert(0, project)
import dataset
def build_datasets(config):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
dataset.build_datasets = build_datasets
sys.argv = [os.path.join(project, 'train.py')] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_sigterm_before_the_loop_stops_the_run_as_ctrl_c_does(workdir, data_args, monkeypatch):
    result = subprocess.run([sys.executable, '-c', SIGTERM_WHILE_LOADING, str(PROJECT), '--run_name', 'job']
                            + [str(a) for a in data_args], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 143 and result.stderr.strip().splitlines()[-1] == 'SIGTERM received: stopped'
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()  # so a requeue starts anew
    before = signal.getsignal(signal.SIGTERM)

    def terminated(*args, **kwargs):  # while train() sets up, once note.log is open
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

    monkeypatch.setattr(torch.optim, 'AdamW', terminated)
    with pytest.raises(KeyboardInterrupt):
        run(data_args + ['--n_epoch', 1])
    logs, _ = only_run(workdir)
    assert last_status(logs)[0] == 'interrupted (SIGTERM)'
    assert signal.getsignal(signal.SIGTERM) is before  # main() gives the signal back


def test_an_error_after_the_run_ended_leaves_its_status(workdir, data_args, monkeypatch):
    def failing_plot(loggers_dir):
        raise RuntimeError('plot')

    monkeypatch.setattr(train, 'save_curves', failing_plot)
    with pytest.raises(RuntimeError, match='plot'):
        run(data_args + ['--n_epoch', 1])
    logs, _ = only_run(workdir)
    assert last_status(logs)[0] == 'finished'


def test_two_runs_in_the_same_second_get_separate_folders(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train.time, 'strftime', lambda fmt, *args: '20260101_000000')
    assert run(data_args + ['--n_epoch', 1]) == 0
    first = (workdir / 'loggers' / '20260101_000000' / 'train.log').read_text()
    assert run(data_args + ['--n_epoch', 1]) == 0
    assert sorted(p.name for p in (workdir / 'loggers').iterdir()) == ['20260101_000000', '20260101_000000_1']
    assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['20260101_000000', '20260101_000000_1']
    assert (workdir / 'loggers' / '20260101_000000' / 'train.log').read_text() == first


def test_claim_run_dirs_skips_a_taken_name(tmp_path):
    os.makedirs(tmp_path / 'checkpoints' / 'run')
    logs, ckpts = claim_run_dirs(tmp_path / 'loggers' / 'run', tmp_path / 'checkpoints' / 'run')
    assert logs.endswith('run_1') and ckpts.endswith('run_1')
    assert not (tmp_path / 'loggers' / 'run').exists()


def test_an_unwritable_loggers_dir_is_reported_before_training(workdir, data_args):
    (workdir / 'a_file').write_text('')
    with pytest.raises(RunError, match='cannot create folder'):
        train.main(data_args + ['--loggers_dir', 'a_file/logs'])
    assert not (workdir / 'checkpoints').exists()


@pytest.mark.parametrize('folder', ['loggers_dir', 'checkpoints_dir'])
def test_a_run_folder_that_cannot_be_made_is_a_one_line_error_that_leaves_no_folder(workdir, data_args, monkeypatch,
                                                                                     folder):
    (workdir / 'shared').mkdir()
    before = sorted(os.listdir(workdir))
    make_folder = os.mkdir

    def read_only_shared(path, *args, **kwargs):  # a read-only mount, or another user's folder
        if os.path.basename(os.path.dirname(path)) == 'shared':
            raise OSError(errno.EROFS, 'Read-only file system', str(path))
        return make_folder(path, *args, **kwargs)

    monkeypatch.setattr(os, 'mkdir', read_only_shared)
    with pytest.raises(RunError, match=rf"^cannot create {folder} '.*shared.run': Read-only file system; "
                                       rf'pass a writable --{folder}$'):
        train.main(data_args + [f'--{folder}', os.path.join('shared', 'run'), '--n_epoch', 1])
    assert sorted(os.listdir(workdir)) == before and not os.listdir(workdir / 'shared')
