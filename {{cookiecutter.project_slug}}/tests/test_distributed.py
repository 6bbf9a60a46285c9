"""DDP pieces: the samplers shard the data correctly, and torchrun with two CPU processes makes one run."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

import utils
from conftest import AUGMENT, PROJECT, epoch_lines, only_run, run_as_group, run_torchrun, script_file
from runfiles import RunError, read_metrics_rows
from utils import (
    AgreementPace,
    EpochSampler,
    ShardSampler,
    StopRequest,
    agree_across_ranks,
    own_epoch_totals,
    setup_device,
)


def test_train_shards_are_disjoint_equal_and_cover_the_epoch():
    data = list(range(37))
    shards = [list(EpochSampler(data, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # equal length: every rank takes the same number of steps
    assert set().union(*shards) == set(data)
    one_process = list(EpochSampler(data, seed=1))
    assert sorted(one_process) == data and one_process == list(EpochSampler(data, seed=1))


def test_mid_epoch_start_skips_exactly_the_samples_done():
    sampler = EpochSampler(list(range(20)), seed=3)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_epoch(4, start=8)
    assert list(sampler) == full[8:] and len(sampler) == 12


def test_validation_shards_cover_every_sample_exactly_once():
    shards = [list(ShardSampler(41, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(41))


def test_one_process_agrees_with_itself():
    stop = StopRequest()
    assert agree_across_ranks(stop, 7, True, torch.device('cpu')) == (False, 7, True)
    stop.signum = signal.SIGTERM
    assert agree_across_ranks(stop, None, False, torch.device('cpu')) == (True, None, False)


def test_the_ranks_agree_every_few_seconds_of_slow_steps_and_at_most_every_log_interval(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(utils.time, 'monotonic', lambda: clock[0])
    pace = AgreementPace(world_size=2, log_interval=20)
    pace.start(0)
    assert not pace.due(0) and pace.due(1)  # the first agreement after one step, to measure
    for seconds_per_step, steps in ((0.001, 20), (2.0, 2), (30.0, 1), (0.5, 10)):  # STOP_CHECK_SECONDS 5
        pace.start(0)
        clock[0] += seconds_per_step * 3
        assert pace.proposal(3) == steps, seconds_per_step
    pace.agreed(7, 2)  # the smallest rank's proposal
    assert not pace.due(8) and pace.due(9)
    pace.start(40)  # the next epoch keeps the agreed pace
    assert not pace.due(41) and pace.due(42)
    alone = AgreementPace(world_size=1, log_interval=20)  # one process checks its stop at every step
    assert not any(alone.due(step) for step in range(10_000))


def test_a_resumed_epochs_running_sums_go_back_to_the_ranks_that_made_them():
    # loss sum, metric sum, samples, gradient-norm sum, norms: one entry per rank
    shares = [[1.0, 0.5, 16, 2.5, 2], [3.0, 1.5, 16, 2.5, 2]]
    assert own_epoch_totals(shares, 1, 2) == [3.0, 1.5, 16, 2.5, 2]
    assert own_epoch_totals(shares, 0, 1) == [4.0, 2.0, 32, 5.0, 4]  # another number of processes: rank 0 takes all
    assert own_epoch_totals(shares, 2, 3) == [0.0, 0.0, 0, 0.0, 0]  # and the all-reduce adds the others' zeros
    # before format 4 a share had no gradient-norm sums; format 1 held rank 0's sums only
    assert own_epoch_totals([[1.0, 0.5, 16], [3.0, 1.5, 16]], 1, 2) == [3.0, 1.5, 16, 0.0, 0]
    assert own_epoch_totals([1.0, 0.5, 16], 0, 1) == [1.0, 0.5, 16, 0.0, 0]


def test_more_local_ranks_than_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    with pytest.raises(RunError,
                       match=r'local rank 1, but this machine has 1 CUDA device\(s\): use --nproc_per_node 1'):
        setup_device()


def test_a_finished_torchrun_worker_exits_with_everything_written_and_no_shutdown_to_abort(tmp_path):
    script = ('import atexit, multiprocessing.util, sys\n'
              'from utils import create_logger, exit_torchrun_worker\n'
              "atexit.register(print, 'interpreter shutdown ran')\n"
              "lock = multiprocessing.get_context('forkserver').Lock()\n"  # a DataLoader queue's, its semaphore tracked
              'print(multiprocessing.util.get_temp_dir())\n'  # made for the forkserver's socket
              "create_logger('train', sys.argv[1]).info('last line')\n"
              "print('unflushed', end='')\n"
              'exit_torchrun_worker(3)\n')
    result = subprocess.run([sys.executable, '-c', script, str(tmp_path / 'train.log')], cwd=PROJECT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert result.stdout.endswith('| last line\nunflushed'), result.stdout  # flushed, and nothing ran after
    assert (tmp_path / 'train.log').read_text().endswith('| last line\n')
    made = Path(result.stdout.splitlines()[0])  # removed, as the shutdown would: not one /tmp/pymp-* per rank and run
    assert made.name.startswith('pymp-') and not made.exists(), made
    assert 'leaked semaphore' not in result.stderr, result.stderr  # unlinked, as the shutdown would


def test_sigterm_before_the_loop_under_torchrun_also_ends_without_a_shutdown(monkeypatch, capsys):
    calls = []
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setattr(utils, 'exit_torchrun_worker', lambda code: calls.append(code) or sys.exit(code))
    with pytest.raises(SystemExit) as stop, utils.exit_on_stop():
        raise utils.Terminated
    assert calls == [143] and stop.value.code == 143
    assert capsys.readouterr().err == 'SIGTERM received: stopped\n'


def test_a_run_that_outlasts_its_timeout_leaves_none_of_its_processes_running(tmp_path):
    # as torchrun's ranks would, if one hung: a child that starts a child, and both sleep
    sleeper = "import subprocess, sys, time\n" \
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n" \
              "print(child.pid, flush=True)\n" \
              "time.sleep(600)\n"
    with pytest.raises(subprocess.TimeoutExpired) as timed_out:
        run_as_group([sys.executable, '-c', sleeper], tmp_path, dict(os.environ), timeout=3)
    grandchild = int(timed_out.value.stdout)
    assert wait_until_gone(grandchild, seconds=10), f'process {grandchild} outlived the timeout'


def wait_until_gone(pid, seconds):
    """Whether pid ends (or is a zombie nobody has reaped yet) within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.isdir('/proc'):
            try:
                if Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z':
                    return True
            except FileNotFoundError:
                return True
        else:  # macOS: no /proc
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


