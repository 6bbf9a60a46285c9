"""How long a run waits for its batches: metrics.csv's data_seconds, and train.log's hint when the wait is a large
share of an epoch, naming what would help."""

import multiprocessing
import os
import time

import pytest

import train
import utils
from conftest import only_run, rows, run
from test_train import ChangedSamples


def read_slowly(monkeypatch, seconds, reads=None):
    """Make each sample of both splits take `seconds` to read (or what `seconds()` says at the read), in this process
    (num_workers 0); each read is appended to `reads` when given."""
    build_datasets = train.build_datasets

    def slow(sample):
        if reads is not None:
            reads.append(sample)
        delay = seconds() if callable(seconds) else seconds
        if delay:
            time.sleep(delay)
        return sample

    monkeypatch.setattr(train, 'build_datasets', lambda config: [ChangedSamples(split, slow)
                                                                  for split in build_datasets(config)])


def test_data_seconds_in_metrics_csv_is_the_epochs_wait_for_its_batches(workdir, data_args, monkeypatch):
    to_device, real_train = train.to_device, train.train
    reads, batches, reads_in_train = [], [], []
    step = 0.2  # long against a batch's real reading and collating, so that a step counted as a wait stands out

    def slow_step(*args, **kwargs):  # training's and validation's, after the batch came: not a wait for it
        batches.append(args)
        time.sleep(step)
        return to_device(*args, **kwargs)

    def counting_train(*args):  # not the reads before (3.10's model summary reads a batch)
        before = len(reads)
        code = real_train(*args)
        reads_in_train.append(len(reads) - before)
        return code

    read_slowly(monkeypatch, 0.005, reads)
    monkeypatch.setattr(train, 'to_device', slow_step)
    monkeypatch.setattr(train, 'train', counting_train)
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    [row] = rows(logs / 'metrics.csv')
    read = 0.005 * reads_in_train[0]  # each training and validation sample, read in this process (num_workers 0)
    # half a step a batch for the real reads (a loaded machine took 0.05 s a batch); a step in the wait adds a whole one
    assert read <= float(row['data_seconds']) < read + step / 2 * len(batches), (read, step, row)


SAID = 'hint: epoch 2 waited for its batches 50% of its 4.0 s (data_seconds in metrics.csv); '
CHEAPER = "make the dataset's __getitem__ cheaper (less decoding or parsing per sample, or cache its results)"


@pytest.mark.parametrize('data_seconds, workers, cores, hint', [
    (1.0, 0, 8, None),  # a quarter of the epoch: not above DATA_WAIT_HINT_SHARE
    (2.0, 0, 8, f'{SAID}--num_workers 4 (now 0; 8 cores for this process) would read them while the model trains, '
                f'or {CHEAPER}'),
    (2.0, 1, 2, f'{SAID}--num_workers 2 (now 1; 2 cores for this process) would read them while the model trains, '
                f'or {CHEAPER}'),
    (2.0, 0, 1, f"{SAID}with one core for this process, DataLoader workers would take the training's: {CHEAPER}"),
    (2.0, 4, 8, f'{SAID}4 DataLoader workers do not keep up on 8 cores: {CHEAPER}'),
])
def test_an_epoch_that_waits_for_its_batches_gets_a_hint_naming_what_would_help(monkeypatch, data_seconds, workers,
                                                                                cores, hint):
    monkeypatch.setattr(utils, 'usable_cores', lambda: cores)
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    assert utils.data_wait_hint(2, data_seconds, 4.0, workers) == hint


def test_less_than_a_second_of_epoch_gets_no_hint(monkeypatch):
    monkeypatch.setattr(utils, 'usable_cores', lambda: 8)
    assert utils.data_wait_hint(1, 0.9, 0.99, 0) is None
    assert utils.data_wait_hint(1, 0.9, 1.0, 0).startswith('hint: epoch 1 waited for its batches 90% of its 1.0 s')


def test_a_hint_during_an_epoch_says_so_far(monkeypatch):
    monkeypatch.setattr(utils, 'usable_cores', lambda: 8)
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    assert utils.data_wait_hint(1, 45.0, 60.4, 0, so_far=True).startswith(
        'hint: epoch 1 has waited for its batches 75% of its first 60.4 s (data_seconds in metrics.csv); '
        '--num_workers 4 (now 0; 8 cores for this process)')


