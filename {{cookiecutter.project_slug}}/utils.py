{%- set scales_data = cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] or cookiecutter.task == 'regression' -%}
"""Small helpers for train.py: seeding, loggers, run folders, checkpoints, CLI, signals."""

import argparse
import atexit
import concurrent.futures
import contextlib
import csv
import ctypes
import difflib
import errno
import faulthandler
import functools
import hashlib
import io
import itertools
import json
import logging
import math
import multiprocessing
import multiprocessing.reduction
import multiprocessing.util
import os
import pickle
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tokenize
import traceback
import warnings
import weakref
from multiprocessing import resource_tracker
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

from runfiles import (
    HEARTBEAT_FILE,
    HEARTBEAT_STALE_SECONDS,
    METRICS_COLUMNS,
    OPTIONAL_METRICS_COLUMNS,
    STALL_WARNING,
    TRACEBACK_FILE,
    CommandParser,
    RunError,
    alive,
    attempt_folder,
    checkpoints_folder_of,
    csv_fields,
    empty_value,
    escaped,
    first_line,
    fix_for,
    import_problem,
    names_a_run,
    parse_attempt,
    project_folder_note,
    read_heartbeat,
    read_metrics_rows,
    read_note,
    shown_status,
    to_stderr,
    to_stdout,
)

try:
    import resource
except ImportError:  # Windows, whose DataLoader workers are handed no file descriptors
    resource = None

CHECKPOINT_FORMAT_VERSION = 4  # 2: epoch_totals holds one share per rank; 3: two optimizer groups (optimizer_groups);
# 4: epoch_totals adds the gradient norm's sum and count
EMPTY_TOTALS = (0.0, 0.0, 0, 0.0, 0)  # an epoch's running sums before its first step: EpochMeter.totals()


class Terminated(KeyboardInterrupt):
    """SIGTERM while no training loop holds the signals (main()'s set-up, say): it stops the run as Ctrl-C
    does, so that the run's status says so and a new run's empty folders go, instead of a silent death."""

    exit_code = 128 + signal.SIGTERM


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM that an error cut short: the signal also reached a child process (torch.compile's
    C++ compiler, say), whose failure ended the step. train() has logged it and noted the run's status."""

    def __init__(self, exit_code):
        super().__init__(exit_code)
        self.exit_code = exit_code


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def exit_on_stop():
    """train.py's entry point, inside one_line_errors: a stop that train() did not end (SIGTERM during main()'s
    set-up, a stop cut short by an error) ends the process with the signal's exit code, not a traceback."""
    try:
        yield
    except Terminated:
        to_stderr('SIGTERM received: stopped')
        exit_process(Terminated.exit_code)
    except Interrupted as stopped:  # train.log and the console already say how the run ended
        exit_process(stopped.exit_code)


@contextlib.contextmanager
def errors_to_torchrun():
    """train.py's entry point, inside exit_on_stop (a stop is no Exception, and writes nothing). Under torchrun, the
    error that ends this worker goes into the file torchrun names for it, as torch's `record` decorator writes it
    (which also turns faulthandler on, as show_crash_stacks does, but returns None for main()'s SystemExit(0)):
    torchrun's closing summary then shows each failed rank's traceback, a RunError as its one line, instead of
    "error_file: <N/A>" and a link.
    It names the rank that failed first as the root cause, to the second: a tie goes to the lower rank, which may be
    one that only says another rank failed ("Connection closed by peer"), with the cause listed above it."""
    try:
        yield
    except Exception as err:
        if os.environ.get('TORCHELASTIC_ERROR_FILE'):
            with contextlib.suppress(OSError):  # the run's own error matters more than this file
                write_torchrun_error(err)
        raise


def write_torchrun_error(err):
    """`err` in torchrun's error file (TORCHELASTIC_ERROR_FILE), in the layout of torch's ErrorHandler, which writes
    all but a RunError (with traceback.format_exc(): called while `err` is handled)."""
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler  # torchrun's workers only

    if isinstance(err, RunError):
        line = f'error: {err}'  # as one_line_errors prints it
        with open(os.environ['TORCHELASTIC_ERROR_FILE'], 'w') as f:
            extra = {'py_callstack': line, 'timestamp': str(int(time.time()))}
            json.dump({'message': {'message': line, 'extraInfo': extra}}, f)
    else:
        ErrorHandler().record_exception(err)


def in_this_process_only(handler):
    """A signal handler that does nothing in processes forked from this one: a DataLoader worker inherits
    the handlers until its worker_init_fn runs (StopSafeDataLoader), and the stop is this process's."""
    owner = os.getpid()

    def handle(signum, frame):
        if os.getpid() == owner:
            handler(signum, frame)

    return handle


# -----------------------------------------------------------------------------
# seeding and RNG state


def all_seed(seed):
    """Seed every RNG the run touches: Python, NumPy (if installed), torch CPU and CUDA."""
    seed %= 2**32  # derived seeds (seed + rank + ...) may pass NumPy's limit; the user's own cannot (check_config)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def get_rng_state():
    """All global RNG states as tensors and plain values, so that torch.load(weights_only=True) reads them.

    The Python and NumPy Mersenne Twister states (624 words each) go in as int64 tensors: pickled as
    separate ints they made each checkpoint save several times slower.
    """
    version, internal, gauss = random.getstate()
    state = {'python': [version, torch.tensor(internal, dtype=torch.int64), gauss], 'torch': torch.get_rng_state(),
             'numpy': None, 'cuda': []}
    try:
        import numpy as np

        name, keys, pos, has_gauss, gauss = np.random.get_state()
        state['numpy'] = [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]
    except ImportError:
        pass
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _words(values):
    """A Mersenne Twister state as a list of ints (a tensor now, a list in checkpoints from before)."""
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


def set_rng_state(state):
    version, internal, gauss = state['python']
    random.setstate((version, tuple(_words(internal)), gauss))
    torch.set_rng_state(state['torch'])
    if state['numpy'] is not None:
        try:
            import numpy as np

            name, keys, pos, has_gauss, gauss = state['numpy']
            np.random.set_state((name, np.array(_words(keys), dtype=np.uint32), pos, has_gauss, gauss))
        except ImportError:
            pass
    if state['cuda'] and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


class EpochSampler(torch.utils.data.DistributedSampler):
    """DistributedSampler (shuffled by a pure function of seed and epoch), that can start mid-epoch.

    Resume needs no generator state: the epoch and the number of this rank's samples already
    consumed (`start`) give back the exact same remaining batches. One process is rank 0 of 1.
    """

    def __init__(self, dataset, seed, rank=0, world_size=1):
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def set_epoch(self, epoch, start=0):
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return iter(list(super().__iter__())[self.start:])

    def __len__(self):
        return self.num_samples - self.start


