"""Every supported task x model x dataset bakes into a clean project: exact files, no Jinja left, ruff, compiles."""

import ast
import compileall
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from binaryornot.check import is_binary
from conftest import COMBOS, TEMPLATE, suite_output
from cookiecutter.main import cookiecutter

COMMON_FILES = {
    '.gitignore', 'README.md', 'pyproject.toml', 'requirements.txt', 'requirements-dev.txt',
    'train.py', 'model.py', 'dataset.py', 'utils.py',
    'tests/conftest.py', 'tests/test_model.py', 'tests/test_dataset.py', 'tests/test_train.py',
    'tests/test_resume.py', 'tests/test_faults.py', 'tests/test_speed.py', 'tests/test_distributed.py',
    'tests/test_outputs.py', 'tests/test_runs_and_plots.py', 'tests/test_data_wait.py', 'tests/test_docs.py',
    'plot.py', 'runs.py', 'runfiles.py', 'predict.py',
}
CACHES = {'__pycache__', '.pytest_cache', '.ruff_cache'}


def expected_files(dataset):
    return COMMON_FILES | ({'tests/test_data_layout.py'} if dataset != 'synthetic' else set())


def project_files(project):
    return {str(p.relative_to(project)) for p in project.rglob('*') if p.is_file() and '__pycache__' not in p.parts}


@pytest.mark.parametrize('task, model, dataset', COMBOS, ids=['-'.join(c) for c in COMBOS])
def test_combination_bakes_clean(baked, task, model, dataset):
    project = baked(task, model, dataset)
    assert project_files(project) == expected_files(dataset)
    for path in project.rglob('*'):
        if path.is_file():
            text = path.read_text(encoding='utf-8')
            for marker in ('{{', '{%', '{#'):
                assert marker not in text, f'{marker} left in {path.name}'
            assert not text[:1].isspace(), f'{path.name} starts with a blank line (a Jinja tag without -%}})'
            if path.suffix == '.py' and ast.get_docstring(ast.parse(text)) is not None:
                after = text.splitlines()[ast.parse(text).body[0].end_lineno:][:1]
                assert after in ([], ['']), f"{path.name}: no blank line after the module docstring, but {after}"
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '.'], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # pycodestyle's layout rules (blank lines, indentation, whitespace) and pyproject.toml's line-length (E501),
    # which the project's ruff set leaves out (long lines of your own are not errors): Jinja's whitespace
    # control is where a baked file most easily loses a blank line
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '--preview', '--select',
                             'E1,E2,E3,E501,W', '.'], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert compileall.compile_dir(str(project), quiet=1, force=True)


def literal_keys(source, function, dict_name):
    """The keys of every dict literal passed to `function` in `source`, and those of the dict assigned to
    `dict_name`."""
    called, assigned = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == function:
            called.update(ast.literal_eval(key) for arg in node.args if isinstance(arg, ast.Dict) for key in arg.keys)
        elif isinstance(node, ast.Assign) and [getattr(t, 'id', None) for t in node.targets] == [dict_name]:
            assigned.update(ast.literal_eval(key) for key in node.value.keys)
    return called, assigned


