"""Run what the generated projects ship: their own test suites, and train.py on example data files.

The subset covers every model, every dataset and both tasks; each project's suite includes the
resume, interruption and fault tests.
"""

import collections
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from xml.etree import ElementTree

import pytest
import torch
from conftest import TEMPLATE, bake, suite_output

SUBSET = [
    ('classification', 'mlp', 'synthetic'),
    ('regression', 'mlp', 'csv'),
    ('classification', 'mlp', 'image_folder'),
    ('regression', 'cnn', 'image_folder'),
    ('classification', 'cnn', 'synthetic'),
    ('classification', 'transformer', 'sequence'),
    ('regression', 'transformer', 'synthetic'),
]
IDS = ['-'.join(c) for c in SUBSET]
# Files with no template branch, which no answer changes, and which take about half of a project's suite (they
# start processes): each runs whole in the first project named here, and in the others only the tests that the
# project's answers can change (a -k expression); the other projects run the rest of their suite.
# test_distributed.py trains each model in DDP (the CNN's BatchNorm buffers, the transformer's attention): one
# project per model; its tests of stops and errors across ranks run once. test_faults.py checks how utils.py meets
# signals, kills and crashes with in-memory data (batched fetches), and its DataLoader-worker tests run again
# where a file reader's workers decode images (but for the stall watch's forkserver cases: how a worker starts, not
# what it reads, and they take 30 s); the transformer's sequence files meet the worker tests in
# test_dataloader_workers_under_python_3_14s_start_method. test_data_wait.py times the waits for batches: of
# in-memory data, and of images decoded as they are read. test_runs_and_plots.py checks runs.py and plot.py on
# hand-made runs: the metric's name is the task's, so it runs in one project of each task.
DDP_TRAINING = 'torchrun_two_processes or grad_norm_is_the_averaged'
IMAGE_WORKERS = 'worker and not (stall_in_a_dataloader_worker and forkserver)'
ANSWER_FREE = {
    'tests/test_distributed.py': {SUBSET[0]: None, SUBSET[3]: DDP_TRAINING, SUBSET[5]: DDP_TRAINING},
    'tests/test_faults.py': {SUBSET[0]: None, SUBSET[3]: IMAGE_WORKERS},
    'tests/test_data_wait.py': {SUBSET[1]: None, SUBSET[2]: None},
    'tests/test_runs_and_plots.py': {SUBSET[0]: None, SUBSET[1]: None},
}
ENV = {**os.environ, 'PYTHONDONTWRITEBYTECODE': '1'}
# this project's whole suite runs with forkserver, Linux's default start method from Python 3.14, as every
# process's default; the others run with fork, the default before
FORKSERVER_SUITE = SUBSET[6]


def forkserver_by_default(folder):
    """An environment in which forkserver is every Python process's default start method (spawn, macOS's and
    Windows', works alike): DataLoader workers get the dataset pickled, and import its classes, before any
    worker_init_fn runs. A sitecustomize module in `folder` sets it, in train.py's subprocesses too."""
    return sitecustomized(folder, "import multiprocessing\nmultiprocessing.set_start_method('forkserver')\n",
                          'import multiprocessing; print(multiprocessing.get_start_method())', 'forkserver')


# macOS's defaults, on Linux: spawn, and torch sharing tensors with DataLoader workers by file name (the only way
# it can there) instead of one file descriptor each; set once torch.multiprocessing is imported, not before
AS_ON_MACOS = """import importlib.abc
import importlib.util
import multiprocessing
import sys

multiprocessing.set_start_method('spawn')


class SharingByFileName(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != 'torch.multiprocessing':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.set_sharing_strategy('file_system')

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, SharingByFileName())
"""


def sitecustomized(folder, code, check, expected):
    """An environment whose Python processes, train.py's subprocesses too, all run `code` first (a sitecustomize
    module in `folder`), checked by what `check` prints."""
    folder.mkdir(exist_ok=True)
    (folder / 'sitecustomize.py').write_text(code)
    env = {**ENV, 'PYTHONPATH': str(folder)}
    printed = subprocess.run([sys.executable, '-c', check], capture_output=True, text=True, env=env)
    assert printed.stdout == f'{expected}\n', printed.stderr
    return env