class ShardSampler(torch.utils.data.Sampler):
    """Rank r of w takes samples r, r+w, r+2w, ...: every sample exactly once over all ranks.

    For validation: DistributedSampler would pad the last shard with repeated samples.
    """

    def __init__(self, n, rank=0, world_size=1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


# -----------------------------------------------------------------------------
# devices and DDP


OLDEST_TORCH = (2, 3)  # requirements.txt's floor: the oldest release the suite has passed on (.ci/oldest)


def setup_device():
    """cuda, then mps, then cpu. Under torchrun (RANK, LOCAL_RANK and WORLD_SIZE set) also join the
    process group: NCCL on CUDA, each rank on its LOCAL_RANK device; gloo on CPU.

    Returns (device, rank, world_size).
    """
    release = tuple(int(part) for part in re.findall(r'\d+', torch.__version__)[:2])  # NVIDIA's '2.4.0a0+git': (2, 4)
    if release < OLDEST_TORCH:  # older ones fail deep inside train() (torch.amp.GradScaler is new in 2.3)
        raise RunError(f"this project needs torch {'.'.join(map(str, OLDEST_TORCH))} or newer, found "
                       f'{torch.__version__}; pip install -r requirements.txt')
    if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:
        rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
        if torch.cuda.is_available():
            local_rank, n_gpus = int(os.environ.get('LOCAL_RANK', 0)), torch.cuda.device_count()
            if local_rank >= n_gpus:
                raise RunError(f'torchrun started local rank {local_rank}, but this machine has {n_gpus} CUDA '
                               f'device(s): use --nproc_per_node {n_gpus}, or CUDA_VISIBLE_DEVICES= to train on the '
                               'CPU')
            device = torch.device('cuda', local_rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device('cpu')
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
        return device, rank, world_size
    return local_device(), 0, 1


def local_device():
    """cuda, then mps (Apple silicon), then cpu: training's device, and predict.py's."""
    if torch.cuda.is_available():
        return torch.device('cuda')
    if torch.backends.mps.is_available():
        return torch.device('mps')
    return torch.device('cpu')


def slurm_tasks_warning():
    """A warning when srun started this step as several tasks without torchrun (`srun python train.py` under
    `--ntasks-per-node=8`): each task that runs train.py is a run of its own, not a rank of one DDP run. Not an
    error: a shell in an interactive `srun -n 4 --pty bash` has the same variables and may run train.py alone."""
    tasks = os.environ.get('SLURM_STEP_NUM_TASKS', '')
    if 'RANK' in os.environ or not tasks.isdigit() or int(tasks) < 2:
        return None
    return (f'warning: SLURM runs this job step as {tasks} tasks (SLURM_STEP_NUM_TASKS), and each that starts '
            f'train.py trains a run of its own, not one DDP run over {tasks} processes; for DDP start one task '
            'per node that runs torchrun (README.md: Multi-GPU and multi-node)')


def exit_torchrun_worker(exit_code):
    """End a torchrun worker whose work is done and whose files are closed, skipping Python's shutdown.

    DDP keeps the gloo process group and its worker threads alive past destroy_process_group (torch
    2.13); when one of those threads drops a tensor while the interpreter shuts down, a finished process
    aborts (SIGABRT, "terminate called without an active exception") and torchrun calls the run failed.
    That happened about once in 500 two-process CPU runs here; os._exit leaves no shutdown to race with.
    What of the shutdown matters is done here: the logs flushed, and multiprocessing's own clean-up run (its
    finalizers; multiprocessing.util has no public call for them). With DataLoader workers started by the
    forkserver (Linux's default start method from Python 3.14) or spawn, that removes the folder it made in /tmp
    for the forkserver's socket (pymp-*), which would stay behind, one per rank and run, and unlinks the
    semaphores of the workers' queues, for which its resource tracker would warn of leaked semaphores.
    """
    logging.shutdown()
    multiprocessing.util._run_finalizers()
    for stream in filter(None, (sys.stdout, sys.stderr)):  # None: started without it (`2>&-`)
        with contextlib.suppress(OSError):  # a batch job's output file on a full disk: nothing more to say there
            stream.flush()
    os._exit(exit_code)


_kept_ddp_wrapper = []  # keep_ddp_wrapper: the latest run's DDP wrapper
atexit.register(_kept_ddp_wrapper.clear)  # a script of your own that ends without os._exit frees it here


def keep_ddp_wrapper(model):
    """Hold the DDP wrapper past main()'s return, until os._exit ends the torchrun worker, or else until exit
    (an atexit handler, while the interpreter is still whole) or a later run in the same process replaces
    it: long after this run's last collective, when gloo's threads are idle.

    Freeing it frees gloo's process group, whose destructor joins gloo's worker threads while holding the
    GIL; a worker still releasing the tensors of the last collective waits for the GIL, and both wait
    forever. With torch 2.3 a finished torchrun run of this project hung like that as main() returned, and a
    minimal script doing the same hung in 5 of 22 two-process CPU runs on a loaded machine (none in 16 with
    the wrapper held, none in 12 on torch 2.13).
    """
    _kept_ddp_wrapper[:] = [model]


def exit_process(exit_code):
    """End train.py: under torchrun through exit_torchrun_worker (DDP's gloo threads may be running),
    otherwise with sys.exit."""
    if 'RANK' in os.environ:
        exit_torchrun_worker(exit_code)
    sys.exit(exit_code)


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def is_master():
    """Rank 0 (or the only process) writes the folders, logs and checkpoints."""
    return not is_distributed() or dist.get_rank() == 0


def broadcast(value):
    """Rank 0's value on every rank (a picklable object); the value itself without DDP."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_numbers(values, device, op='sum'):
    """Element-wise sums (op 'sum') or maxima ('max') of a list of numbers over all ranks."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op={'sum': dist.ReduceOp.SUM, 'max': dist.ReduceOp.MAX}[op])
    return tensor.tolist()


def agree_across_ranks(stop, bad_step, flag, device, pace=None, step=None):
    """Under DDP every rank must leave the loop, or save, at the same step, or the others hang in a collective.

    Combines the ranks' stop signals (a rank that got none takes another's, for its log line and exit code),
    first NaN/Inf steps (the earliest) and a flag (any: a save timer due, a validation stopped). Returns
    (stop requested, bad step, flag). With `pace` (in the training loop, at `step`), also agrees on when the
    ranks next agree: the smallest of their proposals.
    """
    if not is_distributed():
        return stop.requested, bad_step, flag
    pace_proposal = -float(pace.proposal(step)) if pace is not None else 0.0
    tensor = torch.tensor([float(stop.signum or 0), -math.inf if bad_step is None else -float(bad_step), float(flag),
                           pace_proposal], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    signum, negative_bad, flag, negative_steps = tensor.tolist()
    if stop.signum is None and signum > 0:
        stop.signum = int(signum)
    if pace is not None:
        pace.agreed(step, int(-negative_steps))
    return stop.requested, None if negative_bad == -math.inf else int(-negative_bad), flag > 0


STOP_CHECK_SECONDS = 5.0  # under DDP, about the most training between the ranks' agreements (AgreementPace)


class AgreementPace:
    """When the ranks of a DDP run next agree on a stop (Ctrl-C, SIGTERM), a NaN loss and a due save, besides
    each read of the running loss (every log_interval batches): once about STOP_CHECK_SECONDS of steps have
    passed. log_interval steps of seconds each could outlast torchrun's 30 s between its SIGTERM and its
    SIGKILL, and the save would be lost. Each rank proposes a number of steps from its own pace since the last
    agreement; all take the smallest, so that every rank agrees at the same step. The first agreement comes
    after one step, to measure. Never due in one process, which checks its stop at every step."""

    def __init__(self, world_size, log_interval):
        self.distributed, self.most, self.steps = world_size > 1, log_interval, 1
        self.start(0)

    def start(self, step):
        """Count from `step` on: an epoch's first (validation's time is no step's)."""
        self.since = (time.monotonic(), step)
        self.at = step + self.steps if self.distributed else math.inf

    def due(self, step):
        return step >= self.at

    def proposal(self, step):
        """Steps until the next agreement: about STOP_CHECK_SECONDS of them at this rank's pace, 1 to log_interval."""
        seconds, first = self.since
        per_step = (time.monotonic() - seconds) / max(1, step - first)
        return max(1, min(self.most, int(STOP_CHECK_SECONDS / per_step))) if per_step > 0 else self.most

    def agreed(self, step, steps):
        self.steps = steps
        self.start(step)


class SaveTimer:
    """Says when the last save of latest_checkpoint.pt is `minutes` old (never, with 0)."""

    def __init__(self, minutes):
        self.seconds = minutes * 60
        self.reset()

    def reset(self):
        self.last = time.monotonic()

    def due(self, ahead=0.0):
        """True once the last save is `minutes` old, or will be within `ahead` seconds."""
        return self.seconds > 0 and time.monotonic() - self.last + ahead >= self.seconds


def gather_from_ranks(value):
    """Every rank's `value`, in rank order (one entry without DDP); a collective, so every rank calls it."""
    if not is_distributed():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def own_epoch_totals(saved, rank, world_size):
    """This rank's share of a resumed epoch's running sums (EpochMeter.totals(): loss, metric, count, gradient
    norm, norm count) from a checkpoint's `epoch_totals`, which holds one share per rank (format 1: rank 0's only).
    With another number of processes rank 0 takes them all and the others none: the all-reduce at the epoch's end
    adds the shares. Before format 4 a share had no gradient-norm sums: the epoch's mean covers the steps after."""
    shares = [[*share, *EMPTY_TOTALS[len(share):]] for share in (saved if isinstance(saved[0], list) else [saved])]
    if len(shares) == world_size:
        return shares[rank]
    return [sum(column) for column in zip(*shares)] if rank == 0 else list(EMPTY_TOTALS)


# -----------------------------------------------------------------------------
# config and command line


def parse_bool(text):
    value = text.strip().lower()
    if value in ('1', 'true', 'yes', 'on'):
        return True
    if value in ('0', 'false', 'no', 'off'):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def parse_number(kind):
    def parse(text):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got '{text}'") from None

    parse.__name__ = kind.__name__
    return parse


CONFIG_SOURCES = ('train.py', 'dataset.py', 'model.py')  # beside this file: where the config dicts are written


def config_comments(paths):
    """{key: comment} for each line `'key': value,  # comment` of these files, so that the comment beside a
    key in its config dict is its --help text."""
    comments = {}
    for path in paths:
        if not os.path.isfile(path):  # a project that moved its config elsewhere: those keys show defaults only
            continue
        with open(path, 'rb') as f:
            lines = {}
            for token in tokenize.tokenize(f.readline):
                if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                    lines.setdefault(token.start[0], []).append(token)
        for first, second, *_, last in (tokens for tokens in lines.values() if len(tokens) >= 3):
            if first.type == tokenize.STRING and second.string == ':' and last.type == tokenize.COMMENT:
                key = first.string.strip('\'"')
                comments[key] = last.string.lstrip('#').strip()
    return comments


DEVICE_OPTIONS = ('device', 'gpu', 'gpus', 'cuda', 'cpu')  # other scripts' ways of choosing it
COMMAND_OPTIONS = ('resume', 'run_name', 'config')  # train.py's options that are not config keys


def check_not_a_device_option(option, what, script='train.py'):
    """The device is never an option or a config key: one that other scripts choose it with (--device, --gpu=1,
    a "device" key) says how `script` chooses it."""
    if option.lstrip('-').partition('=')[0].lower() not in DEVICE_OPTIONS:
        return
    if script == 'train.py':
        raise RunError(f'{what}: train.py takes cuda, then mps, then cpu (3.2); CUDA_VISIBLE_DEVICES= python train.py '
                       'trains on the CPU, CUDA_VISIBLE_DEVICES=1 on GPU 1, and torchrun on several')
    raise RunError(f'{what}: {script} takes cuda, then mps, then cpu, as train.py does; CUDA_VISIBLE_DEVICES= python '
                   f'{script} runs on the CPU, CUDA_VISIBLE_DEVICES=1 on GPU 1')


def parse_args(config, argv=None):
    """Parse `--<key> <value>` overrides, typed from each default, plus `--resume`, `--run_name` and `--config`.

    Returns (overrides, resume, run_name): overrides are only the keys the user gave (on the command line
    or in the --config file), so that resume can lay them over the saved config.
    """
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    wants_help = '-h' in argv or '--help' in argv  # the comments are read only then: start-up stays short
    comments = config_comments(Path(__file__).with_name(name) for name in CONFIG_SOURCES) if wants_help else {}
    parser = CommandParser(
        prog='train.py',
        description='Train the model. Every config key can be overridden as --<key> <value>; the Config '
                    "table in README.md says more about each one.",
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
        word_option=lambda word: '--config' if word.endswith('.json') else '--resume' if names_a_run(word) else None,
    )
    parser.add_argument('--resume', metavar='TIMESTAMP_OR_PATH',
                        help='continue a run: its timestamp, its checkpoint folder or a checkpoint file')
    parser.add_argument('--run_name', metavar='NAME',
                        help='name the run folders loggers/NAME and checkpoints/NAME instead of the timestamp, and '
                             'resume that run when it has a checkpoint: the same command starts a run and '
                             'continues it (a requeued batch job); a start that saved none is moved to NAME.attempt-K '
                             'and started again')
    parser.add_argument('--config', metavar='FILE',
                        help='take config values from a JSON file of {"key": value} (every run writes its own as '
                             'loggers/<timestamp>/config.json); options on the command line win over it')
    for key, default in config.items():
        if isinstance(default, bool):
            kind = parse_bool
        elif isinstance(default, (int, float)):
            kind = parse_number(type(default))
        else:
            kind = str
        shown = repr(default) if default == '' else default
        text = f'{comments[key]} (default: {shown})' if key in comments else f'default: {shown}'
        parser.add_argument(f'--{key}', type=kind, metavar=type(default).__name__.upper(), help=text.replace('%', '%%'))
    args, unknown = parser.parse_known_args(argv)
    if unknown and unknown != ['--']:  # a separator with nothing after it ends the options, as in argparse
        check_not_a_device_option(unknown[0], f'{unknown[0]} is not an option')
        parser.check_no_bare_word(argv)  # a run's name or a config file without its option, or a second value
        close = difflib.get_close_matches(unknown[0].lstrip('-').partition('=')[0], [*COMMAND_OPTIONS, *config], n=1)
        raise RunError(f'unknown option {unknown[0]}; ' + (f'did you mean --{close[0]}? ' if close else '')
                       + f"valid keys: --{', --'.join([*COMMAND_OPTIONS, *config])}")
    overrides = vars(args)
    resume, run_name = overrides.pop('resume', None), overrides.pop('run_name', None)
    config_file = overrides.pop('config', None)
    given = [('resume', resume, 'a new run'), ('run_name', run_name, 'a timestamped run'),
             ('config', config_file, 'the defaults')]
    given += [(key, value, f"its default '{config[key]}'") for key, value in overrides.items()
              if config[key] != '']  # '' means "none" for a key whose default is '' (init_from)
    for option, value, instead in given:
        if value == '':  # "$NAME" of an unset shell variable: a requeued job would start afresh every time
            raise empty_value(f'--{option}', leave_out=f' for {instead}')
    if config_file is not None:
        overrides = {**read_config_file(config_file, config), **overrides}
    if run_name is not None and resume is not None:
        raise RunError('pass --run_name or --resume, not both: --run_name resumes its run when it has a checkpoint')
    return overrides, resume, run_name


def named_run(name, overrides):
    """`--run_name NAME`: (checkpoint, unsaved_start). checkpoint is the one to resume the run from when it has
    one. unsaved_start, when the run's folders exist but hold no checkpoint (it stopped before its first save:
    an error, a Ctrl-C in its first step, a kill) and its process is gone, is how that start ended: the run
    starts again, and 3.5 first sets those folders aside (set_aside). Both are None for a run not started yet.

    The checkpoint is the further on of latest_checkpoint.pt and best_checkpoint.pt: a run killed hard before
    its first latest save (save_every epochs or save_minutes) still has the best of an improving epoch."""
    if not re.fullmatch(r'[\w.-]+', name) or name.startswith(('.', '-')):  # '-x' would read as an option later
        raise RunError(f"--run_name must be a folder name of letters, digits, '_', '-' and '.', not starting with "
                       f"'.' or '-', got '{name}'")
    try:
        name.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
    except UnicodeEncodeError:  # a Latin-1 or Windows code page locale's file names have no Chinese letters, say
        raise RunError(f"--run_name '{name}' cannot be a folder name here: file names are in "
                       f'{sys.getfilesystemencoding()}, which lacks some of its letters; choose another name') from None
    if parse_attempt(name):
        raise RunError(f"--run_name '{name}' is how a start of run '{parse_attempt(name)[0]}' that saved no checkpoint "
                       'is set aside (NAME.attempt-K); choose another name')
    given = [key for key in ('loggers_dir', 'checkpoints_dir') if key in overrides]
    if given:
        raise RunError(f'--run_name places the run in loggers/{name} and checkpoints/{name}; drop --{given[0]}')
    logs, checkpoints = Path('loggers', name), Path('checkpoints', name)
    saved = [path for path in (checkpoints / 'latest_checkpoint.pt', checkpoints / 'best_checkpoint.pt')
             if path.is_file()]
    if saved:
        return str(max(saved, key=saved_step)), None  # a tie (the same epoch's hard links) is the latest
    if logs.exists() or checkpoints.exists():
        check_not_running(logs)  # started by another process that has not saved yet
        return None, how_it_ended(logs)
    return None, None


def set_aside(loggers_dir, checkpoints_dir, how_it_ended):
    """Move the folders of a --run_name start that saved nothing to NAME.attempt-K (the first K free for both),
    so that the run starts again under its name and nothing of that start is lost. Folders left empty (killed
    before its logs opened) are removed instead. Returns the line for the new start's note.log, or None."""
    folders = [Path(loggers_dir), Path(checkpoints_dir)]
    (folders[0] / HEARTBEAT_FILE).unlink(missing_ok=True)  # its process is gone (named_run checked)
    remove_if_empty(*folders)
    kept = [folder for folder in folders if folder.exists()]
    if not kept:
        return None
    attempt = next(k for k in itertools.count(1) if not any(attempt_folder(folder, k).exists() for folder in folders))
    moved = []
    for folder in kept:
        target = attempt_folder(folder, attempt)
        try:
            os.rename(folder, target)
        except OSError as err:
            raise RunError(f"cannot move '{folder}' aside to '{target}' ({err.strerror}); move or remove it "
                           'to start the run again') from None
        moved.append(str(target))
    line = (f"started again: an earlier start saved no checkpoint ({how_it_ended}); its files are now in "
            f"{' and '.join(moved)}")
    to_stdout(line)
    return line


def kept_starts(loggers_dir, checkpoints_dir):
    """The line naming the folders that set_aside kept of a --run_name run's earlier starts (NAME.attempt-K, in
    the order they started), printed and returned for the note.log of its new start, or None. A start set aside
    whose own next start failed before its logs opened (3.6-3.9) leaves no NAME folders to tell of it."""
    kept = []
    for folder in (Path(loggers_dir), Path(checkpoints_dir)):
        try:
            names = os.listdir(folder.parent)
        except OSError:
            names = []
        attempts = sorted(k for k in map(parse_attempt, names) if k and k[0] == folder.name)
        kept += [str(attempt_folder(folder, k)) for _, k in attempts]
    if not kept:
        return None
    line = f"earlier starts of this run saved no checkpoint; their files are in {', '.join(kept)}"
    to_stdout(line)
    return line


def how_it_ended(folder):
    """A run's last status, as runs.py lists it ('running' on another host: as far as its note.log tells)."""
    try:
        _, provenance, status = read_note(folder)
    except (OSError, UnicodeDecodeError):
        return 'no note.log' if folder.exists() else 'no loggers folder'
    if status is None:
        return 'no status in note.log'
    if status == 'running' and alive(provenance) is None:
        host, beat = provenance.get('host', '?'), read_heartbeat(folder)
        if beat is None or beat.get('host') != host:  # a run from before heartbeats
            return f'its note.log says running on host {host}, which cannot be checked from here'
        if this_slurm_job(beat):
            return f'running on host {host} until this SLURM job was requeued'
        return f"running on host {host} until its heartbeat stopped {beat['age']:.0f} s ago"
    return shown_status(status, provenance, folder=folder)


def saved_step(path):
    """A checkpoint's optimizer step, read without loading its tensors (mmap); -1 if it cannot be read."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True, mmap=True)['step']
    except Exception:  # the other checkpoint is resumed; if both fail, load_checkpoint names the problem
        return -1


def read_config_file(path, config):
    """The {key: value} pairs of a JSON file, each checked against its key's default as --<key> would be."""
    try:
        with open(path, encoding='utf-8-sig') as f:  # -sig: Windows editors may start the file with a BOM
            values = json.load(f)
    except OSError as err:
        run_config = Path(path) / 'config.json'  # a run's loggers folder given for the file it holds
        fix = (f'pass --config {shlex.quote(str(run_config))}' if run_config.is_file()
               else 'pass a JSON file of config keys')
        raise RunError(f"cannot read --config '{path}' ({err.strerror}){project_folder_note(path)}; {fix}") from None
    except ValueError as err:  # bad JSON, or not UTF-8
        raise RunError(f"--config '{path}' is not valid JSON ({err}); fix the file") from None
    if not isinstance(values, dict):
        raise RunError(f"--config '{path}' must hold one JSON object of \"key\": value pairs; "
                       f'it holds a {type(values).__name__}')
    for key, value in values.items():
        if key not in config:
            check_not_a_device_option(key, f"--config '{path}': '{key}' is not a config key")
            if key in COMMAND_OPTIONS:  # which run, and where its settings come from: not settings
                raise RunError(f"--config '{path}': '{key}' is not a config key but an option of the command line; "
                               f'remove it from the file and pass --{key} to train.py')
            close = difflib.get_close_matches(key, config, n=1)
            raise RunError(f"--config '{path}': unknown key '{key}'; "
                           + (f"did you mean '{close[0]}'?" if close else 'python train.py --help lists the keys'))
        default = config[key]
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), 'true or false'
        elif isinstance(default, int):
            ok, expected = isinstance(value, int) and not isinstance(value, bool), 'a whole number'
        elif isinstance(default, float):
            ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), 'a number'
        else:
            ok, expected = isinstance(value, str), 'a string'
        if not ok:
            raise RunError(f"--config '{path}': {key} must be {expected}, got {json.dumps(value)}")
        if value == '' and default != '':
            raise RunError(f"--config '{path}': {key} is empty; give it a value, or remove it for its default "
                           f"'{default}'")
    return {key: float(value) if isinstance(config[key], float) else value for key, value in values.items()}


def write_config_file(config, path):
    """The run's config as JSON, without its folders, so that `--config path` starts the same run anew."""
    values = {key: value for key, value in config.items() if key not in ('loggers_dir', 'checkpoints_dir')}
    created = False
    try:
        with open(path, 'x', encoding='utf-8') as f:
            created = True
            json.dump(values, f, indent=2)
            f.write('\n')
    except OSError as err:  # a full disk, a quota: nothing has trained yet
        if not created:  # a file already there (never, in a run's fresh folder) is not this run's to remove
            raise
        with contextlib.suppress(OSError):
            os.remove(path)
        raise RunError(f'{cannot_write(path, err)}; {fix_for(err)}, then run the command again') from None


def check_config(config):
    """Reject values that cannot work, before anything is written."""
    for key, value in config.items():  # every float key, your own included: inf trains to NaN, and config.json
        if isinstance(value, float) and not math.isfinite(value):  # would hold Infinity, which is not JSON
            raise RunError(f'{key} must be a finite number, got {value}')
    check_minimums(config, {'n_epoch': 1, 'batch_size': 1, 'early_stop': 0, 'save_every': 1, 'log_interval': 1,
                            'grad_accum_steps': 1})
    for key in ['lr', 'clip_max_norm']:
        if key in config and not config[key] > 0:
            raise RunError(f'{key} must be positive, got {config[key]}')
    if not 0 < config['valid_ratio'] < 1:
        raise RunError(f"valid_ratio must be between 0 and 1, got {config['valid_ratio']}")
    if not 0 <= config['seed'] < 2**32:
        raise RunError(f"seed must be between 0 and {2**32 - 1}, got {config['seed']}")
    for key in ['num_workers', 'warmup_steps', 'weight_decay', 'save_minutes', 'stall_minutes']:
        if not config[key] >= 0:  # also refuses nan
            raise RunError(f'{key} must be 0 or more, got {config[key]}')
    check_choice(config, 'amp', ('none', *AMP_DTYPES))
    check_choice(config, 'matmul_precision', ('highest', 'high', 'medium'))
    if config['init_partial'] and not config['init_from']:
        raise RunError('init_partial loads part of the weights that --init_from names; pass --init_from too, or drop '
                       '--init_partial')
{%- if cookiecutter.task == 'classification' %}
    check_choice(config, 'class_weights', CLASS_WEIGHTS)
{%- endif %}


def check_choice(config, key, choices):
    """Reject a value of `key` that is none of `choices`: "amp must be none, bf16 or fp16, got 'fp8'"."""
    if config[key] not in choices:
        *others, last = choices
        raise RunError(f"{key} must be {', '.join(others)} or {last}, got '{config[key]}'")


def check_minimums(config, minimums):
    """Reject the first whole-number key of `minimums` that is in config and below its minimum."""
    for key, minimum in minimums.items():
        if key in config and config[key] < minimum:
            raise RunError(f'{key} must be at least {minimum}, got {config[key]}')


def check_device_config(config, device):
    if config['amp'] == 'fp16' and device.type != 'cuda':
        raise RunError(f'amp fp16 needs CUDA (this run is on {device.type}); use --amp bf16 or --amp none')


# -----------------------------------------------------------------------------
# run folders and loggers


_claimed_run_dirs = []  # folders claim_run_dirs made for this main(), deepest first; failure_noted removes unused ones


def claim_run_dirs(loggers_dir, checkpoints_dir, mode=0o755, run_name=None):
    """Create fresh run folders. A name already taken (two runs in one second) gets a suffix _1, _2, ...

    Never reuses an existing folder, so an earlier run's files cannot be overwritten. A --run_name run
    gets no suffix: its requeued command must find it under its name, so a name taken meanwhile (the same
    job started twice) is an error.
    """
    loggers_dir, checkpoints_dir = Path(loggers_dir), Path(checkpoints_dir)
    new_parents = missing_parents(loggers_dir) + missing_parents(checkpoints_dir)  # loggers/ on a first run
    try:
        for suffix in range(1 if run_name else 1000):
            tail = f'_{suffix}' if suffix else ''
            logs = loggers_dir.with_name(loggers_dir.name + tail)
            ckpts = checkpoints_dir.with_name(checkpoints_dir.name + tail)
            if logs.exists() or ckpts.exists():
                continue
            for parent in (logs.parent, ckpts.parent):
                _makedirs(parent, mode, exist_ok=True)
            try:
                os.mkdir(logs, mode)
            except FileExistsError:
                continue
            except OSError as err:
                raise RunError(f"cannot create loggers_dir '{logs}': {err.strerror}; "
                               'pass a writable --loggers_dir') from None
            try:
                os.mkdir(ckpts, mode)
            except FileExistsError:
                os.rmdir(logs)
                continue
            except OSError as err:
                os.rmdir(logs)
                raise RunError(f"cannot create checkpoints_dir '{ckpts}': {err.strerror}; "
                               'pass a writable --checkpoints_dir') from None
            _claimed_run_dirs[:] = [logs, ckpts, *new_parents]
            return str(logs), str(ckpts)
    except RunError:
        remove_if_empty(*new_parents)  # a start that fails here leaves no folder behind
        raise
    if run_name:
        raise RunError(f'run {run_name} was started by another process just now ({loggers_dir} or {checkpoints_dir} '
                       'appeared); run one job per --run_name')
    raise RunError(f"could not find a free run folder name next to '{loggers_dir}'")


def check_new_run_dirs(loggers_dir, checkpoints_dir):
    """Folders claim_run_dirs can make for a new run: each with a name (not '.', '/'), and neither in the other,
    which a suffix for a taken name would split (x_1 and x/ckpt_1, inside the run before)."""
    for key, folder in (('loggers_dir', loggers_dir), ('checkpoints_dir', checkpoints_dir)):
        if Path(folder).name in ('', '..'):
            raise RunError(f"{key} '{folder}' names no new folder for this run; pass one to create, such as "
                           f'--{key} {key.removesuffix("_dir")}/exp1')
    logs, ckpts = (Path(os.path.abspath(folder)) for folder in (loggers_dir, checkpoints_dir))
    if logs == ckpts or logs in ckpts.parents or ckpts in logs.parents:
        raise RunError(f"loggers_dir '{loggers_dir}' and checkpoints_dir '{checkpoints_dir}' overlap; a run needs two "
                       'folders side by side, such as --loggers_dir exp1/logs --checkpoints_dir exp1/checkpoints')


def missing_parents(path):
    """The folders above `path` that do not exist yet, deepest first."""
    missing = []
    for parent in Path(path).absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _makedirs(path, mode, exist_ok):
    try:
        os.makedirs(path, mode=mode, exist_ok=exist_ok)
    except OSError as err:
        raise RunError(f"cannot create folder '{path}': {err.strerror}; "
                       'pass a writable --loggers_dir and --checkpoints_dir') from None


def check_writable(*folders):
    for folder in folders:
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise RunError(f"folder '{folder}' is missing or not writable; fix its permissions")


HEARTBEAT_SECONDS = 30  # how often that process touches it
HEARTBEAT_JOIN_SECONDS = 5  # how long main()'s end waits for a touch stuck on a file system that hangs
_run_watches = []  # this main()'s Heartbeat and CrashTracebacks; failure_noted stops them


class Heartbeat:
    """loggers/<run>/.heartbeat names the process that writes the run ({host, pid, slurm_job}), and a daemon thread
    touches it every HEARTBEAT_SECONDS, so that a start on another host sharing the folders can tell whether the
    run is still written there, which a pid cannot tell it; on this host it covers 3.5-3.10, before note.log exists.
    stop() (when main() ends) removes it; a hard kill leaves it, and it goes stale."""

    def __init__(self, loggers_dir):
        self.path = Path(loggers_dir) / HEARTBEAT_FILE
        self.owner = {'host': socket.gethostname(), 'pid': os.getpid(), 'slurm_job': os.environ.get('SLURM_JOB_ID')}
        tmp = self.path.with_name(f'{HEARTBEAT_FILE}.{os.getpid()}.tmp')
        try:  # without it the run goes on: only a start elsewhere that checks on it would be misled
            tmp.write_text(json.dumps(self.owner) + '\n', encoding='utf-8')
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.beat, name='heartbeat', daemon=True)
        self.thread.start()

    def beat(self):
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):  # the folder was removed: nothing to keep alive
                os.utime(self.path)

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=HEARTBEAT_JOIN_SECONDS)  # a daemon thread: a stuck one does not keep the process
        beat = read_heartbeat(self.path.parent)
        if beat and (beat.get('host'), beat.get('pid')) == (self.owner['host'], self.owner['pid']):  # not another's
            with contextlib.suppress(OSError):
                os.remove(self.path)


def start_heartbeat(loggers_dir):
    """From 3.5 until main() ends, loggers/<run>/.heartbeat tells other starts that this process writes the run."""
    _run_watches.append(Heartbeat(loggers_dir))


class CrashTracebacks:
    """faulthandler writes a crash that no Python code outlives (a segfault or an abort in native code: an extension,
    a driver, a library in a DataLoader worker) into the run's traceback.txt, where an error's traceback goes: each
    thread's Python stack, under faulthandler's own first line ("Fatal Python error: Segmentation fault"). stop()
    puts faulthandler back on the console if it was on (show_crash_stacks, at train.py's entry point), and removes
    traceback.txt if it is empty (opened by this start, or by one killed since it opened it)."""

    def __init__(self, loggers_dir):
        self.path = Path(loggers_dir) / TRACEBACK_FILE
        self.was_enabled = faulthandler.is_enabled()
        try:
            self.file = open(self.path, 'ab')
        except OSError:  # the crash goes to the console then, as before 3.10
            self.file = None
        else:
            faulthandler.enable(file=self.file, all_threads=True)

    def stop(self):
        if self.file is None:
            return
        faulthandler.disable()
        if self.was_enabled:
            show_crash_stacks()
        self.file.close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_size == 0:
                self.path.unlink()