@pytest.mark.parametrize('task, model, dataset', COMBOS, ids=['-'.join(c) for c in COMBOS])
def test_choices_reach_the_code(baked, task, model, dataset):
    project = baked(task, model, dataset)
    train_py = (project / 'train.py').read_text()
    runfiles_py = (project / 'runfiles.py').read_text()
    model_py = (project / 'model.py').read_text()
    dataset_py = (project / 'dataset.py').read_text()
    if task == 'classification':
        assert 'nn.CrossEntropyLoss()' in train_py and "METRIC_NAME = 'acc'" in runfiles_py
    else:
        assert 'nn.MSELoss()' in train_py and "METRIC_NAME = 'mae'" in runfiles_py
    model_classes = {'mlp': 'class MLP', 'cnn': 'class SmallCNN', 'transformer': 'class TransformerEncoderModel'}
    assert model_classes[model] in model_py
    dataset_classes = {'synthetic': 'class SyntheticDataset', 'csv': 'class CsvDataset',
                       'image_folder': 'class ImageFolderDataset', 'sequence': 'class SequenceDataset'}
    assert dataset_classes[dataset] in dataset_py
    # each file checks the minimums of its own config keys only: a key another choice has would puzzle its reader
    for source, config_name in ((dataset_py, 'DATA_CONFIG'), (model_py, 'MODEL_CONFIG')):
        checked, config_keys = literal_keys(source, 'check_minimums', config_name)
        assert checked and checked <= config_keys, f'{config_name} lacks {sorted(checked - config_keys)}'
    requirements = (project / 'requirements.txt').read_text()
    assert ('pillow' in requirements) == (dataset == 'image_folder')
    assert 'torch>=' in requirements and 'torch==' not in requirements
    # .ci/oldest pins each floor exactly (>= to ==): a line of another form would go untested there
    assert all(re.fullmatch(r'[a-z]+>=[\d.]+', line) for line in requirements.splitlines()), requirements


@pytest.mark.parametrize('task, model, dataset', COMBOS, ids=['-'.join(c) for c in COMBOS])
def test_commands_in_the_readme_and_messages_use_options_that_exist(baked, task, model, dataset):
    # the README is assembled from Jinja branches per choice: its examples can name an option that one
    # reader lacks (--dataset_dir where the reader needs no files, say); the project's test_docs.py
    # checks every command against its script's --help, and that --help describes every config key
    project = baked(task, model, dataset)
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests/test_docs.py'],
                            cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, suite_output(result)
    assert '6 passed' in result.stdout


def test_train_py_shows_the_numbered_skeleton_in_order(baked):
    text = (baked('classification', 'mlp', 'synthetic') / 'train.py').read_text()
    markers = ['# 1. imports', '# 2. train()', 'def train(train_loader, valid_loader, model, config, device',
               '# 2.1 training', '# 2.2 training log', '# 2.3 validation', '# 2.4 validation log',
               '# 2.5 checkpoint strategy', '# 3. start training'] + [
        f'# 3.{i} {name}' for i, name in enumerate(
            ['timestamp', 'device', 'config', 'seed', 'makedirs', 'dataset', 'dataloader', 'model', 'resume',
             'loggers', 'train()'], start=1)]
    positions = [text.find(marker) for marker in markers]
    assert -1 not in positions, [m for m, p in zip(markers, positions) if p == -1]
    assert positions == sorted(positions)


def test_defaults_are_the_documented_ones(baked):
    text = (baked('classification', 'mlp', 'synthetic') / 'train.py').read_text()
    for line in ["'seed': 6666", "'n_epoch': 250", "'batch_size': 128", "'lr': 1e-4", "'weight_decay': 5e-4",
                 "'early_stop': 50", "'num_workers': 0", "'clip_flag': True", "'scheduler_flag': True",
                 "'warmup_steps': 1000", "'save_every': 5", "'loggers_dir': f'./loggers/{timestamp}'",
                 "'checkpoints_dir': f'./checkpoints/{timestamp}'"]:
        assert line in text


@pytest.mark.parametrize('dataset', ['synthetic', 'csv'])
def test_post_gen_hook_removes_unselected_files_and_is_idempotent(baked, tmp_path, dataset):
    project = baked('classification', 'mlp', dataset)
    assert (project / 'tests' / 'test_data_layout.py').exists() == (dataset != 'synthetic')
    before = project_contents(project)
    source = (TEMPLATE / 'hooks' / 'post_gen_project.py').read_text()
    hook = tmp_path / 'post_gen_project.py'
    hook.write_text(source.replace('{{ cookiecutter | tojson }}', json.dumps({'dataset': dataset})))
    for _ in range(2):  # cruft reruns the hook on every update
        subprocess.run([sys.executable, str(hook)], cwd=project, check=True)
    assert project_contents(project) == before


def project_contents(project):
    """Every file's bytes, leaving out tool caches (other tests compile and run the baked project)."""
    return {p: p.read_bytes() for p in project.rglob('*') if p.is_file() and not CACHES & set(p.parts)}