@pytest.mark.slow
@pytest.mark.parametrize('task, model, dataset', SUBSET, ids=IDS)
def test_generated_project_tests_pass(baked, tmp_path, task, model, dataset):
    """In the order of the generated README's quick start: example data and a run in the project's folder, whose
    runs and data must change no test, then its tests. In a copy: other tests check the baked files."""
    baked_project = baked(task, model, dataset)
    project = shutil.copytree(baked_project, tmp_path / baked_project.name)
    env = forkserver_by_default(tmp_path / 'site') if (task, model, dataset) == FORKSERVER_SUITE else ENV
    if dataset != 'synthetic':
        made = subprocess.run([sys.executable, 'dataset.py', '--make-example', 'data/', '--n_samples', '40'],
                              cwd=project, capture_output=True, text=True, env=env)
        assert made.returncode == 0, made.stderr
    trained = subprocess.run([sys.executable, 'train.py', '--n_epoch', '1', '--warmup_steps', '4']
                             + ['--n_samples', '40'] * (dataset == 'synthetic'), cwd=project, capture_output=True,
                             text=True, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (project / 'loggers').is_dir() and (project / 'checkpoints').is_dir()
    answers = (task, model, dataset)
    skipped = [f'--ignore={path}' for path, projects in ANSWER_FREE.items() if answers not in projects]
    # a test's keywords hold its module's name: the other files' tests all stay selected
    selected = ' and '.join(f'(not {os.path.basename(path)} or {projects[answers]})'
                            for path, projects in ANSWER_FREE.items() if projects.get(answers))
    report = tmp_path / 'report.xml'
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', f'--junitxml={report}',
                             *skipped, *(['-k', selected] if selected else [])], cwd=project, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, suite_output(result)
    assert ' passed' in result.stdout.splitlines()[-1] and 'failed' not in result.stdout.splitlines()[-1]
    ran = collections.Counter(case.get('classname') for case in ElementTree.parse(report).iter('testcase'))
    for path, projects in ANSWER_FREE.items():  # a selection that a renamed test left empty fails here
        assert (ran[path.removesuffix('.py').replace('/', '.')] > 0) == (answers in projects), (path, ran)


@pytest.mark.slow
@pytest.mark.parametrize('task, model, dataset', [c for c in SUBSET if c[2] != 'synthetic'],
                         ids=[i for c, i in zip(SUBSET, IDS) if c[2] != 'synthetic'])
def test_train_py_runs_on_example_files(baked, tmp_path, task, model, dataset):
    project = baked(task, model, dataset)
    run = tmp_path / 'run'
    run.mkdir()
    made = subprocess.run([sys.executable, str(project / 'dataset.py'), '--make-example', 'data', '--n_samples', '120'],
                          cwd=run, capture_output=True, text=True, env=ENV)
    assert made.returncode == 0, made.stderr
    trained = subprocess.run([sys.executable, str(project / 'train.py'), '--dataset_dir', 'data', '--n_epoch', '2',
                              '--batch_size', '32', '--warmup_steps', '4'], cwd=run, capture_output=True, text=True,
                             env=ENV)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (logs,) = (run / 'loggers').iterdir()
    (ckpts,) = (run / 'checkpoints').iterdir()
    assert sorted(p.name for p in logs.iterdir()) == ['config.json', 'curves.png', 'metrics.csv', 'note.log',
                                                      'train.log', 'val.log']
    assert sorted(p.name for p in ckpts.iterdir()) == ['best_checkpoint.pt', 'latest_checkpoint.pt']
    assert 'epoch 2 step 6 loss' in (logs / 'val.log').read_text()  # 96 train samples / 32 per batch * 2 epochs
    predicted = subprocess.run([sys.executable, str(project / 'predict.py'), '--run', logs.name, '--data', 'data'],
                               cwd=run, capture_output=True, text=True, env=ENV)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert 'wrote 120 predictions' in predicted.stdout and 'test loss' in predicted.stdout  # labelled: the metric
    assert len((run / 'predictions.csv').read_text().splitlines()) == 121


