"""How much does the generated train() cost over a bare PyTorch loop, and over Lightning?

    python benchmarks/loop_overhead.py            # 9 interleaved repeats per workload
    python benchmarks/loop_overhead.py --quick    # a fast smoke run (CI): small data, 2 repeats

It bakes the default project (classification, MLP, synthetic data) and a CNN one, and times, on the
same model, data, DataLoader objects, optimizer (AdamW), clipping, warmup-cosine scheduler, validation
and epochs:

  train      the generated train(): progress bars, logs, best/latest checkpoints, as a user runs it
  bare       zero_grad, forward, loss, backward, clip, step, scheduler step; validation; nothing else
  lightning  lightning.Trainer with its progress bar, no logger and no checkpoints (if installed)

After one untimed warm-up run of each, runs are interleaved in one process, the order rotating each
repeat (train bare lightning, bare lightning train, ...) so that no loop always follows the same one.
A ratio is the ratio of the two median rates: on a shared machine whose speed changes from second to
second, that is steadier than pairing adjacent runs. Peak RSS is measured in a child process per loop,
from the start of the loop (Linux resets the peak through /proc/self/clear_refs). Start-up is the wall
time of `python train.py` until its first training progress bar appears, minus the wall time of
`python -c "import torch"`; for reference it also times a bare script that imports torch and builds one
AdamW optimizer (the first optimizer imports torch._dynamo, which any PyTorch loop pays).
The last lines are machine-readable, one per workload:

  workload=<name> train/bare=<ratio> train/lightning=<ratio|na> rss/bare=<ratio> startup_over_import_s=<s>
"""

import argparse
import contextlib
import io
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name -> (model answered at bake time, config overrides, epochs). Both use synthetic in-memory data.
WORKLOADS = {
    # overhead dominates: a 6.9k-parameter MLP, about 1 ms per step
    'tiny_mlp': ('mlp', {'n_samples': 40000, 'hidden_dim': 64, 'n_layers': 2, 'batch_size': 128}, 3),
    # compute dominates: the template's CNN on 3x32x32 images, 0.1 to 0.3 s per step here
    'mid_cnn': ('cnn', {'n_samples': 4000, 'base_channels': 32, 'batch_size': 128}, 1),
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
    for name in ('train', 'model', 'dataset', 'utils'):
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
    import torch
    from torch import nn

    utils = mods[3]
    train_loader, valid_loader = loaders
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config['lr'], weight_decay=config['weight_decay'])
    steps = config['n_epoch'] * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, utils.warmup_cosine(config['warmup_steps'], steps))
    for epoch in range(config['n_epoch']):
        train_loader.sampler.set_epoch(epoch)
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x.to(device)), y.to(device))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config['clip_max_norm'])
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.inference_mode():
            for x, y in valid_loader:
                criterion(model(x.to(device)), y.to(device))


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
            optimizer = torch.optim.AdamW(self.parameters(), lr=config['lr'], weight_decay=config['weight_decay'])
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, utils.warmup_cosine(config['warmup_steps'], steps))
            return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'}}

    trainer = L.Trainer(max_epochs=config['n_epoch'], accelerator=device.type, devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=True, enable_model_summary=False,
                        num_sanity_val_steps=0, gradient_clip_val=config['clip_max_norm'],
                        use_distributed_sampler=False)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(Module(), train_loader, valid_loader)


LOOPS = {'train': run_train, 'bare': run_bare, 'lightning': run_lightning}


def time_loops(mods, workload, overrides, epochs, repeats, tmp):
    import torch

    names = ['train', 'bare'] + (['lightning'] if lightning_available() else [])
    rates = {name: [] for name in names}
    for name in names:  # untimed: one-time costs (the first optimizer imports torch._dynamo) land here
        loaders, model, config, device = prepare(mods, overrides, epochs, Path(tempfile.mkdtemp(dir=tmp)))
        with contextlib.redirect_stderr(io.StringIO()):
            LOOPS[name](mods, config, loaders, model, device)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            loaders, model, config, device = prepare(mods, overrides, epochs, Path(tempfile.mkdtemp(dir=tmp)))
            torch.manual_seed(config['seed'])
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # progress bars are drawn, not shown
                LOOPS[name](mods, config, loaders, model, device)
            seconds = time.perf_counter() - start
            rates[name].append(len(loaders[0].dataset) * epochs / seconds)
            print(f'  {workload} repeat {repeat + 1}/{repeats} {name:9s} {rates[name][-1]:10.0f} samples/s',
                  flush=True)
    return rates


