"""The interpreter exits cleanly while other threads are inside the engine (they used to abort the process:
"terminate called without an active exception", exit 134)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PRELUDE = """
import sys, threading, time, numpy as np, sensinet as sn
X = np.random.default_rng(0).random((512, 8)); y = X.sum(1)
nets = [sn.Network(8, [sn.Dense(32, "tanh"), sn.Dense(1)], seed=i) for i in range(4)]
"""

SCENARIOS = {
    "daemon_fit_return": """
threading.Thread(target=lambda: nets[0].fit(X, y, epochs=10**9), daemon=True).start()
time.sleep(0.5)
""",
    "daemon_predict_loop_sys_exit": """
Xb = np.random.default_rng(1).random((20000, 8))
threading.Thread(target=lambda: [nets[0].predict(Xb) for _ in range(10**6)], daemon=True).start()
time.sleep(0.5)
sys.exit(0)
""",
    "daemon_mixed_with_callbacks": """
threading.Thread(target=lambda: nets[0].fit(X, y, epochs=10**9, callback=lambda i: False, callback_every=1),
                 daemon=True).start()
threading.Thread(target=lambda: [sn.sensitivity(nets[1], X, y, wrt="loss") for _ in range(10**6)],
                 daemon=True).start()
threading.Thread(target=lambda: nets[2].fit(X, y, optimizer="lbfgs", epochs=10**6), daemon=True).start()
threading.Thread(target=lambda: [sn.group_curvature(nets[3], X, y, [{1: None}]) for _ in range(10**6)],
                 daemon=True).start()
time.sleep(0.5)
""",
}


def _run(code: str, interrupt: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PRELUDE + code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    if interrupt:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.5)
        for _ in range(interrupt):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the process did not exit: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_exit_while_threads_are_inside_the_engine(name):
    for _ in range(2):
        r = _run(SCENARIOS[name])
        assert r.returncode == 0, r.stderr[-2000:]
        assert "terminate called" not in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery")
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_while_joining_a_fitting_worker(presses):
    """One Ctrl-C: the worker sees a stop flag and ends; two: the second interrupts the wait for the
    (never-ending) non-daemon worker, and the interpreter exits while it is inside the engine."""
    code = """
stop = threading.Event()
check = (lambda i: stop.is_set()) if %d == 1 else None
t = threading.Thread(target=lambda: nets[0].fit(X, y, epochs=10**9, callback=check))
t.start()
print("started", flush=True)
try:
    t.join()
finally:
    stop.set()
""" % presses
    r = _run(code, interrupt=presses)
    assert r.returncode == 128 + signal.SIGINT or r.returncode == -signal.SIGINT, r.stderr[-2000:]
    assert "KeyboardInterrupt" in r.stderr and "terminate called" not in r.stderr