def test_torchrun_two_processes_write_one_run(workdir, data_args, tmp_path_factory):
    streams = tmp_path_factory.mktemp('torchrun_logs')  # each rank's stdout and stderr, also shown (--tee 3)
    result = run_torchrun(['--log-dir', streams, '--tee', '3', PROJECT / 'train.py', '--n_epoch', '2',
                           '--save_minutes', '1e-9', *AUGMENT] + data_args, workdir,
                          # a rank that crashes prints its Python stack; rank 0's bars draw at once, not a minute in
                          env={'PYTHONFAULTHANDLER': '1', 'TQDM_DELAY': '0'})
    stderr = {path.parent.name: path.read_text() for path in streams.rglob('stderr.log')}
    assert result.returncode == 0, stderr.get('1', '')[-3000:] + result.stderr[-3000:]
    assert sorted(stderr) == ['0', '1'], sorted(streams.rglob('*'))
    assert 'epoch 2/2 train' in stderr['0'] and 'epoch 2 valid' in stderr['0']
    assert 'epoch 1/2 train' not in stderr['1'] and 'valid' not in stderr['1']  # progress bars: rank 0 only
    logs, ckpts = only_run(workdir)
    assert len(epoch_lines(logs / 'val.log')) == 2
    # the timed saves mid-epoch (due at every read here) happen on all ranks at the same step, or the run hangs
    saves = re.findall(r'saved \S+ at epoch (\d) step \d+ \((\d+) of (\d+) samples per process',
                       (logs / 'train.log').read_text())
    assert [(epoch, total) for epoch, _, total in saves] == [('1', '64'), ('2', '64')]  # 128 training samples, 2 ranks
    checkpoint = torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)
    assert checkpoint['world_size'] == 2 and not any(k.startswith('module.') for k in checkpoint['model'])
    assert '\ndata:\n    train_samples: 128\n    valid_samples: 32\n' in (logs / 'note.log').read_text()  # not a rank's


# Rank 1 alone gets a SIGTERM at its 5th training batch, each batch taking about 0.1 s
ONE_RANK_SIGNALLED = """
import os, runpy, signal, sys, time
sys.path.insert(0, {project!r})
import utils
utils.STOP_CHECK_SECONDS = 0.3
add, batches = utils.EpochMeter.add, []


def slow_add(self, *args):
    time.sleep(0.1)
    batches.append(None)
    if len(batches) == 5 and os.environ['RANK'] == '1':
        os.kill(os.getpid(), signal.SIGTERM)
    return add(self, *args)


utils.EpochMeter.add = slow_add
runpy.run_path(os.path.join({project!r}, 'train.py'), run_name='__main__')
"""