def peak_rss(project, workload, overrides, epochs, loop):
    """Run one loop in a fresh child process; return its peak RSS in KiB."""
    result = subprocess.run([sys.executable, __file__, '--child', json.dumps([str(project), workload, overrides,
                                                                               epochs, loop])],
                            capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def child(spec):
    project, workload, overrides, epochs, loop = json.loads(spec)
    mods = import_project(Path(project))
    with tempfile.TemporaryDirectory() as tmp:
        loaders, model, config, device = prepare(mods, overrides, epochs, Path(tmp))
        peak_reset = reset_peak_rss()  # so that the peak is the loop's, not the set-up's
        with contextlib.redirect_stderr(io.StringIO()):
            LOOPS[loop](mods, config, loaders, model, device)
    print(read_peak_rss() if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


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


def wall_time(argv, cwd, until=None):
    """Seconds from start until exit, or until `until` (bytes) appears on stderr."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    for _ in range(samples):
        imports.append(wall_time([sys.executable, '-c', 'import torch'], tmp))
        starts.append(wall_time([sys.executable, str(project / 'train.py'), '--n_epoch', '1', *args], tmp,
                                until=b'epoch 1/1 train'))
        bare.append(wall_time([sys.executable, '-c', BARE_STARTUP], tmp, until=b'first step'))
    base = statistics.median(imports)
    return statistics.median(starts) - base, statistics.median(bare) - base


def median_ratio(train_rates, other_rates):
    return statistics.median(train_rates) / statistics.median(other_rates)


def summary_line(name, samples):
    return (f'{name:9s} median {statistics.median(samples):10.0f}  min {min(samples):10.0f}  '
            f'max {max(samples):10.0f} samples/s')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='small data and 2 repeats: checks that it runs')
    parser.add_argument('--repeats', type=int, default=None, help='interleaved repeats (default 9, quick 2)')
    parser.add_argument('--workload', action='append', choices=sorted(WORKLOADS), help='run only this one (repeatable)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (default 1: the second core absorbs machine noise)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    workloads = {name: spec for name, spec in (QUICK if args.quick else WORKLOADS).items()
                 if not args.workload or name in args.workload}
    repeats = args.repeats or (2 if args.quick else 9)
    import torch

    torch.set_num_threads(args.threads)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)  # for the child processes
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu, '
          f'lightning {"installed" if lightning_available() else "not installed"}', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = []
        for workload, (model, overrides, epochs) in workloads.items():
            project = bake(tmp / workload, model)
            mods = import_project(project)
            rates = time_loops(mods, workload, overrides, epochs, repeats, tmp)
            rss = {loop: peak_rss(project, workload, overrides, epochs, loop) for loop in ('train', 'bare')}
            startup = startup_over_import(project, overrides, tmp, samples=1 if args.quick else 3)
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
            ratio = {other: median_ratio(rates['train'], rates[other]) for other in rates if other != 'train'}
            best = {other: max(rates['train']) / max(rates[other]) for other in rates if other != 'train'}
            print('  ratio of medians: ' + ', '.join(f'train/{other} {value:.3f}' for other, value in ratio.items()))
            print('  ratio of best runs: ' + ', '.join(f'train/{other} {value:.3f}' for other, value in best.items()))
            lightning = f"{ratio['lightning']:.3f}" if 'lightning' in ratio else 'na'
            lines.append(f"workload={workload} train/bare={ratio['bare']:.3f} "
                         f"train/lightning={lightning} rss/bare={rss['train'] / rss['bare']:.3f} "
                         f'startup_over_import_s={startup:.2f}')
        print()
        print('\n'.join(lines))


if __name__ == '__main__':
    main()
