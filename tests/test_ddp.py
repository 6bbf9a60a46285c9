"""The generated train.py under torchrun (DDP, gloo on CPU): one run folder, full validation, resume
both ways, a named run started again (after a start that saved nothing) and resumed by the same command,
the same first step as one process with the combined batch, a clean SIGTERM stop, a signal to one rank in
validation, and a killed rank resumed from the timed mid-epoch save as if never stopped."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# PYTHONFAULTHANDLER: a rank that crashes (a gloo abort, say) prints its Python stack into the failure message
ENV = {**os.environ, 'PYTHONDONTWRITEBYTECODE': '1', 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1',
       'PYTHONFAULTHANDLER': '1'}
SMALL = ['--hidden_dim', '32', '--warmup_steps', '5', '--batch_size', '16']

# Evaluates a checkpoint's weights on the whole valid split in one process: what val.log must show.
EVALUATE = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from dataset import build_datasets
from model import build_model
checkpoint = torch.load(sys.argv[2], weights_only=True)
model = build_model(checkpoint['config'])
model.load_state_dict(checkpoint['model'])
_, valid_set = build_datasets(checkpoint['config'])
x, y = zip(*[valid_set[i] for i in range(len(valid_set))])
with torch.no_grad():
    output = model.eval()(torch.stack(x))
print(len(valid_set), torch.nn.functional.cross_entropy(output, torch.stack(y)).item(),
      (output.argmax(1) == torch.stack(y)).float().mean().item())
"""


@pytest.fixture(scope='module')
def torchrun(tmp_path_factory):
    """torchrun's command line; its log folders (one a run) in a temporary folder instead of /tmp, where it would
    leave them."""
    logs = tmp_path_factory.mktemp('torchelastic')
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '--log-dir', str(logs)]


def run(argv, cwd, timeout=600):
    """subprocess.run in a session of its own, whose whole process group a timeout kills: torchrun's ranks too,
    which would otherwise outlive a hung test."""
    with subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def children(pid):
    """The processes `pid` started (Linux), so that a test can signal torchrun's ranks."""
    try:
        return [int(child) for child in Path(f'/proc/{pid}/task/{pid}/children').read_text().split()]
    except OSError:
        return []


def only_run(root):
    logs, ckpts = list((root / 'loggers').iterdir()), list((root / 'checkpoints').iterdir())
    assert len(logs) == len(ckpts) == 1, (logs, ckpts)
    return logs[0], ckpts[0]


def epoch_lines(path):
    return re.findall(r'epoch (\d+) step (\d+) loss (\S+) acc (\S+) lr', path.read_text())


@pytest.fixture(scope='module')
def project(baked):
    return baked('classification', 'mlp', 'synthetic')


