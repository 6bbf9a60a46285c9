"""How much does the generated train() cost over a bare PyTorch loop, and over Lightning?

    python benchmarks/loop_overhead.py            # 9 repeats per workload
    python benchmarks/loop_overhead.py --quick    # a fast smoke run (CI): small data, 2 repeats
    python benchmarks/loop_overhead.py --amp bf16  # all three loops in bf16 autocast (fp16: CUDA only)
    python benchmarks/loop_overhead.py --clip_flag false --scheduler_flag false  # all three without them
    python benchmarks/loop_overhead.py --workload tiny_mlp --variant mine=DIR  # and train() of a changed project

It bakes the default project (classification, MLP, synthetic data) and a CNN one, and times, on the
same model, data, DataLoader, optimizer (AdamW, with train()'s two weight decay groups), clipping,
warmup-cosine scheduler, validation and epochs:

  train      the generated train(): progress bars, logs, best/latest checkpoints, as a user runs it
  bare       zero_grad, forward, loss, backward, clip, step, scheduler step (clip and scheduler as
             train.py's clip_flag and scheduler_flag say); validation; nothing else
  lightning  lightning.Trainer with its progress bar, no logger and no checkpoints (if installed)
  bare_copy  a second bare loop (skip it with --no-control): two identical loops in the same run
             differ only by noise, so bare_copy/bare shows how far apart this run can put two equal
             loops, the yardstick for train/bare

Each loop runs in a process of its own, in its main thread. The loops take turns: one runs for about
--turn_seconds (50 ms), hands over between two batches and sleeps until its next turn, so A B C A B C
... many times per run, and each loop's clock runs only during its own turns. This machine's speed
drifts by tens of percent over seconds but little over 50 ms, so loops that alternate this finely
see the same conditions, and their ratio per repeat is far steadier than that of whole runs one after
another (docs/speed.md). Every loop process gets the same fixed glibc malloc thresholds, so that the
allocator's adaptive ones (which depend on each process's history) cannot decide the result.
On CUDA a loop synchronises the GPU before handing over, so that its queued work counts in its own turn.
Progress bars read a clock that stops while their loop waits, so they redraw as often per step as in
a run alone. A repeat runs every loop once; the first turn rotates between repeats; one untimed repeat comes
first (first imports). A ratio is the median over repeats of train's rate over the other loop's rate in the
same repeat. Peak RSS is each loop process's peak
during its loop (Linux resets it through /proc/self/clear_refs), the largest over repeats. Start-up
is the wall time of `python train.py` until its first training progress bar, minus that of
`python -c "import torch"`; for reference it also times a bare script that imports torch and builds
one AdamW optimizer (the first optimizer imports torch._dynamo, which any PyTorch loop pays).
The last lines are machine-readable, one per workload:

  workload=<name> train/bare=<ratio> train/lightning=<ratio|na> rss/bare=<ratio> startup_over_import_s=<s>
"""

import argparse
import contextlib
import io
import logging
import multiprocessing
import os
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name -> (model answered at bake time, config overrides, epochs). Both use synthetic in-memory data.
WORKLOADS = {
    # overhead dominates: a 6.9k-parameter MLP, about 1 ms per step
    'tiny_mlp': ('mlp', {'n_samples': 40000, 'hidden_dim': 64, 'n_layers': 2, 'batch_size': 128}, 3),
    # compute dominates: the template's CNN on 3x32x32 images, 60-100 ms per step here. Batches of 32,
    # so that a step is about one 50 ms turn (with 128, a 0.3 s step made each turn one long sample)
    'mid_cnn': ('cnn', {'n_samples': 4000, 'base_channels': 32, 'batch_size': 32}, 1),
}
# On CUDA the CNN is larger, so that the GPU's compute, not kernel launches, dominates its step
CUDA_WORKLOADS = {
    'tiny_mlp': WORKLOADS['tiny_mlp'],
    'mid_cnn': ('cnn', {'n_samples': 20000, 'image_size': 64, 'base_channels': 64, 'batch_size': 256}, 2),
}
QUICK = {
    'tiny_mlp': ('mlp', {'n_samples': 4000, 'hidden_dim': 64, 'n_layers': 2, 'batch_size': 128}, 1),
    'mid_cnn': ('cnn', {'n_samples': 400, 'base_channels': 8, 'batch_size': 64}, 1),
}