def test_the_hint_shares_the_cores_among_torchruns_ranks_on_the_machine(monkeypatch):
    monkeypatch.setattr(utils, 'usable_cores', lambda: 8)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')
    assert '--num_workers 2 (now 0; 2 cores for this process)' in utils.data_wait_hint(2, 2.0, 4.0, 0)


@pytest.mark.parametrize('own, files, cores', [
    (None, {}, 8),  # no cgroup files (a host, macOS)
    (None, {'cpu.max': 'max 100000\n'}, 8),  # cgroup v2 without a quota
    (None, {'cpu.max': '200000 100000\n'}, 2),  # docker --cpus 2
    (None, {'cpu.max': '150000 100000\n'}, 1),  # 1.5 CPUs: one whole
    (None, {'cpu.max': '50000 100000\n'}, 1),  # half a CPU: still one
    (None, {'cpu.max': '1600000 100000\n'}, 8),  # a quota above the affinity: the affinity
    (None, {'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n'}, 8),  # cgroup v1 without a quota
    (None, {'cpu/cpu.cfs_quota_us': '300000\n', 'cpu/cpu.cfs_period_us': '100000\n'}, 3),
    (None, {'cpu,cpuacct/cpu.cfs_quota_us': '400000\n', 'cpu,cpuacct/cpu.cfs_period_us': '100000\n'}, 4),
    (None, {'cpu.max': 'garbage\n'}, 8),  # unreadable: no quota assumed
    (None, {'cpu/cpu.cfs_quota_us': '300000\n'}, 8),  # v1 without its period
    # the process's own cgroup below the root (a host's systemd slices): its quota, or a parent's, holds it
    ('0::/system.slice/train.scope\n', {'system.slice/cpu.max': '300000 100000\n',
                                        'system.slice/train.scope/cpu.max': 'max 100000\n'}, 3),
    ('0::/a/b\n', {'a/cpu.max': '600000 100000\n', 'a/b/cpu.max': '200000 100000\n'}, 2),  # the smallest
    ('0::/a/b\n', {'cpu.max': '400000 100000\n', 'a/b/cpu.max': '600000 100000\n'}, 4),
    ('4:memory:/m\n3:cpu,cpuacct:/docker/abc\n0::/\n', {'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '200000\n',
                                                        'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n'}, 2),
    # a container's own cgroup as the root: the path is not there
    ('0::/docker/abc\n', {'cpu.max': '200000 100000\n'}, 2),
    # a cgroup namespace's view of a cgroup outside it: not a folder below the mount (here, one beside it)
    ('0::/../other\n', {'cpu.max': '200000 100000\n', '../other/cpu.max': '100000 100000\n'}, 2),
    ('garbage\n', {'cpu.max': '200000 100000\n'}, 2),
])
def test_the_cores_for_the_hint_are_the_affinitys_within_its_cgroups_cpu_quota(tmp_path, monkeypatch, own, files,
                                                                               cores):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 8)
    monkeypatch.setattr(utils, 'CGROUP_ROOT', str(tmp_path / 'cgroup'))
    monkeypatch.setattr(utils, 'OWN_CGROUPS', str(tmp_path / 'self_cgroup'))  # absent: the root
    if own is not None:
        (tmp_path / 'self_cgroup').write_text(own)
    for name, text in files.items():
        (tmp_path / 'cgroup' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'cgroup' / name).write_text(text)
    assert utils.usable_cores() == cores
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    hint = utils.data_wait_hint(2, 2.0, 4.0, 0)
    assert (f'; {cores} cores for this process)' in hint) if cores > 1 else ('with one core for this process' in hint)


def hint_lines(logs):
    return [line for line in (logs / 'train.log').read_text().splitlines() if 'hint:' in line]


def test_a_one_epoch_run_that_waits_for_its_batches_gets_the_hint(workdir, data_args, monkeypatch):
    read_slowly(monkeypatch, 0.003)  # 16 samples a batch: 48 ms, of an epoch of 10 batches
    monkeypatch.setattr(utils, 'usable_cores', lambda: 8)
    monkeypatch.setattr(utils, 'DATA_WAIT_HINT_MIN_SECONDS', 0.2)
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    hints = hint_lines(logs)
    assert len(hints) == 1 and '| hint: epoch 1 waited for its batches ' in hints[0], hints
    assert '--num_workers 4 (now 0; 8 cores for this process)' in hints[0]


