#!/usr/bin/python3
"""with_sim.py -- CMD...: run CMD against a fresh simulated Kubernetes API.

Starts tests/k8s_sim (TLS with a generated CA, a bearer token in a
kubelet-style service-account directory), runs CMD with these variables set,
stops the simulator and exits with CMD's status:

  LOCK_ARBITER_TEST_KUBE_URL         https://127.0.0.1:PORT
  LOCK_ARBITER_TEST_KUBE_CA          the simulator's CA certificate
  LOCK_ARBITER_TEST_KUBE_TOKEN_FILE  SA_DIR/token (a symlink into ..data, as in a pod)
  LOCK_ARBITER_TEST_KUBE_SA_DIR      the service-account directory (token, ca.crt)
  LOCK_ARBITER_TEST_KUBE_CONTROL     http://127.0.0.1:CPORT, the control API (/_sim/...)
  LOCK_ARBITER_TEST_KUBE_WRONG_CA    a CA that did not sign the server's certificate

CMD drives the simulator itself through the control API, so the test keeps
its scenarios next to its assertions. Proxy variables are removed: the test
talks to the loopback only.
"""

import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "k8s_sim"))

from simctl import Sim, make_pki  # noqa: E402

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def main(argv):
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: with_sim.py -- CMD [ARGS...]\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="k8s-client-test-") as tmp:
        wrong_ca = make_pki(os.path.join(tmp, "wrong-pki"))["ca"]
        sim = Sim(os.path.join(tmp, "sim"), token="lock-arbiter-test-token-1")
        sim.start()
        child = None

        def on_signal(signo, _frame):
            # meson's timeout sends SIGTERM: pass it on, then clean up below.
            if child is not None and child.poll() is None:
                child.send_signal(signo)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
            env.update({
                "LOCK_ARBITER_TEST_KUBE_URL": sim.url,
                "LOCK_ARBITER_TEST_KUBE_CA": sim.ca,
                "LOCK_ARBITER_TEST_KUBE_TOKEN_FILE": sim.token_file,
                "LOCK_ARBITER_TEST_KUBE_SA_DIR": sim.sa_dir,
                "LOCK_ARBITER_TEST_KUBE_CONTROL": sim.control,
                "LOCK_ARBITER_TEST_KUBE_WRONG_CA": wrong_ca,
            })
            child = subprocess.Popen(argv, env=env)
            rc = child.wait()
        finally:
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
            sim.stop()
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