def bake(out_dir, model):
    from cookiecutter.main import cookiecutter

    return Path(cookiecutter(str(REPO), no_input=True, output_dir=str(out_dir), extra_context={'model': model}))


def import_project(project):
    """Import a baked project's modules (a fresh import: each workload bakes its own project)."""
    for name in ('train', 'model', 'dataset', 'utils', 'runfiles', 'plot'):
        sys.modules.pop(name, None)
    sys.path.insert(0, str(project))
    try:
        import dataset
        import model
        import train
        import utils
    finally:
        sys.path.remove(str(project))
    return train, model, dataset, utils


def prepare(mods, overrides, epochs, run_dir):
    """Run train.py's main() up to its call of train(), and return that call's arguments.

    So the benchmark uses the exact config, DataLoaders and model that `python train.py` builds.
    """
    train = mods[0]
    captured = {}
    argv = ['--n_epoch', str(epochs), '--warmup_steps', '100']
    argv += [a for key, value in overrides.items() for a in (f'--{key}', str(value))]
    real_train = train.train
    train.train = lambda *args: captured.setdefault('args', args) and 0
    cwd = os.getcwd()
    os.chdir(run_dir)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            train.main(argv)
    finally:
        os.chdir(cwd)
        train.train = real_train
    train_loader, valid_loader, model, config, device = captured['args'][:5]
    for name in ('train', 'val', 'note'):  # the console line is formatted and written, just not shown
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler:
                handler.setStream(io.StringIO())
    config['loggers_dir'] = os.path.join(run_dir, config['loggers_dir'])
    config['checkpoints_dir'] = os.path.join(run_dir, config['checkpoints_dir'])
    return (train_loader, valid_loader), model, config, device


def run_train(mods, config, loaders, model, device):
    assert mods[0].train(*loaders, model, config, device) == 0