def test_a_long_epoch_gets_the_hint_while_it_trains(workdir, data_args, monkeypatch):
    read_slowly(monkeypatch, 0.005)  # 16 samples a batch: 80 ms, of 8 training batches
    monkeypatch.setattr(utils, 'usable_cores', lambda: 8)
    monkeypatch.setattr(utils, 'DATA_WAIT_HINT_SECONDS', 0.2)  # the fourth batch's read (log_interval 1) is past it
    monkeypatch.setattr(utils, 'DATA_WAIT_HINT_MIN_SECONDS', 0.2)
    assert run(data_args + ['--n_epoch', 1, '--log_interval', 1]) == 0
    logs, _ = only_run(workdir)
    lines = (logs / 'train.log').read_text().splitlines()
    hints = hint_lines(logs)
    assert len(hints) == 1 and '| hint: epoch 1 has waited for its batches ' in hints[0], hints
    assert ' of its first ' in hints[0] and '--num_workers 4 (now 0; 8 cores for this process)' in hints[0]
    assert lines.index(hints[0]) < [i for i, line in enumerate(lines) if '| epoch 1 step ' in line][0]


@pytest.mark.skipif(multiprocessing.get_start_method() != 'fork', reason="the workers' slow start is patched in this "
                    'process, which only a forked worker inherits')
def test_the_dataloader_workers_start_gives_no_hint(workdir, data_args, monkeypatch):
    start_worker = utils._start_worker

    def slow_start(*args):  # each worker of both loaders: half a second before its first batch (fork inherits this)
        time.sleep(0.5)
        return start_worker(*args)

    monkeypatch.setattr(utils, '_start_worker', slow_start)
    to_device = train.to_device  # each batch's step 0.1 s (a model's), which the worker keeps up with
    monkeypatch.setattr(train, 'to_device', lambda *args: time.sleep(0.1) or to_device(*args))
    monkeypatch.setattr(utils, 'usable_cores', lambda: 8)
    monkeypatch.setattr(utils, 'DATA_WAIT_HINT_MIN_SECONDS', 0.3)  # the 1 s after the starts is past it
    assert run(data_args + ['--n_epoch', 1, '--num_workers', 1]) == 0
    logs, _ = only_run(workdir)
    [row] = rows(logs / 'metrics.csv')
    assert float(row['data_seconds']) >= 0.45, row  # a worker's start was waited for: 0.5 s of a 2-second epoch
    assert hint_lines(logs) == []


def test_the_hint_comes_at_the_first_epoch_that_waits_and_once(workdir, data_args, monkeypatch):
    epochs = []  # each started epoch (0-based), as train() tells its sampler
    set_epoch = utils.EpochSampler.set_epoch
    monkeypatch.setattr(utils.EpochSampler, 'set_epoch', lambda self, epoch, **kwargs: epochs.append(epoch) or
                        set_epoch(self, epoch, **kwargs))
    # each batch's step 60 ms (a model's): the fast epochs (0.6 s) last more than the 0.3 s a hint needs here, and
    # their reads stay a small share (an image folder's decoding took 29% of 10 ms steps on a busy machine)
    to_device = train.to_device
    monkeypatch.setattr(train, 'to_device', lambda *args: time.sleep(0.06) or to_device(*args))
    monkeypatch.setattr(utils, 'DATA_WAIT_HINT_MIN_SECONDS', 0.3)
    # from epoch 2 on the data gets slow (a cache that no longer fits, a slower disk): epoch 1 waits little
    read_slowly(monkeypatch, lambda: 0.005 if epochs and epochs[-1] >= 1 else 0)
    monkeypatch.setattr(utils, 'usable_cores', lambda: 8)
    assert run(data_args + ['--n_epoch', 3]) == 0
    logs, _ = only_run(workdir)
    hints = hint_lines(logs)
    assert len(hints) == 1 and '| hint: epoch 2 waited for its batches ' in hints[0], hints