def test_the_caches_copied_without_rendering_are_the_ones_the_hook_removes():
    """cookiecutter.json's `_copy_without_render` and the hook's `CACHE_DIRS` name the same caches, at the
    project's top and below it, so that no cache is rendered and every copied one is removed."""
    hook = ast.parse((TEMPLATE / 'hooks' / 'post_gen_project.py').read_text(encoding='utf-8'))
    removed = next(ast.literal_eval(node.value) for node in hook.body if isinstance(node, ast.Assign)
                   and [target.id for target in node.targets] == ['CACHE_DIRS'])
    copied = json.loads((TEMPLATE / 'cookiecutter.json').read_text(encoding='utf-8'))['_copy_without_render']
    assert set(removed) == CACHES
    assert sorted(copied) == sorted([*CACHES, *(f'*/{name}' for name in CACHES)])


def test_git_ignores_runs_data_and_caches_but_not_the_project(tmp_path):
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(tmp_path)))
    ignored = ['loggers/20260101_120000/train.log', 'checkpoints/exp1/best_checkpoint.pt', 'data/data.csv',
               '__pycache__/utils.cpython-311.pyc', 'tests/__pycache__/conftest.cpython-311.pyc',
               '.pytest_cache/v/cache/lastfailed', '.ruff_cache/CACHEDIR.TAG', '.venv/pyvenv.cfg',
               '.DS_Store', 'tests/.DS_Store']
    kept = ['my_package/data/__init__.py']  # a module of the user's own named data: only ./data holds datasets
    for relative in ignored + kept:
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text('x\n')
    subprocess.run(['git', 'init', '-q'], cwd=project, check=True)
    own_rules_only = ['git', '-c', 'core.excludesFile=']  # not the machine's global ignores
    listed = subprocess.run([*own_rules_only, 'ls-files', '--others', '--exclude-standard'], cwd=project,
                            check=True, capture_output=True, text=True).stdout.split()
    assert set(listed) == expected_files('synthetic') | set(kept)


def test_caches_in_a_local_template_checkout_do_not_reach_the_project(tmp_path):
    template = tmp_path / 'template'
    template.mkdir()
    for name in ('cookiecutter.json', 'local_extensions.py'):
        shutil.copy(TEMPLATE / name, template / name)
    for folder in ('hooks', '{{cookiecutter.project_slug}}'):
        shutil.copytree(TEMPLATE / folder, template / folder, ignore=shutil.ignore_patterns(*CACHES))
    source = template / '{{cookiecutter.project_slug}}'
    planted = {  # what `ruff check`, `python -c 'import utils'` and pytest leave behind
        '.ruff_cache/CACHEDIR.TAG': 'Signature: 8a477f597d28d172789f06886806bc55\n',
        '.ruff_cache/.gitignore': '# Automatically created by ruff.\n*\n',
        '__pycache__/utils.cpython-311.pyc': '',
        'tests/__pycache__/conftest.cpython-311-pytest-9.2.0.pyc': '',
        'tests/.pytest_cache/v/cache/lastfailed': '{}\n',
    }
    # A cache file that binaryornot takes for text but is not UTF-8: rendered, it stops the bake with a
    # UnicodeDecodeError (seen with a real ruff cache), so the caches must be copied without rendering.
    not_utf_8 = 'café {{ naïve }} {% résumé %} '.encode('latin-1') * 60
    misjudged = [f'{folder}{cache}/misjudged' for folder in ('', 'tests/') for cache in sorted(CACHES)]
    for relative, text in planted.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(text)
    for relative in misjudged:
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(not_utf_8)
    assert not is_binary(str(source / misjudged[0]))  # still a file that binaryornot misjudges
    project = Path(cookiecutter(str(template), no_input=True, output_dir=str(tmp_path / 'out')))
    assert not [p for p in project.rglob('*') if CACHES & set(p.parts)]
    assert project_files(project) == expected_files('synthetic')
    assert (source / '.ruff_cache' / '.gitignore').exists()  # the template checkout itself is left alone
