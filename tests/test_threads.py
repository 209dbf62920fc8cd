"""Threading model: per-call thread counts, concurrent fits of separate networks reproduce their solo
results bitwise, and a network trains in one thread at a time with a clear error otherwise."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import sensinet as sn


def _setup(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(512, 64))
    y = np.tanh(X[:, :4]).sum(1)
    # products of 128 x 256 x 256 rows/cols: above the small-matrix threshold, so split over threads
    net = sn.Network(64, [sn.Dense(256, "tanh"), sn.Dense(256, "relu"), sn.Dense(1)], seed=seed)
    return net, X, y


def _train(net, X, y, threads):
    net.fit(X, y, optimizer=sn.SGD(0.01, 0.9), epochs=3, batch_size=128, seed=1, n_threads=threads)
    return net.parameters.copy()


def test_concurrent_fits_with_different_thread_counts_match_their_solo_runs():
    jobs = [(0, 1), (1, 2), (2, 1), (3, 2)]
    solo = {}
    for seed, threads in jobs:
        net, X, y = _setup(seed)
        solo[seed] = _train(net, X, y, threads)
    for _ in range(3):
        out, errors = {}, []

        def work(seed, threads):
            try:
                net, X, y = _setup(seed)
                out[seed] = _train(net, X, y, threads)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        ts = [threading.Thread(target=work, args=job) for job in jobs]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert errors == []
        for seed, _ in jobs:
            np.testing.assert_array_equal(out[seed], solo[seed])


def test_two_threads_on_one_network_get_a_clear_error():
    net, X, y = _setup(0)
    started, release = threading.Event(), threading.Event()

    def slow(info):
        started.set()
        release.wait(10)
        return True

    t = threading.Thread(target=lambda: net.fit(X, y, epochs=5, callback=slow, callback_every=1))
    t.start()
    assert started.wait(10)
    try:
        with pytest.raises(ValueError, match="already training in another thread.*net.copy"):
            net.fit(X, y, epochs=1)
        assert net.predict(X).shape == (512, 1)  # evaluation waits for the lock the poll released
    finally:
        release.set()
        t.join()
    with pytest.raises(ValueError, match="a callback may not train the same network"):
        net.fit(X, y, epochs=1, callback=lambda info: net.fit(X, y, epochs=1))


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (2**31, ValueError), (1.5, ValueError), ("2", ValueError),
                                      (True, ValueError)])
def test_thread_counts_are_bounded(bad, exc):
    with pytest.raises(exc, match="n_threads: expected an int between 1 and 1024"):
        sn.set_num_threads(bad)
    net, X, y = _setup(0)
    with pytest.raises(exc, match="n_threads: expected an int between 1 and 1024"):
        net.predict(X, n_threads=bad)
    assert sn.get_num_threads() >= 1
    net.predict(X, n_threads=np.int64(2))  # numpy integers are ints
