from __future__ import annotations

import pytest

from pytest_autofl.core.surface_rules import check_client_script, check_model, check_strategies, check_surface


@pytest.fixture(scope="module")
def client_source(request):
    from pathlib import Path

    return (Path(__file__).resolve().parent.parent / "surfaces" / "client_train.py").read_text()


def rules(violations):
    return sorted({v.rule for v in violations})


def test_repository_surface_passes(repo):
    assert check_surface(repo / "surfaces") == []


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("flare.init()", "pass", "AF101"),
        ("while flare.is_running():", "for _ in range(3):", "AF102"),
        ("input_model = flare.receive()", "input_model = None", "AF103"),
        ("strict=True", "strict=False", "AF105"),
        ("if flare.is_evaluate():", "if False:", "AF106"),
        ("params_type=ParamsType.DIFF", "params_type=ParamsType.FULL", "AF107"),
        ('meta: dict = {"NUM_STEPS_CURRENT_ROUND": steps}', "meta: dict = {}", "AF107"),
        ("import argparse", "import argparse\nimport subprocess", "AF108"),
        ("import argparse", "from pytest_autofl import evaluate", "AF108"),
        ("def main() -> None:", "def main( -> None:", "AF100"),
    ],
)
def test_broken_client_contract_names_rule_and_line(client_source, old, new, rule):
    assert old in client_source
    violations = check_client_script(client_source.replace(old, new, 1), "client_train.py")
    assert rule in rules(violations)
    hit = next(v for v in violations if v.rule == rule)
    assert str(hit).startswith(f"client_train.py:{hit.line}: {rule} ")


def test_a_docstring_does_not_satisfy_the_contract():
    source = '"""flare.init() flare.receive() flare.send(FLModel(params_type=ParamsType.DIFF))"""\n'
    assert {"AF101"} <= set(rules(check_client_script(source)))


def test_strategy_missing_a_method_is_named():
    source = (
        "from nvflare.app_common.aggregators.model_aggregator import ModelAggregator\n"
        "class Half(ModelAggregator):\n"
        "    def accept_model(self, m): pass\n"
        "class Full(Half):\n"
        "    def aggregate_model(self): pass\n"
        "    def reset_stats(self): pass\n"
    )
    violations = check_strategies(source, "strategies.py")
    assert rules(violations) == ["AF120", "AF121"]
    assert any("Half lacks aggregate_model, reset_stats" in str(v) for v in violations)
    assert not any("Full lacks" in str(v) for v in violations)


def test_model_needs_net_with_arch_and_seed():
    assert rules(check_model("class Net:\n    def __init__(self, arch): pass\n")) == ["AF130"]
    assert rules(check_model("class Net:\n    def __init__(self, arch, seed): pass\n")) == ["AF130"]
    assert (
        check_model("class Net:\n    def __init__(self, arch, seed, in_features, num_classes): pass\n") == []
    )


def _digits_rows(n: int) -> list[list[int]]:
    from sklearn.datasets import load_digits

    return load_digits().data[:n].astype(int).tolist()


@pytest.mark.parametrize(
    ("smuggled", "named"),
    [
        # a shard's rows, base64 in one string
        (
            lambda: (
                f"ROWS = {__import__('base64').b64encode(bytes(sum(_digits_rows(200), []))).decode()!r}\n"
            ),
            "a literal of",
        ),
        # the same cut into strings under the single-literal cap
        (lambda: "".join(f"R{i} = {'x' * 3000!r}\n" for i in range(8)), "characters of literals"),
        # a table of numbers
        (lambda: f"TABLE = {_digits_rows(60)}\n", "numeric constants"),
        # a file too large to be code
        (lambda: "# " + "x" * (70 * 1024) + "\n", "bytes (cap"),
    ],
)
def test_a_code_change_that_carries_data_is_refused_before_it_runs(client_source, smuggled, named):
    violations = check_client_script(client_source + "\n" + smuggled(), "client_train.py")
    assert any(v.rule == "AF109" and named in str(v) for v in violations), [str(v) for v in violations]
