"""Bake projects from the template with the cookiecutter API, once per combination, and reuse them."""

import itertools
import json
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
OPTIONS = json.loads((TEMPLATE / 'cookiecutter.json').read_text())

# The combinations the template supports: model -> the datasets it can read.
SUPPORTED = {
    'mlp': {'synthetic', 'csv', 'image_folder'},
    'cnn': {'synthetic', 'image_folder'},
    'transformer': {'synthetic', 'sequence'},
}
ALL_COMBOS = list(itertools.product(OPTIONS['task'], OPTIONS['model'], OPTIONS['dataset']))
COMBOS = [c for c in ALL_COMBOS if c[2] in SUPPORTED[c[1]]]
UNSUPPORTED = [c for c in ALL_COMBOS if c[2] not in SUPPORTED[c[1]]]


def bake(output_dir, **answers):
    """Bake with the given answers (the rest are defaults); return the project folder."""
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def suite_output(result):
    """A baked project's pytest output for an assertion message: its failures' `E` lines first (the logs a failed
    test captured can push them out of the tail), then the tail of its output."""
    errors = [line for line in result.stdout.splitlines() if line.startswith('E ')][:60]
    return '\n'.join(errors) + '\n[...]\n' + result.stdout[-6000:] + result.stderr[-3000:]


@pytest.fixture(scope='session')
def baked(tmp_path_factory):
    """baked(task, model, dataset) -> project folder, baked once per session."""
    cache = {}

    def get(task, model, dataset):
        key = (task, model, dataset)
        if key not in cache:
            out = tmp_path_factory.mktemp('-'.join(key))
            cache[key] = bake(out, task=task, model=model, dataset=dataset)
        return cache[key]

    return get


SUITE_TEST = 'test_generated_project_tests_pass'  # a project's whole suite (tests/test_generated.py)
DOCS_TEST = 'test_commands_in_the_readme_and_messages_use_options_that_exist'  # its test_docs.py (test_bake.py)


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected theirs
def pytest_collection_modifyitems(config, items):
    """Longest tests first. `make test` hands tests to its two workers one at a time
    (`--maxschedchunk 1`), so the workers then end together instead of one running the last
    project suites while the other waits (about 5 of 16 minutes in CI).

    A project whose own suite runs (test_generated) runs its tests/test_docs.py there, so test_bake's
    run of that file for the same answers is deselected: it would take about 20 s to check it again."""
    suites = {item.callspec.id for item in items if getattr(item, 'originalname', '') == SUITE_TEST}
    again = [item for item in items
             if getattr(item, 'originalname', '') == DOCS_TEST and item.callspec.id in suites]
    if again:
        config.hook.pytest_deselected(items=again)
        items[:] = [item for item in items if item not in again]

    def rank(item):
        if getattr(item, 'originalname', '') == SUITE_TEST:
            return 0
        return 1 if item.get_closest_marker('slow') else 2

    items.sort(key=rank)
