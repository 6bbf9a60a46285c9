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


def pytest_collection_modifyitems(items):
    """Longest tests first. `make test` hands tests to its two workers one at a time
    (`--maxschedchunk 1`), so the workers then end together instead of one running the last
    project suites while the other waits (about 5 of 16 minutes in CI)."""
    def rank(item):
        if getattr(item, 'originalname', '') == 'test_generated_project_tests_pass':
            return 0
        return 1 if item.get_closest_marker('slow') else 2

    items.sort(key=rank)
