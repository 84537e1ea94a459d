import pytest

from headstart.select.runner import _DECODE_S, _OVERHEAD_S, _plan, min_images


def _job(name, ips):
    return {"model": name, "image_size": 64, "ips": ips, "per_image": 1.0 / ips + _DECODE_S}


def test_min_images_is_five_a_class_within_bounds():
    assert min_images(1000, 10) == 50
    assert min_images(1000, 2) == 20
    assert min_images(30, 10) == 30


def test_plan_uses_the_whole_budget_up_to_the_caps():
    jobs = [_job("fast", 1000.0), _job("slow", 100.0)]
    per_image = sum(j["per_image"] for j in jobs)
    budget = 2 * _OVERHEAD_S + 130 * per_image
    kept, n = _plan(jobs, n_train=5000, num_classes=10, budget_left=budget, max_images=1000, skipped=[])
    assert [j["model"] for j in kept] == ["fast", "slow"]
    assert n == 125  # 130 fit; above 100 the sample is rounded down to a multiple of 25 (cache reuse)
    _, n = _plan(jobs, n_train=5000, num_classes=10, budget_left=1e6, max_images=300, skipped=[])
    assert n == 300
    _, n = _plan(jobs, n_train=90, num_classes=10, budget_left=1e6, max_images=300, skipped=[])
    assert n == 90


def test_plan_drops_the_costliest_candidates_first_and_says_why():
    jobs = [_job("slow", 10.0), _job("fast", 1000.0)]
    need_fast = _OVERHEAD_S + min_images(5000, 10) * jobs[1]["per_image"]
    skipped = []
    kept, n = _plan(jobs, n_train=5000, num_classes=10, budget_left=need_fast * 1.01, max_images=1000, skipped=skipped)
    assert [j["model"] for j in kept] == ["fast"] and n >= min_images(5000, 10)
    assert skipped == [{"model": "slow", "image_size": 64, "reason": "over the budget (raise --budget to include it)"}]


def test_plan_with_no_room_for_anything_returns_nothing():
    skipped = []
    assert _plan([_job("a", 100.0)], n_train=500, num_classes=5, budget_left=0.5, max_images=200, skipped=skipped) == ([], 0)
    assert [s["model"] for s in skipped] == ["a"]


@pytest.mark.parametrize("n_train", [150, 1000])
def test_plan_never_exceeds_the_training_split(n_train):
    _, n = _plan([_job("a", 1000.0)], n_train=n_train, num_classes=3, budget_left=1e6, max_images=10_000, skipped=[])
    assert n <= n_train