@pytest.mark.slow
def test_torchrun_writes_one_run_whose_validation_covers_every_sample_once(project, torchrun, tmp_path):
    # 205 samples: 41 for validation, split 21 + 20 over the two ranks
    result = run(torchrun + [str(project / 'train.py'), '--n_epoch', '2', '--n_samples', '205'] + SMALL, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    logs, ckpts = only_run(tmp_path)
    assert sorted(p.name for p in logs.iterdir()) == ['config.json', 'curves.png', 'metrics.csv', 'note.log',
                                                      'train.log', 'val.log']
    assert sorted(p.name for p in ckpts.iterdir()) == ['best_checkpoint.pt', 'latest_checkpoint.pt']
    assert 'x 2' in (logs / 'note.log').read_text()  # the world size
    val = epoch_lines(logs / 'val.log')
    assert [v[0] for v in val] == ['1', '2'] and len(epoch_lines(logs / 'train.log')) == 2
    checkpoint = torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)
    assert not any(key.startswith('module.') for key in checkpoint['model'])
    assert checkpoint['world_size'] == 2 and len(checkpoint['rng']) == 2
    evaluated = run([sys.executable, '-c', EVALUATE, str(project), str(ckpts / 'latest_checkpoint.pt')], tmp_path)
    n, loss, accuracy = evaluated.stdout.split()
    assert int(n) == 41
    assert float(val[-1][2]) == pytest.approx(float(loss), abs=2e-6)
    assert float(val[-1][3]) == pytest.approx(float(accuracy), abs=2e-6)

    # the DDP run resumes in one process, and that run resumes under torchrun again
    resumed = run([sys.executable, str(project / 'train.py'), '--resume', logs.name, '--n_epoch', '3'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = run(torchrun + [str(project / 'train.py'), '--resume', logs.name, '--n_epoch', '4'], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert only_run(tmp_path) == (logs, ckpts)
    assert [line[0] for line in epoch_lines(logs / 'train.log')] == ['1', '2', '3', '4']
    assert torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)['epoch'] == 4

    # a copy of the checkpoint outside its run's folder goes on as a new run (rank 0 decides for all)
    shutil.copy(ckpts / 'latest_checkpoint.pt', tmp_path / 'copy.pt')
    source = sorted((p.name, p.stat().st_mtime_ns) for p in [*logs.iterdir(), *ckpts.iterdir()])
    branched = run(torchrun + [str(project / 'train.py'), '--resume', 'copy.pt', '--n_epoch', '5'], tmp_path)
    assert branched.returncode == 0, branched.stderr[-3000:]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in [*logs.iterdir(), *ckpts.iterdir()]) == source
    branch_logs, = set((tmp_path / 'loggers').iterdir()) - {logs}
    note = (branch_logs / 'note.log').read_text()
    assert 'branched from copy.pt (epoch 4, ' in note and 'x 2' in note
    branch_latest = torch.load(tmp_path / 'checkpoints' / branch_logs.name / 'latest_checkpoint.pt', weights_only=True)
    assert (branch_latest['epoch'], branch_latest['world_size']) == (5, 2)


@pytest.mark.slow
def test_a_named_run_under_torchrun_starts_resumes_and_ends_with_the_same_command(project, torchrun, tmp_path):
    command = torchrun + [str(project / 'train.py'), '--run_name', 'job', '--n_samples', '160'] + SMALL
    failed_start = tmp_path / 'loggers' / 'job' / 'note.log'  # a first start that failed before its first save
    failed_start.parent.mkdir(parents=True)
    failed_start.write_text('status: failed (ValueError) at 2026-01-01 12:00:00, epoch 0, step 0\n')
    for n_epoch in ('1', '2', '2'):  # started again; requeued and continued; requeued after its end
        result = run(command + ['--n_epoch', n_epoch], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / 'loggers' / 'job.attempt-1' / 'note.log').read_text().startswith('status: failed (ValueError)')
    shutil.rmtree(tmp_path / 'loggers' / 'job.attempt-1')
    assert only_run(tmp_path) == (tmp_path / 'loggers' / 'job', tmp_path / 'checkpoints' / 'job')
    assert [line[0] for line in epoch_lines(tmp_path / 'loggers' / 'job' / 'train.log')] == ['1', '2']
    assert result.stdout.count('nothing to do: the run stopped at epoch 2 (n_epoch 2)') == 1  # rank 0 only


@pytest.mark.slow
def test_two_processes_of_batch_b_take_the_same_first_step_as_one_of_batch_2b(project, torchrun, tmp_path):
    # 40 samples: 32 for training, so one optimizer step either way; no dropout, so no randomness
    args = ['--n_epoch', '1', '--n_samples', '40', '--dropout', '0', '--hidden_dim', '32', '--warmup_steps', '0']
    (tmp_path / 'one').mkdir()
    (tmp_path / 'two').mkdir()
    one = run([sys.executable, str(project / 'train.py'), *args, '--batch_size', '32'], tmp_path / 'one')
    two = run(torchrun + [str(project / 'train.py'), *args, '--batch_size', '16'], tmp_path / 'two')
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    weights = [torch.load(only_run(tmp_path / name)[1] / 'latest_checkpoint.pt', weights_only=True)
               for name in ('one', 'two')]
    assert weights[0]['step'] == weights[1]['step'] == 1
    for key, value in weights[0]['model'].items():
        torch.testing.assert_close(weights[1]['model'][key], value, rtol=1e-5, atol=1e-6)


SLOW_TRAIN = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's request for where a rank is
sys.path.insert(0, {project!r})
import train
add = train.EpochMeter.add
train.EpochMeter.add = lambda self, *args: time.sleep(0.02) or add(self, *args)
sys.exit(train.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_under_torchrun_saves_once_and_exits_cleanly(project, torchrun, tmp_path):
    script = tmp_path / 'slow_train.py'
    script.write_text(SLOW_TRAIN.format(project=str(project)))
    process = subprocess.Popen(torchrun + [str(script), '--n_epoch', '50', '--n_samples', '400'] + SMALL,
                               cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        logs = list(tmp_path.glob('loggers/*/val.log'))  # epoch 1 done: the signal comes in a later one
        if logs and epoch_lines(logs[0]):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    try:  # torchrun SIGKILLs a rank still running 30 s after it forwarded the signal: ask each where it is first
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        for rank in children(process.pid):
            os.kill(rank, signal.SIGUSR1)
        _, stderr = process.communicate(timeout=300)
    logs, ckpts = only_run(tmp_path)
    train_log = (logs / 'train.log').read_text()
    assert train_log.count('interrupted by SIGTERM') == 1, stderr[-8000:]
    checkpoint = torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)
    assert 1 <= checkpoint['epoch'] < 50
    assert not list(ckpts.glob('.*.tmp'))
    resumed = run([sys.executable, str(project / 'train.py'), '--resume', logs.name, '--n_epoch',
                   str(checkpoint['epoch'] + 1)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]


# train.py whose rank 1 alone gets `signal` at its Nth training or validation batch (a `kill` of that process,
# or the OOM killer's SIGKILL): the other rank goes on until the ranks next agree, or torchrun stops it
SIGNALLED_RANK = """
import os, signal, sys, torch
sys.path.insert(0, {project!r})
import train
add, batches = train.EpochMeter.add, []
def add_or_signal(self, *args):
    if torch.is_inference_mode_enabled() == {in_validation}:
        batches.append(None)
        if len(batches) == {at} and os.environ['RANK'] == '1':
            os.kill(os.getpid(), signal.{signal})
    return add(self, *args)
train.EpochMeter.add = add_or_signal
sys.exit(train.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_signal_to_one_rank_in_validation_stops_both_and_resume_is_as_if_never_stopped(project, torchrun, tmp_path):
    # 320 samples: 256 to train (8 steps of 16 a rank), 64 to validate (2 batches of 16 a rank)
    args = ['--n_epoch', '3', '--n_samples', '320'] + SMALL
    (tmp_path / 'straight').mkdir()
    straight = run(torchrun + [str(project / 'train.py'), *args], tmp_path / 'straight')
    assert straight.returncode == 0, straight.stderr[-3000:]
    straight_logs, straight_ckpts = only_run(tmp_path / 'straight')

    script = tmp_path / 'signalled_rank.py'
    # 2 validation batches a rank an epoch: epoch 2's first; the rank stops its validation at the next batch
    script.write_text(SIGNALLED_RANK.format(project=str(project), in_validation=True, at=3, signal='SIGTERM'))
    signalled = run(torchrun + [str(script), *args], tmp_path)
    assert signalled.returncode != 0, signalled.stderr[-3000:]
    assert not re.search(r'(train|utils)\.py", line', signalled.stderr), signalled.stderr[-3000:]  # no rank crashed
    logs, ckpts = only_run(tmp_path)
    on_disk = torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)
    # epoch 2 trained (a rank's samples)
    assert (on_disk['epoch'], on_disk['step'], on_disk['samples_done']) == (1, 16, 128)
    train_log = (logs / 'train.log').read_text()
    assert train_log.count('interrupted by SIGTERM at epoch 2 in validation; saved ') == 1, train_log  # rank 0 names it
    assert 'status: interrupted (SIGTERM)' in (logs / 'note.log').read_text()
    assert len(epoch_lines(logs / 'val.log')) == 1

    resumed = run(torchrun + [str(project / 'train.py'), '--resume', logs.name], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ('train.log', 'val.log'):  # epoch 2's training line once, its validation done on resume
        assert epoch_lines(logs / name) == epoch_lines(straight_logs / name), name
    final, expected = (torch.load(path / 'latest_checkpoint.pt', weights_only=True) for path in (ckpts, straight_ckpts))
    for key, value in expected['model'].items():
        assert torch.equal(final['model'][key], value), key


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_resumes_from_the_timed_save_as_if_never_stopped(project, torchrun, tmp_path):
    # 160 samples: 128 to train, 64 a rank, 4 steps of 16 an epoch; save_minutes this small saves at every read
    args = ['--n_epoch', '3', '--n_samples', '160', '--log_interval', '1', '--save_minutes', '1e-9'] + SMALL
    (tmp_path / 'straight').mkdir()
    straight = run(torchrun + [str(project / 'train.py'), *args], tmp_path / 'straight')
    assert straight.returncode == 0, straight.stderr[-3000:]
    straight_logs, straight_ckpts = only_run(tmp_path / 'straight')

    script = tmp_path / 'killed_rank.py'
    script.write_text(SIGNALLED_RANK.format(project=str(project), in_validation=False, at=7,  # epoch 2's third
                                            signal='SIGKILL'))  # no handler runs, and torchrun stops rank 0 too
    killed = run(torchrun + [str(script), *args], tmp_path)
    assert killed.returncode != 0
    logs, ckpts = only_run(tmp_path)
    on_disk = torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)
    assert (on_disk['epoch'], on_disk['step'], on_disk['samples_done']) in [(1, 5, 16), (1, 6, 32)], (
        killed.stderr[-3000:])
    assert len(on_disk['epoch_totals']) == 2  # each rank's running sums of the epoch

    resumed = run(torchrun + [str(project / 'train.py'), '--resume', logs.name], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ('train.log', 'val.log'):  # the same losses and metrics, epoch 2's training included
        assert epoch_lines(logs / name) == epoch_lines(straight_logs / name), name
    final, expected = (torch.load(path / 'latest_checkpoint.pt', weights_only=True) for path in (ckpts, straight_ckpts))
    for key, value in expected['model'].items():
        assert torch.equal(final['model'][key], value), key
