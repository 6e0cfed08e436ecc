"""Config validation: every shipped config is valid; bad input names the key and the fix."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO, TINY_CONFIG
from prunesim.config import check_gpu_requirement, load_schema, validate_config
from prunesim.errors import ConfigError

SHIPPED = [REPO / "config.yaml", REPO / "config" / "quickstart.yaml", TINY_CONFIG]


def tiny() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    config = validate_config(yaml.safe_load(path.read_text()))
    for experiment in config["experiments"].values():
        assert experiment["prune"]["rate"] > 0
        assert experiment["train"]["epochs"] >= 1


def test_only_the_paper_config_requires_a_gpu():
    configs = {
        path.name: validate_config(yaml.safe_load(path.read_text()))
        for path in [*SHIPPED, REPO / "config" / "cifar10_cpu.yaml"]
    }
    paper = configs.pop("config.yaml")
    with pytest.raises(ConfigError, match=r"no CUDA GPU.*CPU-hours.*quickstart.*allow_cpu=True"):
        check_gpu_requirement(paper, has_cuda=False)
    check_gpu_requirement(paper, has_cuda=True)
    check_gpu_requirement({**paper, "allow_cpu": True}, has_cuda=False)
    for config in configs.values():  # quickstart, tiny, the CPU study: never blocked
        assert config["require_gpu"] is False
        check_gpu_requirement(config, has_cuda=False)


def test_defaults_are_filled():
    config = tiny()
    del config["experiments"]["tiny"]["prune"]["retrain"]
    validate_config(config)
    prune = config["experiments"]["tiny"]["prune"]
    assert prune["retrain"] == "lrr"
    assert prune["scope"] == "global"
    assert prune["prune_output_layer"] is False


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["experiments"]["tiny"]["train"].update(epoch=3),
         r"unknown key\(s\) 'epoch' under 'experiments/tiny/train'; allowed keys: .*epochs"),
        (lambda c: c["experiments"]["tiny"].update(model="vgg19"),
         r"'experiments/tiny/model' is 'vgg19'; allowed values: 'vgg16_bn', 'vgg_svhn'"),
        (lambda c: c["experiments"]["tiny"].update(runs="two"),
         r"'experiments/tiny/runs' must be of type integer"),
        (lambda c: c["metrics"].update(ssim={}),
         r"unknown metric 'ssim' under 'metrics'; built-in metrics: mean_cca, svcca, pwcca, cka"),
        (lambda c: c["metrics"].update(ssim={"metric": "ssim"}),
         r"metrics/ssim/metric is 'ssim'; a variant's base must be one of mean_cca"),
        (lambda c: c["metrics"].update(cka={"metric": "nbs"}),
         r"metrics/cka: 'cka' is a built-in metric and cannot name a variant"),
        (lambda c: c["metrics"].update(cka_channels={"metric": "cka", "reshape": "rows"}),
         r"metrics/cka_channels \(a cka\): 'reshape' is 'rows'; allowed values"),
        (lambda c: c["datasets"]["digits"].update(source="mnist"),
         r"'datasets/digits/source' is 'mnist'; allowed values: 'cifar10', 'svhn'"),
        (lambda c: c["experiments"]["tiny"].update(dataset="cifar100"),
         r"experiments/tiny/dataset is 'cifar100', which is not defined under 'datasets'"),
        (lambda c: c["experiments"]["tiny"].update(layers=["conv1", "conv9"]),
         r"unknown layer\(s\) \['conv9'\] for model 'vgg_svhn'"),
        (lambda c: c["experiments"]["tiny"]["prune"].update(scope="random"),
         r"'experiments/tiny/prune/scope' is 'random'; allowed values: 'global', 'local', 'mixed'"),
        # the controls (README "Controls")
        (lambda c: c["experiments"]["tiny"]["controls"].update(seed_baseline=-1),
         r"'experiments/tiny/controls/seed_baseline': -1 is less than the minimum of 0"),
        (lambda c: c["experiments"]["tiny"]["controls"].update(random_pruning=[1, 3]),
         r"experiments/tiny/controls/random_pruning names IMP iteration\(s\) \[3\] beyond "
         r"experiments/tiny/prune/iterations \(2\)"),
        (lambda c: c["experiments"]["tiny_filters"].update(controls={"random_pruning": [1]}),
         r"experiments/tiny_filters/controls/random_pruning needs .*prune/method: magnitude"),
        (lambda c: c["experiments"]["tiny_filters"].update(controls={"run_vs_run": {}}),
         r"experiments/tiny_filters/controls/run_vs_run compares different IMP runs, but "
         r"experiments/tiny_filters/runs is 1"),
        (lambda c: c["experiments"]["tiny"]["controls"].update(run_vs_run={"max_pairs": 0}),
         r"'experiments/tiny/controls/run_vs_run/max_pairs': 0 is less than the minimum of 1"),
    ],
)  # fmt: skip
def test_bad_config_names_key_and_allowed_values(edit, message):
    config = tiny()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(copy.deepcopy(config))


def _minimal_config() -> dict:
    return {
        "datasets": {"digits": {"source": "digits"}},
        "experiments": {"e": {"model": "vgg_svhn", "dataset": "digits"}},
        "metrics": {name: {} for name in ["mean_cca", "svcca", "pwcca", "cka", "nbs", "cosine"]},
    }


def test_controls_are_off_unless_asked_for():
    """config.yaml and a config without `controls` get none (issue #15: opt-in)."""
    paper = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    minimal = validate_config(_minimal_config())
    for config in (paper, minimal):
        for experiment in config["experiments"].values():
            assert experiment["controls"] == {
                "seed_baseline": 0, "random_pruning": [], "run_vs_run": None,
            }  # fmt: skip


def test_controls_plan_their_comparisons():
    from prunesim.controls import control_comparisons, run_pairs

    assert run_pairs(4, None) == [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]
    assert run_pairs(4, 2) == [(1, 2), (1, 3)]  # raising max_pairs only adds pairs
    assert run_pairs(2, 5) == [(1, 2)]
    experiment = validate_config(tiny())["experiments"]["tiny"]
    experiment["controls"] = {"seed_baseline": 2, "random_pruning": [2, 1],
                              "run_vs_run": {"max_pairs": None}}  # fmt: skip
    assert control_comparisons(experiment) == [
        ("seed_vs_dense", 1, 0, "dense"), ("seed_vs_dense", 2, 0, "dense"),
        ("random_vs_dense", 1, 1, "dense"), ("random_vs_dense", 1, 2, "dense"),
        ("run_vs_run", 1, 1, "run2"), ("run_vs_run", 1, 2, "run2"),
    ]  # fmt: skip


def test_schema_defaults_equal_the_libraries_defaults():
    """One source of truth: an omitted key means the same in the config and in the code."""
    from prunesim.metrics import DEFAULT_SETTINGS
    from prunesim.settings import PruneSettings, TrainSettings

    config = validate_config(_minimal_config())
    assert config["metrics"] == {name: DEFAULT_SETTINGS[name] for name in config["metrics"]}
    # ... because the metric modules own them: the schema's metric blocks hold none
    schema = load_schema()["$defs"]
    for block in ("metric_common", *DEFAULT_SETTINGS):
        for key, spec in schema[block]["properties"].items():
            assert "default" not in spec, f"$defs/{block}/{key} repeats a metric's default"
    experiment = config["experiments"]["e"]
    # The settings classes read their defaults from the schema: built from nothing, they are
    # what the validated config holds.
    assert TrainSettings.from_config() == TrainSettings.from_config(experiment["train"])
    assert PruneSettings.from_config().as_dict() == experiment["prune"]


def test_unknown_metric_setting_is_named():
    config = _minimal_config()
    config["metrics"]["svcca"]["kep"] = 0.9
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'kep' under 'metrics/svcca'"):
        validate_config(config)


def test_config_yaml_trains_with_the_documented_paper_settings():
    """config.yaml and PAPER_TRAIN_SETTINGS (the documented paper setup) must not drift."""
    import yaml

    from conftest import REPO
    from prunesim.settings import TrainSettings
    from prunesim.training import PAPER_TRAIN_SETTINGS

    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    models = set()
    for name, experiment in config["experiments"].items():
        model = experiment["model"]
        models.add(model)
        assert TrainSettings.from_config(experiment["train"]) == TrainSettings.from_config(
            PAPER_TRAIN_SETTINGS[model]
        ), f"config.yaml experiment {name} drifted from PAPER_TRAIN_SETTINGS[{model!r}]"
    assert models == set(PAPER_TRAIN_SETTINGS)


def test_metric_variant_gets_its_base_defaults_and_only_listed_metrics_run():
    config = tiny()
    config["metrics"] = {"cka": {}, "cka_channels": {"metric": "cka", "reshape": "channels"}}
    validated = validate_config(copy.deepcopy(config))
    from prunesim.config import metric_bases
    from prunesim.metrics import DEFAULT_SETTINGS

    assert list(validated["metrics"]) == ["cka", "cka_channels"]  # no other metric added
    assert validated["metrics"]["cka_channels"] == {
        **DEFAULT_SETTINGS["cka"], "metric": "cka", "reshape": "channels",
    }  # fmt: skip
    assert metric_bases(validated) == {"cka": "cka", "cka_channels": "cka"}


def test_vgg_svhn_uses_the_optimiser_of_vgg16_bn():
    """The paper (section 4.2) trains VGG_SVHN with "SGDM with hyperparameters as for
    VGG16_BN": the drift test above would not see both copies move together."""
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    by_model = {e["model"]: e["train"] for e in config["experiments"].values()}
    keys = ("optimizer", "lr", "momentum", "nesterov", "weight_decay")
    assert {k: by_model["vgg_svhn"][k] for k in keys} == {k: by_model["vgg16_bn"][k] for k in keys}