def show_crash_stacks():
    """faulthandler on the console: a crash in native code (a segfault) shows each thread's Python stack, and so does
    Ctrl-\\ (SIGQUIT, where it keeps its default action: at a terminal) before it quits, which tells where a step
    that keeps a stop from coming is stuck; under torchrun, local rank 0's alone (Ctrl-\\ reaches every rank, and
    several stacks at once interleave on a console). On the process's own stderr (file descriptor 2), which outlives
    a sys.stderr replaced by a stream of its own (a notebook's, or a test's capture, whose file is closed later)."""
    quits = ctrl_backslash_quits() and os.environ.get('LOCAL_RANK', '0') == '0'
    stream = console_for_faulthandler()
    if stream is None:
        return
    with contextlib.suppress(Exception):  # a console that cannot take it: no stacks, and the run goes on
        faulthandler.enable(file=stream, all_threads=True)
        if quits:  # chain: then SIGQUIT's default action, quitting at once
            faulthandler.register(signal.SIGQUIT, file=stream, all_threads=True, chain=True)


def console_for_faulthandler():
    """The process's own stderr (file descriptor 2) if it has one, else sys.stderr if it has a descriptor, else None."""
    for stream in (sys.__stderr__, sys.stderr):
        with contextlib.suppress(Exception):
            stream.fileno()
            return stream
    return None


def ctrl_backslash_quits():
    """Whether Ctrl-\\ (SIGQUIT) keeps its default action, quitting at once: at a terminal, not ignored (nohup, &)."""
    return hasattr(signal, 'SIGQUIT') and signal.getsignal(signal.SIGQUIT) == signal.SIG_DFL  # Windows has none


# StallWatch re-arms its fallback timer at most this often (a tenth of stall_minutes if less)
STALL_REARM_SECONDS = 60
# the fallback timer fires this long (or rearm_seconds, if more) after the watch thread's own dump was due
STALL_FALLBACK_SECONDS = 5
# asks a DataLoader worker for its stacks: ignored by default, so a child that did not ask for it (one of your own) is
# unaffected; Windows has none
WORKER_STACKS_SIGNAL = getattr(signal, 'SIGURG', None)
THREAD_STACK_DEPTH = 100  # frames shown per thread, innermost first, as faulthandler shows


class StallWatch:
    """A run that stops moving (a DataLoader worker stuck in a read, a file system that hangs, a deadlock, a collective
    that waits for a rank) raises no error and ends nothing: it only stops printing. When no batch has been read
    (the meter's reads, every log_interval batches: on_read) for `minutes`, the watch thread, which looks every
    rearm_seconds, appends each other thread's Python stack where a crash's go (crash_stacks_file), under a line of its
    own with the time, has each DataLoader worker append its own (the main process only shows that it waits for a
    batch; dump_worker_stacks), adds a warning to train.log (runs.py shows the run as stalled while it is the last
    line), and a line once batches are read again, after the warning even when the read comes while the stall is
    being told: the run goes on, since a step may only be slow. One dump per stall.

    The stacks are read while the watch thread holds the GIL (thread_stacks_text): faulthandler's timer, which reads
    them without it, crashes the process now and then when a thread runs Python code meanwhile (CPython 3.10-3.13:
    a slow step in Python is one). That timer stays as a fallback for a stall in a call that holds the GIL, where
    the watch thread cannot run and no thread can change its stack: it fires fallback_timeout after the last re-arm,
    rearm_seconds + max(rearm_seconds, STALL_FALLBACK_SECONDS) after the watch's own dump was due, unless the watch
    has cancelled it, and writes under faulthandler's first line, `Timeout (0:33:00)!`. It is re-armed at most every
    rearm_seconds, so a read costs a clock read, and it is stopped around each os.fork() (a DataLoader worker's start)
    and set again for the time left: a child forked while it runs would hang at its exit, waiting for a timer thread
    that only the parent has (CPython 3.10-3.13). `minutes` 0: off."""

    active = None  # the one armed now: the fork hooks (below the class) are the process's

    def __init__(self, minutes):
        self.seconds = minutes * 60
        self.rearm_seconds = min(STALL_REARM_SECONDS, self.seconds / 10)
        self.fallback_timeout = (self.seconds + 2 * self.rearm_seconds
                                 + max(self.rearm_seconds, STALL_FALLBACK_SECONDS))
        self.file, self.path = crash_stacks_file() if self.seconds else (None, None)
        self.armed_at, self.last_read, self.reported, self.paused = -math.inf, time.monotonic(), False, False
        self.timer_armed = False
        self.stopped = threading.Event()
        self.arming = threading.Lock()  # held around faulthandler's timer calls, made from two threads
        self.telling = threading.Lock()  # held while a stall is told: a read's line comes after the warning
        self.thread = threading.Thread(target=self.watch, name='stall watch', daemon=True)
        if self.file is not None:
            StallWatch.active = self
            self.on_read()
            self.thread.start()

    def on_read(self):
        """A batch was read: the run moves."""
        if self.file is None:
            return
        now = time.monotonic()
        last, self.last_read = self.last_read, now
        if now - self.armed_at >= self.rearm_seconds:
            with self.arming:
                faulthandler.dump_traceback_later(self.fallback_timeout, file=self.file)
                self.armed_at, self.timer_armed = now, True
        if self.reported:  # after last_read is set: a watch thread that finds it cleared must find the new one
            with self.telling:
                self.reported = False
                logging.getLogger('train').info(f'batches are read again, after {duration_text(now - last)} '
                                                'without one')

    def timer_fired(self, now):
        return self.timer_armed and now >= self.armed_at + self.fallback_timeout

    def cancel_timer(self):  # with self.arming held
        faulthandler.cancel_dump_traceback_later()
        self.timer_armed = False

    @staticmethod
    def before_fork():
        watch = StallWatch.active
        if watch is not None:
            with watch.arming:
                watch.paused = watch.timer_armed and not watch.timer_fired(time.monotonic())  # one dump per stall
                watch.cancel_timer()

    @staticmethod
    def after_fork():
        watch = StallWatch.active
        if watch is not None and watch.paused:  # set again for the time left
            with watch.arming:
                faulthandler.dump_traceback_later(
                    max(watch.armed_at + watch.fallback_timeout - time.monotonic(), 0.001), file=watch.file)
                watch.paused, watch.timer_armed = False, True

    def watch(self):
        while not self.stopped.wait(self.rearm_seconds):
            self.check()

    def check(self):
        """The watch thread's look, every rearm_seconds: tell a stall once, when no batch was read for `minutes`."""
        if self.reported or time.monotonic() - self.last_read < self.seconds:
            return
        with self.arming:
            now = time.monotonic()
            if now - self.last_read < self.seconds:  # read meanwhile
                return
            fired = self.timer_fired(now)  # the GIL was held until now: the fallback has written the stacks
            self.cancel_timer()
        with self.telling:
            self.reported = True
            since = time.strftime('%H:%M:%S', time.localtime(time.time() - (now - self.last_read)))
            stalled_for = duration_text(now - self.last_read)
            if not fired:
                header = dated_header(dist.get_rank() if is_distributed() else 0)
                write_all(self.file, f"{header} no batch read for {stalled_for} (since {since}): each thread's Python "
                                     'stack, most recent call first\n' + thread_stacks_text(skip=threading.get_ident()))
            workers = " and each DataLoader worker's" if self.dump_worker_stacks() else ''
            logging.getLogger('train').info(
                f"{STALL_WARNING} {stalled_for} (since {since}): each thread's Python stack{workers} is now in "
                f"{self.path or 'the console'}; the run goes on (if it is stuck, end it and resume from its last "
                f'save; --stall_minutes {self.seconds / 60:g} sets when this shows, 0 never)')

    def dump_worker_stacks(self):
        """Ask each live DataLoader worker whose stacks go where this watch's go (_start_worker: those started from 3.10
        on, on rank 0) to append each of its threads' Python stacks under a line that names it (and its rank, under
        torchrun: other ranks' go to the console); a worker still starting gets that line, without a stack, from
        here. Return how many were asked."""
        asked, rank = 0, workers_rank_text()
        for index, pid, stacks_to in loader_workers():
            if stacks_to != (self.path or ''):
                continue
            try:
                if answers_stack_requests(pid):
                    os.kill(pid, WORKER_STACKS_SIGNAL)
                    asked += 1
                else:
                    title = worker_title(rank, index, pid)
                    write_all(self.file, f'{title}: still starting (no code of ours has run in it yet), no stack\n')
            except OSError:  # gone meanwhile
                continue
        return asked

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.file is not None:
            StallWatch.active = None
            with self.arming:
                self.cancel_timer()
            self.stopped.set()
            self.thread.join(timeout=HEARTBEAT_JOIN_SECONDS)  # its log line may be stuck on the file system that hangs


def thread_stacks_text(skip=None):
    """Each thread's Python stack but skip's (a thread ident), innermost frame first, in faulthandler's form (with the
    thread's name), read while this thread holds the GIL, so that no thread changes its stack meanwhile."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    main = threading.main_thread().ident
    blocks = []
    for ident, frame in sorted(sys._current_frames().items(), key=lambda item: item[0] != main):  # the main first
        if ident == skip:
            continue
        lines = [f'Thread 0x{ident:016x} "{names.get(ident, "?")}" (most recent call first):']
        while frame is not None and len(lines) <= THREAD_STACK_DEPTH:
            line = frame.f_lineno if frame.f_lineno is not None else '???'
            lines.append(f'  File "{frame.f_code.co_filename}", line {line} in {frame.f_code.co_name}')
            frame = frame.f_back
        if frame is not None:
            lines.append('  ...')
        blocks.append('\n'.join(lines) + '\n')
    return '\n'.join(blocks)


def write_all(stream, text):
    """Append text to stream's file descriptor, unbuffered (the stream's own buffer is the crash handler's, or a
    console's); a file that cannot take it (a full disk) loses it."""
    data = memoryview(text.encode('utf-8', 'backslashreplace'))
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(stream.fileno(), data):]


def _in_forked_child():
    """A forked child (a DataLoader worker) from its first instruction: the parent's stall timer is not its own, and
    Ctrl-\\ quits it without a stack (only the main process shows one; unregistering in the worker_init_fn came too
    late for a Ctrl-\\ while the workers start: .ci/newest saw two stacks, once)."""
    StallWatch.active = None
    with contextlib.suppress(Exception):
        faulthandler.unregister(signal.SIGQUIT)


if hasattr(os, 'register_at_fork'):  # Windows has no fork
    os.register_at_fork(before=StallWatch.before_fork, after_in_parent=StallWatch.after_fork,
                        after_in_child=_in_forked_child)


def crash_stacks_file():
    """Where faulthandler writes a crash's stacks now, and that file's path: this run's traceback.txt (rank 0, from
    3.10 on: keep_crash_tracebacks), else the console (file descriptor 2, as show_crash_stacks; path None), or (None,
    None)."""
    for watch in _run_watches:
        if isinstance(watch, CrashTracebacks) and watch.file is not None:
            return watch.file, str(watch.path)
    return console_for_faulthandler(), None


def keep_crash_tracebacks(loggers_dir):
    """From 3.10 (as an error's traceback) until main() ends, a crash of this process appends each thread's stack to
    loggers/<run>/traceback.txt. Not before: a folder that 3.6-3.9 leave empty stays one (runs.py, --run_name)."""
    _run_watches.append(CrashTracebacks(loggers_dir))


def stop_run_watches():
    while _run_watches:
        _run_watches.pop().stop()


def this_slurm_job(beat):
    """Whether a heartbeat was written by an earlier start of this SLURM job (SLURM requeues keep the job id)."""
    return bool(beat.get('slurm_job')) and beat['slurm_job'] == os.environ.get('SLURM_JOB_ID')


def heartbeat_moves(folder, beat):
    """Whether the heartbeat in folder is touched within the next HEARTBEAT_SECONDS (and a margin): its process on
    another host still runs. Watching it, rather than judging its age, needs no clocks to agree, and a start right
    after a hard kill there (a requeue, a chained job) waits for it instead of failing."""
    path, seconds = Path(folder) / HEARTBEAT_FILE, HEARTBEAT_SECONDS * 1.5
    to_stdout(f"{path} was touched {beat['age']:.0f} s ago on host {beat.get('host')}: waiting up to {seconds:.0f} s "
              'to see whether its process still runs')
    first, deadline = modified_ns(path), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(HEARTBEAT_SECONDS / 30)
        now = modified_ns(path)
        if now != first:
            return now is not None  # removed: its process ended
    return False


def modified_ns(path):
    """A file's mtime, or None; opened first, since NFS revalidates a file's cached attributes on open."""
    try:
        with open(path, 'rb') as f:
            return os.fstat(f.fileno()).st_mtime_ns
    except OSError:
        return None


def still_running(loggers_dir):
    """Why another process still writes the run in loggers_dir ('is still running (pid P)'), or None: its heartbeat
    tells, or for a run without one (made before heartbeats), note.log's status and pid on this host."""
    beat = read_heartbeat(loggers_dir)
    if beat is None:  # the latest start's provenance holds the same host and pid
        try:
            _, beat, status = read_note(Path(loggers_dir))
        except (OSError, UnicodeDecodeError):
            return None
        if status != 'running':
            return None
    elif beat.get('host') != socket.gethostname():
        if this_slurm_job(beat):
            return None  # this job's earlier start, requeued here: SLURM ended it first
        if beat['age'] < HEARTBEAT_STALE_SECONDS and heartbeat_moves(loggers_dir, beat):
            return (f"is still running on host {beat.get('host')} (pid {beat.get('pid')}: it touched its "
                    f'{HEARTBEAT_FILE} just now)')
        return None
    if 'pid' in beat and alive(beat) and int(beat['pid']) != os.getpid():  # not a run of this process
        return f"is still running (pid {beat['pid']})"
    return None


def check_not_running(loggers_dir):
    """Refuse to resume a run that another process still writes: two processes would write the same files."""
    running = still_running(loggers_dir)
    if running:
        raise RunError(f'run {Path(loggers_dir).name} {running}; stop it first (Ctrl-C saves it), then resume')


@contextlib.contextmanager
def failure_noted():
    """Wraps main(): an error (or a Ctrl-C before train()'s loop takes over the signals) that stops a run
    once its note.log is open becomes the run's last status there, so that runs.py shows it; the error
    goes on as before. Before note.log opens (a bad dataset, a bug in model.py), the new run's folders
    (and loggers/ and checkpoints/ if it made them) are removed again if they are still empty, so failed
    attempts leave no empty runs behind; so is a new run none of whose log lines reached its files (a full disk).
    Either way the run's heartbeat and crash tracebacks stop (this process no longer writes
    it) and its DataLoader workers end. An earlier run's loggers in this process are closed first, so that
    nothing lands in that run's files."""
    for name in ('train', 'val', 'note'):
        close_logger(logging.getLogger(name))
    _claimed_run_dirs.clear()
    _iterators_with_workers.clear()  # loaders made before main(), outside it, are left alone
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous_sigterm = (signal.signal(signal.SIGTERM, in_this_process_only(_raise_terminated)) if in_main_thread
                        else None)
    try:
        yield
    except (Exception, KeyboardInterrupt) as err:
        if in_main_thread:  # a SIGTERM must not cut the record short: torchrun sends one as soon as a rank ends
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (another's death fails this one in a collective)
        stop_run_watches()
        note_files = [handler for handler in logging.getLogger('note').handlers  # none before 3.10, none off rank 0
                      if isinstance(handler, logging.FileHandler)]  # not the console: it shows the error already
        for handler in note_files:
            note_failure(handler, err)
        with contextlib.suppress(OSError):  # note.log removed meanwhile, say
            if note_files and _claimed_run_dirs and os.path.getsize(note_files[0].baseFilename) == 0:
                # a full disk: none of the new run's lines reached its files
                remove_unwritten_logs(_claimed_run_dirs[0])
        if not note_files or not os.path.exists(note_files[0].baseFilename):
            remove_if_empty(*_claimed_run_dirs)
        raise
    finally:
        stop_run_watches()
        stop_loader_workers()
        _claimed_run_dirs.clear()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)


@contextlib.contextmanager
def on_error(callback):
    """Call callback(err) when an Exception leaves the block; the exception then goes on, or the one
    that callback returns goes in its place."""
    try:
        yield
    except Exception as err:
        replacement = callback(err)
        if replacement is not None:
            raise replacement from err
        raise


def remove_unwritten_logs(loggers_dir):
    """Close the run's loggers and remove its empty log files, so that a start whose lines all failed to be
    written (a full disk) leaves no run behind, as one that failed before note.log opened."""
    for name in ('train', 'val', 'note'):
        close_logger(logging.getLogger(name))
        path = os.path.join(loggers_dir, f'{name}.log')
        with contextlib.suppress(OSError):
            if os.path.getsize(path) == 0:
                os.remove(path)


def note_failure(handler, err):
    """Append how the run stopped, unless note.log already records an end (train() returned), with the error's
    first line, and its whole traceback in traceback.txt unless it is a RunError (bad input, said in full)."""
    try:
        _, _, status = read_note(Path(handler.baseFilename).parent)
    except (OSError, UnicodeDecodeError):
        return
    if status not in (None, 'running'):
        return
    when = time.strftime('%Y-%m-%d %H:%M:%S')
    if isinstance(err, KeyboardInterrupt):
        signal_name = 'SIGTERM' if isinstance(err, Terminated) else 'SIGINT'
        message = f'status: interrupted ({signal_name}) at {when}, before training'
    else:  # a bug's whole traceback stays with the run (a console closed since, say); a RunError is all in its line
        run_dir = shown_path(os.path.dirname(handler.baseFilename))
        details = '' if isinstance(err, RunError) else write_traceback(err, run_dir)
        cause = 'another rank' if another_rank_failed(err) else type(err).__name__  # that rank's line is in train.log
        message = f'status: failed ({cause}) at {when}\nerror: {first_line(err)}{details}'
    handler.handle(logging.makeLogRecord({'msg': message}))


def shown_path(path):
    """`path` relative to the working folder, as the run's other messages name its files, unless it lies elsewhere."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # Windows: another drive
        return path
    return path if relative.startswith('..') else relative


def remove_if_empty(*folders):
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            pass


def append_metrics(path, *rows):
    """Append epochs to metrics.csv (with a header if the file is new). After a row cut short by a crash or
    a full disk, the next starts on a line of its own: appended to the cut one, both would be lost.
    The rows follow the file's header: a file begun by older code (without grad_norm, say) stays readable."""
    text = io.StringIO()
    writer = csv.writer(text)
    with open(path, 'a+b', buffering=0) as f:
        end = f.seek(0, os.SEEK_END)
        columns = METRICS_COLUMNS + OPTIONAL_METRICS_COLUMNS
        if end == 0:
            writer.writerow(columns)
        else:
            columns = metrics_header(f) or columns
            if cut_short(f):
                text.write('\r\n')
        writer.writerows([row.get(column, '') for column in columns] for row in rows)
        data = memoryview(text.getvalue().encode('utf-8'))
        try:
            while data:
                data = data[f.write(data):]
        except OSError:
            f.truncate(end)  # all the rows or none: written again, they would not stand twice
            raise


class OneWarning:
    """A warning line printed the first time only: a file that cannot be written says so once, not at every epoch
    or line."""

    def __init__(self):
        self.given = False

    def __call__(self, line):
        if not self.given:
            self.given = True
            to_stderr(f'warning: {line}')


