"""Shared fixtures: a tiny, fast configuration and helpers to run train.py in-process or as a process."""

import csv
import json
import multiprocessing
import os
import re
import runpy
import signal
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest
import torch

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import plot  # noqa: E402
import runfiles  # noqa: E402
import train  # noqa: E402
from dataset import DATA_CONFIG  # noqa: E402
from model import MODEL_CONFIG  # noqa: E402

torch.set_num_threads(1)  # the same thread count in-process and in child processes: bitwise-equal runs
# On a GPU, bitwise-equal runs also need deterministic kernels (cudnn.benchmark picks them by timing,
# and some convolution backward passes add in a varying order); cuBLAS reads this before its first use.
os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
EXACT_ON_THIS_DEVICE = ['--deterministic', 'true'] if torch.cuda.is_available() else []
# forkserver, Linux's default start method from Python 3.14, hands a DataLoader worker the dataset pickled
needs_forkserver = pytest.mark.skipif('forkserver' not in multiprocessing.get_all_start_methods(),
                                      reason='no forkserver (Windows)')
# on Linux, with a file descriptor per tensor storage (forkserver: about 250 at most; spawn: up to ulimit -n)
needs_descriptor_sharing = pytest.mark.skipif(torch.multiprocessing.get_sharing_strategy() != 'file_descriptor',
                                              reason='tensors are shared by file name here (macOS, Windows)')

# A file name's byte 0xE9 (Latin-1 'e acute', not UTF-8) as the logs, tables and console show it: where file names
# are UTF-8 (Linux's usual locales, macOS) Python reads it as a surrogate, written escaped (\udce9); in a Latin-1
# or Windows code page locale, as the letter it means there.
SHOWN_E9 = runfiles.escaped(os.fsdecode(b'\xe9'))

TEST_BATCH_SIZE = 16
FAST = ['--batch_size', str(TEST_BATCH_SIZE), '--warmup_steps', '5', '--log_interval', '3', '--save_every', '100']
# an image project's random flips and shifts of training batches (off by default); none elsewhere
AUGMENT = ['--random_flip', 'true', '--random_shift', '2'] if 'random_shift' in DATA_CONFIG else []
{%- if cookiecutter.model == 'cnn' %}
SMALL_MODEL = ['--base_channels', '8']
{%- elif cookiecutter.model == 'transformer' %}
SMALL_MODEL = ['--d_model', '32', '--n_heads', '2']
{%- else %}
SMALL_MODEL = ['--hidden_dim', '32']
{%- endif %}

{%- if cookiecutter.task == 'classification' %}
# The tests' 160 samples cannot hold every class of a large num_classes (a baked 200 or 1000): the runs would
# warn of labels that stop short, a class could miss the training split, and an image project's example data
# needs a folder per class. So the tests train on at most 10 classes (test_model checks the baked sizes).
TEST_SIZES = {'num_classes': min(DATA_CONFIG['num_classes'], 10)}
{%- else %}
TEST_SIZES = {}
{%- endif %}
{%- if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' %}
# The tests' runs train on images of at most 32x32: at a baked 224x224 each run took several times as long
# (test_model checks the baked image_size{{ ', and test_data_layout reads images at it' if cookiecutter.dataset == 'image_folder' }}).
TEST_SIZES['image_size'] = min(DATA_CONFIG['image_size'], 32)
{%- endif %}
TEST_DATA_CONFIG = {**DATA_CONFIG, **TEST_SIZES}
TEST_SIZE_ARGS = [arg for key, value in TEST_SIZES.items() for arg in (f'--{key}', str(value))]


@pytest.fixture
def config():
    return {'seed': 6666, **TEST_DATA_CONFIG, **MODEL_CONFIG}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder, so that loggers/ and checkpoints/ land there. A process-wide switch that a
    run sets (the transformer fast path, off under CPU autocast) is put back afterwards."""
    monkeypatch.chdir(tmp_path)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    yield tmp_path
    torch.backends.mha.set_fastpath_enabled(fastpath)


@pytest.fixture(scope='session')
def empty_folder(tmp_path_factory):
    return tmp_path_factory.mktemp('empty')


@pytest.fixture(autouse=True)
def project_folder_left_alone(empty_folder, monkeypatch):
    """Runs and data of yours in this project's folder (the README's quick start trains there) change no test: an
    error's note for a script started from another folder (runfiles.project_folder_note) looks in an empty one."""
    monkeypatch.setattr(runfiles, 'PROJECT_FOLDER', empty_folder)