def run_bare(mods, config, loaders, model, device):
    """The loop anyone would write, with the same math as train(): AMP as configured (fp16 with a
    GradScaler), clipping (with clip_flag, as train()), the warmup-cosine scheduler stepped per batch (with
    scheduler_flag), validation."""
    import torch
    from torch import nn

    utils = mods[3]
    train_loader, valid_loader = loaders
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(utils.optimizer_groups(model, config['weight_decay']), lr=config['lr'])
    steps = config['n_epoch'] * len(train_loader)
    scheduler = None  # built only when used: LambdaLR sets the schedule's first lr as it is built
    if config['scheduler_flag']:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, utils.warmup_cosine(config['warmup_steps'], steps))
    autocast = utils.autocast_for(config['amp'], device)  # train()'s own: the same dtypes, a no-op for 'none'
    scaler = torch.amp.GradScaler(device.type) if config['amp'] == 'fp16' else None
    for epoch in range(config['n_epoch']):
        train_loader.sampler.set_epoch(epoch)
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = criterion(model(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
            if scaler is None:
                loss.backward()
                if config['clip_flag']:
                    nn.utils.clip_grad_norm_(model.parameters(), config['clip_max_norm'])
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                if config['clip_flag']:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config['clip_max_norm'])
                scaler.step(optimizer)
                scaler.update()
            if scheduler is not None:
                scheduler.step()
        model.eval()
        with torch.inference_mode(), autocast:
            for x, y in valid_loader:
                criterion(model(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))


def lightning_available():
    try:
        import lightning  # noqa: F401
    except ImportError:
        return False
    return True


def run_lightning(mods, config, loaders, model, device):
    import lightning as L
    import torch
    from torch import nn

    utils = mods[3]
    train_loader, valid_loader = loaders
    steps = config['n_epoch'] * len(train_loader)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            self.criterion = nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return self.criterion(self.model(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            return self.criterion(self.model(x), y)

        def on_train_epoch_start(self):
            train_loader.sampler.set_epoch(self.current_epoch)

        def configure_optimizers(self):
            optimizer = torch.optim.AdamW(utils.optimizer_groups(self.model, config['weight_decay']), lr=config['lr'])
            if not config['scheduler_flag']:
                return optimizer
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, utils.warmup_cosine(config['warmup_steps'], steps))
            return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'}}

    precision = {'none': '32-true', 'bf16': 'bf16-mixed', 'fp16': '16-mixed'}[config['amp']]
    trainer = L.Trainer(max_epochs=config['n_epoch'], accelerator=device.type, devices=1, logger=False,
                        precision=precision, enable_checkpointing=False, enable_progress_bar=True,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        gradient_clip_val=config['clip_max_norm'] if config['clip_flag'] else None,
                        use_distributed_sampler=False)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(Module(), train_loader, valid_loader)


LOOPS = {'train': run_train, 'bare': run_bare, 'lightning': run_lightning, 'bare_copy': run_bare}


class Turns:
    """Loops in separate processes take turns of about `turn_seconds`; each loop's clock runs only in
    its own turns.

    The machine's speed drifts by tens of percent over seconds but little over tens of milliseconds, so
    loops that alternate every few dozen milliseconds run under the same conditions, and their ratio is
    far steadier than that of whole runs one after another (docs/speed.md). Exactly one loop runs at a
    time; the others sleep on a shared condition. Each loop has a process of its own, running in its
    main thread as `python train.py` would (signal handlers, its own memory allocator).
    """

    def __init__(self, context, n_loops, turn_seconds):
        self.turn_seconds = turn_seconds
        self.condition = context.Condition()
        self.current = context.Value('i', -1, lock=False)  # index of the loop whose turn it is
        self.order = context.Array('i', n_loops, lock=False)  # turn order of this repeat
        self.running = context.Array('b', n_loops, lock=False)
        self.synchronize = None  # (loop) on CUDA: torch.cuda.synchronize, so a turn's GPU work ends in it

    def start_repeat(self, order):
        """(Parent) the next repeat's turn order; the first loop in it goes first."""
        with self.condition:
            self.order[:] = order
            self.running[:] = [1] * len(order)
            self.current.value = order[0]

    def begin(self, index):
        """(Loop) wait for the first turn; start the clock."""
        with self.condition:
            self.condition.wait_for(lambda: self.current.value == index)
        self.seconds = self.waited = 0.0
        self.turn_start = time.perf_counter()

    def due(self):
        return time.perf_counter() - self.turn_start >= self.turn_seconds

    def own_clock(self):
        """time.time() less the time this loop spent waiting for its turns: the clock it would see alone."""
        return time.time() - self.waited

    def hand_over(self, index, finished=False):
        """(Loop) stop the clock, give the turn to the next loop still running; wait for the next turn."""
        if self.synchronize is not None:
            self.synchronize()
        turn_end = time.perf_counter()
        self.seconds += turn_end - self.turn_start
        with self.condition:
            if finished:
                self.running[index] = 0
            order = list(self.order)
            position = order.index(index)
            following = [order[(position + k) % len(order)] for k in range(1, len(order) + 1)]
            self.current.value = next((i for i in following if self.running[i]), -1)
            self.condition.notify_all()
            if finished:
                return
            self.condition.wait_for(lambda: self.current.value == index)
        self.turn_start = time.perf_counter()
        self.waited += self.turn_start - turn_end


class TakingTurns:
    """A DataLoader that hands the turn over between batches once the loop's turn has lasted long enough."""

    def __init__(self, loader, turns, index):
        self.loader, self.turns, self.index = loader, turns, index

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, attribute):  # sampler, dataset, ...: the loops read them
        return getattr(self.loader, attribute)

    def __iter__(self):
        for batch in self.loader:
            if self.turns.due():
                self.turns.hand_over(self.index)
            yield batch


class TerminalSink(io.TextIOWrapper):
    """os.devnull that says it is a terminal: the bars then redraw at a terminal's rate, as a user watching
    a run sees them (the generated project redraws bars in a file once a minute)."""

    def __init__(self, path, mode):
        super().__init__(open(path, mode + 'b'), encoding='utf-8', write_through=True)

    def isatty(self):
        return True


def loop_process(index, name, loop, project, overrides, epochs, repeats, threads, turns, barrier, results):
    """One loop's process: per repeat, build the run untimed, wait for the others, run in turns, report.

    `loop` is a LOOPS key; `name` labels its results (a --variant runs the 'train' loop of its own project).
    """
    import torch
    import tqdm.std

    torch.set_num_threads(threads)
    sys.stdout = sys.stderr = TerminalSink(os.devnull, 'w')  # bars and Lightning's messages: drawn, not shown
    sys.dont_write_bytecode = True  # a --variant's folder is the user's: leave no __pycache__ there
    mods = import_project(Path(project))
    for repeat in range(-1, repeats):  # repeat -1 is untimed: one-time costs (first imports) land there
        try:
            with tempfile.TemporaryDirectory() as run_dir:
                loaders, model, config, device = prepare(mods, overrides, epochs, Path(run_dir))
                torch.manual_seed(config['seed'])
                if device.type == 'cuda':
                    turns.synchronize = torch.cuda.synchronize
                loaders = [TakingTurns(loader, turns, index) for loader in loaders]
                tqdm.std.time = turns.own_clock  # bars refresh as often per step as they would if run alone
                barrier.wait()
                peak_reset = reset_peak_rss()  # so that the peak is the loop's, not the set-up's
                turns.begin(index)
                try:
                    LOOPS[loop](mods, config, loaders, model, device)
                finally:
                    turns.hand_over(index, finished=True)
                peak_kib = read_peak_rss() if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                results.put((name, repeat, len(loaders[0].dataset) * epochs / turns.seconds, peak_kib))
        except threading.BrokenBarrierError:
            return  # another loop failed, and the parent reports its error
        except BaseException as err:
            if isinstance(err, mods[-1].RunError):  # the project (its utils) refused its settings: its one-line message
                results.put((name, repeat, 'refused', str(err)))
            else:
                results.put((name, repeat, 'error', traceback.format_exc()))
            barrier.abort()
            raise


class LoopRefused(Exception):
    """A loop's project refused the workload's settings (its RunError): (loop name, the project's message)."""


def time_loops(project, workload, overrides, epochs, repeats, threads, turn_seconds, control=True, variants=()):
    """Per repeat, every loop runs once, all taking turns. Return {name: [samples/s]}, {name: peak RSS KiB}.

    `variants`: (name, project folder) pairs, each timing that project's train() as one more loop.
    """
    own = ['train', 'bare'] + (['lightning'] if lightning_available() else []) + (['bare_copy'] if control else [])
    loops = [(name, name, project) for name in own] + [(name, 'train', folder) for name, folder in variants]
    names = [name for name, _, _ in loops]
    context = multiprocessing.get_context('spawn')
    turns = Turns(context, len(names), turn_seconds)
    barrier = context.Barrier(len(names) + 1)
    results = context.Queue()
    processes = [context.Process(target=loop_process, args=(index, name, loop, str(folder), overrides, epochs,
                                                            repeats, threads, turns, barrier, results))
                 for index, (name, loop, folder) in enumerate(loops)]
    for process in processes:
        process.start()
    rates, peaks = {name: [] for name in names}, {name: [] for name in names}
    try:
        for repeat in range(-1, repeats):
            order = list(range(len(names)))
            order = order[repeat % len(names):] + order[:repeat % len(names)]  # rotates each repeat
            turns.start_repeat(order)
            try:
                barrier.wait(timeout=600)
            except threading.BrokenBarrierError:
                pass  # a loop failed while setting up: its error comes next from the queue
            for _ in names:
                name, _, rate, peak_kib = wait_for_result(results, processes)
                if rate == 'refused':
                    raise LoopRefused(name, peak_kib)
                if rate == 'error':
                    raise RuntimeError(f'the {name} loop failed:\n{peak_kib}')
                if repeat >= 0:
                    rates[name].append(rate)
                    peaks[name].append(peak_kib)
            if repeat >= 0:
                print(f'  {workload} repeat {repeat + 1}/{repeats}: '
                      + ', '.join(f'{name} {rates[name][-1]:.0f}' for name in names) + ' samples/s', flush=True)
    finally:
        barrier.abort()  # after a failure, loops waiting for the next repeat stop instead of hanging
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    return rates, peaks


def wait_for_result(results, processes):
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f'a loop process exited with code {dead[0].exitcode}') from None