class MetricsFile:
    """metrics.csv, appended once per epoch. A row that cannot be written (a full disk, a quota) waits and goes in
    with the next (or at close()): training goes on, one warning line says so, and no row is lost once there is room."""

    def __init__(self, path):
        self.path, self.waiting, self.warn = path, [], OneWarning()

    def append(self, row):
        self.waiting.append(row)
        self._write()

    def _write(self):
        try:
            append_metrics(self.path, *self.waiting)
        except OSError as err:
            self.warn(f"{cannot_write(self.path, err)}; its rows wait and go in with a later epoch's once it can be "
                      f'written again: {fix_for(err)}')
            return
        self.waiting = []

    def close(self):
        """At the run's end, rows still waiting get one more try (the disk may have room again); the epochs of any
        left are named."""
        if self.waiting:
            self._write()
        if self.waiting:
            to_stderr(f"warning: {os.path.basename(self.path)} in '{os.path.dirname(self.path)}' lacks "
                      f'{epoch_span(self.waiting)}, which could not be written before the run ended (the console '
                      'printed their losses)')


def epoch_span(rows):
    """'epoch 6' or 'epochs 6-7': the epochs of consecutive rows."""
    first, last = rows[0]['epoch'], rows[-1]['epoch']
    return f'epoch {first}' if first == last else f'epochs {first}-{last}'


def metrics_header(f):
    """The columns of a metrics.csv open with 'a+b', or None when its first line is not a header of ours."""
    f.seek(0)
    header = csv_fields(f.readline(64 * 1024).decode('utf-8', 'replace').rstrip('\r\n'))
    return tuple(header) if header and set(METRICS_COLUMNS) <= set(header) else None


def cut_short(f):
    """Whether a file open with 'a+b' ends inside a line: its last write was cut short (a crash, a full disk)."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return False
    f.seek(end - 1)
    return f.read(1) != b'\n'


def copy_metrics(source, destination, last_epoch):
    """Start a branched run's metrics.csv with its source's rows up to `last_epoch`: its curves show
    the whole history. Nothing to copy when the source has no readable metrics.csv."""
    try:
        rows = [row for row in read_metrics_rows(source) if int(row['epoch']) <= last_epoch]
    except (OSError, ValueError):  # ValueError: a missing column, or bytes that are not UTF-8
        return
    try:
        append_metrics(destination, *rows)
    except OSError as err:  # a full disk, a quota: nothing has trained yet
        raise RunError(f'{cannot_write(destination, err)}; {fix_for(err)}, then run the command again') from None


def provenance(device, world_size, project=None):
    """Where and how a run was made, for note.log."""
    project = project or Path(__file__).resolve().parent
    commit = _git(project, 'rev-parse', 'HEAD')
    if commit is None:
        git = 'not a git repository'
    else:
        status = _git(project, 'status', '--porcelain')  # None: git failed or took over 10 s
        if status is None:
            git = f'{commit} (unknown: git status failed)'
        else:
            git = f"{commit} ({'dirty: uncommitted changes' if status else 'clean'})"
    return {
        'command': ' '.join(shlex.quote(a) for a in [os.path.basename(sys.executable), *sys.argv]),
        'git': git,
        'python': sys.version.split()[0],
        'torch': torch.__version__,
        'cuda': torch.version.cuda or 'none',
        'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else device.type,
        'host': socket.gethostname(),
        'pid': os.getpid(),
        'world_size': world_size,
        **({'slurm_job': os.environ['SLURM_JOB_ID']} if os.environ.get('SLURM_JOB_ID') else {}),  # its logs, sacct
    }


def provenance_text(device, world_size):
    """provenance() as note.log shows it: a `provenance:` line, then one line a value."""
    return 'provenance:' + ''.join(f'\n    {k}: {v}' for k, v in provenance(device, world_size).items())


def _git(folder, *args):
    try:
        result = subprocess.run(['git', *args], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def open_tensorboard(folder, model, example_inputs, first_epoch):
    """--tensorboard's writer (TensorboardScalars) in `folder`, with the model graph, or None (and one log line)
    without tensorboard. `first_epoch`: the epoch this start logs first (1, or the one after a resume's checkpoint)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as err:  # not only ImportError: a tensorboard built for another protobuf raises TypeError
        why, fix = import_problem(err, 'tensorboard')
        logging.getLogger('train').info(f'{why}, so nothing goes to tb/: {fix}, or pass --tensorboard false')
        return None
    warning = old_tensorboard_warning()
    if warning:
        logging.getLogger('train').info(warning)
    tensorboard = TensorboardScalars(folder, SummaryWriter, first_epoch)
    if tensorboard.writer is None:
        return tensorboard
    try:
        with warnings.catch_warnings():  # the trace is drawn once, for this input: whether it generalises is moot
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            tensorboard.writer.add_graph(model, example_inputs)
    except Exception as err:  # tracing fails for some models; the scalars matter more
        logging.getLogger('train').info(f'tensorboard: no model graph ({first_line(err)})')
    return tensorboard


def old_tensorboard_warning():
    """A warning when tensorboard is older than 2.12: its writer thread ends on a failed write (a full disk) without
    a word, and the next flush then waits for it for ever, so the run would hang where TensorboardScalars waits."""
    import tensorboard

    version = tensorboard.__version__
    if tuple(int(part) for part in re.findall(r'\d+', version)[:2]) >= (2, 12):
        return None
    return (f"warning: tensorboard {version}'s writer hangs the run if the disk fills up (fixed in 2.12); "
            "pip install -U 'tensorboard>=2.12'")


class TensorboardScalars:
    """The epochs' losses, metrics, lr and timings in tensorboard event files, written and flushed once per epoch.
    Where they cannot be written (a full disk, a quota) training goes on and one warning line says so; they wait and
    go in with a later epoch's, through a new event file (tensorboard reads every file in the folder), and the empty
    files of tries that failed are removed. The epoch sent before a failure goes again too: tensorboard's writer thread
    may fail just after a flush returned.

    A resume after a hard kill trains again the epochs logged since its checkpoint: the writers mark a restart at
    `first_epoch` (purge_step) until one has written, so that tensorboard shows only the new values from there (it
    takes the first such mark in a folder for the run's start, so a new run marks one too)."""

    def __init__(self, folder, summary_writer, first_epoch):
        _quiet_tensorboard_thread_errors()
        self.folder, self.summary_writer, self.purge_step = folder, summary_writer, first_epoch
        self.writer, self.waiting, self.sent, self.warn = None, [], [], OneWarning()
        self._open()

    def _open(self):
        self.files_before = self._files()
        try:
            self.writer = self.summary_writer(self.folder, purge_step=self.purge_step)
        except OSError as err:
            self._failed(err)

    def add(self, row):
        self.waiting.append(row)
        self._send()

    def _send(self):
        if self.writer is None:
            self._open()
            if self.writer is None:
                return
        try:
            for waiting in self.waiting:
                for name in ('loss', 'metric'):
                    self.writer.add_scalar(f'{name}/train', waiting[f'train_{name}'], waiting['epoch'])
                    self.writer.add_scalar(f'{name}/valid', waiting[f'valid_{name}'], waiting['epoch'])
                self.writer.add_scalar('lr', waiting['lr'], waiting['epoch'])
                if waiting.get('grad_norm') is not None:  # None: not measured (clip_flag false)
                    self.writer.add_scalar('grad_norm/train', waiting['grad_norm'], waiting['epoch'])
                for name in ('epoch_seconds', 'data_seconds', 'train_seconds'):  # metrics.csv's, beside the curves
                    if waiting.get(name) is not None:
                        self.writer.add_scalar(f'time/{name}', waiting[name], waiting['epoch'])
            self.writer.flush()
        except OSError as err:
            self.waiting, self.sent = self.sent + self.waiting, []
            self._failed(err)
            return
        self.sent, self.waiting = self.waiting, []
        self.purge_step = None  # written: a writer opened after a later failure must not hide this run's own epochs

    def _failed(self, err):
        self._close_writer()
        for path in (os.path.join(self.folder, name) for name in self._files() - self.files_before):
            with contextlib.suppress(OSError):
                if os.path.getsize(path) == 0:
                    os.remove(path)
        self.warn(f"cannot write tensorboard's events in '{self.folder}' ({err.strerror or err}); the scalars wait "
                  f"and go in with a later epoch's once they can be written again: {fix_for(err)}")

    def _files(self):
        try:
            return set(os.listdir(self.folder))
        except OSError:
            return set()

    def close(self):
        """At the run's end, scalars still waiting get one more try (the disk may have room again); the epochs of any
        left are named as ones the events may lack: the first of them may be the batch sent again after a failure."""
        if self.waiting:
            self._send()
        self._close_writer()
        if self.waiting:
            to_stderr(f"warning: tensorboard's events in '{self.folder}' may lack {epoch_span(self.waiting)}, which "
                      'could not be written for certain before the run ended (the console printed their losses)')

    def _close_writer(self):
        writer, self.writer = self.writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()


def _quiet_tensorboard_thread_errors():
    """tensorboard writes in a thread of its own, which prints its traceback as a write fails (a full disk) and ends;
    TensorboardScalars says so in one line instead. Other threads' errors print as before."""
    previous = threading.excepthook
    if getattr(previous, 'quiets_tensorboard', False):
        return

    def excepthook(args):
        if not (issubclass(args.exc_type, OSError) and type(args.thread).__module__.startswith('tensorboard.')):
            previous(args)

    excepthook.quiets_tensorboard = True
    threading.excepthook = excepthook


def create_logger(name, path, show_time=True):
    """A logger that appends to `path` and prints the same lines to the console, where a timed line also
    names its log: train.log's and val.log's epoch lines read alike."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    close_logger(logger)
    timed = '%(asctime)s | ' if show_time else ''
    label = f'{name:<5} | ' if show_time else ''
    with open(path, 'a+b') as f:  # after a line cut short, a resumed run's first line starts a line of its own
        if cut_short(f):
            f.write(b'\n')
    for handler, prefix in ((RunLogFile(path), timed),
                            (ConsoleLog(sys.stdout), timed + label)):
        handler.setFormatter(EscapingFormatter(prefix + '%(message)s', '%Y-%m-%d %H:%M:%S'))
        logger.addHandler(handler)
    return logger


class ConsoleLog(logging.StreamHandler):
    """The console's copy of the log lines. One that cannot be written (a batch job's output file on a full disk, a
    closed pipe) is dropped, not a traceback: the run goes on, and its log files keep the line. A character the
    console's encoding lacks (torchinfo's box lines in a Windows code page or a Latin-1 locale) prints escaped."""

    def handleError(self, record):
        err = sys.exc_info()[1]
        if isinstance(err, UnicodeEncodeError):
            with contextlib.suppress(OSError):
                self.stream.write(escaped(self.format(record) + self.terminator,
                                          getattr(self.stream, 'encoding', None) or 'ascii'))
                self.flush()
        elif not isinstance(err, OSError):
            super().handleError(record)


class RunLogFile(logging.FileHandler):
    """A run's log file. A write that fails (a full disk, a quota) prints one warning line, not logging's traceback
    for every line, and the run goes on: the lines still print on the console, and the file takes what it can
    again once there is room."""

    def __init__(self, path):
        super().__init__(path, mode='a', encoding='utf-8')
        self.path, self.warn = path, OneWarning()

    def handleError(self, record):
        err = sys.exc_info()[1]
        if not isinstance(err, OSError):
            return super().handleError(record)
        self.warn(f'{cannot_write(self.path, err)}; its lines print here, and the file takes them once it can be '
                  f'written again (it may miss some): {fix_for(err)}')

    def close(self):
        with contextlib.suppress(OSError):  # the last lines could not be flushed either: said when they failed
            super().close()


class EscapingFormatter(logging.Formatter):
    """Writes a file name's byte that is not UTF-8 (a surrogate in Python, '\\udce9') escaped: a log file or
    console that cannot encode it would drop the whole line, such as note.log's config."""

    def format(self, record):
        return escaped(super().format(record))


def close_logger(logger):
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def bar_options():
    """At a terminal, tqdm's own bars, redrawn in place ten times a second. When the bars go to a file
    (`python train.py > run.log 2>&1`, a batch job): a line of progress a minute, and none for a loop that
    ends within its first minute, so that the log reads as lines, not as megabytes of redraws. A TQDM_<KEY>
    variable in the environment (TQDM_MININTERVAL, TQDM_DELAY) still sets its key, as tqdm documents. Without a
    stderr at all (started with `2>&-`, or pythonw on Windows: sys.stderr is None), nowhere."""
    if sys.stderr is not None and sys.stderr.isatty():
        return {}
    in_a_file = {'mininterval': 60.0, 'maxinterval': 60.0, 'delay': 60.0}  # maxinterval: tqdm's monitor thread
    return {'file': BarLines(sys.stderr),
            **{key: value for key, value in in_a_file.items() if f'TQDM_{key.upper()}' not in os.environ}}


class BarLines:
    """What tqdm writes, as lines: tqdm starts each redraw with '\\r' to draw over the last one, which a
    file keeps as one endless line (^M in `less`). A stream of None (no stderr) takes nothing."""

    def __init__(self, stream):
        self.stream = stream
        self.encoding = getattr(stream, 'encoding', None)  # tqdm draws Unicode blocks where it is UTF-8

    def write(self, text):
        # a redraw is padded with spaces to cover a longer last one; a bar below the first (position=1, nested)
        # is drawn a line down and then moves the cursor back up ('\x1b[A'), which a file keeps as a code
        line = text.replace('\r', '').replace('\x1b[A', '').rstrip()
        if line and self.stream is not None:  # the blank that clears a closed bar (leave=False) is no line
            with contextlib.suppress(OSError):  # a batch job's output on a full disk: the run goes on without it
                self.stream.write(line + '\n')

    def flush(self):
        if self.stream is not None:
            with contextlib.suppress(OSError):
                self.stream.flush()


# -----------------------------------------------------------------------------
# checkpoints