@pytest.mark.slow
def test_image_folders_with_1000_classes_and_rgba_images(tmp_path):
    """1000 classes (ImageNet's): the project's tests still pass on their small example data, and the
    example-data command writes a folder for every class, so that training on it needs no option.
    The SUBSET's image projects read RGB at 32x32; these read RGBA (4 channels) at 64x64, where the channel
    scaling is fit on a grid of the pixels."""
    project = bake(tmp_path, task='classification', model='mlp', dataset='image_folder', num_classes=1000,
                   image_channels=4, image_size=64)
    tests = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests/test_data_layout.py',
                            'tests/test_train.py', 'tests/test_model.py'], cwd=project, capture_output=True, text=True,
                           env=ENV)
    assert tests.returncode == 0, suite_output(tests)
    made = subprocess.run([sys.executable, str(project / 'dataset.py'), '--make-example', 'data'], cwd=tmp_path,
                          capture_output=True, text=True, env=ENV)
    assert made.returncode == 0, made.stderr
    assert len(list((tmp_path / 'data').iterdir())) == 1000
    trained = subprocess.run([sys.executable, str(project / 'train.py'), '--dataset_dir', 'data', '--n_epoch', '1',
                              '--hidden_dim', '16'], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (ckpts,) = (tmp_path / 'checkpoints').iterdir()
    assert torch.load(ckpts / 'latest_checkpoint.pt', weights_only=True)['config']['num_classes'] == 1000


@pytest.mark.slow
@pytest.mark.parametrize('answers', [
    {'dataset': 'synthetic', 'num_features': 1, 'num_classes': 2},
    {'dataset': 'csv', 'num_features': 1, 'num_classes': 2},
    {'dataset': 'csv', 'num_classes': 200},
    {'dataset': 'image_folder', 'model': 'cnn', 'image_size': 9, 'image_channels': 1, 'num_classes': 2},
], ids=['synthetic', 'csv', 'csv-200-classes', 'images-9x9-grey'])
def test_the_smallest_and_largest_answers_pass_the_data_and_training_tests(tmp_path, answers):
    """One feature and two classes, the smallest a project takes: tests written for the defaults
    (a label of 2, a valid loss that falls on overlapping classes) failed here before. 200 classes, more
    than the tests' 160 samples have: runs that warned of labels short of num_classes, and a class missing
    from the training split, failed three of test_train's tests before. Small images of an odd size: the pad
    test wanted a margin of 8 pixels, and the image-size-limit test an even number of pixels."""
    project = bake(tmp_path, task='classification', **{'model': 'mlp', **answers})
    tests = [str(p.relative_to(project)) for p in sorted((project / 'tests').glob('test_*.py'))
             if p.stem in ('test_data_layout', 'test_dataset', 'test_train', 'test_model')]
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *tests], cwd=project,
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, suite_output(result)


@pytest.mark.slow
@pytest.mark.parametrize('answers, files, selected, n_selected', [
    ({'model': 'mlp', 'dataset': 'image_folder', 'image_size': 224},
     ['tests/test_train.py', 'tests/test_data_layout.py'],
     'loss_goes_down or targets_far_from_0_and_1 or resized_as_pillow_resizes or resize_center_crop or resize_pad '
     'or channel_scaling_for_predict', 17),
    ({'model': 'transformer', 'dataset': 'synthetic', 'num_features': 128}, ['tests/test_train.py'],
     'targets_far_from_0_and_1', 1),
], ids=['images-224x224', 'transformer-128-features'])
def test_large_answers_pass_the_tests_they_failed(tmp_path, answers, files, selected, n_selected):
    """Regression projects far from the defaults, each running the tests that failed it before. 224x224 images
    (ImageNet's size) read by the MLP, the widest first layer: 16-bit resizes off Pillow's by half a level, an
    opaque alpha of 0.99999994, and training tests whose lr diverged on 150,528 inputs (their runs now train on
    at most 32x32 images, which made the CNN's whole suite at 224x224 4 times faster; the channel-scaling test
    still trains at 224x224). A transformer on 128 features: the target-scaling test's two runs parted under
    clipping."""
    project = bake(tmp_path, task='regression', **answers)
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *files, '-k', selected],
                            cwd=project, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, suite_output(result)
    assert re.search(rf'\b{n_selected} passed', result.stdout), result.stdout[-3000:]  # none of them renamed away