def test_under_torchrun_a_stop_is_agreed_within_seconds_of_slow_steps_not_at_the_next_read(
        workdir, data_args, tmp_path_factory):
    # log_interval 1000: the reads alone would agree at the epoch's end (32 steps of 2 samples a rank), and
    # torchrun SIGKILLs a rank 30 s after it passed on a SIGTERM, so slow steps would lose the save
    script = script_file(tmp_path_factory, ONE_RANK_SIGNALLED.format(project=str(PROJECT)))
    result = run_torchrun([script] + data_args + ['--n_epoch', '1', '--batch_size', '2', '--log_interval', '1000'],
                          workdir)
    assert result.returncode != 0, result.stdout[-3000:]  # torchrun reports the signal
    logs, ckpts = only_run(workdir)
    train_log = (logs / 'train.log').read_text()
    stopped = re.findall(r'interrupted by SIGTERM at epoch 1 step (\d+); saved ', train_log)
    assert len(stopped) == 1, train_log[-3000:] + result.stderr[-3000:]
    step = int(stopped[0])
    assert 5 <= step <= 12, step  # about 0.3 s of 0.1 s steps after the 5th (the first agreement came after one)
    checkpoint = torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)
    assert (checkpoint['step'], checkpoint['samples_done']) == (step, 2 * step)  # a rank's samples
    # the line names torchrun with as many processes, which resumes the run exactly; that command goes to the end
    command = re.search(r'; resume with: (.*)$', train_log, re.MULTILINE).group(1)
    assert command == f'torchrun --standalone --nproc_per_node=2 train.py --resume {logs.name}', command
    result = run_torchrun([PROJECT / 'train.py', '--resume', logs.name], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    train_log = (logs / 'train.log').read_text()
    assert f'(epoch 0, step {step}, {2 * step} samples per process of epoch 1 trained)' in train_log
    assert len(epoch_lines(logs / 'val.log')) == 1


def test_the_resume_command_names_the_launch_with_as_many_processes(monkeypatch):
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    assert utils.launch_command(1) == 'python train.py'
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')
    assert utils.launch_command(4) == 'torchrun --standalone --nproc_per_node=4 train.py'
    assert utils.launch_command(16) == 'torchrun --nnodes=4 --nproc_per_node=4 <rendezvous options> train.py'
    assert utils.resume_command('checkpoints/run 1', world_size=4) == \
        "torchrun --standalone --nproc_per_node=4 train.py --resume 'run 1'"


def test_a_torchrun_workers_error_is_in_torchruns_summary_a_run_error_as_its_one_line(monkeypatch, tmp_path):
    error_file = tmp_path / 'error.json'
    monkeypatch.delenv('TORCHELASTIC_ERROR_FILE', raising=False)
    with pytest.raises(RunError), utils.errors_to_torchrun():  # not under torchrun: nothing to write
        raise RunError('batch_size must be at least 1, got 0')
    monkeypatch.setenv('TORCHELASTIC_ERROR_FILE', str(error_file))
    with pytest.raises(KeyboardInterrupt), utils.errors_to_torchrun():  # a stop is no failure
        raise KeyboardInterrupt
    assert not error_file.exists()
    with pytest.raises(RunError), utils.errors_to_torchrun():
        raise RunError('batch_size must be at least 1, got 0')
    failure = ProcessFailure(local_rank=0, pid=1, exitcode=2, error_file=str(error_file))  # as torchrun reads it
    assert abs(failure.timestamp - time.time()) < 60
    summary = ChildFailedError('train.py', {0: failure}).format_msg()
    assert '  traceback : error: batch_size must be at least 1, got 0\n' in summary, summary


def torchrun_failures(stderr):
    """From torchrun's closing summary: the root cause's rank, and {rank: (error_file, traceback)} for each failure
    (the traceback torchrun shows, without its indentation)."""
    summary = stderr[stderr.rindex(' FAILED\n'):]
    failures = re.findall(r'rank +: (\d+) \(local_rank: \d+\)\n.*?error_file: (.*?)\n +traceback : (.*?)\n'
                          r'(?=\[\d+\]:|[-=]{10})', summary, re.DOTALL)
    root = re.search(r'Root Cause.*?rank +: (\d+)', summary, re.DOTALL).group(1)
    return int(root), {int(rank): (error_file, re.sub(r'\n  ', '\n', text)) for rank, error_file, text in failures}


# Rank {rank} alone fails at its 5th training batch, with {error}
ONE_RANK_FAILS = """
import os, runpy, sys
sys.path.insert(0, {project!r})
import utils
add, batches = utils.EpochMeter.add, []


def failing_add(self, *args):
    batches.append(None)
    if len(batches) == 5 and os.environ['RANK'] == '{rank}':
        raise {error}
    return add(self, *args)


utils.EpochMeter.add = failing_add
runpy.run_path(os.path.join({project!r}, 'train.py'), run_name='__main__')
"""


@pytest.mark.parametrize('error, said, shown', [
    ("ValueError('the cause, on rank 1')", 'ValueError: the cause, on rank 1; fix the cause, then start the run again',
     'ValueError: the cause, on rank 1'),
    # out of memory names the smaller batches, as in one process
    ('MemoryError()', 'out of memory (MemoryError); in smaller batches, as many samples per optimizer step: start a '
                      'new run with --batch_size 1 --grad_accum_steps 2', 'MemoryError'),
], ids=['bug', 'memory'])
def test_an_error_on_another_rank_than_0_is_kept_in_the_runs_files(workdir, data_args, tmp_path_factory, error, said,
                                                                   shown):
    # rank 0 writes the logs, and fails with its peer ("Connection closed by peer"): before, the cause was in
    # rank 1's console output only. Nothing was saved yet (an error under DDP saves nothing): start again.
    script = script_file(tmp_path_factory, ONE_RANK_FAILS.format(project=str(PROJECT), rank=1, error=error))
    result = run_torchrun([script] + data_args + ['--n_epoch', '1', '--batch_size', '2'], workdir)
    assert result.returncode != 0, result.stdout[-3000:]
    logs, _ = only_run(workdir)
    tracebacks = (logs / 'traceback.txt').read_text()
    assert re.search(rf'^\S+ \S+ rank 1\nTraceback \(most recent call last\):\n.*^{error.split("(")[0]}\b',
                     tracebacks, re.MULTILINE | re.DOTALL), tracebacks[-3000:]
    line = f'error on rank 1 at epoch 1 (the whole error in loggers/{logs.name}/traceback.txt): {said}'
    assert f' | {line}\n' in (logs / 'train.log').read_text(), (logs / 'train.log').read_text()[-2000:]
    assert 'status: failed (another rank) at ' in (logs / 'note.log').read_text()  # runs.py: not rank 0's RuntimeError
    # torchrun's summary shows rank 1's traceback (before: "error_file: <N/A>" and a link); which of the two ranks
    # it calls the root cause is to the second, a tie going to rank 0 (its peer error, or torchrun's SIGTERM)
    _, failures = torchrun_failures(result.stderr)
    assert failures[1][1].startswith('Traceback (most recent call last):\n'), result.stderr[-3000:]
    assert failures[1][1].rstrip().endswith(f'\n{shown}'), result.stderr[-3000:]


def test_when_rank_0_fails_first_the_others_peer_errors_are_not_logged_as_causes(workdir, data_args, tmp_path_factory):
    script = script_file(tmp_path_factory, ONE_RANK_FAILS.format(project=str(PROJECT), rank=0,
                                                                 error="ValueError('the cause, on rank 0')"))
    result = run_torchrun([script] + data_args + ['--n_epoch', '1', '--batch_size', '2'], workdir)
    assert result.returncode != 0, result.stdout[-3000:]
    logs, _ = only_run(workdir)
    assert 'error on rank' not in (logs / 'train.log').read_text()  # rank 1's "Connection closed by peer"
    tracebacks = (logs / 'traceback.txt').read_text()
    assert 'ValueError: the cause, on rank 0' in tracebacks and ' rank 1\n' not in tracebacks, tracebacks[-3000:]
    assert 'status: failed (ValueError) at ' in (logs / 'note.log').read_text()
    assert 'error: the cause, on rank 0' in (logs / 'note.log').read_text()
    root, failures = torchrun_failures(result.stderr)  # rank 1's peer error came later: not the root cause
    assert root == 0 and failures[0][1].rstrip().endswith('\nValueError: the cause, on rank 0'), result.stderr[-3000:]


# Each rank writes the norm clip_grad_norm_ returns at every optimizer step to norms.<rank>; rank 1 takes
# BATCH_DELAY seconds longer to get each batch (training's and validation's)
BATCH_DELAY = 0.2
NORMS_RECORDED = """
import os, runpy, sys, time, torch
from torch.utils.data import dataloader
sys.path.insert(0, {project!r})
clip = torch.nn.utils.clip_grad_norm_
next_batch = dataloader._BaseDataLoaderIter.__next__


def slow_next(self):
    time.sleep({delay})
    return next_batch(self)


if os.environ['RANK'] == '1':
    dataloader._BaseDataLoaderIter.__next__ = slow_next


def recording(*args, **kwargs):
    norm = clip(*args, **kwargs)
    with open('norms.' + os.environ['RANK'], 'a') as f:
        f.write(repr(norm.item()) + '\\n')
    return norm


torch.nn.utils.clip_grad_norm_ = recording
runpy.run_path(os.path.join({project!r}, 'train.py'), run_name='__main__')
"""


def test_under_torchrun_grad_norm_is_the_averaged_gradients_norm_and_data_seconds_the_slowest_ranks_wait(
        workdir, data_args, tmp_path_factory):
    script = script_file(tmp_path_factory, NORMS_RECORDED.format(project=str(PROJECT), delay=BATCH_DELAY))
    result = run_torchrun([script] + data_args + ['--n_epoch', '1'], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    norms = [[float(norm) for norm in (workdir / f'norms.{rank}').read_text().split()] for rank in (0, 1)]
    assert norms[0] and norms[0] == norms[1]  # taken after DDP averaged the gradients
    logs, _ = only_run(workdir)
    line, = epoch_lines(logs / 'train.log')
    assert line.endswith(f' grad_norm {sum(norms[0]) / len(norms[0]):.6f}')  # the mean over steps, not over ranks too
    # rank 0 waits for rank 1 in the gradients' all-reduce, which is its step's time, not a wait for data
    row, = read_metrics_rows(logs / 'metrics.csv')
    assert BATCH_DELAY * len(norms[1]) <= float(row['data_seconds']) < float(row['epoch_seconds'])
    assert BATCH_DELAY * len(norms[1]) <= float(row['train_seconds']) < float(row['epoch_seconds'])  # no validation


def test_a_script_calling_main_under_torchrun_trains_an_unused_layer_and_keeps_ddp_until_exit(
        workdir, data_args, tmp_path_factory):
    # plain DDP fails at the second step ("Expected to have finished reduction in the prior iteration");
    # a DDP wrapper freed as main() returns can deadlock with gloo's worker threads (utils.keep_ddp_wrapper),
    # and a script that ends without utils.exit_process frees it at exit, before the interpreter's shutdown
    script = script_file(tmp_path_factory, f'import sys\nsys.path.insert(0, {str(PROJECT)!r})\n'
                         'import atexit\nimport gc\nimport weakref\n\n'
                         'wrappers = []\n\n\n'
                         'def report_at_exit():  # registered first, so it runs after utils\' handlers\n'
                         '    gc.collect()\n'
                         "    print('DDP wrappers alive at exit:', [ref() is not None for ref in wrappers])\n\n\n"
                         'atexit.register(report_at_exit)\n'
                         'from torch import nn\n'
                         'import model, runfiles, train, utils\n\n\n'
                         'def with_unused_layer(config):\n'
                         '    built = model.build_model(config)\n'
                         '    built.unused = nn.Linear(2, 2)\n'
                         '    return built\n\n\n'
                         'class RecordedDDP(train.DDP):\n'
                         '    def __init__(self, *args, **kwargs):\n'
                         '        super().__init__(*args, **kwargs)\n'
                         '        wrappers.append(weakref.ref(self))\n\n\n'
                         'train.build_model, train.DDP = with_unused_layer, RecordedDDP\n'
                         'with runfiles.one_line_errors(), utils.exit_on_stop():\n'
                         '    exit_code = train.main()\n'
                         'gc.collect()\n'
                         "print('DDP wrappers alive after main():', [ref() is not None for ref in wrappers])\n"
                         'sys.exit(exit_code)\n')
    # each rank's stdout, whole: torchrun's --tee reads a rank's file as it grows and can split a line it shows
    streams = tmp_path_factory.mktemp('torchrun_logs')
    result = run_torchrun(['--log-dir', streams, '--tee', '1', script, '--n_epoch', '1'] + data_args, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    logs, ckpts = only_run(workdir)
    assert len(epoch_lines(logs / 'val.log')) == 1
    assert ('warning: the model output does not depend on unused.weight, unused.bias (in training mode), so '
            'they do not train; DDP looks for unused parameters at every step') in (logs / 'train.log').read_text()
    assert 'unused.weight' in torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)['model']
    stdout = {path.parent.name: path.read_text() for path in streams.rglob('stdout.log')}
    assert sorted(stdout) == ['0', '1'], result.stdout[-3000:]
    for rank in stdout.values():
        assert rank.count('DDP wrappers alive after main(): [True]\n') == 1, rank[-3000:]
        assert rank.count('DDP wrappers alive at exit: [False]\n') == 1, rank[-3000:]