def save_checkpoint(state, *paths):
    """Write atomically: a temporary file in the same folder, fsync, then os.replace.

    A crash or kill mid-save leaves the previous checkpoint at each path intact (and a temporary file,
    which the next save removes). Several paths in one folder (best and latest of the same epoch) are
    written once and hard-linked.
    """
    paths = [Path(path) for path in paths]
    tmps = [path.with_name(f'.{path.name}.{os.getpid()}.tmp') for path in paths]
    try:
        with open(tmps[0], 'wb') as f:
            try:
                torch.save(state, f)
            except RuntimeError as err:  # torch's zip writer, closed by a failed write (full disk), hides its OSError
                if isinstance(err.__context__, OSError):
                    raise err.__context__ from None
                raise
            f.flush()
            os.fsync(f.fileno())
        for tmp in tmps[1:]:
            try:
                os.link(tmps[0], tmp)
            except OSError:  # a file system without hard links
                shutil.copyfile(tmps[0], tmp)
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()
    for path in paths:  # temporary files of an earlier save that was killed mid-write
        for stale in path.parent.glob(f'.{path.name}.*.tmp'):
            stale.unlink(missing_ok=True)
    try:  # make the renames themselves durable
        fd = os.open(paths[0].parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class CheckpointWriter:
    """Writes checkpoints on a background thread, so that training goes on during the disk write.

    save() first copies the state (tensors to CPU memory), so later steps cannot change what gets
    written. Writes run one at a time, in order, each atomic (save_checkpoint). At most one copy is
    held: a save waits for the previous ones first. wait() blocks until every write is on disk, and
    raises a write's OSError as a RunError.
    """

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='checkpoint')
        self._pending = []

    def save(self, state, *paths):
        self.wait()
        snapshot = _copy_to_cpu(state)
        self._pending.append((paths, self._pool.submit(save_checkpoint, snapshot, *paths)))

    def wait(self):
        pending, self._pending = self._pending, []
        for paths, future in pending:
            try:
                future.result()
            except OSError as err:  # a full disk, a folder removed or made read-only during the run
                raise RunError(f'{cannot_write(paths, err)}; the checkpoints already there are intact: '
                               f'{fix_for(err)}, then resume') from None

    def close(self):
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def cannot_write(paths, err):
    """'cannot write best_checkpoint.pt and latest_checkpoint.pt in 'checkpoints/<run>' (No space left on device)'."""
    paths = [Path(path) for path in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    names = ' and '.join(path.name for path in paths)
    return f"cannot write {names} in '{paths[0].parent}' ({err.strerror or err})"


def _copy_to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to('cpu', copy=True)
    if isinstance(value, dict):
        return {key: _copy_to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_to_cpu(item) for item in value)
    return value


def resolve_checkpoint(target, checkpoints_root='./checkpoints', name='latest_checkpoint.pt', option='--resume'):
    """`--resume` (and `--init_from`) take a timestamp, a checkpoint folder or a checkpoint file;
    a timestamp or folder means its `name`."""
    candidates = [Path(target), Path(checkpoints_root) / target]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            if (candidate / name).is_file():
                return candidate / name
            others = sorted(p.name for p in candidate.glob('*.pt') if not p.name.startswith('.'))  # not a save's .tmp
            if not others:
                its_checkpoints = checkpoints_folder_of(candidate)  # loggers/<run> given: the two look alike
                if its_checkpoints:
                    raise RunError(f"'{candidate}' is a run's loggers folder; its checkpoints are in "
                                   f"'{its_checkpoints}': pass {option} {shlex.quote(its_checkpoints)}")
                if holds_visible_entries(candidate):  # the project folder, say
                    raise RunError(f"'{candidate}' is not a run's checkpoints folder (no .pt file in it); pass "
                                   f"{option} a run's timestamp or name, its checkpoints folder, or a checkpoint file")
                # stopped before its first save (a best or a latest)
                fix = 'start a new run' if option == '--resume' else f'pass a run that has one to {option}'
                raise RunError(f"no checkpoint in '{candidate}': its run stopped before it saved one; {fix}")
            raise RunError(f"no {name} in '{candidate}'; pass one of its files with {option}: "
                           + ', '.join(str(candidate / other) for other in others))
    raise RunError(f"nothing for {option} at '{target}': no such checkpoint file, folder, "
                   f"or timestamp under '{checkpoints_root}'{project_folder_note(*candidates)}")


def resume_command(checkpoints_dir, checkpoints_root='./checkpoints', world_size=1):
    """The command that resumes the run saved in checkpoints_dir, as a stopped run's last line shows it: by its
    timestamp (or --run_name) when it is under checkpoints_root, else by its folder (a --checkpoints_dir elsewhere);
    launched as this run was (launch_command), since the same number of processes resumes it exactly."""
    folder = Path(checkpoints_dir)
    under_root = (Path(checkpoints_root) / folder.name).resolve() == folder.resolve()
    return f'{launch_command(world_size)} --resume {shlex.quote(folder.name if under_root else str(folder))}'


def launch_command(world_size):
    """`python train.py`, or under torchrun the torchrun command with as many processes: on one machine
    (torchrun's LOCAL_WORLD_SIZE is the whole world) a complete one; on several, the rendezvous options
    (endpoint, id) are left for the user to repeat, as they are not known to the workers."""
    if world_size == 1:
        return 'python train.py'
    per_node = int(os.environ.get('LOCAL_WORLD_SIZE', world_size))
    if per_node >= world_size:
        return f'torchrun --standalone --nproc_per_node={world_size} train.py'
    return f'torchrun --nnodes={world_size // per_node} --nproc_per_node={per_node} <rendezvous options> train.py'


def branch_reason(path, checkpoint, loggers_dir):
    """Why resuming from checkpoint file `path` cannot go on in its run's own folders, or None when it can.

    It cannot when the file is not in the run's checkpoints folder (a copy, or a run from elsewhere),
    when the run's loggers folder is not here, or when the run's latest_checkpoint.pt beside the file
    (which is best_checkpoint.pt, say) has more optimizer steps: resuming would overwrite it."""
    run_checkpoints = Path(checkpoint['config']['checkpoints_dir'])
    if path.parent.resolve() != run_checkpoints.resolve():
        return f"it is not in its run's checkpoints folder '{run_checkpoints}'"
    if not Path(loggers_dir).is_dir():
        return f"its run's loggers folder '{loggers_dir}' is not here"
    latest = later_beside(path, checkpoint, 'latest_checkpoint.pt')
    return f"its run's latest_checkpoint.pt is further on (step {latest['step']})" if latest else None


def later_beside(path, checkpoint, name):
    """The counters of checkpoint `name` beside `path` when it has more optimizer steps than `checkpoint`;
    else None (also when it is `path` itself, missing, or unreadable: then there is nothing to keep)."""
    other = path.parent / name
    if other.name == path.name or not other.is_file():
        return None
    try:  # mmap: only the counters are read, not the tensors
        saved = torch.load(other, map_location='cpu', weights_only=True, mmap=True)
        counters = {'path': other, 'epoch': saved['epoch'], 'step': saved['step']}
    except Exception:
        return None
    return counters if counters['step'] > checkpoint['step'] else None


def keep_later_best(path, checkpoint):
    """Before resuming in place from `path`: a best_checkpoint.pt beside it with more steps was saved by
    epochs after this checkpoint (the run stopped before its next latest save), which the resumed run
    trains again; its next best would replace that file. Keep it under a second name (a hard link, so no
    copy) and return the name, else None."""
    best = later_beside(path, checkpoint, 'best_checkpoint.pt')
    if best is None:
        return None
    stem = f"best_checkpoint.epoch{best['epoch']}.step{best['step']}"
    for suffix in itertools.count():
        kept = best['path'].with_name(f"{stem}{f'_{suffix}' if suffix else ''}.pt")
        if not kept.exists():
            try:
                os.link(best['path'], kept)
            except OSError:  # a file system without hard links
                shutil.copy2(best['path'], kept)
            return kept
        if os.path.samefile(kept, best['path']):  # kept by an earlier attempt that stopped before training
            return kept


def carry_best(path, checkpoint, config):
    """Give a branched run the best_checkpoint.pt of the history it continues: the resumed file itself,
    or the best_checkpoint.pt beside it, when that is the history's best epoch (same epoch and loss),
    with the new run's folders in its config. Return that epoch, or None (the branch then has no best
    checkpoint until one of its epochs improves on the loss it inherited)."""
    history_best = (checkpoint['best_epoch'], 0, checkpoint['best_loss'])  # epoch, samples_done, valid loss
    if not checkpoint['best_epoch']:  # stopped in the first epoch: no best yet
        return None
    for candidate in dict.fromkeys([path, path.parent / 'best_checkpoint.pt']):
        try:
            best = checkpoint if candidate == path else load_checkpoint(candidate)
        except (RunError, OSError):
            continue
        if (best['epoch'], best['samples_done'], best['best_loss']) == history_best:
            run_dirs = {key: config[key] for key in ('loggers_dir', 'checkpoints_dir')}
            save_checkpoint({**best, 'config': {**best['config'], **run_dirs}},
                            os.path.join(config['checkpoints_dir'], 'best_checkpoint.pt'))
            return best['epoch']
    return None


def check_resume_overrides(overrides, saved, shape_keys, split_keys, run_name):
    """Refuse the overrides a resume cannot take: a key of the model's shape or of which data trains and
    validates (the split, the label column) that differs from the saved config (with this version's defaults
    for keys newer than the run), and --init_from and --init_partial (they start a new run)."""
    locked = [key for key in shape_keys + split_keys if key in overrides and overrides[key] != saved.get(key)]
    if locked:
        fixed = ' and '.join(sorted({"the model's shape" if key in shape_keys
                                     else 'which data trains and validates' for key in locked}))
        they_fix = 'it fixes' if len(locked) == 1 else 'they fix'
        raise RunError(f"cannot change {', '.join(locked)} when resuming: {they_fix} {fixed}; start a new run instead"
                       + (' (another --run_name)' if run_name else ''))
    if 'init_from' in overrides:
        raise RunError('--init_from starts a new run from saved weights; drop it when resuming')
    if 'init_partial' in overrides:
        raise RunError('--init_partial applies when --init_from starts a new run; drop it when resuming')


def holds_visible_entries(folder):
    """Whether `folder` holds anything but hidden entries (a .DS_Store, a save's .tmp)."""
    return any(not path.name.startswith('.') for path in Path(folder).iterdir())


def check_data_still_there(config, overrides):
    """A resume reads the data at the run's dataset_dir: where nothing is there now (the data moved, or a
    folder was renamed or emptied), say that --dataset_dir takes the new place; the reader's own error cannot,
    not knowing that this is a resume."""
    place = config.get('dataset_dir')
    if not place or 'dataset_dir' in overrides:
        return
    if not os.path.exists(place) or (os.path.isdir(place) and not holds_visible_entries(place)):
        raise RunError(f"the run's data is no longer at dataset_dir '{place}'; if it moved, resume with "
                       '--dataset_dir <its new place>')


def load_init_weights(target, config, shape_keys):
    """`--init_from` (another run's best checkpoint, or a file): the checkpoint's path, and what a new run takes
    from it: the model weights ('model'), whether num_classes differs ('resized'), and the label names and
    feature columns of its data (None where it had none). The optimizer, scheduler, counters and RNG start
    fresh. Another num_classes (a new label set) is fine-tuning: only the output layer depends on it. Other
    shape keys may differ with init_partial (load_init_state then loads the tensors that fit); another
    num_features then starts each per-input tensor fresh (its shape differs), so no feature columns are returned
    for check_feature_order to hold in place."""
    path = resolve_checkpoint(target, name='best_checkpoint.pt', option='--init_from')
    checkpoint = load_checkpoint(path)
    saved = checkpoint['config']
    differ = [key for key in shape_keys if key in saved and saved[key] != config.get(key)]
    fixed = [key for key in differ if key != 'num_classes']
    if fixed and not config['init_partial']:
        raise RunError(f"--init_from '{path}' holds a model of another size "
                       f"({', '.join(f'{key} {saved[key]}, not {config.get(key)}' for key in fixed)}); "
                       f"pass {' '.join(f'--{key} {saved[key]}' for key in fixed)}, or --init_partial true to load "
                       'the tensors that fit and start the rest fresh')
    inputs_fresh = config['init_partial'] and 'num_features' in differ
    return str(path), {'model': checkpoint['model'], 'resized': 'num_classes' in differ,
                       'classes': checkpoint.get('classes'),
                       'feature_columns': None if inputs_fresh else checkpoint.get('feature_columns')}


def load_init_state(model, init, config{{ ', classes, build_model' if cookiecutter.task == 'classification' else '' }}):
    """Load --init_from's weights (load_init_weights' `init`) into a new run's model. Returns a line for note.log on
    the tensors that did not come over as they were ('' if none), and the names of the model's tensors that keep
    their fresh values.

    With another num_classes, the tensors whose shape follows it (the output layer's) keep the model's fresh
    values.
{%- if cookiecutter.task == 'classification' %}
    Where both the checkpoint and this data (`classes`) name their classes, each class takes the checkpoint's
    values for the class of its name instead (one the checkpoint lacks keeps them fresh), whatever number it
    has in each: a label set that adds or drops a class renumbers the others.
{%- endif %}
    With init_partial, every saved tensor whose name and shape fit is loaded, and the model's others start fresh
    (load_fitting_state).
    """
    state_dict, said = init['model'], []
{%- if cookiecutter.task == 'classification' %}
    renamed = init['classes'] is not None and classes is not None and (init['classes'] != classes or init['resized'])
    dims = class_dims(build_model, config) if renamed else {}
    if dims:
        own = model.state_dict()
        state_dict, fresh_classes = follow_class_names(own, state_dict, dims, init['classes'], classes)
        followed = [key for key in dims if getattr(state_dict.get(key), 'shape', None) == own[key].shape]
        if followed:  # the others were saved from another architecture: they do not fit
            said.append(f"{', '.join(followed)} take the checkpoint's values class by class, by name"
                        + (f'; {len(fresh_classes)} of {len(classes)} classes, which it does not name, start fresh: '
                           f'{names_text(fresh_classes)}' if fresh_classes else ''))
{%- endif %}
    if config['init_partial']:
        loaded, fresh = load_fitting_state(model, state_dict, config['init_from'])
        said.append(loaded)
    else:
        fresh = load_model_state(model, state_dict, config['init_from'],
                                 keep_resized=init['resized']{{ ' and not dims' if cookiecutter.task == 'classification' }}, fix=INIT_FROM_FIX)
        if fresh:
            said.append(f"{', '.join(fresh)} start fresh (num_classes differs from the checkpoint's)")
{%- if cookiecutter.task == 'classification' %}
    if renamed and not dims and not fresh:  # the same number of classes, under other names
        said.append(f"the classes are not the checkpoint's ({names_text(classes, 3)}; it has "
                    f'{names_text(init["classes"], 3)}), and no tensor of the model holds one slice per class to map '
                    "them by name: the output layer keeps the checkpoint's values by class number")
{%- endif %}
    return '\n'.join(f'init_from: {text}' for text in said), fresh


INIT_FROM_FIX = ('use the model.py it was trained with, or pass --init_partial true to load the tensors that fit and '
                 'start the rest fresh')


def load_fitting_state(model, state_dict, path):
    """--init_partial: load the saved tensors whose name and shape are the model's; the model's others keep their
    fresh values. Returns note.log's line, which lists both (a layer inserted into an nn.Sequential renumbers
    those after it: a tensor of the same shape then loads into another layer, as with torch's strict=False),
    and the names of the fresh tensors. Loading none is an error: the checkpoint holds another model."""
    own = model.state_dict()
{%- if scales_data %}
    state_dict = with_unscaled_buffers(own, state_dict)
{%- endif %}
    reshaped = reshaped_keys(own, state_dict)
    fitting = {key: value for key, value in state_dict.items() if key in own and key not in reshaped}
    if not fitting:
        raise RunError(f"--init_from '{path}' holds no tensor of this model's names and shapes "
                       f'({state_mismatch_text(own, state_dict)}); it holds another model: leave out --init_from')
    model.load_state_dict({**own, **fitting})
    fresh = [key for key in own if key not in fitting]
    extra = [key for key in state_dict if key not in own]
    said = [f"{len(fitting)} of the model's {len(own)} tensors loaded by name and shape (init_partial)",
            f'{len(fresh)} start fresh: {names_text(fresh, len(fresh))}' if fresh else 'none start fresh']
    said += [f"the checkpoint's {what} not loaded: {names_text(keys, len(keys))}"
             for what, keys in (('tensors of another shape', reshaped), ('tensors not in this model', extra)) if keys]
    return '; '.join(said), fresh
{%- if cookiecutter.task == 'classification' %}


def class_dims(build_model, config):
    """The model's tensors that hold a slice per class, each with the dimension that counts the classes: those
    whose shape follows num_classes (the model built with num_classes and one more: state_shapes). Empty unless
    every such tensor grows by one slice per class along one dimension (a head of num_classes * 4 outputs, say,
    cannot be mapped class by class), or when model.py cannot build the model with one more class."""
    now = state_shapes(build_model, config)
    try:
        more = state_shapes(build_model, {**config, 'num_classes': config['num_classes'] + 1})
    except Exception:  # a model.py that takes only some numbers of classes: which tensors follow it is unknown
        return {}
    dims = {}
    for key, shape in now.items():
        if more.get(key) == shape:
            continue
        grown = [dim for dim, (a, b) in enumerate(zip(shape, more.get(key, ()))) if a != b]
        if len(more.get(key, ())) != len(shape) or len(grown) != 1 or more[key][grown[0]] != shape[grown[0]] + 1:
            return {}  # not a slice per class: load_init_state keeps such tensors fresh instead
        dims[key] = grown[0]
    return dims if now.keys() == more.keys() else {}


def state_shapes(build_model, config):
    """The shapes of the state dict of the model that `config` builds: built on the meta device, or, for a model.py
    whose __init__ needs real values there (`.item()`, a file read into a buffer), on the CPU with the RNG state
    put back afterwards."""
    try:
        with torch.device('meta'):
            model = build_model(config)
    except Exception:
        with torch.random.fork_rng(devices=[]):
            model = build_model(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def follow_class_names(own, state_dict, dims, old_classes, classes):
    """`state_dict` with each class tensor (`dims`: its class dimension) holding, for every class of `classes`,
    the checkpoint's slice of the class of that name in `old_classes`, or the model's own (fresh) slice where
    there is none; and the names of those fresh classes."""
    old_at = {name: i for i, name in enumerate(old_classes)}
    mapped = {}
    for key, dim in dims.items():
        saved, tensor = state_dict.get(key), own[key].clone()
        if saved is None or saved.shape[:dim] + saved.shape[dim + 1:] != tensor.shape[:dim] + tensor.shape[dim + 1:]:
            continue  # saved from another architecture: load_model_state says the checkpoint does not fit
        for i, name in enumerate(classes):
            if name in old_at:
                tensor.select(dim, i).copy_(saved.select(dim, old_at[name]))
        mapped[key] = tensor
    return {**state_dict, **mapped}, [name for name in classes if name not in old_at]
{%- endif %}


def names_text(names, shown=5):
    """'a', 'b' and 3 more: names quoted, few enough for one line."""
    more = f' and {len(names) - shown} more' if len(names) > shown else ''
    return ', '.join(repr(name) for name in names[:shown]) + more


def epochs_text(n):
    return f"{n} epoch{'' if n == 1 else 's'}"


def duration_text(seconds):
    """'42 s' under a minute, else '31.5 minutes'."""
    return f'{seconds:.0f} s' if seconds < 60 else f'{seconds / 60:.1f} minutes'


def samples_text(n, world_size):
    """'N samples', with ' per process' under DDP, where counts are each rank's share."""
    return f"{n} samples{' per process' if world_size > 1 else ''}"


def checkpoint_position(checkpoint):
    """Where a checkpoint stands in its run, as the logs say it."""
    epoch, done = checkpoint['epoch'], samples_text(checkpoint['samples_done'], checkpoint.get('world_size', 1))
    return f"(epoch {epoch}, step {checkpoint['step']}, {done} of epoch {epoch + 1} trained)"


def nothing_to_train(checkpoint, config):
    """Why a resume of this checkpoint under this config would train nothing, or None when it would train
    (or when there is no checkpoint: a new run)."""
    if checkpoint is None:
        return None
    epoch, patience = checkpoint['epoch'], config['early_stop'] or math.inf
    if checkpoint['early_stop_count'] >= patience:
        return (f"nothing to do: the run early-stopped at epoch {epoch}, {epochs_text(checkpoint['early_stop_count'])} "
                f"without a lower valid loss (early_stop {config['early_stop']}); pass a larger --early_stop "
                '(0: off) to go on')
    if epoch >= config['n_epoch']:
        return (f"nothing to do: the run stopped at epoch {epoch} (n_epoch {config['n_epoch']}); "
                'pass a larger --n_epoch to go on')
    return None


def load_checkpoint(path):
    """Load a checkpoint safely (weights_only=True) and check its format."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        if 'unsupported operand' in str(err).lower():  # not a pickle at all: a text file, say
            raise RunError(f"cannot read checkpoint '{path}': it is not a file that torch.save wrote, "
                           'or it is corrupt') from None
        if 'weights only' in str(err).lower() or 'weights_only' in str(err).lower():
            raise RunError(f"refused to load '{path}': it holds objects other than plain data, "
                           'and loading it could run code') from None
        raise RunError(f"cannot read checkpoint '{path}': the file is corrupt ({first_line(err)})") from None
    except FileNotFoundError:
        raise RunError(f"checkpoint '{path}' does not exist") from None
    except IsADirectoryError:
        raise RunError(f"checkpoint '{path}' is a folder; pass a checkpoint file or its run's timestamp") from None
    except Exception as err:  # any failure to parse the file means it is damaged
        raise RunError(f"cannot read checkpoint '{path}': the file is truncated or corrupt "
                       f'({first_line(err)})') from None
    if not isinstance(checkpoint, dict) or 'format_version' not in checkpoint:
        raise RunError(f"'{path}' is not a checkpoint written by this project's train.py")
    if checkpoint['format_version'] > CHECKPOINT_FORMAT_VERSION:
        raise RunError(f"'{path}' has checkpoint format {checkpoint['format_version']}, newer than this "
                       f'code reads ({CHECKPOINT_FORMAT_VERSION}); update the project')
    return checkpoint


def _dataset_behind(split):
    """The dataset a random_split Subset draws from (or the dataset itself, if build_datasets returns no Subset)."""
    return getattr(split, 'dataset', split)


{% if cookiecutter.task == 'classification' -%}
def class_number(name):
    """The class number that a class name spells ('3', '3.0'), or None ('-1', '2.5', 'cat')."""
    try:
        value = float(name)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def labels_warning(train_set, num_classes):
    """A warning, or None, for labels that train but look like a mistake. Integer labels that stop short of
    num_classes (the answer's default, kept by mistake, say): the outputs above the highest label are never right.
    Class names that are not all class numbers (a '-1' among 0..8, or '10.0' as pandas writes floats, which makes
    every label a name): a number that is not its own class number. Class names must fill num_classes already."""
    dataset = _dataset_behind(train_set)
    classes = getattr(dataset, 'classes', None)
    if classes:
        renumbered = [(i, name) for i, name in enumerate(classes) if class_number(name) not in (None, i)]
        others = [name for name in classes if not str(name).isdecimal()]
        if not renumbered or not others:
            return None
        index, name = renumbered[0]
        return (f"warning: the labels are class names, numbered in sorted order, as some are not class numbers (e.g. "
                f"'{others[0]}'), so label '{name}' is class {index}; if the labels are numbers, fix the ones that "
                'are not')
    targets = dataset_targets(dataset)
    if targets is None or not len(targets) or targets.is_floating_point():
        return None
    highest = int(targets.max())
    if highest + 1 >= num_classes:
        return None
    return (f'warning: the labels go up to {highest}, but num_classes is {num_classes}, so outputs {highest + 1}'
            f'..{num_classes - 1} are never a right answer; pass --num_classes {highest + 1}, unless those '
            'classes are only missing from this data')


def check_label_range(train_set, valid_set, num_classes):
    """Raise RunError when a dataset's `targets` hold a label outside 0..num_classes-1, before anything is
    written: the loss would fail on it mid-run (on CUDA as a device-side assert that names no label). The
    project's readers check their labels as they read them; this catches a dataset of your own."""
    for split in (train_set, valid_set):
        targets = split_targets(split)  # the split's own: a Subset that keeps some classes of a dataset is fine
        if targets is not None and targets.numel() and not targets.is_floating_point():
            check_labels(targets, num_classes)


def check_labels(labels, num_classes, one_sample=False):
    """Raise RunError, naming the fix, unless every label in the (non-empty) tensor `labels` is a class index
    0..num_classes-1. `one_sample`: `labels` is the label of the sample check_one_sample tries."""
    k, lowest, highest = num_classes, int(labels.min()), int(labels.max())
    if 0 <= lowest and highest < k:
        return
    if lowest < 0:
        found = f'a validation sample has label {lowest}' if one_sample else f"the dataset's labels include {lowest}"
        raise RunError(f'{found}, but class indices start at 0 (0..{k - 1} with num_classes {k}); '
                       'fix the labels in dataset.py')
    if lowest == 1 and highest == k and not one_sample:
        raise RunError(f"the dataset's labels run 1..{k}, but class indices start at 0; subtract 1 from each label "
                       f'in dataset.py (or pass --num_classes {k + 1} if class 0 exists)')
    found = f'a validation sample has label {highest}' if one_sample else f"the dataset's labels go up to {highest}"
    enough = f"{highest + 1}{' or more' if one_sample else ''}"  # one sample's label says little of the others
    raise RunError(f'{found}, but num_classes is {k} (class indices 0..{k - 1}); pass --num_classes {enough}, '
                   'or fix the labels in dataset.py')


CLASS_WEIGHTS = ('none', 'balanced')


def balanced_class_weights(train_loader, num_classes):
    """Each class's weight n / (k * n_c), for the training split's n samples in k classes, n_c of them in class c
    (scikit-learn's 'balanced'): every class adds as much to the loss, however few its samples, and the weights
    average 1 over the training samples, so the loss keeps its scale. A class with no training sample gets 1.
    The labels come from the dataset's `targets` (a tensor or a list), or else from reading every training sample
    once, by the loader's number of workers."""
    train_set = train_loader.dataset
    targets = training_targets(train_set, train_loader.collate_fn, most=len(train_set),
                               num_workers=train_loader.num_workers)
    targets = targets.flatten().long()
    check_labels(targets, num_classes)  # read from the samples (a dataset without `targets`), each is checked after all
    counts = torch.bincount(targets, minlength=num_classes).double()
    present = counts > 0
    weights = torch.ones(num_classes, dtype=torch.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.float()


def class_weights_text(weights, classes=None):
    """'cat: 0.625, dog: 2.5' (or '0: 0.625, 1: 2.5' for integer labels), for note.log."""
    names = list(classes or []) + [str(i) for i in range(len(classes or []), len(weights))]
    return ', '.join(f'{name}: {weight:.4g}' for name, weight in zip(names, weights.tolist()))


class ClassWeightedCrossEntropy(torch.nn.Module):
    """Cross-entropy with a weight per class, averaged over the samples. nn.CrossEntropyLoss(weight=...) divides
    by the batch's sum of weights instead, so a batch's loss would depend on which classes it happens to hold,
    and micro-batches (grad_accum_steps) and DDP's ranks would not add up to their whole batch."""

    def __init__(self, weight):
        super().__init__()
        self.register_buffer('weight', weight)

    def forward(self, output, target):
        return (torch.nn.functional.cross_entropy(output, target, reduction='none') * self.weight[target]).mean()


{% endif -%}
def inputs_sha256(inputs):
    """A hash of in-memory inputs, a tensor or a list of tensors (variable-length sequences): each one's
    dtype, shape and values, read from its memory in place (no copy, no NumPy). None for anything else."""
    tensors = [inputs] if isinstance(inputs, torch.Tensor) else inputs
    if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f'{tensor.dtype} {tuple(tensor.shape)}'.encode())
        hash_memory(digest, tensor)
    return digest.hexdigest()[:16]


def hash_memory(digest, tensor):
    """Add a tensor's bytes to a hashlib digest, read in place (a contiguous CPU tensor is not copied);
    hashlib lets go of the GIL as it hashes them."""
    tensor = tensor.detach().cpu().contiguous()  # held while its memory is read
    digest.update((ctypes.c_char * (tensor.numel() * tensor.element_size())).from_address(tensor.data_ptr()))


def data_fingerprint(train_set, valid_set):
    """What a checkpoint records of its data: the split's sizes and a hash of the samples' ids (file paths;
    row numbers add nothing to the sizes) and labels (`targets`, a tensor or a list), so that resume notices
    samples added, removed, renamed or relabelled since; and a hash of the inputs when the dataset holds them in
    memory as `inputs`, a tensor or a list of them (CSV, synthetic), so that an edited value is noticed too.
    Files are not read for it: that would mean reading every file at each start."""
    return {**samples_fingerprint(train_set, valid_set),
            'inputs_sha256': inputs_sha256(getattr(_dataset_behind(train_set), 'inputs', None))}


def samples_fingerprint(train_set, valid_set):
    """data_fingerprint() but for the inputs' hash: the sizes, and the hash of the ids and labels."""
    dataset = _dataset_behind(train_set)
    digest = hashlib.sha256()
    ids, targets = getattr(dataset, 'ids', None), getattr(dataset, 'targets', None)
    if not isinstance(targets, torch.Tensor):  # a tensor is hashed as it is, as checkpoints saved before hashed it
        targets = dataset_targets(dataset)
    if ids is not None and not isinstance(ids, range):
        digest.update('\n'.join(map(str, ids)).encode())
    if targets is not None:  # as little-endian float64 or int64, the bytes struct.pack gave checkpoints saved before
        wide = targets.flatten().to(torch.float64 if targets.is_floating_point() else torch.int64)
        if sys.byteorder == 'little':  # read in place: 1M labels hash in about 2 ms (struct.pack: 0.1 s)
            hash_memory(digest, wide)
        else:
            digest.update(struct.pack(f"<{wide.numel()}{'d' if wide.is_floating_point() else 'q'}", *wide.tolist()))
    known = ids is not None or targets is not None
    return {'train': len(train_set), 'valid': len(valid_set),
            'samples_sha256': digest.hexdigest()[:16] if known else None}


class DataFingerprint:
    """data_fingerprint() for train(), whose first batch need not wait for it: the inputs held in memory (seconds
    for gigabytes) are hashed on a thread while training starts. value() waits for that hash (a checkpoint's save)
    and raises what the hash raised."""

    def __init__(self, train_set, valid_set):
        self.samples = samples_fingerprint(train_set, valid_set)
        self.inputs_hash = concurrent.futures.Future()
        inputs = getattr(_dataset_behind(train_set), 'inputs', None)
        if inputs is None:  # files: nothing to hash
            self.inputs_hash.set_result(None)
        else:
            threading.Thread(target=self._hash, args=(inputs,), name='data fingerprint', daemon=True).start()

    def _hash(self, inputs):
        try:
            self.inputs_hash.set_result(inputs_sha256(inputs))
        except BaseException as err:
            self.inputs_hash.set_exception(err)

    def value(self):
        return {**self.samples, 'inputs_sha256': self.inputs_hash.result()}


def classes_of(train_set):
    """The label names of the dataset behind a split (None for integer labels and regression)."""
    return getattr(_dataset_behind(train_set), 'classes', None)


def feature_columns_of(train_set):
    """The feature column names of the dataset behind a split, in the model's input order (None where the
    data has none: every reader here but the CSV one)."""
    return getattr(_dataset_behind(train_set), 'feature_columns', None)


def data_warnings(train_set):
    """The warning lines that a dataset, or the one behind a split, lists in its `warnings` (none where it has no
    such list): data that reads, but probably not as meant."""
    return list(getattr(_dataset_behind(train_set), 'warnings', None) or [])


def check_feature_order(trained, train_set, path):
    """--init_from: a feature column that the checkpoint's data and this data both have must be the same input
    to the model (its weights, and the feature scaling it keeps, are per input); other columns may differ."""
    inputs = {name: i for i, name in enumerate(trained or [])}
    moved = next(((name, i) for i, name in enumerate(feature_columns_of(train_set) or [])
                  if inputs.get(name, i) != i), None)
    if moved:
        name, i = moved
        raise RunError(f"--init_from '{path}' was trained with feature column {name!r} as input {inputs[name] + 1}, "
                       f'but it is input {i + 1} here (the feature columns are in another order); order them as in '
                       "that run's data")


OTHER_INPUTS = 'the same samples, but other input values'


def check_same_data(checkpoint, train_set, valid_set, path):
    """Refuse to resume on data that changed since the checkpoint: the split, and the labels, would differ."""
    saved = checkpoint.get('data')
    if saved is None:  # written before checkpoints recorded their data
        return
    now = data_fingerprint(train_set, valid_set)
    changes = [f'{part} samples {saved[part]} -> {now[part]}' for part in ('train', 'valid')
               if saved[part] != now[part]]
    if not changes and saved['samples_sha256'] not in (None, now['samples_sha256']):  # None: not known when saved
        changes.append('as many samples, but other files or labels')
    elif not changes and saved.get('inputs_sha256', now['inputs_sha256']) != now['inputs_sha256']:  # absent: older
        changes.append(OTHER_INPUTS)
    old, new = checkpoint.get('classes') or [], classes_of(train_set) or []  # None: integer labels
    if old != new:
        changes.append(f'class names {len(old)} -> {len(new)}' if len(old) != len(new) else 'other class names')
    if changes:
        why = '' if changes == [OTHER_INPUTS] else ', so the split and the labels would differ'
        raise RunError(f"the data changed since '{path}' was saved ({'; '.join(changes)}){why}; resume with the data "
                       f"the run started with, or start a new run from these weights with --init_from '{path}'")


def load_model_state(model, state_dict, path, keep_resized=False, fix='use the model.py it was trained with'):
    """Load the weights; with `keep_resized`, tensors whose shape differs keep the model's own (fresh)
    values instead. Returns the names of those tensors. A state dict that does not fit is an error that ends
    with `fix`."""
    own, resized = model.state_dict(), []
{%- if scales_data %}
    state_dict = with_unscaled_buffers(own, state_dict)
{%- endif %}
    if keep_resized:
        resized = reshaped_keys(own, state_dict)
        state_dict = {**state_dict, **{key: own[key] for key in resized}}
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        why = state_mismatch_text(own, state_dict) or first_line(err).rstrip(':.')
        raise RunError(f"checkpoint '{path}' does not fit this model ({why}); it was saved from another architecture "
                       f'or size: {fix}') from None
    return resized
{%- if scales_data %}


def with_unscaled_buffers(own, state_dict):
    """`state_dict` with the scaling buffers that a checkpoint saved before model.py had them lacks, at mean 0 and
    std 1 (the model's `own` state dict gives their shapes): that part of the data trained unscaled."""
    unscaled = [f'{name}_{stat}' for name in ('feature', 'target') for stat in ('mean', 'std')
                if f'{name}_mean' in own and f'{name}_mean' not in state_dict and f'{name}_std' not in state_dict]
    return {**state_dict, **{key: (torch.zeros_like if key.endswith('_mean') else torch.ones_like)(own[key])
                             for key in unscaled}}
{%- endif %}


def reshaped_keys(own, saved):
    """The names of the saved tensors that the model also has, in another shape."""
    return [key for key, value in saved.items() if key in own and getattr(value, 'shape', None) != own[key].shape]


def state_mismatch_text(own, saved, shown=3):
    """Why a checkpoint's state dict does not load into a model's, in one line: the model's tensors it lacks, its
    tensors the model lacks, and those of another shape ('' if none of these)."""
    lacking = [key for key in own if key not in saved]
    extra = [key for key in saved if key not in own]
    reshaped = reshaped_keys(own, saved)
    parts = [f'{what}: {names_text(keys, shown)}' for what, keys in (('not in it', lacking),
                                                                      ('not in this model', extra)) if keys]
    if reshaped:
        first = reshaped[0]
        parts.append(f'another shape: {names_text(reshaped, shown)} ({first!r}: '
                     f'{list(getattr(saved[first], "shape", []))} in it, {list(own[first].shape)} here)')
    return '; '.join(parts)


def another_rank_failed(err):
    """Whether an error under DDP only says that another rank failed: gloo's "Connection closed by peer" in a
    collective, a torch.distributed error. That rank names its own cause (log_rank_error)."""
    return is_distributed() and (isinstance(err, dist.DistError) or
                                 re.search(r'gloo|NCCL|(closed|reset) by peer', str(err)) is not None)


def log_rank_error(err, rank, epoch, config, resume_cmd):
    """Under DDP, an error on a rank other than 0, which writes no logs: rank 0 then fails in a collective
    ("Connection closed by peer"), so this rank keeps its own error in the run's traceback.txt and a line in
    train.log, with its fix (error_fix: out of memory names the smaller batches) and how to go on (`resume_cmd`,
    None where nothing was saved). The line is one write in append mode, as rank 0's own lines, so that
    neither splits the other's; nothing is written where the folder is not (on another machine). Nothing either
    for an error that only says another rank failed (when rank 0 failed first): that one names its own cause."""
    if another_rank_failed(err):
        return
    kept = write_traceback(err, config['loggers_dir'], rank).removeprefix('; ')
    then = f'resume with: {resume_cmd}' if resume_cmd else 'start the run again'
    fix = error_fix(err, config, resume_cmd) or f'{type(err).__name__}: {first_line(err)}; fix the cause, then {then}'
    line = f"error on rank {rank} at epoch {epoch + 1}{f' ({kept})' if kept else ''}: {fix}"
    path = os.path.join(config['loggers_dir'], 'train.log')
    if os.path.isfile(path):
        with contextlib.suppress(OSError), open(path, 'ab') as f:
            f.write(escaped(f"{time.strftime('%Y-%m-%d %H:%M:%S')} | {line}\n").encode('utf-8'))


def dated_header(rank=0):
    """traceback.txt's line above an error or a stall's stacks: the time, and a rank other than 0 (runfiles'
    DATED_HEADER reads it)."""
    return time.strftime('%Y-%m-%d %H:%M:%S') + (f' rank {rank}' if rank else '')


def write_traceback(err, folder, rank=0):
    """Keep the error's whole traceback in folder/traceback.txt, where a failed or interrupted run shows one line of
    it (appended, after the time: a resumed run may stop so again; on a line of its own after one cut short by a
    crash). Under DDP a rank other than 0 names itself after the time. Returns the clause that says where it is
    ('' if it could not be written: the run is stopping anyway; or the folder is on another machine)."""
    path = os.path.join(folder, TRACEBACK_FILE)
    text = f"{dated_header(rank)}\n{''.join(traceback.format_exception(err))}\n"
    try:
        with open(path, 'a+b') as f:  # backslashreplace: a file name's undecodable bytes (surrogates) are no new error
            f.write(('\n' * cut_short(f) + text).encode('utf-8', 'backslashreplace'))
    except OSError:
        return ''
    return f'; the whole error in {path}'


# -----------------------------------------------------------------------------
# metric and running sums (the metric's name, METRIC_NAME, is in runfiles.py)
{%- if cookiecutter.task == 'classification' %}


def metric_per_sample(output, target):
    """1.0 where the predicted class is right: its mean is the accuracy.

    max's indices follow argmax's rule (the first of equal maxima) and cost a third as much on the CPU."""
    return (output.max(dim=1).indices == target).float()
{%- else %}


def metric_per_sample(output, target):
    """Absolute error per sample: its mean is the mean absolute error."""
    return (output.float() - target).abs().mean(dim=1)
{%- endif %}

{%- if scales_data %}


def fit_scaling(model, train_set, collate_fn, fit=True, num_workers=0):
    """With `fit`, set the model's scaling (model.py's fit_*_scaling methods) from the training split, read by
    `num_workers` DataLoader workers; `fit` may instead be the names of the model's tensors that start fresh
    (--init_partial), to fit only a part whose buffers are among them. Returns a warning when the model (your own)
    lacks such a method: that part of the data then trains in its own units."""
    def fits(part):
        return fit if isinstance(fit, bool) else f'{part}_mean' in fit or f'{part}_std' in fit

    missing = []
{%- if cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] %}
{%- set values, what = {'csv': ('inputs', 'features'), 'sequence': ('frames', 'features'), 'image_folder': ('images', 'image channels')}[cookiecutter.dataset] %}
    if not callable(getattr(model, 'fit_feature_scaling', None)):
        missing.append(('fit_feature_scaling({{ values }})', '{{ what }}'))
{%- if cookiecutter.dataset == 'csv' %}
    elif fits('feature'):  # every training sample in one batch (the CSV reader holds them); no draw from the run's RNG
        loader = DataLoader(train_set, batch_size=len(train_set), collate_fn=collate_fn, generator=torch.Generator())
        inputs, _ = next(iter(loader))
        model.fit_feature_scaling(inputs)
{%- else %}
    elif fits('feature'):
        model.fit_feature_scaling(training_{{ values }}(train_set, collate_fn, num_workers=num_workers))
{%- endif %}
{%- endif %}
{%- if cookiecutter.task == 'regression' %}
    if not callable(getattr(model, 'fit_target_scaling', None)):
        missing.append(('fit_target_scaling(targets)', 'targets'))
    elif fits('target'):
        model.fit_target_scaling(training_targets(train_set, collate_fn, num_workers=num_workers))
{%- endif %}
    if not missing:
        return None
    methods, data = ' or '.join(name for name, _ in missing), ' and '.join(what for _, what in missing)
    them = 'it and the buffers it fits' if len(missing) == 1 else 'them and the buffers they fit'
    return (f'warning: {type(model).__name__} has no {methods}, so it trains on unscaled {data}, each in its own '
            f'units; copy {them} from model.py to standardize them')
{%- endif %}


def sampled_batches(train_set, collate_fn, most, num_workers=0):
    """Batches of up to `most` training samples drawn at random (all of them, when there are fewer), read by
    `num_workers` workers, without a draw from the run's RNG: a mean and a std for scaling need not be exact, and
    reading every file at each start would be slow."""
    picked = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))[:most].tolist()
    return StopSafeDataLoader(Subset(train_set, picked), batch_size=64, collate_fn=collate_fn, num_workers=num_workers,
                              generator=torch.Generator())
{%- if cookiecutter.dataset == 'sequence' %}