# The DataLoader-worker tests of the generated suites, with one of the tests of a signal to the process group while
# the workers fetch (a -k expression for its id; the suites run every one, and those whose workers are 'starting'
# set their own start method).
WORKER_TESTS = ('(dataloader_workers and {signalled}) or keep_the_process_from_exiting or worker_init_fn '
                'or in_a_worker or keep_workers_alive')


def worker_tests_summary(project, env, signalled, more, files):
    """Run WORKER_TESTS and the tests that `more` selects in `files` of `project`; return pytest's summary line."""
    selected = WORKER_TESTS.format(signalled=signalled)
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rp', '-p', 'no:cacheprovider', '-k',
                             f'{selected} or {more}', *files], cwd=project, capture_output=True, text=True, env=env)
    assert result.returncode == 0, suite_output(result)
    assert f'_with_dataloader_workers[{signalled}]\n' in result.stdout, result.stdout[-3000:]  # not renamed away
    return result.stdout.splitlines()[-1]


@pytest.mark.slow
def test_dataloader_workers_under_python_3_14s_start_method(baked, tmp_path):
    """forkserver_by_default for the DataLoader-worker tests of a project whose workers read files (FORKSERVER_SUITE's
    data is in memory, and test_faults.py does not run there)."""
    project = baked('classification', 'transformer', 'sequence')  # files read, and padded, in the workers
    env = forkserver_by_default(tmp_path / 'site')
    # the feature-scaling reader's test hands its workers 300 sequences: as 600 tensors, forkserver failed it
    # a scheduler's SIGTERM in validation; each worker starts in the forkserver's own state
    summary = worker_tests_summary(project, env, 'valid-SIGTERM', 'reads_the_real_frames',
                                   ['tests/test_faults.py', 'tests/test_data_layout.py', 'tests/test_speed.py'])
    assert summary.startswith('8 passed, '), summary  # all of them ran


@pytest.mark.slow
def test_dataloader_workers_as_on_macos(baked, tmp_path):
    """The in-memory project's DataLoader-worker tests, and its dataset's, with macOS's defaults emulated (AS_ON_MACOS):
    the tests of file descriptors per tensor must skip there, and the rest pass."""
    project = baked('classification', 'mlp', 'synthetic')
    env = sitecustomized(tmp_path / 'site', AS_ON_MACOS, 'import multiprocessing, torch; print(multiprocessing.'
                         'get_start_method(), torch.multiprocessing.get_sharing_strategy())', 'spawn file_system')
    # Ctrl-C in training, each spawned worker a fresh interpreter
    summary = worker_tests_summary(project, env, 'train-SIGINT',
                                   'separate_tensors or spawn_worker or pickled or dataset',
                                   ['tests/test_faults.py', 'tests/test_dataset.py', 'tests/test_speed.py'])
    assert re.search(r'^\d+ passed, 3 skipped', summary), summary


