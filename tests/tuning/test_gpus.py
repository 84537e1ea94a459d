"""`headstart tune --workers N` gives each local worker its own GPU when there are several."""

from headstart.tuning.gpus import worker_environment


def test_each_worker_sees_one_gpu_round_robin():
    envs = [worker_environment(i, 2, base={"PATH": "/bin"}) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert all(e["PATH"] == "/bin" for e in envs)  # the rest of the environment is kept


def test_the_gpus_already_visible_are_the_ones_shared_out():
    base = {"CUDA_VISIBLE_DEVICES": "3, 5"}
    assert [worker_environment(i, 2, base=base)["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["3", "5"]


def test_without_two_gpus_workers_inherit_the_environment():
    assert worker_environment(0, 0, base={}) is None
    assert worker_environment(1, 1, base={"CUDA_VISIBLE_DEVICES": "2"}) is None