def training_frames(train_set, collate_fn, most=1024, num_workers=0):
    """The real frames (no padding) of up to `most` training sequences, as one (frames, num_features) tensor."""
    batches = sampled_batches(train_set, collate_fn, most, num_workers)
    return torch.cat([frames[~padding_mask] for frames, padding_mask, _ in batches])
{%- endif %}
{%- if cookiecutter.dataset == 'image_folder' %}


def training_images(train_set, collate_fn, most=512, num_workers=0):
    """Up to `most` training images drawn at random, as one (n, channels, height, width) tensor; of images larger
    than 32x32, a grid of about 32x32 of their pixels (a channel's mean and std need no more, and memory stays
    small)."""
    batches = [images for images, _ in sampled_batches(train_set, collate_fn, most, num_workers)]
    stride = max(1, batches[0].shape[-1] // 32)
    return torch.cat([images[..., ::stride, ::stride] for images in batches])
{%- endif %}


def training_targets(train_set, collate_fn, most=4096, num_workers=0):
    """The training split's targets, from the dataset's `targets` when it has them (no input is loaded);
    else from up to `most` of its samples (sampled_batches)."""
    targets = split_targets(train_set)
    if targets is not None:
        return targets
    return torch.cat([batch[-1] for batch in sampled_batches(train_set, collate_fn, most, num_workers)])


def split_targets(split):
    """A split's targets from its dataset's `targets` (dataset_targets), without loading any input (the split is
    random_split's Subset of the dataset, or the dataset itself); None when the dataset has no such targets."""
    dataset = split.dataset if isinstance(split, Subset) else split
    targets = dataset_targets(dataset)
    return targets if targets is None or dataset is split else targets[split.indices]


def dataset_targets(dataset):
    """The dataset's `targets`, one per sample, as a tensor: a tensor, or a list or NumPy array of numbers (as
    torchvision's CIFAR and ImageFolder keep their labels); None for anything else (no `targets`, or strings)."""
    targets = getattr(dataset, 'targets', None)
    if isinstance(targets, (list, tuple)) or hasattr(targets, '__array__') and not isinstance(targets, torch.Tensor):
        try:
            targets = torch.as_tensor(targets)
        except (TypeError, ValueError, RuntimeError):  # strings, or None, in the list
            return None
    if not isinstance(targets, torch.Tensor) or targets.dim() == 0 or len(targets) != len(dataset):
        return None
    return targets


def batched_as(target):
    """'(shape) dtype' of a batch's target, or its type's name when it is no tensor: what a one-line error shows."""
    return f'{tuple(target.shape)} {target.dtype}' if isinstance(target, torch.Tensor) else type(target).__name__


def allocation_failure(err):
    """What an allocation that failed says, in a few words (CUDA's out of memory, the CPU allocator's or Python's
    MemoryError), or None for another error."""
    bytes_asked = re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", str(err))
    if bytes_asked:  # the CPU allocator's own words are long: their number, in GB
        return f'an allocation of {int(bytes_asked[1]) / 1e9:,.1f} GB failed'
    if isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and 'out of memory' in str(err)):
        return first_line(err)  # torch.cuda.OutOfMemoryError is a RuntimeError
    return None