def windows_code_page_locale(folder):
    """An environment in a Latin-1 Windows code page (cp1252) locale, with Python's UTF-8 mode off: the console, and
    open() without an encoding, use cp1252, as a Windows console redirected to a file or an old server's locale do,
    and so do file names. The locale is compiled into `folder`; None where this machine cannot compile it."""
    if not shutil.which('localedef'):
        return None
    compiled = subprocess.run(['localedef', '-i', 'en_US', '-f', 'CP1252', str(folder / 'en_US.CP1252')],
                              capture_output=True, text=True)
    env = {**ENV, 'LOCPATH': str(folder), 'LC_ALL': 'en_US.CP1252', 'PYTHONUTF8': '0'}
    printed = subprocess.run([sys.executable, '-c', 'import locale, sys; print(locale.getpreferredencoding(False), '
                              'sys.stdout.encoding)'], capture_output=True, text=True, env=env)
    return env if compiled.returncode == 0 and printed.stdout == 'CP1252 cp1252\n' else None


@pytest.mark.slow
def test_names_tables_and_console_lines_in_a_windows_code_page_locale(baked, tmp_path):
    """Where the console cannot show torchinfo's box lines (train.main() called from a script, its stdout strict),
    a line prints escaped, not logging's traceback; tables read back as UTF-8; file names follow the locale."""
    env = windows_code_page_locale(tmp_path)
    if env is None:
        pytest.skip('localedef cannot compile a cp1252 locale here (it needs glibc\'s locale sources)')
    project = baked('regression', 'cnn', 'image_folder')  # file names in its tables; test_faults.py's signal tests
    # (those whose workers are 'starting' print what train-SIGINT does, and take twice as long)
    files = ['tests/test_outputs.py', 'tests/test_runs_and_plots.py', 'tests/test_faults.py']
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-k',
                             'not_utf_8 or predict_writes or lacks_a_character or (signal_to_the_process_group and '
                             'not starting)', *files], cwd=project, capture_output=True, text=True, env=env)
    assert result.returncode == 0, suite_output(result)
    assert re.search(r'^8 passed, \d+ deselected', result.stdout.splitlines()[-1]), result.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize('dataset', ['synthetic', 'csv'])
def test_the_readme_quick_start_trains_and_accuracy_rises(baked, tmp_path, dataset):
    """The generated README's quick start, its commands as written (but pip and pytest): with the default
    answers, and with a file reader's example data. Accuracy must visibly rise, which it did not while the
    quick start kept the default 1000 warm-up steps (a warning in train.log said so)."""
    project = shutil.copytree(baked('classification', 'mlp', dataset), tmp_path / 'project')
    block = (project / 'README.md').read_text().split('## Quick start\n\n```bash\n')[1].split('```')[0]
    commands = [line.split('#')[0].split() for line in block.splitlines() if line.startswith('python ')]
    assert commands[-1][:2] == ['python', 'train.py'] and len(commands) == 1 + (dataset != 'synthetic'), block
    for command in commands:
        result = subprocess.run([sys.executable] + command[1:], cwd=project, capture_output=True, text=True, env=ENV)
        assert result.returncode == 0, result.stderr[-3000:]
    (logs,) = (project / 'loggers').iterdir()
    assert 'warning' not in (logs / 'train.log').read_text()
    accuracies = [float(line.split(' acc ')[1].split()[0]) for line in (logs / 'val.log').read_text().splitlines()
                  if ' acc ' in line]
    assert accuracies[-1] > accuracies[0] + 0.2, accuracies