def reset_peak_rss():
    """Linux: writing 5 to clear_refs resets VmHWM, the peak RSS."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def read_peak_rss():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1])  # KiB
    raise RuntimeError('no VmHWM in /proc/self/status')


def wall_time(argv, cwd, until=None, env=None):
    """Seconds from start until exit, or until `until` (bytes) appears on stderr."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    seen = b''
    if until is not None:
        while until not in seen:
            chunk = process.stderr.read1(4096)
            if not chunk:
                raise RuntimeError(f'{until!r} never appeared: {seen[-2000:]!r}')
            seen += chunk
        elapsed = time.perf_counter() - start
        process.kill()
        process.wait()
        return elapsed
    process.communicate()
    return time.perf_counter() - start


BARE_STARTUP = ('import sys, torch\n'
                'torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())\n'
                'print("first step", file=sys.stderr, flush=True)\n')


def startup_over_import(project, overrides, tmp, samples):
    """Seconds to the first training step over `import torch`: train.py's, and a bare script's."""
    args = [a for key, value in overrides.items() for a in (f'--{key}', str(value))]
    imports, starts, bare = [], [], []
    first_draw_at_once = {**os.environ, 'TQDM_DELAY': '0'}  # a bar in a file (this pipe) waits a minute otherwise
    for _ in range(samples):
        imports.append(wall_time([sys.executable, '-c', 'import torch'], tmp))
        starts.append(wall_time([sys.executable, str(project / 'train.py'), '--n_epoch', '1', *args], tmp,
                                until=b'epoch 1/1 train', env=first_draw_at_once))
        bare.append(wall_time([sys.executable, '-c', BARE_STARTUP], tmp, until=b'first step'))
    base = statistics.median(imports)
    return statistics.median(starts) - base, statistics.median(bare) - base