@contextlib.contextmanager
def model_memory_errors(size_keys=(), fix=None):
    """An allocation that fails while the model is built (in host memory) and moved to its device is a one-line
    error naming the sizes to make smaller (`size_keys`: model.py's SHAPE_KEYS), or `fix`, instead of the
    allocator's traceback: a typo'd width asks for terabytes. The allocator's words say which memory ran out."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        failed = allocation_failure(err)
        if failed is None:
            raise
        fix = fix or f"pass smaller sizes among {', '.join(size_keys)}, or build a smaller model in model.py"
        raise RunError(f'the model does not fit in memory ({failed}); {fix}') from None


def out_of_memory_fix(err, config, command):
    """For an allocation that failed mid-run, why and what to run: `command` (the resume, or None where there is
    nothing to resume) with smaller batches and as many more of them per optimizer step, so that each step sees the
    same samples (batch_size divided by its smallest factor); None for another error."""
    failed = allocation_failure(err)
    if failed is None:
        return None
    batch_size = config['batch_size']
    if batch_size == 1:
        return f'out of memory at batch_size 1 ({failed}); build a smaller model in model.py'
    factor = next(f for f in range(2, batch_size + 1) if batch_size % f == 0)
    options = f"--batch_size {batch_size // factor} --grad_accum_steps {config['grad_accum_steps'] * factor}"
    how = f'{command} {options}' if command else f'start a new run with {options}'
    return f'out of memory ({failed}); in smaller batches, as many samples per optimizer step: {how}'


def error_fix(err, config, command):
    """What train.log names in place of "fix the cause" after an error mid-run that it knows, with `command` (the
    resume, or None where there is nothing to resume from): smaller batches for out of memory{{ '' if cookiecutter.task == 'regression' else ", and the labels
    for a class index outside num_classes (a dataset without `targets`, which step 3.6 cannot check)" }}; else None."""
{%- if cookiecutter.task == 'classification' %}
    label = (re.fullmatch(r'Target (-?\d+) is out of bounds\.?', first_line(err)) if isinstance(err, IndexError)
             else None)
    if label:  # the CPU's cross-entropy; CUDA's is a device-side assert that names no label
        k, value = config['num_classes'], int(label[1])
        new_run = f' (or start a new run with --num_classes {value + 1})' if value >= k else ''
        then = f'then resume with: {command}' if command else 'then start the run again'
        return (f"a sample has label {value}, outside the classes 0..{k - 1} (the loss's {first_line(err)!r}): fix the "
                f'labels in dataset.py{new_run}, {then}; a dataset with `targets` has them all checked at the start')
{%- endif %}
    return out_of_memory_fix(err, config, command)


def check_compile(device):
    """--compile true: compile and run a one-line function first, so that a machine that lacks what torch.compile
    needs (a C++ compiler for the CPU, a C compiler for CUDA's Triton; a Python newer than this torch's compiler)
    is a one-line error before the run starts, not a traceback at its first step. A second or two."""
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.ones(2, device=device))
    except Exception as err:
        while getattr(err, 'inner_exception', None) or err.__cause__:  # torch wraps the compiler's own error
            err = getattr(err, 'inner_exception', None) or err.__cause__
        cause = f'{type(err).__name__}: {first_line(err)}'
        fix = ('install a C++ compiler (g++ or clang), or pass --compile false' if 'compiler' in cause.lower() else
               'pass --compile false')
        raise RunError(f'--compile true: torch.compile fails on this machine ({cause}); {fix}') from None


def check_one_sample(model, loader, device, config, train_samples):
    """Run one sample through the model before training; return the names of the trainable parameters
    that its output does not depend on in training mode (they never train, and DDP needs to be told of them).
    `train_samples`: the training samples this process takes per epoch, in batches of config['batch_size'].

    An output or a target the loss does not expect can train without an error, but wrongly: MSELoss
    broadcasts a (batch,) output or target against the other's (batch, 1), and cross-entropy takes a
    class too many without a word. A model with nothing to train fails only at the first backward, and
    one that cannot train on a batch of one sample (BatchNorm of one value per channel) at the end of the
    first epoch whose last batch holds one, and again at every resume."""
    sample = loader.dataset[0]
    if not isinstance(sample, (tuple, list)) or len(sample) < 2:  # a dict, say (Hugging Face's datasets)
        raise RunError(f"the dataset's samples are {type(sample).__name__}, but train() needs a tuple "
                       '(inputs..., target) to call model(*inputs); fix __getitem__ in dataset.py')
    batch = loader.collate_fn([sample])
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise RunError(f"the dataset's samples batch as {type(batch).__name__}, but train() needs a tuple "
                       '(inputs..., target) to call model(*inputs); fix collate_fn in dataset.py')
    *inputs, target = batch
    not_tensors = [type(x).__name__ for x in inputs if not isinstance(x, torch.Tensor)]
    if not_tensors:  # a list of numbers, say: the default collate turns it into a list of tensors, one per feature
        raise RunError(f"the dataset's inputs batch as {', '.join(not_tensors)}, but model(*inputs) needs tensors; "
                       'return each input as a tensor (torch.as_tensor(x)) from __getitem__ in dataset.py')
    training = model.training
    model.eval()  # no dropout: the check draws no random numbers
    try:
        output = model(*[x.to(device) for x in inputs])
    except RuntimeError as err:  # float64 inputs (NumPy's default) into float32 weights, or an image's uint8 bytes
        weights = {p.dtype for p in model.parameters() if p.is_floating_point()}
        odd = sorted({str(x.dtype) for x in inputs
                      if x.is_floating_point() and x.dtype not in weights or x.dtype == torch.uint8})
        if len(weights) != 1 or not odd:
            raise
        weight = str(next(iter(weights)))
        scaled = ' (bytes 0..255 of an image: x.float() / 255)' if str(torch.uint8) in odd else ''
        raise RunError(f"the model fails on the dataset's {', '.join(odd)} inputs ({first_line(err)}): its weights "
                       f'are {weight}; return {weight} inputs{scaled} from __getitem__ in dataset.py') from err
    finally:
        model.train(training)
    shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
{%- if cookiecutter.task == 'classification' %}
    expected, meaning = (1, config['num_classes']), '(batch, num_classes) logits'
{%- else %}
    expected, meaning = (1, 1), '(batch, 1) predictions'
{%- endif %}
    if shape != expected:
        raise RunError(f'the model returns {shape} for one sample, but the loss needs {expected}: {meaning}; '
                       'fix its forward in model.py')
    found = batched_as(target)
{%- if cookiecutter.task == 'classification' %}
    if found != f'(1,) {torch.long}':
        raise RunError(f"the dataset's target for one sample batches as {found}, but the loss needs (1,) "
                       f'{torch.long}: a class index per sample; fix __getitem__ in dataset.py')
    check_labels(target, config['num_classes'], one_sample=True)  # a dataset without `targets`: one sample at least
{%- else %}
    if found != f'(1, 1) {output.dtype}':  # the model's dtype: MSELoss cannot mix float32 and float64
        raise RunError(f"the dataset's target for one sample batches as {found}, but the loss needs (1, 1) "
                       f'{output.dtype}: one number per sample, shaped (1,); fix __getitem__ in dataset.py')
{%- endif %}
    unused = parameters_without_gradient(model, loader.collate_fn([sample, sample]), device, expected)
    if train_samples == 1 or config['batch_size'] == 1 or train_samples % config['batch_size'] == 1:
        check_batch_of_one(model, loader.collate_fn([sample]), device, train_samples, config['batch_size'])
    return unused


@contextlib.contextmanager
def trial_in_training_mode(model):
    """model.train() for a check's forward that leaves no trace: the mode, the RNGs (dropout) and the buffers
    (BatchNorm's running statistics) are put back afterwards."""
    buffers = [(buffer, buffer.clone()) for buffer in model.buffers()]
    rng_state, training = get_rng_state(), model.training
    model.train()
    try:
        yield
    finally:
        model.train(training)
        set_rng_state(rng_state)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


def parameters_without_gradient(model, batch, device, expected):
    """The trainable parameters that a training-mode forward's output does not depend on, by name.

    Training mode, since that is what DDP sees: a layer used only under `if self.training` (an auxiliary
    head) trains, and one used only in eval mode does not. The forward leaves no trace (trial_in_training_mode),
    and no `.grad` is touched. The batch holds one sample twice, since BatchNorm refuses a batch of one in
    training mode (check_batch_of_one tries one where training will take one)."""
    *inputs, _ = batch
    with trial_in_training_mode(model):
        output = model(*[x.to(device) for x in inputs])
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        if shape != (len(inputs[0]), *expected[1:]):
            raise RunError(f'the model returns {shape} for {len(inputs[0])} samples in training mode, but the loss '
                           f'needs (batch, {expected[1]}) as in eval mode; fix its forward in model.py')
        if not output.requires_grad:
            raise RunError("the model's output needs no gradient (no parameter has requires_grad, or forward detaches "
                           'it), so training would change nothing; unfreeze some parameters in model.py')
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(output.float().sum(), [p for _, p in trainable], allow_unused=True)
    return [name for (name, _), grad in zip(trainable, grads) if grad is None]


def check_batch_of_one(model, batch, device, train_samples, batch_size):
    """Raise RunError, naming batch sizes that avoid it, when the model fails a training-mode forward of one
    sample (`batch`), which training will take: one process's `train_samples` in batches of `batch_size`
    leave one over, or are one each. The check's forward of two samples passed, so the one is the cause."""
    *inputs, _ = batch
    try:
        with torch.no_grad(), trial_in_training_mode(model):
            model(*[x.to(device) for x in inputs])
    except Exception as err:
        per_process = ' per process' if is_distributed() else ''
        if train_samples == 1:
            where, fix = f'the training split holds one sample{per_process}', 'train on more samples'
        else:
            where = ('every training batch holds one (batch_size 1)' if batch_size == 1 else "each epoch's last "
                     f'training batch would hold one ({train_samples} training samples{per_process} in batches of '
                     f'{batch_size})')
            below = [size for size in range(batch_size - 1, 1, -1) if train_samples % size != 1][:1]
            above = next(size for size in itertools.count(batch_size + 1) if train_samples % size != 1)
            fix = f"use --batch_size {' or '.join(map(str, below + [above]))}"
        raise RunError(f'the model cannot train on a batch of one sample ({first_line(err)}), and {where}; {fix}, '
                       'or make model.py train on a batch of one') from err


def unused_parameters_warning(names, distributed):
    """A warning for trainable parameters that get no gradient: a layer built but not called in forward, say."""
    shown = ', '.join(names[:4]) + (f' and {len(names) - 4} more' if len(names) > 4 else '')
    ddp = '; DDP looks for unused parameters at every step (find_unused_parameters), which costs time' * distributed
    return (f'warning: the model output does not depend on {shown} (in training mode), so they do not train{ddp}; '
            'use them in forward, or freeze them with requires_grad_(False) in model.py')


class DataWait:
    """Iterates a DataLoader and sums the seconds spent waiting for its batches (metrics.csv's data_seconds): with
    num_workers 0, reading them in this process; with workers, the time they fell behind. Two clock reads a batch.

    The first batch's wait, which holds the DataLoader workers' start, is also kept on its own (`first_wait`), with
    the time that batch came (`first_batch_at`): the data-wait hint leaves the start out (DataWaitHint)."""

    def __init__(self, loader, seconds=0.0):
        self.loader, self.seconds = loader, seconds
        self.carried = seconds  # an epoch resumed mid-way: its earlier start's wait
        self.first_wait, self.first_batch_at = 0.0, None

    def __len__(self):  # a progress bar's total
        return len(self.loader)

    @property
    def waited_after_first(self):
        """Seconds waited for the batches after the first one, in this start."""
        return self.seconds - self.carried - self.first_wait

    def __iter__(self):
        batches, clock = iter(self.loader), time.perf_counter
        start = clock()
        try:
            batch = next(batches)
        except StopIteration:
            return
        self.first_batch_at = clock()
        self.first_wait = self.first_batch_at - start
        self.seconds += self.first_wait
        yield batch
        while True:
            start = clock()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.seconds += clock() - start
            yield batch


DATA_WAIT_HINT_SHARE = 0.25  # of an epoch spent waiting for batches, above which train.log says what would help
DATA_WAIT_HINT_SECONDS = 60  # into an epoch's training, the hint looks at the wait so far: a long epoch need not end
DATA_WAIT_HINT_MIN_SECONDS = 1  # a shorter epoch, or part of one, gets no hint: its wait is not worth a line


class DataWaitHint:
    """train.log's data-wait hint (data_wait_hint), once a start: during an epoch's training, at each read from
    DATA_WAIT_HINT_SECONDS after its first batch on (an epoch of hours is told in its first minutes), and at each
    epoch's end. The time is counted from each loop's first batch: that batch's wait holds the DataLoader workers'
    start, which more workers would not shorten."""

    def __init__(self, num_workers, logger):
        self.num_workers, self.logger, self.given = num_workers, logger, False

    def during(self, epoch, train_wait):
        """At a read of the training loop. Each rank looks at its own wait (no collective; rank 0 logs)."""
        if self.given or train_wait.first_batch_at is None:
            return
        seconds = time.perf_counter() - train_wait.first_batch_at
        if seconds >= DATA_WAIT_HINT_SECONDS:
            self._give(data_wait_hint(epoch, train_wait.waited_after_first, seconds, self.num_workers, so_far=True))

    def after_epoch(self, epoch, waited, train_wait, valid_wait):
        """At an epoch's end; `waited` is both loops' wait after their first batch (the ranks' largest)."""
        if self.given or train_wait.first_batch_at is None:  # no training batch: resumed in validation
            return
        seconds = time.perf_counter() - train_wait.first_batch_at - valid_wait.first_wait
        self._give(data_wait_hint(epoch, waited, seconds, self.num_workers))

    def _give(self, hint):
        if hint:
            self.logger.info(hint)
            self.given = True


# where the cgroup hierarchies are mounted (a container sees its own cgroup as their root)
CGROUP_ROOT = '/sys/fs/cgroup'
OWN_CGROUPS = '/proc/self/cgroup'  # this process's cgroup in each hierarchy, as a path under the root
V1_CPU_FOLDERS = ('cpu', 'cpu,cpuacct')  # cgroup v1's cpu controller, under CGROUP_ROOT


def cpu_quota_cores():
    """The whole CPUs a CPU quota allows this process (`docker --cpus`, a Kubernetes CPU limit, a systemd slice's
    CPUQuota), rounded down but at least 1; None without a quota, or where none can be read. A quota on a cgroup
    holds every cgroup below it: the smallest of the process's own cgroup's and those above it counts (cgroup v2's
    `cpu.max`; v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us`)."""
    quotas = [quota for v1 in (None, *V1_CPU_FOLDERS) for folder in cgroup_folders(v1)
              if (quota := cpu_quota(folder, v1)) is not None]
    return max(1, math.floor(min(quotas))) if quotas else None


def cgroup_folders(v1=None):
    """The folders under CGROUP_ROOT of this process's cgroup and of each one above it that exist, its own first:
    in cgroup v2's hierarchy, or in v1's folder `v1` (its cpu controller). A path that a cgroup namespace shows
    from outside its root ('/..'), or one the mount does not hold (a container that sees its own cgroup as the
    root), leaves the root alone."""
    root = os.path.join(CGROUP_ROOT, v1) if v1 else CGROUP_ROOT
    parts = [part for part in own_cgroup_path(v1).split('/') if part]
    if '..' in parts or '.' in parts:
        parts = []
    return [folder for folder in (os.path.join(root, *parts[:n]) for n in range(len(parts), -1, -1))
            if os.path.isdir(folder)]


def own_cgroup_path(v1=None):
    """This process's cgroup path ('/system.slice/job.scope') in v2's hierarchy, or in v1's that has the cpu
    controller; '/' where /proc/self/cgroup does not say (macOS, Windows)."""
    try:
        with open(OWN_CGROUPS) as file:
            lines = file.read().splitlines()
    except OSError:
        return '/'
    for line in lines:  # 'hierarchy-id:controllers:path'; v2's: '0::path'
        controllers, _, path = line.partition(':')[2].partition(':')
        if ('cpu' in controllers.split(',')) if v1 else controllers == '':
            return path or '/'
    return '/'


def cpu_quota(folder, v1=None):
    """The CPUs (quota over period) of one cgroup's quota; None without one, or where it cannot be read."""
    try:
        if v1 is None:
            with open(os.path.join(folder, 'cpu.max')) as file:
                quota, period = file.read().split()[:2]  # '<quota> <period>', or 'max <period>'
        else:
            with open(os.path.join(folder, 'cpu.cfs_quota_us')) as file, \
                    open(os.path.join(folder, 'cpu.cfs_period_us')) as period_file:
                quota, period = file.read().strip(), period_file.read().strip()
        return None if quota in ('max', '-1') else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def usable_cores():
    """The CPU cores this process may run on: its affinity (a batch job's cpuset, not the whole machine's where the
    OS tells), and no more than a CPU quota allows (cpu_quota_cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    quota = cpu_quota_cores()
    return cores if quota is None else min(cores, quota)


def data_wait_hint(epoch, waited, seconds, num_workers, so_far=False):
    """A train.log line for an epoch that waited `waited` of its `seconds` for its batches, more than
    DATA_WAIT_HINT_SHARE, naming what would help (more DataLoader workers while this process's share of the cores
    has room for them, else a cheaper __getitem__); None otherwise, and under DATA_WAIT_HINT_MIN_SECONDS.
    `so_far`: the epoch is still training."""
    if seconds < DATA_WAIT_HINT_MIN_SECONDS or waited / seconds <= DATA_WAIT_HINT_SHARE:
        return None
    cores = max(1, usable_cores() // int(os.environ.get('LOCAL_WORLD_SIZE', 1)))  # torchrun: shared by its ranks
    said = (f"hint: epoch {epoch} {'has waited' if so_far else 'waited'} for its batches {waited / seconds:.0%} of "
            f"its {'first ' if so_far else ''}{seconds:.1f} s (data_seconds in metrics.csv)")
    cheaper = "make the dataset's __getitem__ cheaper (less decoding or parsing per sample, or cache its results)"
    if cores > 1 and num_workers < min(cores, 4):
        return (f'{said}; --num_workers {min(cores, 4)} (now {num_workers}; {cores} cores for this process) would read '
                f'them while the model trains, or {cheaper}')
    if num_workers == 0:
        return f"{said}; with one core for this process, DataLoader workers would take the training's: {cheaper}"
    return f'{said}; {num_workers} DataLoader workers do not keep up on {cores} cores: {cheaper}'


class EpochMeter:
    """Loss, metric and gradient-norm totals over an epoch, read from the device once per `interval` steps, not
    per step.

    add() only keeps the step's detached loss, output and target, add_grad_norm() the optimizer step's norm.
    flush() computes the metric for all of them with a few batched ops and copies one small tensor to the host:
    the loop's only host-device sync. Each step's metric is summed on its own (a running sum along the step's row),
    and the totals are summed on the host in step order, so they do not depend on when flush() runs: a run resumed
    mid-epoch logs the same numbers as a straight one. Each read calls on_read (StallWatch.on_read: the run moves).
    """

    def __init__(self, interval, totals=EMPTY_TOTALS, on_read=lambda: None):
        self.interval, self.on_read = interval, on_read
        self.pending = []  # (step, loss, output, target) not yet read
        self.grad_norms = []  # one per optimizer step, not yet read
        self.loss_sum, self.metric_sum, self.count, self.grad_norm_sum, self.grad_norm_count = totals

    def add(self, step, loss, output, target):
        """Keep one batch; return True when `interval` batches wait to be read."""
        self.pending.append((step, loss, output, target))
        return len(self.pending) >= self.interval

    def add_grad_norm(self, norm):
        """Keep an optimizer step's gradient norm (before clipping), as clip_grad_norm_ returns it."""
        self.grad_norms.append(norm)

    def flush(self):
        """Add the pending batches to the totals. Return the first step whose loss was NaN or Inf, else None."""
        self.on_read()
        if not self.pending:
            return None
        steps, losses, outputs, targets = zip(*self.pending)
        sizes = [target.shape[0] for target in targets]
        per_sample = metric_per_sample(torch.cat(outputs), torch.cat(targets))
        per_step, start = [], 0
        for size, run in itertools.groupby(sizes):  # batches of one size (only an epoch's last one is shorter)
            count = len(list(run))
            rows = per_sample[start:start + count * size].view(count, size)
            per_step.append(rows.cumsum(dim=1, dtype=torch.float64)[:, -1])
            start += count * size
        norms = [torch.stack(self.grad_norms)] if self.grad_norms else []
        values = torch.cat([torch.stack(losses), *per_step, *norms]).tolist()  # float64: the losses convert exactly
        bad_step = None
        for step, loss, metric, n in zip(steps, values, values[len(steps):], sizes):
            if bad_step is None and not math.isfinite(loss):
                bad_step = step
            self.loss_sum += loss * n
            self.metric_sum += metric
            self.count += n
        for norm in values[2 * len(steps):]:
            if math.isfinite(norm):  # fp16: GradScaler skips a step whose gradients overflowed; so does the mean
                self.grad_norm_sum += norm
                self.grad_norm_count += 1
        self.pending, self.grad_norms = [], []
        return bad_step

    @property
    def loss(self):
        return self.loss_sum / max(1, self.count)

    @property
    def metric(self):
        return self.metric_sum / max(1, self.count)

    @property
    def grad_norm(self):
        """The mean gradient norm over the epoch's optimizer steps (NaN when none had a finite one)."""
        return self.grad_norm_sum / self.grad_norm_count if self.grad_norm_count else math.nan

    def totals(self):
        return [self.loss_sum, self.metric_sum, self.count, self.grad_norm_sum, self.grad_norm_count]

    def all_reduce(self, device):
        """Sum the totals over all DDP ranks, so that the logs cover every rank's samples. The gradient norm is the
        same on every rank (taken after DDP averaged the gradients), so its mean stays as it was."""
        summed = all_reduce_numbers(self.totals(), device)
        self.loss_sum, self.metric_sum, count, self.grad_norm_sum, grad_norm_count = summed
        self.count, self.grad_norm_count = int(count), int(grad_norm_count)


# -----------------------------------------------------------------------------
# speed settings


AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


class StepTaken:
    """Did the optimizer step since the last call? With fp16, GradScaler skips a step whose gradients hold
    inf or NaN (often the first few). Told by an optimizer hook, so it costs no host-device sync."""

    def __init__(self, optimizer):
        self.taken = False
        optimizer.register_step_post_hook(self._mark)

    def _mark(self, optimizer, args, kwargs):
        self.taken = True

    def __call__(self):
        taken, self.taken = self.taken, False
        return taken


def autocast_for(amp, device):
    """The context for the forward pass: autocast for 'bf16'/'fp16', a no-op for 'none'. Reusable.

    Off CUDA it also turns off nn.Transformer*'s inference fast path, which PyTorch skips under CUDA
    autocast only: under CPU autocast it fails validation on mixed dtypes (pytorch#132613; torch 2.3-2.5)."""
    if amp == 'none':
        return contextlib.nullcontext()
    if device.type != 'cuda':
        torch.backends.mha.set_fastpath_enabled(False)
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def set_determinism(deterministic):
    """True: deterministic algorithms and no cudnn.benchmark (reproducible, slower on GPU).
    False: cudnn.benchmark picks the fastest convolution algorithms (results may vary run to run)."""
    if deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic or torch.are_deterministic_algorithms_enabled():  # the call imports torch._dynamo: ~1 s
        torch.use_deterministic_algorithms(deterministic, warn_only=True)


def to_device(batch, device, memory_format=torch.preserve_format):
    """A batch's tensors on the device (asynchronously from pinned memory); 4-D ones in `memory_format`."""
    if device.type == 'cpu' and memory_format == torch.preserve_format:
        return batch  # already there: skip the per-step calls
    return [x.to(device, non_blocking=True, memory_format=memory_format if x.dim() == 4 else torch.preserve_format)
            for x in batch]


def unwrap(model):
    """The plain module inside torch.compile and DDP wrappers: its state_dict keys have no prefixes."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, '_orig_mod'):
            model = model._orig_mod
        else:
            return model


# -----------------------------------------------------------------------------
# optimizer, learning rate, stopping


def optimizer_groups(model, weight_decay, checkpoint=None):
    """AdamW's parameter groups: weight matrices and kernels (2 or more dimensions) decay, biases and the weights of
    norm layers do not, as in nanoGPT (decay would pull a norm's scale toward 0, against what it learns).

    A checkpoint whose optimizer has one group (saved before format 3) goes on with one group decaying every
    parameter, as it was trained: resume stays exact. Group 0 is the decaying one either way."""
    params = list(model.parameters())
    if checkpoint is not None and len(checkpoint['optimizer']['param_groups']) == 1:
        return [{'params': params, 'weight_decay': weight_decay}]
    return [{'params': [p for p in params if p.ndim >= 2], 'weight_decay': weight_decay},
            {'params': [p for p in params if p.ndim < 2], 'weight_decay': 0.0}]


def warmup_cosine(warmup_steps, total_steps):
    """LR multiplier: linear warmup over warmup_steps, then cosine decay to 0 at total_steps."""

    def multiplier(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return multiplier


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORKSERVER_DESCRIPTORS = 240  # multiprocessing's forkserver hands a new process at most 256, a few of them its own
DESCRIPTORS_KEPT_FREE = 64  # for the workers' queues and the files the run writes, when spawn hands tensors over


_iterators_with_workers = weakref.WeakSet()  # StopSafeDataLoader's, for stop_loader_workers


class StopSafeDataLoader(DataLoader):
    """A DataLoader whose worker processes leave Ctrl-C and SIGTERM to the main process, which saves and stops.

    A terminal's Ctrl-C reaches every process in its group, and SLURM signals every process of a job: a
    worker that the signal ended would turn the clean stop into an error ("DataLoader worker exited
    unexpectedly"), and one that inherited StopRequest's handler would print its message again. Workers
    start with the two signals blocked, since a spawned or forkserver worker (macOS, Windows; Linux from
    Python 3.14) imports torch and unpickles the dataset for seconds before any code of ours runs in it,
    and ignore them from their worker_init_fn on. A signal that comes while they start reaches the main
    process once they have started. A `worker_init_fn` you pass runs after that, as usual. What such a worker
    cannot be handed (a lambda in the dataset, too many separate tensors) is a one-line error that says what to do."""

    def __init__(self, *args, worker_init_fn=None, **kwargs):
        super().__init__(*args, worker_init_fn=functools.partial(_start_worker, worker_init_fn, None, ''),
                         **kwargs)
        self._your_worker_init_fn, self._tensors_counted = worker_init_fn, False

    def __iter__(self):
        if self.num_workers == 0:
            return super().__iter__()
        start_method = (self.multiprocessing_context or multiprocessing).get_start_method()
        if not self._tensors_counted:  # once: the workers of later epochs are handed the same, already shared
            self._check_file_descriptors(start_method)
            self._tensors_counted = True
        stacks_to = worker_stacks_target()
        self.worker_init_fn = functools.partial(_start_worker, self._your_worker_init_fn, stacks_to,
                                                workers_rank_text())
        try:
            with warnings.catch_warnings():  # torch's warning of a pickle error: the error below says more
                warnings.filterwarnings('ignore', message='Got pickle error when attempting to start a worker')
                iterator = self._iterator_with_workers(start_method)
        except Exception as err:
            if _shares_by_descriptor(start_method) and _out_of_file_descriptors(err):
                raise RunError(self._too_many_tensors(start_method)) from None
            unpicklable = None if start_method == 'fork' else self._unpicklable()
            if unpicklable is None:
                raise
            raise RunError(f"{unpicklable}; DataLoader workers started by {start_method} (spawn: macOS's and Windows' "
                           "default; forkserver: Linux's from Python 3.14) get it pickled: in dataset.py use functions "
                           'defined at the top level (not lambdas or functions inside functions) and open files in '
                           '__getitem__, or pass --num_workers 0') from None
        if not hasattr(iterator, 'stacks_to'):  # persistent workers: the iterator (and its workers) of the first epoch
            iterator.stacks_to = stacks_to
        _iterators_with_workers.add(iterator)
        return iterator

    def _check_file_descriptors(self, start_method):
        """Refuse a dataset whose tensors a spawn or forkserver worker could not be handed, before any is shared: on
        Linux each storage goes over as a file descriptor that stays open while the storage lives, and running out
        would leave this process none to write its logs with."""
        if not _shares_by_descriptor(start_method):
            return
        counted = self._storages()
        if counted is None:
            return  # the workers' start fails on it, and __iter__ says why
        if start_method == 'forkserver':
            room = FORKSERVER_DESCRIPTORS
        else:
            room = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - len(os.listdir('/dev/fd')) - DESCRIPTORS_KEPT_FREE
        if counted[1] > room:
            raise RunError(self._too_many_tensors(start_method))

    def _storages(self):
        """(distinct tensor storages, those not yet shared) in the dataset, or None if it cannot be pickled."""
        pickler = _TensorsByReference()
        try:
            pickler.dump(self.dataset)
        except Exception:
            return None
        return len(pickler.storages), pickler.unshared

    def _too_many_tensors(self, start_method):
        """The error for a dataset whose tensors a worker cannot be handed, one file descriptor per storage."""
        counted = self._storages()
        if start_method == 'forkserver':
            limit, fixes = 'about 250 at most', ''
        else:
            limit = f'more than this process may open (ulimit -n {resource.getrlimit(resource.RLIMIT_NOFILE)[0]})'
            fixes = ', raise ulimit -n'
        return (f"the dataset holds {counted[0] if counted else 'too many'} separate tensors, and a DataLoader worker "
                f'started by {start_method} is handed a file descriptor for each, {limit}; keep its samples as views '
                f'of one tensor (torch.cat(samples).split(lengths)) in dataset.py{fixes}, or pass --num_workers 0')

    def _unpicklable(self):
        """Which of a worker's inputs cannot be pickled, and why ('collate_fn cannot be pickled: ...'), or None."""
        for name, value in (('the dataset', self.dataset), ('collate_fn', self.collate_fn),
                            ('worker_init_fn', self.worker_init_fn)):
            try:
                _TensorsByReference().dump(value)
            except Exception as err:
                return f'{name} cannot be pickled: {first_line(err)}'
        return None

    def _iterator_with_workers(self, start_method):
        if not hasattr(signal, 'pthread_sigmask'):  # Windows has no signal masks
            return super().__iter__()
        if start_method != 'fork':
            resource_tracker.ensure_running()  # spawn and forkserver start it; its first start unblocks the signals
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # forked and spawned workers inherit it
        try:
            return super().__iter__()  # starts the workers (the first time only, when they are persistent)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


class _TensorsByReference(multiprocessing.reduction.ForkingPickler):
    """Pickles as a worker's start does, but tensors by reference: it only asks whether the rest can be pickled,
    and counts the distinct storages (a worker is handed one file descriptor for each)."""

    def __init__(self):
        super().__init__(_Discarded())  # a dataset of NumPy arrays pickles them by value: keep no copy
        self.storages, self.unshared = set(), 0

    def persistent_id(self, obj):
        if not isinstance(obj, (torch.Tensor, torch.UntypedStorage)):
            return None
        if isinstance(obj, torch.UntypedStorage) or obj.layout == torch.strided:
            storage = obj if isinstance(obj, torch.UntypedStorage) else obj.untyped_storage()
            key = (storage.device.type, storage.data_ptr())
            if key not in self.storages:
                self.storages.add(key)
                self.unshared += storage.device.type == 'cpu' and not storage.is_shared()
        return id(obj)


class _Discarded(io.RawIOBase):
    """A file that keeps nothing of what is written to it."""

    def writable(self):
        return True

    def write(self, data):
        return memoryview(data).nbytes


def _shares_by_descriptor(start_method):
    """Whether workers started this way are handed each tensor storage as a file descriptor: spawn and forkserver
    on Linux. Forked workers inherit the memory; macOS and Windows share by file name."""
    return start_method != 'fork' and torch.multiprocessing.get_sharing_strategy() == 'file_descriptor'


def _out_of_file_descriptors(err):
    """Whether a worker's start failed for want of file descriptors: forkserver sends at most about 250 at once
    ('too many fds'); spawn keeps one open per storage, up to the process's limit (EMFILE, which torch reports in
    the text of a RuntimeError)."""
    return ((isinstance(err, ValueError) and str(err) == 'too many fds') or getattr(err, 'errno', None) == errno.EMFILE
            or os.strerror(errno.EMFILE) in str(err))


def stop_loader_workers():
    """Shut down the workers of every StopSafeDataLoader iterator made since main() began that is still alive,
    as the end of its epochs does. main() does this when it ends. After an error, the traceback keeps train()'s
    frame, and the iterator in it, in a reference cycle: freed later by the garbage collector, after its queues'
    own finalizers closed them, the iterator waited 5 s per worker for a reply that could not come, then for
    workers that ignore SIGTERM, and left them running (a sweep or a notebook calling main() again gathered them)."""
    for iterator in list(_iterators_with_workers):
        iterator._shutdown_workers()
    _iterators_with_workers.clear()


def _start_worker(worker_init_fn, stacks_to, rank, worker_id):
    """StopSafeDataLoader's worker_init_fn: ignore the stop signals, drop any that came while the worker started
    (setting SIG_IGN discards a pending signal), then unblock them and run the user's worker_init_fn. A forked
    worker also leaves Ctrl-\\ to its default: the main process alone shows its stack (several at once interleave).
    A thread of its own answers WORKER_STACKS_SIGNAL (from a stall watch: StallWatch.dump_worker_stacks): see
    answer_stack_requests."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, 'SIGQUIT'):
        faulthandler.unregister(signal.SIGQUIT)
    if stacks_to is not None:
        with contextlib.suppress(Exception):  # no stacks from this worker, and it works on
            answer_stack_requests(stacks_to, worker_title(rank, worker_id, os.getpid()) + ':\n')
    if hasattr(signal, 'pthread_sigmask'):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


def answer_stack_requests(stacks_to, title):
    """In a DataLoader worker: block WORKER_STACKS_SIGNAL in this thread (and so in the threads it starts later), and
    start a thread that waits for it and then appends the title and each other thread's Python stack where a crash's
    go in the main process as it started the worker (stacks_to: a path, or '' the console). Read while that thread
    holds the GIL (thread_stacks_text), they show a worker stuck in a read or in any call that lets the GIL go;
    faulthandler's signal handler, which reads them without it, crashes the worker now and then while it runs Python
    code (CPython 3.12 and 3.13)."""
    stream = open(stacks_to, 'ab') if stacks_to else console_for_faulthandler()
    if stream is None:
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {WORKER_STACKS_SIGNAL})

    def answer():
        while True:
            signal.sigwait({WORKER_STACKS_SIGNAL})
            write_all(stream, title + thread_stacks_text(skip=threading.get_ident()))

    threading.Thread(target=answer, name='stack requests', daemon=True).start()


def answers_stack_requests(pid):
    """Whether DataLoader worker `pid` has started answering WORKER_STACKS_SIGNAL (blocks it: answer_stack_requests),
    from Linux's /proc; True where it cannot be told (macOS)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            blocked = next(line for line in f if line.startswith('SigBlk:'))
    except (OSError, StopIteration):
        return True
    return bool(int(blocked.split()[1], 16) >> (WORKER_STACKS_SIGNAL - 1) & 1)


def workers_rank_text():
    """What names this process's DataLoader workers' stacks: 'rank 1's ' under torchrun, else nothing."""
    return f"rank {dist.get_rank()}'s " if is_distributed() else ''


def worker_title(rank, index, pid):
    """A newline, then the heading up to its colon that names a DataLoader worker in a stall dump (rank:
    workers_rank_text() in the main process), whether the worker writes its stacks or the watch writes that it is
    still starting."""
    return f'\n{rank}DataLoader worker {index} (pid {pid})'


def worker_stacks_target():
    """Where a DataLoader worker starting now writes its stacks when asked (_start_worker)."""
    return None if WORKER_STACKS_SIGNAL is None else crash_stacks_file()[1] or ''


def loader_workers():
    """(index, process id, where its stacks go) of each live worker of the StopSafeDataLoader iterators that main()
    started, in the order they started."""
    workers = []
    with contextlib.suppress(RuntimeError):  # the set changed meanwhile (a loader's iterator made, or freed)
        for iterator in list(_iterators_with_workers):
            workers += [(index, worker.pid, getattr(iterator, 'stacks_to', None))
                        for index, worker in enumerate(getattr(iterator, '_workers', ())) if worker.is_alive()]
    return sorted(workers, key=lambda worker: worker[1])


@atexit.register  # after multiprocessing's own exit handler (import torch imports it), so it runs before that one
def _kill_leftover_workers():
    """At exit, multiprocessing stops its daemonic children (DataLoader workers an error left running) with
    SIGTERM, which StopSafeDataLoader's workers ignore, and then waits for them forever: kill them first."""
    workers = [child for child in multiprocessing.active_children() if child.daemon]
    if workers and hasattr(signal, 'SIGCHLD') and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # torch's handler would raise "worker killed" at the first kill
    for worker in workers:
        worker.kill()


class StopRequest:
    """Turns Ctrl-C and SIGTERM into a flag that the loop reads after each optimizer step and validation batch.

    The handler never raises, so a second Ctrl-C during a save cannot interrupt it. A step that never ends
    (a stuck data loader) would keep the save from coming: Ctrl-\\ (SIGQUIT, left to its default) quits then,
    showing each thread's stack (show_crash_stacks).
    """

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, in_this_process_only(self._handle))
        return self

    def __exit__(self, *exc):
        if self.requested:
            return  # the process is about to exit: keep swallowing repeated signals until it has
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            force = ('; Ctrl-\\ quits at once, without saving, and shows where it is'
                     if signum == signal.SIGINT and ctrl_backslash_quits() else '')
            to_stderr(f'\n{signal.Signals(signum).name} received: finishing this step (or validation batch), then '
                      f'saving{force}')

    @property
    def requested(self):
        return self.signum is not None

    @property
    def name(self):
        return signal.Signals(self.signum).name

    @property
    def exit_code(self):
        return 128 + self.signum