@pytest.mark.slow
def test_compile_on_a_machine_without_a_cxx_compiler_is_one_line_before_anything_is_written(baked, tmp_path):
    """The real torch.compile, with no compiler on PATH: the generated tests can only fake its error."""
    project = baked('classification', 'mlp', 'synthetic')
    result = subprocess.run([sys.executable, str(project / 'train.py'), '--n_epoch', '1', '--n_samples', '64',
                             '--compile', 'true'], cwd=tmp_path, capture_output=True, text=True,
                            env={**ENV, 'PATH': str(tmp_path / 'nothing'), 'CXX': '', 'CC': ''})
    assert result.returncode == 2, result.stderr[-3000:]
    assert re.fullmatch(r'error: --compile true: torch\.compile fails on this machine \(InvalidCxxCompiler: .+\); '
                        r'install a C\+\+ compiler \(g\+\+ or clang\), or pass --compile false\n', result.stderr), (
        result.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_benchmark_quick_run_prints_its_ratios():
    """CI only checks that the benchmark runs and ends with one parseable line per workload.
    (--no-control here saves CI a loop per workload; the next test runs the control.)"""
    result = subprocess.run([sys.executable, str(TEMPLATE / 'benchmarks' / 'loop_overhead.py'), '--quick',
                             '--repeats', '1', '--no-control'], capture_output=True, text=True, env=ENV, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()[-2:]
    pattern = (r'workload=(tiny_mlp|mid_cnn) train/bare=\d+\.\d{3} train/lightning=(\d+\.\d{3}|na) '
               r'rss/bare=\d+\.\d{3} startup_over_import_s=-?\d+\.\d{2}')
    assert [re.fullmatch(pattern, line).group(1) for line in lines] == ['tiny_mlp', 'mid_cnn'], lines
    # per workload: samples/s with median, min and max for each loop, and the ratios per repeat
    for loop in ('train', 'bare') + (('lightning',) if importlib.util.find_spec('lightning') else ()):
        summaries = re.findall(rf'^  {loop} +median +\d+  min +\d+  max +\d+ samples/s$', result.stdout, re.M)
        assert len(summaries) == 2, (loop, result.stdout[-3000:])
    assert len(re.findall(r'^  train/bare per repeat: median \d\.\d{3}  min \d\.\d{3}  max \d\.\d{3}$',
                          result.stdout, re.M)) == 2
    assert 'bare_copy' not in result.stdout  # --no-control leaves the second bare loop out


@pytest.mark.slow
def test_benchmark_quick_run_with_bf16_the_control_loop_and_a_variant(tmp_path):
    """--amp bf16 reaches train.py, the bare loop (autocast) and Lightning (bf16-mixed); the control loop
    (on by default) prints the noise floor; --variant times a changed copy of a project as a loop of its own."""
    import shutil

    variant = shutil.copytree(bake(tmp_path, task='classification', model='mlp', dataset='synthetic'),
                              tmp_path / 'variant')
    train_py = variant / 'train.py'
    train_py.write_text(train_py.read_text().replace(
        '    train_logger, val_logger, note_logger = ',
        "    open(__file__ + '.ran', 'a').close()\n    train_logger, val_logger, note_logger = ", 1))
    result = subprocess.run([sys.executable, str(TEMPLATE / 'benchmarks' / 'loop_overhead.py'), '--quick',
                             '--repeats', '1', '--workload', 'tiny_mlp', '--amp', 'bf16',
                             '--variant', f'changed={variant}'],
                            capture_output=True, text=True, timeout=900,
                            env={k: v for k, v in ENV.items() if k != 'PYTHONDONTWRITEBYTECODE'})
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'device cpu, amp bf16' in result.stdout.splitlines()[0]
    assert not list(variant.rglob('__pycache__'))  # the user's folder gets nothing but what its train() wrote
    # the control: a second bare loop, whose ratio to the first is this run's noise floor
    assert re.search(r'^  bare_copy +median +\d+  min +\d+  max +\d+ samples/s$', result.stdout, re.M), result.stdout
    assert re.search(r'^  bare_copy/bare per repeat: median \d\.\d{3}  min \d\.\d{3}  max \d\.\d{3}  '
                     r'\(two identical loops: the noise floor of this run\)$', result.stdout, re.M), result.stdout
    assert (variant / 'train.py.ran').exists()  # the variant's own train() ran
    assert re.search(r'^  changed +median +\d+  min +\d+  max +\d+ samples/s$', result.stdout, re.M), result.stdout
    assert re.search(r'^  changed/bare per repeat: median \d\.\d{3}  min \d\.\d{3}  max \d\.\d{3}$',
                     result.stdout, re.M), result.stdout
    assert re.fullmatch(r'workload=tiny_mlp train/bare=\d+\.\d{3} .*', result.stdout.strip().splitlines()[-1])
