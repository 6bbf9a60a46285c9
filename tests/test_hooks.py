"""Bad answers and unsupported combinations: exit != 0, a clear message, and no folder left behind."""

import subprocess
import sys
import tempfile

import pytest
from conftest import TEMPLATE, UNSUPPORTED, bake
from cookiecutter.exceptions import FailedHookException
from jinja2.exceptions import UndefinedError


def cli(tmp_path, *answers):
    out = tmp_path / 'out'
    result = subprocess.run([sys.executable, '-m', 'cookiecutter', '--no-input', '-o', str(out), str(TEMPLATE),
                             *answers], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return result, out


def nothing_written(out):
    return not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize('task, model, dataset', UNSUPPORTED, ids=['-'.join(c) for c in UNSUPPORTED])
def test_unsupported_combination_is_rejected_before_anything_is_written(tmp_path, task, model, dataset):
    with pytest.raises(FailedHookException):
        bake(tmp_path, task=task, model=model, dataset=dataset)
    assert nothing_written(tmp_path)


def test_unsupported_combination_message_names_the_valid_choices(tmp_path):
    result, out = cli(tmp_path, 'model=cnn', 'dataset=csv')
    assert result.returncode != 0
    assert "error: model 'cnn' cannot read dataset 'csv': with 'cnn' choose one of synthetic, image_folder; " \
           "for 'csv' choose model mlp" in result.stderr
    assert nothing_written(out)


@pytest.mark.parametrize('answer, message', [
    ('project_name=', 'project_slug is empty: give a project_name with letters or digits in it, or a project_slug'),
    ('project_name=!!!', 'project_slug is empty: give a project_name with letters or digits in it'),
    ('project_slug=a/b', "project_slug 'a/b' is not a safe folder name"),
    ('project_slug=..', "project_slug '..' is not a safe folder name"),
    ('project_slug=my project', "project_slug 'my project' is not a safe folder name"),
    ('project_slug=-rf', "project_slug '-rf' is not a safe folder name"),
    ('num_features=0', 'num_features must be at least 1, got 0'),
    ('num_classes=-3', "num_classes must be a whole number, got '-3'"),
    ('image_size=big', "image_size must be a whole number, got 'big'"),
    ('image_size=4', 'image_size must be at least 8, got 4'),
    ('num_classes=2.5', "num_classes must be a whole number, got '2.5'"),
])
def test_bad_answer_fails_with_a_clear_message_and_no_folder(tmp_path, answer, message):
    result, out = cli(tmp_path, answer)
    assert result.returncode != 0
    assert message in result.stderr
    assert 'Traceback' not in result.stdout + result.stderr  # the message is not buried under cookiecutter's
    assert [line for line in result.stderr.splitlines() if not line.startswith('error: ')] == []
    assert nothing_written(out)


def test_an_answer_that_is_none_of_its_choices_is_refused_by_cookiecutter_naming_them(tmp_path):
    """cookiecutter checks a choice given on the command line before the template's code runs (the README says
    so): its traceback's last line names the choices, and nothing is written."""
    result, out = cli(tmp_path, 'model=resnet')
    assert result.returncode != 0
    last = result.stderr.splitlines()[-1]
    assert last.startswith('ValueError: resnet ') and "['mlp', 'cnn', 'transformer']" in last, result.stderr
    assert nothing_written(out)


def test_a_bad_slug_through_the_api_raises_with_the_message(tmp_path):
    # pytest-cookies and cruft call cookiecutter as a library: an exception they can catch, not an exit
    with pytest.raises(UndefinedError, match="project_slug 'a/b' is not a safe folder name"):
        bake(tmp_path, project_slug='a/b')
    assert nothing_written(tmp_path)


def test_every_problem_gets_its_own_line(tmp_path):
    result, out = cli(tmp_path, 'num_features=x', 'num_classes=0', 'model=transformer', 'dataset=csv')
    errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 3, result.stderr
    assert nothing_written(out)


def test_image_channels_must_be_1_3_or_4_for_image_files(tmp_path):
    result, out = cli(tmp_path, 'model=cnn', 'dataset=image_folder', 'image_channels=2')
    assert result.returncode != 0 and 'image_channels must be 1, 3 or 4' in result.stderr
    assert nothing_written(out)


def test_defaults_bake_without_questions(tmp_path):
    result, out = cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / 'my_training_project' / 'train.py').is_file()


@pytest.mark.parametrize('answers, example_data', [((), False), (('dataset=csv',), True)])
def test_baking_prints_the_quick_start_commands_to_run_next(tmp_path, answers, example_data):
    result, out = cli(tmp_path, *answers)
    assert result.returncode == 0, result.stderr
    project = out / 'my_training_project'
    readme = (project / 'README.md').read_text()
    commands = readme.split('## Quick start\n\n```bash\n')[1].split('```')[0]  # the README's block, as baked
    assert f'Made {project}. Next (README.md has the rest):\n\ncd {project}\n{commands}' in result.stdout
    assert 'python train.py' in commands and ('python dataset.py --make-example data/' in commands) == example_data


def test_a_bake_leaves_no_copy_of_its_hooks_in_the_temp_folder(tmp_path, monkeypatch):
    # cookiecutter renders each hook into a file of the temp folder, runs it and leaves it there; the hooks remove
    # their own copy, after a bake and after answers they refuse, and never the template's hooks
    temp = tmp_path / 'temp'
    temp.mkdir()
    (temp / 'tmp_of_someone_else.py').write_text('')
    monkeypatch.setenv('TMPDIR', str(temp))  # the hooks' processes
    monkeypatch.setattr(tempfile, 'tempdir', None)  # this one's, read again from TMPDIR
    assert tempfile.gettempdir() == str(temp)
    assert (bake(tmp_path / 'out') / 'train.py').is_file()
    with pytest.raises(FailedHookException):
        bake(tmp_path / 'refused', num_classes='0')
    result, _ = cli(tmp_path, 'model=cnn', 'dataset=csv')
    assert result.returncode != 0
    assert [p.name for p in temp.iterdir()] == ['tmp_of_someone_else.py']
    assert all((TEMPLATE / 'hooks' / name).is_file() for name in ('pre_gen_project.py', 'post_gen_project.py'))