@pytest.fixture(autouse=True)
def curves_without_drawing(request, monkeypatch):
    """Drawing curves.png takes about 0.8 s, most of a tiny run's time: runs in this process write it empty
    instead, after reading metrics.csv as plot_run does, unless the test is marked draws_curves. Runs started
    as processes draw it."""
    if request.node.get_closest_marker('draws_curves'):
        return

    def plot_run(folder):
        # as plot_run: an ImportError without matplotlib
        import matplotlib  # noqa: F401
        plot.read_metrics(folder)
        path = Path(folder) / 'curves.png'
        path.write_bytes(b'')
        return path

    monkeypatch.setattr(plot, 'plot_run', plot_run)


@pytest.fixture
def drawn_figures(monkeypatch):
    """The matplotlib figures that plot.py draws, kept as it closes them."""
    pytest.importorskip('matplotlib')
    import matplotlib.pyplot as plt

    figures = []
    close = plt.close
    monkeypatch.setattr(plt, 'close', lambda figure: figures.append(figure) or close(figure))
    return figures


def tiny_data_args(folder):
    """Arguments that point train.py at a tiny dataset in this project's layout (files go in folder/data)."""
{%- if cookiecutter.dataset == 'synthetic' %}
    return ['--n_samples', '160'] + SMALL_MODEL + FAST + TEST_SIZE_ARGS
{%- else %}
    from dataset import make_example

    make_example(folder / 'data', TEST_DATA_CONFIG, n_samples=160)
    return ['--dataset_dir', str(folder / 'data')] + SMALL_MODEL + FAST + TEST_SIZE_ARGS
{%- endif %}


@pytest.fixture
def data_args(workdir):
    return tiny_data_args(workdir)


def run(argv):
    """Run train.py's main() in this process; return its exit code."""
    return train.main([str(a) for a in argv])


def run_in(folder, argv):
    """Run main() in a new folder; return (latest checkpoint, train.log epoch lines, val.log epoch lines)."""
    folder.mkdir()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert run(argv) == 0
        logs, ckpts = only_run(folder)
        return load(ckpts / 'latest_checkpoint.pt'), epoch_lines(logs / 'train.log'), epoch_lines(logs / 'val.log')
    finally:
        os.chdir(cwd)


# train.py, with a pause after each batch: a signal test must not race a run that ends too soon.
SLOW_TRAIN = """
import sys, time
sys.path.insert(0, sys.argv[1])
import train
add = train.EpochMeter.add
train.EpochMeter.add = lambda self, *args: time.sleep(float(sys.argv[2])) or add(self, *args)
train.show_crash_stacks()  # as train.py's entry point
sys.exit(train.main(sys.argv[3:]))
"""


def as_at_a_terminal():
    """In the child: SIGQUIT (Ctrl-\\) at its default, as at a terminal (a shell's background job, CI's say,
    inherits it ignored), no core file when it comes, and a process group of its own, as a terminal's job has
    (Ctrl-C and Ctrl-\\ reach the whole group: os.killpg). POSIX only, as SIGQUIT is."""
    import resource

    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setpgrp()