def parse_variants(parser, specs, workloads):
    """--variant NAME=DIR values as (name, folder) pairs; a bad one is a one-line error."""
    if specs and len(workloads or []) != 1:
        parser.error('--variant needs exactly one --workload (a variant is a project baked for one model)')
    variants = []
    for spec in specs:
        name, sep, folder = spec.partition('=')
        if not sep or not name.isidentifier() or name in LOOPS or name in {n for n, _ in variants}:
            parser.error(f"--variant {spec!r}: expected NAME=DIR with a new name (letters, digits, _) that is not "
                         f"one of {', '.join(LOOPS)}")
        if not (Path(folder) / 'train.py').is_file():
            parser.error(f"--variant {spec!r}: no train.py in '{folder}'; pass the folder of a baked project")
        variants.append((name, str(Path(folder).resolve())))
    return variants


def paired_ratios(train_rates, other_rates):
    """train/other for each repeat: the two ran in the same turns, so under the same conditions."""
    return [train / other for train, other in zip(train_rates, other_rates)]


def ratio_line(label, ratios, note=''):
    return (f'  {label} per repeat: median {statistics.median(ratios):.3f}  min {min(ratios):.3f}  '
            f'max {max(ratios):.3f}{note}')


def summary_line(name, samples):
    return (f'{name:9s} median {statistics.median(samples):10.0f}  min {min(samples):10.0f}  '
            f'max {max(samples):10.0f} samples/s')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='small data and 2 repeats: checks that it runs')
    parser.add_argument('--repeats', type=int, default=None, help='interleaved repeats (default 9, quick 2)')
    parser.add_argument('--workload', action='append', choices=sorted(WORKLOADS), help='run only this one (repeatable)')
    parser.add_argument('--turn_seconds', type=float, default=0.05,
                        help='how long each loop runs before the next one takes its turn (default 0.05)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (default 1: the second core absorbs machine noise)')
    parser.add_argument('--startup_samples', type=int, default=None,
                        help='start-up timings per workload, median taken (default 5, quick 1)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None,
                        help='where to train (default: cuda if available, else cpu, as train.py picks)')
    parser.add_argument('--control', action=argparse.BooleanOptionalAction, default=True,
                        help='time a second copy of the bare loop, to show the noise between equal loops (default on)')
    parser.add_argument('--amp', choices=('none', 'bf16', 'fp16'), default='none',
                        help="train.py's --amp, and the same precision in the bare and Lightning loops")
    for flag in ('clip_flag', 'scheduler_flag'):
        parser.add_argument(f'--{flag}', choices=('true', 'false'), default='true',
                            help=f"train.py's --{flag}, followed by the bare and Lightning loops too (default true)")
    parser.add_argument('--variant', action='append', default=[], metavar='NAME=DIR',
                        help="also time train() of the project in DIR (a baked project you changed) as loop NAME, "
                             'in the same turns, and print NAME/bare; needs one --workload (repeatable)')
    args = parser.parse_args()
    variants = parse_variants(parser, args.variant, args.workload)
    repeats = args.repeats if args.repeats is not None else 2 if args.quick else 9
    startup_samples = args.startup_samples if args.startup_samples is not None else 1 if args.quick else 5
    for flag, value in (('--repeats', repeats), ('--threads', args.threads), ('--startup_samples', startup_samples)):
        if value < 1:
            parser.error(f'{flag} must be at least 1, got {value}')
    if args.turn_seconds <= 0:
        parser.error(f'--turn_seconds must be above 0, got {args.turn_seconds}')
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # train.py (and so every loop) then picks the CPU
    import torch

    cuda = torch.cuda.is_available()
    if args.device == 'cuda' and not cuda:
        parser.error('--device cuda: no CUDA device is available here; leave --device out to run on the CPU')
    device = 'cuda' if cuda else 'cpu'
    if args.amp == 'fp16' and device != 'cuda':
        parser.error('--amp fp16 needs CUDA (train.py refuses it on the CPU); use --amp bf16 on the CPU')
    table = QUICK if args.quick else CUDA_WORKLOADS if device == 'cuda' else WORKLOADS
    flags = {'amp': args.amp, 'clip_flag': args.clip_flag, 'scheduler_flag': args.scheduler_flag}
    workloads = {name: (model, {**overrides, **flags}, epochs) for name, (model, overrides, epochs)
                 in table.items() if not args.workload or name in args.workload}
    torch.set_num_threads(args.threads)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)  # for the child processes
    # Fixed glibc malloc thresholds in every loop process: the adaptive ones depend on a process's
    # history, and left one of two identical CNN loops page-faulting ~300k times a run, 15% slower.
    os.environ.setdefault('MALLOC_MMAP_THRESHOLD_', str(32 << 20))
    os.environ.setdefault('MALLOC_TRIM_THRESHOLD_', str(1 << 30))
    card = f' ({torch.cuda.get_device_name()})' if device == 'cuda' else ''
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}{card}, amp {args.amp}, '
          f'clip_flag {args.clip_flag}, scheduler_flag {args.scheduler_flag}, '
          f'lightning {"installed" if lightning_available() else "not installed"}', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = []
        for workload, (model, overrides, epochs) in workloads.items():
            project = bake(tmp / workload, model)
            try:
                rates, peaks = time_loops(project, workload, overrides, epochs, repeats, args.threads,
                                          args.turn_seconds, args.control, variants)
            except LoopRefused as refusal:
                name, message = refusal.args
                hint = f'; a --variant must be baked with model={model}' if name in dict(variants) else ''
                sys.exit(f'error: the {name} loop refused the {workload} workload: {message}{hint}')
            rss = {loop: max(peaks[loop]) for loop in ('train', 'bare')}
            startup = startup_over_import(project, overrides, tmp, samples=startup_samples)
            results.append((workload, rates, rss, startup))
        print()
        lines = []
        for workload, rates, rss, (startup, bare_startup) in results:
            print(f'{workload}:')
            for name, samples in rates.items():
                print('  ' + summary_line(name, samples))
            print(f"  peak RSS train {rss['train'] / 1024:.0f} MiB, bare {rss['bare'] / 1024:.0f} MiB; "
                  f'start-up over `import torch`: train.py {startup:.2f} s, a bare script building one optimizer '
                  f'{bare_startup:.2f} s')
            paired = {other: paired_ratios(rates['train'], rates[other]) for other in ('bare', 'lightning')
                      if other in rates}
            ratio = {other: statistics.median(values) for other, values in paired.items()}
            for other, values in paired.items():
                print(ratio_line(f'train/{other}', values))
            for name, _ in variants:
                print(ratio_line(f'{name}/bare', paired_ratios(rates[name], rates['bare'])))
            if 'bare_copy' in rates:
                print(ratio_line('bare_copy/bare', paired_ratios(rates['bare_copy'], rates['bare']),
                                 '  (two identical loops: the noise floor of this run)'))
            lightning = f"{ratio['lightning']:.3f}" if 'lightning' in ratio else 'na'
            lines.append(f"workload={workload} train/bare={ratio['bare']:.3f} "
                         f"train/lightning={lightning} rss/bare={rss['train'] / rss['bare']:.3f} "
                         f'startup_over_import_s={startup:.2f}')
        print()
        print('\n'.join(lines))


if __name__ == '__main__':
    main()
