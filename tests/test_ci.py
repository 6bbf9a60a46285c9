"""The test command itself: `make test` runs the longest tests first and fails when it collects nothing."""

import os
import subprocess
import sys
from functools import cache

import pytest
from conftest import COMBOS, OPTIONS, TEMPLATE
from test_generated import ANSWER_FREE, SUBSET


def make_test(tmp_path, pytest_options):
    """Run `make test` with this interpreter (a stamp stands in for the installed .venv)."""
    (tmp_path / 'installed').touch()
    env = {**os.environ, 'PYTEST_ADDOPTS': pytest_options}
    return subprocess.run(['make', '-C', str(TEMPLATE), 'test', f'VENV={tmp_path}', f'PY={sys.executable}'],
                          capture_output=True, text=True, env=env)


@cache
def collected_ids(*options):
    """The test ids `pytest --collect-only` lists in the template, in collection order (after conftest's sort)."""
    collected = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-q', '-p', 'no:cacheprovider',
                                *options], cwd=TEMPLATE, capture_output=True, text=True)
    return [line for line in collected.stdout.splitlines() if '::' in line]


def test_the_project_suites_are_collected_first_then_the_other_slow_tests():
    ids, slow = collected_ids(), set(collected_ids('-m', 'slow'))
    suites = [i for i in ids if '::test_generated_project_tests_pass[' in i]
    assert len(suites) >= 7 and ids[:len(suites)] == suites
    assert set(ids[len(suites):len(slow)]) == slow - set(suites)  # then the rest of the slow ones, then the fast


def test_a_projects_readme_commands_are_checked_once_whether_or_not_its_whole_suite_runs():
    def docs_checks(*options):
        ids = collected_ids(*options)
        bake_checks = {i.split('[')[1] for i in ids if '::test_commands_in_the_readme_and_messages' in i}
        suites = {i.split('[')[1] for i in ids if '::test_generated_project_tests_pass[' in i}
        return bake_checks, suites

    everything, suites = docs_checks()
    assert len(suites) == len(SUBSET) and not everything & suites  # each suite runs its own test_docs.py
    assert len(everything | suites) == len(COMBOS)
    fast, no_suites = docs_checks('-m', 'not slow')
    assert not no_suites and len(fast) == len(COMBOS)


def test_the_files_run_in_some_projects_only_have_no_template_branch_and_cover_what_varies():
    # test_generated runs each in ANSWER_FREE's projects only, because no answer changes them: whole in one, and
    # in the others the tests (a -k expression) that differ with the data read or the model trained
    for path, projects in ANSWER_FREE.items():
        text = (TEMPLATE / '{{cookiecutter.project_slug}}' / path).read_text()
        assert '{%' not in text and '{{' not in text and 'cookiecutter' not in text, path
        assert projects and set(projects) <= set(SUBSET), path
        assert None in projects.values(), path
    # DDP: each model
    assert {model for _, model, _ in ANSWER_FREE['tests/test_distributed.py']} == set(OPTIONS['model'])
    faults = ANSWER_FREE['tests/test_faults.py']  # signals and crashes: in-memory data, and files read in workers
    assert ('classification', 'mlp', 'synthetic') in faults and any(dataset != 'synthetic' for _, _, dataset in faults)
    waits = {dataset for _, _, dataset in ANSWER_FREE['tests/test_data_wait.py']}  # in memory, and decoded as read
    assert waits & {'synthetic', 'csv'} and 'image_folder' in waits
    plots = {task for task, _, _ in ANSWER_FREE['tests/test_runs_and_plots.py']}  # the metric's name: the task's
    assert plots == set(OPTIONS['task'])


def test_the_templates_own_python_passes_its_ruff_check():
    # pyproject.toml's rules, E501 (120 columns) among them; its exclude keeps the Jinja templates out
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '.'], cwd=TEMPLATE,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_make_test_fails_when_pytest_collects_no_tests(tmp_path):
    result = make_test(tmp_path, '-k no_test_has_this_name')
    assert result.returncode != 0
    assert 'error: pytest collected no tests' in result.stderr


@pytest.mark.parametrize('end, wanted, example', [
    ('oldest', 'the oldest Python', '3.10.13'),
    ('newest', 'a Python', '3.13.0'),
])
def test_versions_checks_refuse_a_python_they_cannot_run(tmp_path, end, wanted, example):
    # .ci/oldest and .ci/newest (run by hand: they download a CUDA build of torch) stop before installing
    missing = tmp_path / 'python3.10'
    result = subprocess.run([str(TEMPLATE / '.ci' / end), str(missing)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr == (f"error: no '{missing}' to run; pass {wanted} to test, e.g. "
                             f'.ci/{end} ~/.pyenv/versions/{example}/bin/python\n')


def test_versions_check_refuses_an_end_it_does_not_know():
    result = subprocess.run([str(TEMPLATE / '.ci' / 'versions'), 'middle'], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr == "error: unknown end 'middle'; run .ci/oldest or .ci/newest\n"