def run_process(argv, cwd, pause_per_batch=0.0):
    """Start train.py as a child process, as from a terminal; with a pause, through SLOW_TRAIN (same math, slower)."""
    # TQDM_DELAY: a bar's first line at once, as at a terminal (in a pipe it waits a minute): tests watch for it
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1', 'TQDM_DELAY': '0'}
    command = [sys.executable, '-c', SLOW_TRAIN, str(PROJECT), str(pause_per_batch)]
    return subprocess.Popen(command + [str(a) for a in argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_at_a_terminal if os.name == 'posix' else None)


def run_as_command(script, args, monkeypatch, capsys):
    """`python <script> args`, run as __main__ in this process (runpy) without a new interpreter's seconds of
    start-up: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, 'argv', [str(PROJECT / script), *args])
    try:
        runpy.run_path(str(PROJECT / script), run_name='__main__')
        code = 0
    except SystemExit as exited:
        code = 0 if exited.code is None else exited.code
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


# `python <script> --help` for each script named, as __main__ with the script's folder first on sys.path (as
# python sets it), each in an empty folder of its own, in one new interpreter: one start-up and one `import torch`
# for all of them. Prints {script: [exit code, stdout, stderr, files left in its folder]} as JSON.
HELP_OF_EACH = """
import contextlib, io, json, os, runpy, sys
project, scripts, results = sys.argv[1], sys.argv[2:], {}
sys.path[0] = project
for script in scripts:
    os.mkdir(script)
    os.chdir(script)
    sys.argv, stdout, stderr, code = [os.path.join(project, script), '--help'], io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(sys.argv[0], run_name='__main__')
        except SystemExit as exited:
            code = 0 if exited.code is None else exited.code
    results[script] = [code, stdout.getvalue(), stderr.getvalue(), sorted(os.listdir('.'))]
    os.chdir('..')
print(json.dumps(results))
"""


@cache
def helps():
    """help_of for every script of the project (a .py file with a `__main__` block), in one process."""
    scripts = sorted(path.name for path in PROJECT.glob('*.py') if "__name__ == '__main__'" in path.read_text())
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([sys.executable, '-c', HELP_OF_EACH, str(PROJECT), *scripts], cwd=folder,
                                capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def help_of(script):
    """`python <script> --help` as a command, run once per test session in an empty folder: (its output, the
    names of the files it left there)."""
    code, stdout, stderr, left = helps()[script]
    assert code == 0, f'{script} --help failed: {stderr[-2000:]}'
    return stdout, left


class FailsInAWorker(torch.utils.data.Dataset):
    """A training set whose first sample a DataLoader worker cannot read."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        if torch.utils.data.get_worker_info() is not None and index == self.dataset.indices[0]:
            raise ValueError('unreadable sample')
        return self.dataset[index]


def failing_in_a_worker(build_datasets):
    """build_datasets (train.py's), with a training set whose first sample a DataLoader worker cannot read."""
    def build(config):
        train_set, valid_set = build_datasets(config)
        return [FailsInAWorker(train_set), valid_set]

    return build


def script_file(tmp_path_factory, text):
    """A test script as a file, for torchrun and for DataLoader workers started by spawn or forkserver (macOS's
    and Windows' default, Linux's from Python 3.14), which import its classes: `python -c` would not allow that."""
    path = tmp_path_factory.mktemp('script') / 'script.py'
    path.write_text(text)
    return str(path)


def run_as_group(argv, cwd, env, timeout=300):
    """subprocess.run with captured text output, in a session of its own whose whole process group a timeout
    kills: subprocess.run kills its child alone, and the child's own children (torchrun's ranks, DataLoader
    workers) would outlive the test if they hang."""
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr) from None
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def run_torchrun(args, cwd, env=None):
    """`torchrun --standalone --nproc_per_node=2 args` on the CPU (gloo), through run_as_group. Without --log-dir,
    torchrun makes a folder in /tmp for its logs and leaves it there: one in cwd's parent (a test's temporary
    folders) instead."""
    args = [str(a) for a in args]
    if '--log-dir' not in args:
        args = ['--log-dir', tempfile.mkdtemp(prefix='torchelastic_', dir=Path(cwd).parent)] + args
    argv = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2'] + args
    return run_as_group(argv, cwd, {**os.environ, 'OMP_NUM_THREADS': '1', 'CUDA_VISIBLE_DEVICES': '', **(env or {})})


def only_run(root):
    """The single run folder under loggers/ and checkpoints/."""
    logs = sorted((root / 'loggers').iterdir())
    ckpts = sorted((root / 'checkpoints').iterdir())
    assert len(logs) == len(ckpts) == 1, (logs, ckpts)
    return logs[0], ckpts[0]


def rows(path):
    """A CSV file's rows (metrics.csv, predict.py's table), each a dict by its column names."""
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


# no grad_norm: clip_flag false
EPOCH_LINE = re.compile(r'epoch (\d+) step (\d+) loss (\S+) (\w+) (\S+) lr (\S+)( grad_norm \S+)?$')


def epoch_lines(log_path):
    """The per-epoch lines of train.log or val.log, without their timestamps."""
    lines = []
    for line in Path(log_path).read_text().splitlines():
        message = line.split(' | ', 1)[-1]
        if EPOCH_LINE.match(message):
            lines.append(message)
    return lines


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def snapshot(root):
    """Every file under root with its size and modification time: to prove nothing was touched."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in Path(root).rglob('*') if p.is_file()}
