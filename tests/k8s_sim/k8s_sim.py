#!/usr/bin/python3
"""k8s_sim: a simulated Kubernetes API server for lock-arbiter's tests.

It speaks the real wire format for the part of the API lock-arbiter uses
(DESIGN.md section 7): pod get/list/watch, Event create/list, discovery,
/version, bearer-token authentication and the exact Status error bodies of
kube-apiserver. The pods it serves are built from the real objects in
tests/fixtures/kubernetes/. Python 3 standard library only.

Two listeners:
  API      https://HOST:PORT (or plain http with --plain, like `kubectl proxy`)
  control  http://127.0.0.1:CPORT/_sim/... plain JSON, no token, never
           subject to faults, so a test can steer the API while it hangs.

Run as a script:
  python3 k8s_sim.py --port 0 --pki DIR --token-file F [--plain]
It prints one JSON line when ready:
  {"url": "https://127.0.0.1:PORT", "control": "http://127.0.0.1:CPORT",
   "ca": "DIR/ca.crt", "pid": N}
and serves until SIGTERM or SIGINT. See README.md next to this file for the
control interface and fault specifications.
"""

import argparse
import base64
import copy
import datetime
import email.utils
import hashlib
import hmac
import http.server
import itertools
import json
import os
import queue
import random
import re
import secrets
import select
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_USER = "system:serviceaccount:ops:lock-arbiter"
DEFAULT_TEMPLATE = "k9s-po.json"
DEFAULT_SERVER_VERSION = "v1.30.6"
MAX_REQUEST_BODY = 3 * 1024 * 1024      # kube-apiserver's default limit
HISTORY_LIMIT = 10000                    # watch history kept for resourceVersion replays
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


def default_fixtures_dir():
    """Fixture root: $LOCK_ARBITER_FIXTURES, else the project's tests/fixtures."""
    env = os.environ.get("LOCK_ARBITER_FIXTURES")
    if env:
        return env
    return os.path.normpath(os.path.join(HERE, "..", "fixtures"))


# --------------------------------------------------------------------------
# Time and JSON helpers
# --------------------------------------------------------------------------

def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(dt):
    """metav1.Time serialisation: UTC, whole seconds, 'Z'."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(dt):
    """metav1.MicroTime serialisation: UTC, microseconds, 'Z'."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(value):
    """Parses RFC 3339 as Go's time.RFC3339 does; raises ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    m = _TIME_RE.match(value)
    if not m:
        raise ValueError('parsing time "%s" as "2006-01-02T15:04:05Z07:00": cannot parse' % value)
    year, mon, day, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    tz = m.group(8)
    if tz in ("Z", "z"):
        tzinfo = datetime.timezone.utc
    else:
        sign = 1 if tz[0] == "+" else -1
        tzinfo = datetime.timezone(sign * datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    return datetime.datetime(year, mon, day, hh, mm, ss, micro, tzinfo=tzinfo)


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def go_json(obj, pretty=False):
    """Encodes like kube-apiserver's json serializer.

    Compact output goes through json.Encoder.Encode, so it ends with a
    newline; pretty output (?pretty=true, or a curl/Wget/browser User-Agent)
    is json.MarshalIndent with two spaces and no newline. Go escapes <, >, &
    and U+2028/2029 inside strings; those characters cannot occur outside
    strings in JSON, so a textual replacement is exact.
    """
    if pretty:
        text = json.dumps(obj, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text)
    return text.encode("utf-8") + (b"" if pretty else b"\n")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch; returns a new object."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def reorder(d, keys):
    """Returns d with `keys` first in that order (Go struct field order), the rest after."""
    if not isinstance(d, dict):
        return d
    out = {k: d[k] for k in keys if k in d}
    for k, v in d.items():
        if k not in out:
            out[k] = v
    return out


TOP_ORDER = ["kind", "apiVersion", "metadata", "spec", "status"]
META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
              "generation", "creationTimestamp", "deletionTimestamp",
              "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
              "finalizers", "managedFields"]
STATUS_ORDER = ["phase", "conditions", "message", "reason", "nominatedNodeName", "hostIP",
                "hostIPs", "podIP", "podIPs", "startTime", "initContainerStatuses",
                "containerStatuses", "qosClass", "ephemeralContainerStatuses", "resize",
                "resourceClaimStatuses"]
CSTATUS_ORDER = ["name", "state", "lastState", "ready", "restartCount", "image", "imageID",
                 "containerID", "started", "allocatedResources", "resources", "volumeMounts",
                 "user", "allocatedResourcesStatus"]
CONTAINER_ORDER = ["name", "image", "command", "args", "workingDir", "ports", "envFrom", "env",
                   "resources", "resizePolicy", "restartPolicy", "volumeMounts",
                   "volumeDevices", "livenessProbe", "readinessProbe", "startupProbe",
                   "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
                   "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"]
CONDITION_ORDER = ["type", "status", "lastProbeTime", "lastTransitionTime", "reason", "message"]


def canonical_pod(pod):
    """Puts the parts of a pod the simulator writes into Go field order."""
    pod = reorder(pod, TOP_ORDER)
    pod["metadata"] = reorder(pod.get("metadata", {}), META_ORDER)
    status = pod.get("status")
    if isinstance(status, dict):
        status = reorder(status, STATUS_ORDER)
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            if isinstance(status.get(key), list):
                status[key] = [reorder(c, CSTATUS_ORDER) for c in status[key]]
        if isinstance(status.get("conditions"), list):
            status["conditions"] = [reorder(c, CONDITION_ORDER) for c in status["conditions"]]
        pod["status"] = status
    return pod


def without_type_meta(obj):
    """List items of built-in types carry no kind/apiVersion on the wire."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


# --------------------------------------------------------------------------
# Status objects, exactly as k8s.io/apimachinery/pkg/api/errors builds them
# --------------------------------------------------------------------------

def status_obj(code, reason, message, details=None):
    obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message}
    if reason:
        obj["reason"] = reason
    if details is not None:
        obj["details"] = details
    obj["code"] = code
    return obj


def status_details(name="", group="", kind="", causes=None, retry_after=None):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    if causes:
        d["causes"] = causes
    if retry_after:
        d["retryAfterSeconds"] = retry_after
    return d


def st_not_found(resource, name):
    return status_obj(404, "NotFound", '%s "%s" not found' % (resource, name),
                      status_details(name=name, kind=resource))


def st_not_found_generic():
    return status_obj(404, "NotFound", "the server could not find the requested resource", {})


def st_unauthorized():
    return status_obj(401, "Unauthorized", "Unauthorized")


def forbidden_message(user, verb, resource, namespace, name):
    if namespace:
        why = 'User "%s" cannot %s resource "%s" in API group "" in the namespace "%s"' % (
            user, verb, resource, namespace)
    else:
        why = 'User "%s" cannot %s resource "%s" in API group "" at the cluster scope' % (
            user, verb, resource)
    if name:
        return '%s "%s" is forbidden: %s' % (resource, name, why)
    return "%s is forbidden: %s" % (resource, why)


def st_forbidden(user, verb, resource, namespace, name, path=None):
    if resource is None:
        msg = 'forbidden: User "%s" cannot %s path "%s"' % (user, verb, path)
        return status_obj(403, "Forbidden", msg, {})
    return status_obj(403, "Forbidden", forbidden_message(user, verb, resource, namespace, name),
                      status_details(name=name, kind=resource))


def st_already_exists(resource, name):
    return status_obj(409, "AlreadyExists", '%s "%s" already exists' % (resource, name),
                      status_details(name=name, kind=resource))


def st_internal_error(cause="etcdserver: request timed out"):
    return status_obj(500, "InternalError", "Internal error occurred: %s" % cause,
                      {"causes": [{"message": cause}]})


def st_too_many_requests(retry_after=1, message="Too many requests, please try again later."):
    return status_obj(429, "TooManyRequests", message, status_details(retry_after=retry_after))


def st_service_unavailable(message="the server is currently unable to handle the request"):
    return status_obj(503, "ServiceUnavailable", message)


def st_timeout(message="the server was unable to return a response in the time allotted, "
                       "but may still be processing the request", retry_after=None):
    return status_obj(504, "Timeout", message, status_details(retry_after=retry_after))


def st_bad_request(message):
    return status_obj(400, "BadRequest", message)


def st_expired(message):
    return status_obj(410, "Expired", message)


def st_gone(message):
    return status_obj(410, "Gone", message)


def st_method_not_allowed():
    return status_obj(405, "MethodNotAllowed",
                      "the server does not allow this method on the requested resource", {})


def st_not_acceptable():
    return status_obj(406, "NotAcceptable",
                      "only the following media types are accepted: application/json, "
                      "application/json;as=Table;v=v1;g=meta.k8s.io")


def st_unsupported_media_type(content_type):
    return status_obj(415, "UnsupportedMediaType",
                      "the body of the request was in an unknown format - accepted media types "
                      "include: application/json, application/apply-patch+yaml, "
                      "application/yaml, application/vnd.kubernetes.protobuf")


def st_entity_too_large():
    return status_obj(413, "RequestEntityTooLarge",
                      "Request entity too large: limit is %d" % MAX_REQUEST_BODY)


def st_invalid(kind, name, causes):
    """causes: list of (reason, field, message-without-field)."""
    parts = ["%s: %s" % (f, m) for (_r, f, m) in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return status_obj(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, joined),
                      status_details(name=name, kind=kind, causes=[
                          {"reason": r, "message": m, "field": f} for (r, f, m) in causes]))


def status_for_code(code, req, message=None, retry_after=None, user=DEFAULT_USER):
    """A Status body of the right shape for an injected HTTP error code."""
    if code == 401:
        return st_unauthorized()
    if code == 403:
        return st_forbidden(user, req.verb, req.resource, req.namespace, req.name, req.path)
    if code == 404:
        return st_not_found(req.resource, req.name) if req.resource and req.name \
            else st_not_found_generic()
    if code == 405:
        return st_method_not_allowed()
    if code == 409:
        return st_already_exists(req.resource or "pods", req.name or "unknown")
    if code == 410:
        return st_gone(message or "the resource is gone")
    if code == 429:
        return st_too_many_requests(retry_after or 1, message or
                                    "Too many requests, please try again later.")
    if code == 500:
        return st_internal_error(message or "etcdserver: request timed out")
    if code == 503:
        return st_service_unavailable(message or
                                      "the server is currently unable to handle the request")
    if code == 504:
        return st_timeout(retry_after=retry_after) if message is None \
            else st_timeout(message, retry_after)
    if code == 400:
        return st_bad_request(message or "bad request")
    return status_obj(code, "", message or http.HTTPStatus(code).phrase, {})


# --------------------------------------------------------------------------
# PKI
# --------------------------------------------------------------------------

SERVER_SANS = ["IP:127.0.0.1", "IP:::1", "DNS:localhost", "DNS:kubernetes",
               "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
               "DNS:kubernetes.default.svc.cluster.local"]


def make_pki(directory, force=False, days=365, extra_sans=()):
    """Creates ca.crt/ca.key and server.crt/server.key in `directory` with the openssl CLI.

    The server certificate has the SANs of a real apiserver certificate,
    including IP:127.0.0.1, IP:::1, DNS:localhost and DNS:kubernetes.default.svc.
    Existing files are kept unless force is set. Returns a dict of paths.
    """
    os.makedirs(directory, exist_ok=True)
    paths = {k: os.path.join(directory, f) for k, f in (
        ("ca", "ca.crt"), ("ca_key", "ca.key"), ("cert", "server.crt"), ("key", "server.key"))}
    if not force and all(os.path.exists(p) for p in paths.values()):
        return paths

    def run(*args):
        proc = subprocess.run(["openssl"] + list(args), cwd=directory, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], proc.stderr.strip()))

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=kubernetes-sim-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign")
    run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver")
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n"
                "subjectAltName=%s\n" % ",".join(SERVER_SANS + list(extra_sans)))
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", "0x" + secrets.token_hex(16), "-sha256", "-days", str(days),
        "-extfile", "server.ext", "-out", "server.crt")
    for name in ("server.csr", "server.ext"):
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
    os.chmod(paths["key"], 0o600)
    os.chmod(paths["ca_key"], 0o600)
    return paths


# --------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------

class SelectorError(Exception):
    pass


def _pod_fields(pod):
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    ips = status.get("podIPs") or []
    # Like the real registry: status.podIP selects on podIPs[0] only, so the
    # second address of a dual-stack pod cannot be found by field selector.
    pod_ip = ips[0].get("ip", "") if ips and isinstance(ips[0], dict) else ""
    if not ips:
        pod_ip = status.get("podIP", "") or ""
    return {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.restartPolicy": spec.get("restartPolicy", ""),
        "spec.schedulerName": spec.get("schedulerName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
        "status.phase": status.get("phase", ""),
        "status.podIP": pod_ip,
        "status.nominatedNodeName": status.get("nominatedNodeName", ""),
    }


def _event_fields(ev):
    io = ev.get("involvedObject", {}) or {}
    src = ev.get("source", {}) or {}
    return {
        "metadata.name": ev.get("metadata", {}).get("name", ""),
        "metadata.namespace": ev.get("metadata", {}).get("namespace", ""),
        "involvedObject.kind": io.get("kind", ""),
        "involvedObject.namespace": io.get("namespace", ""),
        "involvedObject.name": io.get("name", ""),
        "involvedObject.uid": io.get("uid", ""),
        "involvedObject.apiVersion": io.get("apiVersion", ""),
        "involvedObject.resourceVersion": io.get("resourceVersion", ""),
        "involvedObject.fieldPath": io.get("fieldPath", ""),
        "reason": ev.get("reason", ""),
        "reportingComponent": ev.get("reportingComponent", ""),
        "source": src.get("component", ""),
        "type": ev.get("type", ""),
    }


FIELD_GETTERS = {"pods": _pod_fields, "events": _event_fields}


def _split_unescaped(text, sep):
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text):
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text, resource):
    """Returns a list of (field, op, value); raises SelectorError like the apiserver."""
    terms = []
    if not text:
        return terms
    allowed = FIELD_GETTERS[resource](({"metadata": {}, "spec": {}, "status": {}}))
    for part in _split_unescaped(text, ","):
        if part == "":
            continue
        m = re.match(r"^((?:[^=!\\]|\\.)*)(!=|==|=)(.*)$", part)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (text, part))
        field, op, value = m.group(1), m.group(2), _unescape(m.group(3))
        if field not in allowed:
            raise SelectorError("field label not supported: %s" % field)
        terms.append((field, "!=" if op == "!=" else "=", value))
    return terms


def parse_label_selector(text):
    """Equality and set-based label selectors; returns a list of predicates."""
    preds = []
    if not text:
        return preds
    # split on commas outside parentheses
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for part in (p.strip() for p in parts):
        if not part:
            continue
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", part)
        if m:
            key, op = m.group(1), m.group(2)
            vals = {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                preds.append(lambda l, k=key, vs=vals: l.get(k) in vs)
            else:
                preds.append(lambda l, k=key, vs=vals: l.get(k) not in vs)
            continue
        m = re.match(r"^([\w./-]+)\s*(!=|==|=)\s*([\w./-]*)$", part)
        if m:
            key, op, val = m.groups()
            if op == "!=":
                preds.append(lambda l, k=key, v=val: l.get(k) != v)
            else:
                preds.append(lambda l, k=key, v=val: l.get(k) == v)
            continue
        m = re.match(r"^(!?)([\w./-]+)$", part)
        if m:
            neg, key = m.groups()
            if neg:
                preds.append(lambda l, k=key: k not in l)
            else:
                preds.append(lambda l, k=key: k in l)
            continue
        raise SelectorError("unable to parse requirement: %s" % part)
    return preds


class Selector:
    def __init__(self, resource, namespace=None, field_text="", label_text=""):
        self.resource = resource
        self.namespace = namespace
        self.fields = parse_field_selector(field_text, resource)
        self.labels = parse_label_selector(label_text)

    def matches(self, obj):
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        if self.fields:
            values = FIELD_GETTERS[self.resource](obj)
            for field, op, value in self.fields:
                if (values.get(field, "") == value) != (op == "="):
                    return False
        if self.labels:
            labels = meta.get("labels") or {}
            if not all(p(labels) for p in self.labels):
                return False
        return True


# --------------------------------------------------------------------------
# Pods: building from fixtures and the kubelet-like state changes
# --------------------------------------------------------------------------

def normalize_image(image):
    """The image reference as containerd reports it in containerStatuses.image."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + name
    return name


def image_id(image):
    repo = normalize_image(image).rsplit(":", 1)[0]
    return "%s@sha256:%s" % (repo, hashlib.sha256(image.encode()).hexdigest())


def new_container_id():
    return "containerd://" + secrets.token_hex(32)


TIME_KEYS = {"creationTimestamp", "deletionTimestamp", "startTime", "startedAt", "finishedAt",
             "lastTransitionTime", "lastProbeTime", "lastHeartbeatTime"}


def shift_times(obj, delta):
    """Moves every timestamp of a fixture by delta, keeping their order and spacing."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in TIME_KEYS and isinstance(v, str):
                try:
                    obj[k] = rfc3339(parse_time(v) + delta)
                except ValueError:
                    pass
            else:
                shift_times(v, delta)
    elif isinstance(obj, list):
        for v in obj:
            shift_times(v, delta)


def collect_times(obj, out=None):
    """Every timestamp of a fixture but deletionTimestamp (legitimately in the future)."""
    out = [] if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in TIME_KEYS and k != "deletionTimestamp" and isinstance(v, str):
                try:
                    out.append(parse_time(v))
                except ValueError:
                    pass
            else:
                collect_times(v, out)
    elif isinstance(obj, list):
        for v in obj:
            collect_times(v, out)
    return out


def _state_running(started_at):
    return {"running": {"startedAt": started_at}}


def _state_terminated(exit_code, reason, started_at, finished_at, container_id,
                      message=None, signal_no=None):
    t = {"exitCode": exit_code}
    if signal_no:
        t["signal"] = signal_no
    if reason:
        t["reason"] = reason
    if message:
        t["message"] = message
    t["startedAt"] = started_at
    t["finishedAt"] = finished_at
    if container_id:
        t["containerID"] = container_id
    return {"terminated": t}


def _crashloop_message(name, pod_name, ns, uid):
    return "back-off 10s restarting failed container=%s pod=%s_%s(%s)" % (name, pod_name, ns, uid)


class PodSpecError(Exception):
    pass


class PodFactory:
    """Builds pods from a fixture template and a test's description."""

    def __init__(self, fixtures_dir, default_template):
        self.fixtures_dir = fixtures_dir
        self.default_template = default_template
        self._ip_counter = itertools.count(10)
        self._cache = {}

    def template(self, name):
        name = name or self.default_template
        path = name if os.path.isabs(name) else os.path.join(self.fixtures_dir, "kubernetes", name)
        if path not in self._cache:
            try:
                with open(path) as f:
                    obj = json.load(f)
            except (OSError, ValueError) as e:
                raise PodSpecError("cannot load template %s: %s" % (path, e))
            if obj.get("kind") != "Pod":
                raise PodSpecError("template %s is not a Pod" % path)
            self._cache[path] = obj
        return copy.deepcopy(self._cache[path])

    def next_ip(self):
        n = next(self._ip_counter)
        return "10.244.%d.%d" % (n // 250, n % 250 + 2)

    def build(self, desc, now=None):
        """desc: the JSON body of POST /_sim/pods. Returns a pod without resourceVersion."""
        if not isinstance(desc, dict):
            raise PodSpecError("pod description must be an object")
        name = desc.get("name")
        if not name or not isinstance(name, str):
            raise PodSpecError("name is required")
        ns = desc.get("namespace") or "default"
        now = now or utcnow()
        created = desc.get("creationTimestamp") or rfc3339(now)
        try:
            created_dt = parse_time(created)
        except ValueError as e:
            raise PodSpecError(str(e))
        tpl = self.template(desc.get("template"))
        uid = desc.get("uid") or str(uuid.uuid4())
        built = "containers" in desc
        if built:
            pod = self._build_containers(tpl, desc, name, ns, uid, created, created_dt, now)
        else:
            pod = tpl
            tpl_created = pod.get("metadata", {}).get("creationTimestamp")
            if desc.get("keepTimes") is True:
                created = tpl_created or created
            elif tpl_created:
                # The fixture's timeline moves as a whole: to the given
                # creationTimestamp, or so that its latest record is now
                # (a snapshot taken now never has a start in the future).
                if desc.get("creationTimestamp"):
                    delta = created_dt - parse_time(tpl_created)
                else:
                    delta = now - max(collect_times(pod) or [parse_time(tpl_created)])
                shift_times(pod, delta)
                created = pod["metadata"]["creationTimestamp"]
            if "phase" in desc:
                pod.setdefault("status", {})["phase"] = desc["phase"]
        pod.pop("kind", None)
        pod.pop("apiVersion", None)
        pod = dict({"kind": "Pod", "apiVersion": "v1"}, **pod)

        meta = pod.setdefault("metadata", {})
        meta.pop("selfLink", None)          # not served since Kubernetes 1.24
        meta.pop("resourceVersion", None)
        meta["name"] = name
        meta["namespace"] = ns
        meta["uid"] = uid
        meta["creationTimestamp"] = created
        if "labels" in desc:
            meta["labels"] = dict(desc["labels"] or {})
        annotations = dict(meta.get("annotations") or {})
        if built:
            annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
        annotations.update(desc.get("annotations") or {})
        if desc.get("holderContainer"):
            annotations["lock-arbiter.io/holder-container"] = desc["holderContainer"]
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        for key in ("ownerReferences", "generateName", "finalizers"):
            if key in desc:
                meta[key] = desc[key]
        spec = pod.setdefault("spec", {})
        if desc.get("nodeName"):
            spec["nodeName"] = desc["nodeName"]
        status = pod.setdefault("status", {})

        # Addresses: explicit, or a fresh unique one (fixtures would collide).
        if "podIPs" in desc:
            ips = list(desc["podIPs"] or [])
        elif "podIP" in desc:
            ips = [desc["podIP"]] if desc["podIP"] else []
        elif built or status.get("podIP"):
            ips = [self.next_ip()]
        else:
            ips = []
        if ips:
            status["podIP"] = ips[0]
            status["podIPs"] = [{"ip": ip} for ip in ips]
        else:
            status.pop("podIP", None)
            status.pop("podIPs", None)
        if desc.get("hostIP"):
            status["hostIP"] = desc["hostIP"]
            status["hostIPs"] = [{"ip": desc["hostIP"]}]
        if desc.get("deletionTimestamp"):
            meta["deletionTimestamp"] = desc["deletionTimestamp"]
            meta["deletionGracePeriodSeconds"] = desc.get("deletionGracePeriodSeconds", 30)
        if "patch" in desc:
            pod = merge_patch(pod, desc["patch"])
        return canonical_pod(pod)

    def _container_descs(self, items, field):
        out = []
        for item in items or []:
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise PodSpecError("%s entries are names or objects with a name" % field)
            out.append(item)
        return out

    def _build_containers(self, tpl, desc, name, ns, uid, created, created_dt, now):
        spec = tpl.get("spec", {})
        tstatus = tpl.get("status", {})
        base = copy.deepcopy((spec.get("containers") or [{}])[0])
        init_base = copy.deepcopy((spec.get("initContainers") or [base])[0])
        init_base.pop("ports", None)
        default_image = base.get("image", "nginx:alpine")
        phase = desc.get("phase", "Running")
        restart_policy = desc.get("restartPolicy") or spec.get("restartPolicy", "Always")
        containers = self._container_descs(desc.get("containers"), "containers")
        inits = self._container_descs(desc.get("initContainers"), "initContainers")
        if not containers:
            raise PodSpecError("a pod needs at least one container")
        started_default = desc.get("startedAt") or created
        init_finished = rfc3339(created_dt + datetime.timedelta(seconds=1))

        def spec_container(c, template, sidecar):
            sc = copy.deepcopy(template)
            sc["name"] = c["name"]
            sc["image"] = c.get("image") or default_image
            for key in ("command", "args", "env", "ports"):
                if key in c:
                    sc[key] = c[key]
            if sidecar:
                sc["restartPolicy"] = "Always"
            else:
                sc.pop("restartPolicy", None)
            return reorder(sc, CONTAINER_ORDER)

        def status_for(c, is_init, sidecar):
            image = c.get("image") or default_image
            restarts = int(c.get("restartCount", 0))
            if is_init and not sidecar:
                default_state = "terminated" if phase != "Pending" else "waiting"
            elif phase == "Pending":
                default_state = "waiting"
            elif phase in ("Succeeded", "Failed"):
                default_state = "terminated"
            else:
                default_state = "running"
            state_name = c.get("state", default_state)
            started_at = c.get("startedAt") or (created if is_init and not sidecar
                                                else started_default)
            cid = c.get("containerID") or new_container_id()
            last_state = copy.deepcopy(c.get("lastState")) if "lastState" in c else {}
            prev_cid = None
            if restarts > 0 and not last_state:
                prev_cid = new_container_id()
                last_state = _state_terminated(137, "Error", created, started_at, prev_cid)
            elif last_state.get("terminated"):
                prev_cid = last_state["terminated"].get("containerID")
            st = {"name": c["name"]}
            ever_ran = True
            if state_name == "running":
                st["state"] = _state_running(started_at)
                ready = c.get("ready", True)
                started = c.get("started", True)
            elif state_name == "waiting":
                reason = c.get("reason") or ("CrashLoopBackOff" if restarts or last_state
                                             else ("PodInitializing" if not is_init and inits
                                                   else "ContainerCreating"))
                w = {"reason": reason}
                if c.get("message"):
                    w["message"] = c["message"]
                elif reason == "CrashLoopBackOff":
                    w["message"] = _crashloop_message(c["name"], name, ns, uid)
                st["state"] = {"waiting": w}
                ready = c.get("ready", False)
                started = c.get("started", False)
                ever_ran = bool(last_state)
                cid = prev_cid
            elif state_name == "terminated":
                exit_code = int(c.get("exitCode", 1 if phase == "Failed" else 0))
                reason = c.get("reason") or ("Completed" if exit_code == 0 else "Error")
                finished = c.get("finishedAt") or (init_finished if is_init and not sidecar
                                                   else rfc3339(now))
                st["state"] = _state_terminated(exit_code, reason, started_at, finished, cid)
                ready = c.get("ready", False)
                started = c.get("started", False)
            else:
                raise PodSpecError("container %s: unknown state %r" % (c["name"], state_name))
            st["lastState"] = last_state
            st["ready"] = bool(ready)
            st["restartCount"] = restarts
            if ever_ran:
                st["image"] = normalize_image(image)
                st["imageID"] = image_id(image)
            else:
                st["image"] = image
                st["imageID"] = ""
            if cid:
                st["containerID"] = cid
            st["started"] = bool(started)
            return st

        pod = copy.deepcopy(tpl)
        pspec = pod["spec"]
        pspec["containers"] = [spec_container(c, base, False) for c in containers]
        if inits:
            pspec["initContainers"] = [
                spec_container(c, init_base, c.get("restartPolicy") == "Always") for c in inits]
        else:
            pspec.pop("initContainers", None)
        pspec["restartPolicy"] = restart_policy

        status = {"phase": phase, "conditions": []}
        status["hostIP"] = desc.get("hostIP") or tstatus.get("hostIP") or "172.18.0.2"
        status["hostIPs"] = [{"ip": status["hostIP"]}]
        status["startTime"] = created
        if inits:
            status["initContainerStatuses"] = [
                status_for(c, True, c.get("restartPolicy") == "Always") for c in inits]
        status["containerStatuses"] = [status_for(c, False, False) for c in containers]
        status["qosClass"] = tstatus.get("qosClass", "BestEffort")
        pod["status"] = status
        pod["metadata"] = {}
        recompute_conditions(pod, created, initial=True)
        return pod


def all_container_statuses(pod):
    status = pod.get("status", {})
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            yield key, cs


def find_container_status(pod, name):
    for key, cs in all_container_statuses(pod):
        if cs.get("name") == name:
            return key, cs
    raise PodSpecError('pod %s has no container "%s"' % (pod["metadata"]["name"], name))


def _is_sidecar(pod, name):
    for c in pod.get("spec", {}).get("initContainers") or []:
        if c.get("name") == name:
            return c.get("restartPolicy") == "Always"
    return False


def recompute_conditions(pod, now_str, initial=False):
    """Keeps Ready/ContainersReady (and, for built pods, the others) consistent."""
    status = pod["status"]
    phase = status.get("phase")
    conds = status.get("conditions") or []
    by_type = {c.get("type"): c for c in conds}

    def put(ctype, value, reason=None, message=None):
        c = by_type.get(ctype)
        if c is None:
            if not initial:
                return
            c = {"type": ctype, "status": value, "lastProbeTime": None,
                 "lastTransitionTime": now_str}
            by_type[ctype] = c
            conds.append(c)
        elif c.get("status") != value:
            c["status"] = value
            c["lastTransitionTime"] = now_str
        for key, val in (("reason", reason), ("message", message)):
            if val:
                c[key] = val
            else:
                c.pop(key, None)

    unready = [cs["name"] for cs in status.get("containerStatuses") or [] if not cs.get("ready")]
    unready += [cs["name"] for cs in status.get("initContainerStatuses") or []
                if _is_sidecar(pod, cs["name"]) and not cs.get("ready")]
    inits_done = all(cs.get("state", {}).get("terminated", {}).get("exitCode") == 0
                     or _is_sidecar(pod, cs["name"])
                     for cs in status.get("initContainerStatuses") or [])
    terminal = phase in ("Succeeded", "Failed")
    if initial:
        put("PodReadyToStartContainers", "False" if phase == "Pending" or terminal else "True")
        put("Initialized", "True" if inits_done else "False",
            reason=None if inits_done else "ContainersNotInitialized",
            message=None if inits_done else "containers with incomplete status: [%s]" % " ".join(
                cs["name"] for cs in status.get("initContainerStatuses") or []))
    if terminal:
        put("Ready", "False", reason="PodCompleted")
        put("ContainersReady", "False", reason="PodCompleted")
    elif unready:
        msg = "containers with unready status: [%s]" % " ".join(unready)
        put("Ready", "False", reason="ContainersNotReady", message=msg)
        put("ContainersReady", "False", reason="ContainersNotReady", message=msg)
    else:
        put("Ready", "True")
        put("ContainersReady", "True")
    if initial:
        put("PodScheduled", "True")
    status["conditions"] = conds


# Each operation takes a deep copy of the pod, the parameters and `now`, and
# changes the copy like the kubelet would report it.

def op_restart(pod, p, now):
    name = p.get("container") or _default_container(pod)
    _key, cs = find_container_status(pod, name)
    now_s = rfc3339(now)
    state = cs.get("state", {})
    old_cid = cs.get("containerID")
    if "running" in state:
        old_started = state["running"].get("startedAt")
    elif "terminated" in state:
        old_started = state["terminated"].get("startedAt")
    else:
        old_started = cs.get("lastState", {}).get("terminated", {}).get("finishedAt") or now_s
    exit_code = int(p.get("exitCode", 137))
    reason = p.get("reason") or ("Completed" if exit_code == 0 else "Error")
    cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
    finished = p.get("finishedAt") or now_s
    if "terminated" in state:
        # The instance had already ended; its record moves to lastState.
        cs["lastState"] = {"terminated": dict(state["terminated"])}
    else:
        cs["lastState"] = _state_terminated(exit_code, reason, old_started, finished, old_cid)
    if p.get("crashloop"):
        meta = pod["metadata"]
        cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": _crashloop_message(
            name, meta["name"], meta["namespace"], meta["uid"])}}
        cs["ready"] = False
        cs["started"] = False
        if old_cid:
            cs["containerID"] = old_cid
    else:
        cs["containerID"] = new_container_id()
        cs["state"] = _state_running(p.get("startedAt") or now_s)
        cs["ready"] = bool(p.get("ready", True))
        cs["started"] = True
    if cs.get("imageID") == "":
        cs["imageID"] = image_id(cs.get("image", "unknown"))
    recompute_conditions(pod, now_s)


def op_start(pod, p, now):
    name = p.get("container") or _default_container(pod)
    _key, cs = find_container_status(pod, name)
    now_s = rfc3339(now)
    cs["containerID"] = new_container_id()
    cs["state"] = _state_running(p.get("startedAt") or now_s)
    cs["ready"] = bool(p.get("ready", True))
    cs["started"] = True
    if cs.get("imageID") == "":
        cs["image"] = normalize_image(cs.get("image", "unknown"))
        cs["imageID"] = image_id(cs["image"])
    recompute_conditions(pod, now_s)


def op_stop(pod, p, now):
    name = p.get("container") or _default_container(pod)
    _key, cs = find_container_status(pod, name)
    now_s = rfc3339(now)
    state = cs.get("state", {})
    started = state.get("running", {}).get("startedAt") or now_s
    exit_code = int(p.get("exitCode", 0))
    reason = p.get("reason") or ("Completed" if exit_code == 0 else "Error")
    cs["state"] = _state_terminated(exit_code, reason, started, p.get("finishedAt") or now_s,
                                    cs.get("containerID"))
    cs["ready"] = False
    cs["started"] = False
    recompute_conditions(pod, now_s)


def op_ready(pod, p, now):
    name = p.get("container") or _default_container(pod)
    _key, cs = find_container_status(pod, name)
    cs["ready"] = bool(p.get("ready", True))
    recompute_conditions(pod, rfc3339(now))


def op_phase(pod, p, now):
    phase = p.get("phase")
    if phase not in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
        raise PodSpecError("phase must be Pending, Running, Succeeded, Failed or Unknown")
    now_s = rfc3339(now)
    pod["status"]["phase"] = phase
    if phase in ("Succeeded", "Failed"):
        default_exit = 0 if phase == "Succeeded" else 1
        for _key, cs in all_container_statuses(pod):
            state = cs.get("state", {})
            if "terminated" in state:
                continue
            exit_code = int(p.get("exitCode", default_exit))
            started = state.get("running", {}).get("startedAt") or now_s
            cs["state"] = _state_terminated(
                exit_code, p.get("reason") or ("Completed" if exit_code == 0 else "Error"),
                started, now_s, cs.get("containerID"))
            cs["ready"] = False
            cs["started"] = False
    if p.get("reason"):
        pod["status"]["reason"] = p["reason"]
    if p.get("message"):
        pod["status"]["message"] = p["message"]
    recompute_conditions(pod, now_s)


def op_deleting(pod, p, now):
    grace = int(p.get("gracePeriodSeconds", 30))
    meta = pod["metadata"]
    meta["deletionTimestamp"] = p.get("deletionTimestamp") or rfc3339(
        now + datetime.timedelta(seconds=grace))
    meta["deletionGracePeriodSeconds"] = grace


def op_patch(pod, p, now):
    meta = pod["metadata"]
    patched = merge_patch(pod, p)
    pmeta = patched.get("metadata", {})
    if pmeta.get("name") != meta["name"] or pmeta.get("namespace") != meta["namespace"]:
        raise PodSpecError("a patch cannot change metadata.name or metadata.namespace")
    pod.clear()
    pod.update(patched)


def op_container(pod, p, now):
    name = p.get("container")
    if not name:
        raise PodSpecError("container is required")
    _key, cs = find_container_status(pod, name)
    patched = merge_patch(cs, p.get("patch") or {})
    cs.clear()
    cs.update(patched)
    if "spec" in p:
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for i, c in enumerate(pod["spec"].get(key) or []):
                if c.get("name") == name:
                    pod["spec"][key][i] = merge_patch(c, p["spec"])
    if p.get("recompute", True):
        recompute_conditions(pod, rfc3339(now))


def _default_container(pod):
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if len(statuses) == 1:
        return statuses[0]["name"]
    raise PodSpecError("container is required for a pod with %d containers" % len(statuses))


POD_OPS = {"restart": op_restart, "start": op_start, "stop": op_stop, "ready": op_ready,
           "phase": op_phase, "deleting": op_deleting, "patch": op_patch,
           "container": op_container}


# --------------------------------------------------------------------------
# Pod table (what `kubectl get pods` asks for), after kubectl's printPod
# --------------------------------------------------------------------------

def human_duration(seconds):
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    minutes = s // 60
    if minutes < 10:
        return "%dm%ds" % (minutes, s % 60) if s % 60 else "%dm" % minutes
    if minutes < 180:
        return "%dm" % minutes
    hours = s // 3600
    if hours < 8:
        return "%dh%dm" % (hours, (s % 3600) // 60) if (s % 3600) // 60 else "%dh" % hours
    if hours < 48:
        return "%dh" % hours
    if hours < 192:
        return "%dd%dh" % (hours // 24, hours % 24) if hours % 24 else "%dd" % (hours // 24)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    return "%dy" % (hours // (24 * 365))


def _since(ts, now):
    try:
        return human_duration((now - parse_time(ts)).total_seconds())
    except (ValueError, TypeError):
        return "<unknown>"


POD_COLUMNS = [
    ("Name", "name", "Name must be unique within a namespace.", 0),
    ("Ready", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
    ("Status", "", "The aggregate status of the containers in this pod.", 0),
    ("Restarts", "", "The number of times the containers in this pod have been restarted and "
                     "when the last container in this pod has restarted.", 0),
    ("Age", "", "CreationTimestamp is a timestamp representing the server time when this "
                "object was created.", 0),
    ("IP", "", "podIP is an IP address allocated to the pod.", 1),
    ("Node", "", "nodeName indicates in which node this pod is scheduled.", 1),
    ("Nominated Node", "", "nominatedNodeName is set only when this pod preempts other pods "
                           "on the node.", 1),
    ("Readiness Gates", "", "If specified, all readiness gates will be evaluated for pod "
                            "readiness.", 1),
]


def pod_row(pod, now):
    spec, status, meta = pod.get("spec", {}), pod.get("status", {}), pod.get("metadata", {})
    sidecars = {c["name"] for c in spec.get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = 0
    restarts = 0
    last_restart = None
    reason = status.get("reason") or status.get("phase", "")
    initializing = False
    inits = status.get("initContainerStatuses") or []
    init_conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}

    def note_restart(cs):
        nonlocal last_restart
        fin = (cs.get("lastState") or {}).get("terminated", {}).get("finishedAt")
        if fin and (last_restart is None or fin > last_restart):
            last_restart = fin

    for i, cs in enumerate(inits):
        restarts += int(cs.get("restartCount") or 0)
        note_restart(cs)
        state = cs.get("state") or {}
        if cs["name"] in sidecars and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + term["reason"] if term.get("reason") else (
                "Init:Signal:%d" % term["signal"] if term.get("signal")
                else "Init:ExitCode:%d" % term.get("exitCode", 0))
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = "Init:%d/%d" % (i, len(spec.get("initContainers") or []))
        initializing = True
        break
    if not initializing or init_conditions.get("Initialized") == "True":
        restarts = sum(int(cs.get("restartCount") or 0) for cs in inits
                       if cs["name"] in sidecars)
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            note_restart(cs)
            state = cs.get("state") or {}
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated", {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif "terminated" in state:
                t = state["terminated"]
                reason = "Signal:%d" % t["signal"] if t.get("signal") \
                    else "ExitCode:%d" % t.get("exitCode", 0)
            elif cs.get("ready") and "running" in state:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if init_conditions.get("Ready") == "True" else "NotReady"
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_cell = str(restarts)
    if restarts and last_restart:
        restarts_cell = "%d (%s ago)" % (restarts, _since(last_restart, now))
    gates = spec.get("readinessGates") or []
    return [meta.get("name", ""), "%d/%d" % (ready, total), reason, restarts_cell,
            _since(meta.get("creationTimestamp"), now), status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
            "%d/%d" % (0, len(gates)) if gates else "<none>"]


def pod_table(pods, rv, include_object, list_meta=None):
    now = utcnow()
    rows = []
    for pod in pods:
        row = {"cells": pod_row(pod, now)}
        if include_object == "Object":
            row["object"] = pod
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": pod.get("metadata", {})}
        rows.append(row)
    meta = dict(list_meta or {"resourceVersion": str(rv)})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": [{"name": n, "type": "string", "format": f, "description": d,
                                   "priority": p} for (n, f, d, p) in POD_COLUMNS],
            "rows": rows}


# --------------------------------------------------------------------------
# Store: pods, events, watch history and watchers
# --------------------------------------------------------------------------

class ControlError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Watcher:
    """One open watch stream: a selector and a queue of (kind, payload)."""

    def __init__(self, selector, bookmarks):
        self.selector = selector
        self.bookmarks = bookmarks
        self.q = queue.Queue()
        self.id = None

    def offer(self, etype, old, new):
        """Turns a store change into what this watcher sees, like the watch cache."""
        if etype == "ADDED":
            if self.selector.matches(new):
                self.q.put(("event", "ADDED", new))
        elif etype == "DELETED":
            if self.selector.matches(old):
                self.q.put(("event", "DELETED", new))
        else:
            was, now = self.selector.matches(old), self.selector.matches(new)
            if was and now:
                self.q.put(("event", "MODIFIED", new))
            elif now:
                self.q.put(("event", "ADDED", new))
            elif was:
                self.q.put(("event", "DELETED", old))


class Store:
    def __init__(self, factory):
        self.lock = threading.RLock()
        self.factory = factory
        self.rv = 1000
        self.pods = {}
        self.create_descs = {}
        self.events = {}
        self.history = []          # (rv, type, old, new)
        self.compacted_rv = self.rv
        self.watchers = {}
        self._watcher_ids = itertools.count(1)
        self.namespaces = {}
        for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
            self.ensure_namespace(ns)

    # namespaces ------------------------------------------------------------
    def ensure_namespace(self, name):
        with self.lock:
            if name not in self.namespaces:
                self.namespaces[name] = {
                    "kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": name, "uid": str(uuid.uuid4()),
                                 "resourceVersion": str(self._next_rv()),
                                 "creationTimestamp": rfc3339(utcnow()),
                                 "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
            return self.namespaces[name]

    def get_namespace(self, name):
        with self.lock:
            return self.namespaces.get(name)

    def list_namespaces(self):
        with self.lock:
            return [v for _k, v in sorted(self.namespaces.items())], self.rv

    def delete_namespace(self, name):
        """Removes a namespace with its pods (DELETED events) and events."""
        with self.lock:
            if self.namespaces.pop(name, None) is None:
                raise ControlError(404, "no namespace %s" % name)
            for ns, pod_name in [k for k in self.pods if k[0] == name]:
                self.delete_pod(ns, pod_name)
            for key in [k for k in self.events if k[0] == name]:
                del self.events[key]

    def _next_rv(self):
        self.rv += 1
        return self.rv

    def _commit(self, key, etype, old, new):
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = str(rv)
        new["metadata"] = reorder(new["metadata"], META_ORDER)
        if etype == "DELETED":
            self.pods.pop(key, None)
        else:
            self.pods[key] = new
        self.history.append((rv, etype, old, new))
        if len(self.history) > HISTORY_LIMIT:
            drop = len(self.history) - HISTORY_LIMIT
            self.compacted_rv = self.history[drop - 1][0]
            del self.history[:drop]
        for w in list(self.watchers.values()):
            w.offer(etype, old, new)
        return new

    # pods ------------------------------------------------------------------
    def create_pod(self, desc):
        with self.lock:
            try:
                pod = self.factory.build(desc)
            except PodSpecError as e:
                raise ControlError(400, str(e))
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if key in self.pods:
                raise ControlError(409, "pod %s/%s exists" % key)
            self.create_descs[key] = copy.deepcopy(desc)
            self.ensure_namespace(key[0])
            return copy.deepcopy(self._commit(key, "ADDED", None, pod))

    def get_pod(self, ns, name):
        with self.lock:
            return self.pods.get((ns, name))

    def list_pods(self, selector):
        with self.lock:
            items = [p for k, p in sorted(self.pods.items()) if selector.matches(p)]
            return items, self.rv

    def mutate_pod(self, ns, name, op, params):
        with self.lock:
            key = (ns, name)
            old = self.pods.get(key)
            if old is None:
                raise ControlError(404, "no pod %s/%s" % key)
            new = copy.deepcopy(old)
            try:
                POD_OPS[op](new, params, utcnow())
            except PodSpecError as e:
                raise ControlError(400, str(e))
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                raise ControlError(400, "%s: %s" % (op, e))
            return copy.deepcopy(self._commit(key, "MODIFIED", old, canonical_pod(new)))

    def delete_pod(self, ns, name):
        with self.lock:
            key = (ns, name)
            old = self.pods.get(key)
            if old is None:
                raise ControlError(404, "no pod %s/%s" % key)
            final = copy.deepcopy(old)
            meta = final["metadata"]
            if "deletionTimestamp" not in meta:
                meta["deletionTimestamp"] = rfc3339(utcnow())
                meta["deletionGracePeriodSeconds"] = 0
            final = canonical_pod(final)
            return copy.deepcopy(self._commit(key, "DELETED", old, final))

    def recreate_pod(self, ns, name, overrides):
        with self.lock:
            key = (ns, name)
            desc = copy.deepcopy(self.create_descs.get(key) or {"name": name, "namespace": ns})
            if key in self.pods:
                self.delete_pod(ns, name)
            for k in ("uid", "creationTimestamp", "startedAt"):
                desc.pop(k, None)
            desc.update(overrides or {})
            desc["name"], desc["namespace"] = name, ns
            return self.create_pod(desc)

    # events ----------------------------------------------------------------
    def add_event(self, event):
        with self.lock:
            meta = event["metadata"]
            key = (meta["namespace"], meta["name"])
            if key in self.events:
                return None
            meta["resourceVersion"] = str(self._next_rv())
            self.events[key] = event
            return event

    def list_events(self, selector):
        with self.lock:
            return [e for k, e in sorted(self.events.items()) if selector.matches(e)], self.rv

    def get_event(self, ns, name):
        with self.lock:
            return self.events.get((ns, name))

    def clear_events(self):
        with self.lock:
            self.events.clear()

    # watches ---------------------------------------------------------------
    def subscribe(self, watcher, since_rv):
        """Registers a watcher; returns (initial events, None) or (None, too-old message)."""
        with self.lock:
            initial = []
            if since_rv:
                if since_rv < self.compacted_rv:
                    return None, "too old resource version: %d (%d)" % (
                        since_rv, self.compacted_rv)
                tmp = Watcher(watcher.selector, False)
                for rv, etype, old, new in self.history:
                    if rv > since_rv:
                        tmp.offer(etype, old, new)
                while not tmp.q.empty():
                    initial.append(tmp.q.get_nowait())
            else:
                for _key, pod in sorted(self.pods.items()):
                    if watcher.selector.matches(pod):
                        initial.append(("event", "ADDED", pod))
            watcher.id = next(self._watcher_ids)
            self.watchers[watcher.id] = watcher
            return initial, None

    def unsubscribe(self, watcher):
        with self.lock:
            self.watchers.pop(watcher.id, None)

    def broadcast(self, item):
        with self.lock:
            for w in self.watchers.values():
                w.q.put(item)
            return len(self.watchers)

    def compact(self):
        with self.lock:
            self.compacted_rv = self.rv
            self.history.clear()
            return self.rv


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------

FAULT_TYPES = ("latency", "hang", "drip", "oversized", "malformed", "reset", "status",
               "forbidden", "unauthorized", "expired")
# Faults a real network or proxy would cause before the apiserver authenticates.
PRE_AUTH_FAULTS = ("latency", "hang", "drip", "reset", "unauthorized")
MALFORMED_VARIANTS = ("truncated", "wrong_types", "not_json", "empty")


class Fault:
    def __init__(self, fid, spec):
        if not isinstance(spec, dict):
            raise ControlError(400, "a fault is a JSON object")
        self.id = fid
        self.spec = copy.deepcopy(spec)
        self.type = spec.get("type")
        if self.type not in FAULT_TYPES:
            raise ControlError(400, "fault type must be one of %s" % ", ".join(FAULT_TYPES))
        try:
            self.path_re = re.compile(spec["path"]) if spec.get("path") else None
        except re.error as e:
            raise ControlError(400, "bad path regex: %s" % e)
        self.method = (spec.get("method") or "").upper() or None
        self.namespace = spec.get("namespace")
        self.verb = spec.get("verb")
        self.resource = spec.get("resource")
        self.watch = spec.get("watch")
        times = spec.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ControlError(400, "times must be a positive integer")
        self.remaining = times
        self.hits = 0
        if self.type == "status":
            if not isinstance(spec.get("code"), int) or not 400 <= spec["code"] <= 599:
                raise ControlError(400, "status faults need an integer code 400..599")
        if self.type == "malformed":
            if spec.get("variant", "truncated") not in MALFORMED_VARIANTS:
                raise ControlError(400, "variant must be one of %s" % ", ".join(
                    MALFORMED_VARIANTS))
        if self.type == "reset" and spec.get("mode", "rst") not in ("rst", "close"):
            raise ControlError(400, "reset mode must be rst or close")

    def active(self):
        return self.remaining is None or self.remaining > 0

    def matches(self, req):
        if not self.active():
            return False
        if self.path_re and not self.path_re.search(req.raw_path):
            return False
        if self.method and self.method != req.method:
            return False
        if self.namespace is not None and self.namespace != req.namespace:
            return False
        if self.verb and self.verb != req.verb:
            return False
        if self.resource and self.resource != req.resource:
            return False
        if self.watch is not None and bool(self.watch) != req.watch:
            return False
        if self.type == "expired" and not req.watch:
            return False
        return True

    def to_json(self):
        d = dict(self.spec)
        d.update({"id": self.id, "hits": self.hits, "remaining": self.remaining,
                  "active": self.active()})
        return d


class Faults:
    def __init__(self):
        self.lock = threading.Condition()
        self.faults = []
        self._ids = itertools.count(1)
        self.release_gen = 0
        self.hanging = 0

    def add(self, spec):
        with self.lock:
            f = Fault(next(self._ids), spec)
            self.faults.append(f)
            return f.to_json()

    def remove(self, fid):
        with self.lock:
            before = len(self.faults)
            self.faults = [f for f in self.faults if f.id != fid]
            if len(self.faults) == before:
                raise ControlError(404, "no fault %d" % fid)
            self.release_gen += 1
            self.lock.notify_all()

    def clear(self):
        with self.lock:
            self.faults = []
            self.release_gen += 1
            self.lock.notify_all()

    def release(self):
        with self.lock:
            n = self.hanging
            self.release_gen += 1
            self.lock.notify_all()
            return n

    def list(self):
        with self.lock:
            return {"faults": [f.to_json() for f in self.faults], "hanging": self.hanging}

    def select(self, req, authed):
        """Latency faults (all that match) and the oldest other matching fault.

        Faults a network or proxy causes apply whatever the token; the others
        only to authenticated requests, as a real apiserver checks the token first.
        """
        with self.lock:
            latency, chosen = [], None
            for f in self.faults:
                if not f.matches(req):
                    continue
                if f.type not in PRE_AUTH_FAULTS and not authed:
                    continue
                if f.type == "latency":
                    latency.append(f)
                elif chosen is None:
                    chosen = f
                else:
                    continue
                f.hits += 1
                if f.remaining is not None:
                    f.remaining -= 1
            return ([copy.deepcopy(f.spec) for f in latency],
                    (chosen.id, copy.deepcopy(chosen.spec)) if chosen else (None, None))

    def hang(self, stopping):
        with self.lock:
            gen = self.release_gen
            self.hanging += 1
            try:
                while self.release_gen == gen and not stopping.is_set():
                    self.lock.wait(0.2)
            finally:
                self.hanging -= 1


# --------------------------------------------------------------------------
# Authentication and the request log
# --------------------------------------------------------------------------

class Auth:
    """Bearer tokens checked against a file re-read on every request."""

    def __init__(self, token_file, accept_old=False, anonymous=False):
        self.token_file = token_file
        self.accept_old = accept_old
        self.anonymous = anonymous
        self.lock = threading.Lock()
        self.seen = []
        self.last = None

    def current(self):
        try:
            with open(self.token_file) as f:
                token = f.read().strip()
        except OSError:
            token = None
        with self.lock:
            if token:
                self.last = token
                if token not in self.seen:
                    self.seen.append(token)
            return self.last

    def check(self, header):
        """Returns (ok, detail): detail is current, old, missing, invalid or disabled."""
        if not self.token_file:
            return True, "disabled"
        if not header:
            return False, "missing"
        # Like k8s.io/apiserver's bearertoken authenticator.
        parts = header.split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return False, "missing"
        token = parts[1]
        current = self.current()
        if current and hmac.compare_digest(token.encode(), current.encode()):
            return True, "current"
        with self.lock:
            if self.accept_old and any(hmac.compare_digest(token.encode(), t.encode())
                                       for t in self.seen):
                return True, "old"
        return False, "invalid"


class RequestLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries = []
        self._seq = itertools.count(1)

    def add(self, entry):
        with self.lock:
            entry["seq"] = next(self._seq)
            self.entries.append(entry)
        return entry

    def snapshot(self):
        with self.lock:
            return [dict(e) for e in self.entries]

    def clear(self):
        with self.lock:
            n = len(self.entries)
            self.entries = []
            return n


# --------------------------------------------------------------------------
# The API server
# --------------------------------------------------------------------------

class Request:
    """What the router learned about a request (also what faults match on)."""

    def __init__(self, method, raw_path):
        self.method = method
        self.raw_path = raw_path
        parts = urllib.parse.urlsplit(raw_path)
        self.path = parts.path
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.route = None
        self.namespace = None
        self.name = None
        self.resource = None
        self.verb = None
        self.watch = False
        self.body = None

    def q(self, key, default=None):
        vals = self.query.get(key)
        return vals[0] if vals else default


_NAME = r"([^/]+)"
ROUTES = [
    (re.compile(r"^/api/v1/namespaces/%s/pods/%s(/status)?$" % (_NAME, _NAME)), "pod"),
    (re.compile(r"^/api/v1/namespaces/%s/pods$" % _NAME), "pods"),
    (re.compile(r"^/api/v1/pods$"), "pods"),
    (re.compile(r"^/api/v1/watch/namespaces/%s/pods/%s$" % (_NAME, _NAME)), "watchpod"),
    (re.compile(r"^/api/v1/watch/namespaces/%s/pods$" % _NAME), "watchpods"),
    (re.compile(r"^/api/v1/watch/pods$"), "watchpods"),
    (re.compile(r"^/api/v1/namespaces/%s/events/%s$" % (_NAME, _NAME)), "event"),
    (re.compile(r"^/api/v1/namespaces/%s/events$" % _NAME), "events"),
    (re.compile(r"^/api/v1/events$"), "events"),
    (re.compile(r"^/api/v1/namespaces/%s$" % _NAME), "namespace"),
    (re.compile(r"^/api/v1/namespaces$"), "namespaces"),
]
FIXED_ROUTES = {"/version": "version", "/version/": "version", "/api": "api", "/api/": "api",
                "/api/v1": "apiv1", "/api/v1/": "apiv1", "/apis": "apis", "/apis/": "apis",
                "/healthz": "health", "/livez": "health", "/readyz": "health"}
METHOD_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}


def route(req):
    """Fills route, namespace, name, resource, verb and watch."""
    req.route = FIXED_ROUTES.get(req.path)
    if req.route:
        req.verb = METHOD_VERBS.get(req.method, req.method.lower())
        return
    for rx, kind in ROUTES:
        m = rx.match(req.path)
        if not m:
            continue
        groups = [urllib.parse.unquote(g) if g and not g.startswith("/") else g
                  for g in m.groups()]
        req.route = kind
        req.resource = "events" if kind.startswith("event") else (
            "namespaces" if kind.startswith("namespace") else "pods")
        if kind in ("pod", "event", "watchpod"):
            req.namespace, req.name = groups[0], groups[1]
        elif kind == "namespace":
            req.name = groups[0]
        elif groups:
            req.namespace = groups[0]
        watch_param = (req.q("watch") or "").lower() in ("1", "true")
        if kind in ("watchpod", "watchpods"):
            req.watch = True
            req.verb = "watch"
        elif kind == "pods" and watch_param:
            req.watch = True
            req.verb = "watch"
        elif kind in ("pods", "events", "namespaces") and req.method in ("GET", "HEAD"):
            req.verb = "list"
        else:
            req.verb = METHOD_VERBS.get(req.method, req.method.lower())
        return


def parse_accept(header):
    """Returns 'table', 'json' or None (nothing we can produce)."""
    if not header:
        return "json"
    want_json = False
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        mtype = parts[0].lower()
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if mtype == "application/json" and params.get("as") == "Table" and \
                params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return "table"
        if mtype in ("application/json", "*/*", "application/*") and "as" not in params:
            want_json = True
    return "json" if want_json else None


class AbortRequest(Exception):
    """The response was cut short on purpose (or the client went away)."""


class _Response:
    def __init__(self, code, obj=None, body=None, content_type="application/json",
                 headers=None):
        self.code = code
        self.obj = obj
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


class SimHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, sim, family, tls_ctx=None):
        self.address_family = family
        self.sim = sim
        self.tls_ctx = tls_ctx
        self._conn_ids = itertools.count(1)
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address):
        if self.sim.verbose:
            super().handle_error(request, client_address)

    def next_conn_id(self):
        return next(self._conn_ids)


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300

    # connection setup -------------------------------------------------------
    def setup(self):
        self.conn_id = self.server.next_conn_id()
        self._reset_mode = None
        sock = self.request
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.server.tls_ctx is not None:
            sock.settimeout(10)
            head = sock.recv(16, socket.MSG_PEEK)
            if head[:1].isalpha():
                # What Go's net/http answers on a TLS port spoken to in plain text.
                sock.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n"
                             b"Client sent an HTTP request to an HTTPS server.\n")
                raise ConnectionAbortedError("plain HTTP on the TLS port")
            self.request = self.server.tls_ctx.wrap_socket(sock, server_side=True)
            self.connection = self.request
        super().setup()

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        if self._reset_mode == "rst":
            try:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
            except OSError:
                pass
        if self.server.tls_ctx is not None or self._reset_mode:
            try:
                self.request.close()
            except OSError:
                pass

    def log_message(self, fmt, *args):
        if self.server.sim.verbose:
            sys.stderr.write("k8s_sim: %s\n" % (fmt % args))

    # low-level writing (faults hook in here) --------------------------------
    def _write(self, data, drip_ok=True):
        if not data:
            return
        if self._reset_after is not None:
            left = self._reset_after - self._written
            if len(data) >= left:
                self._write_plain(data[:left], drip_ok)
                self._reset_mode = self._reset_kind
                self.close_connection = True
                raise AbortRequest("reset after %d bytes" % self._reset_after)
        self._write_plain(data, drip_ok)

    def _write_plain(self, data, drip_ok):
        try:
            if self._drip_ms and drip_ok:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    self._written += 1
                    time.sleep(self._drip_ms / 1000.0)
            else:
                self.wfile.write(data)
                self.wfile.flush()
                self._written += len(data)
        except (OSError, ValueError) as e:
            self.close_connection = True
            raise AbortRequest("client went away: %s" % e)

    def _head_bytes(self, code, headers):
        phrase = http.HTTPStatus(code).phrase if code in http.HTTPStatus._value2member_map_ \
            else "Unknown"
        lines = ["HTTP/1.1 %d %s" % (code, phrase)]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _std_headers(self, content_type):
        h = [("Audit-Id", str(uuid.uuid4())),
             ("Cache-Control", "no-cache, private")]
        if content_type:
            h.append(("Content-Type", content_type))
        h += [("X-Kubernetes-Pf-Flowschema-Uid", self.server.sim.flowschema_uid),
              ("X-Kubernetes-Pf-Prioritylevel-Uid", self.server.sim.prioritylevel_uid),
              ("Date", email.utils.formatdate(usegmt=True))]
        return h

    def _send(self, resp):
        body = resp.body
        if body is None:
            body = go_json(resp.obj, pretty=self._pretty) if resp.obj is not None else b""
        headers = self._std_headers(resp.content_type) + list(resp.headers)
        headers.append(("Content-Length", str(len(body))))
        if self.close_connection:
            headers.append(("Connection", "close"))
        self._entry["status"] = resp.code
        self._write(self._head_bytes(resp.code, headers), drip_ok=self._drip_headers)
        if self.command != "HEAD":
            self._write(body)

    # request entry point ----------------------------------------------------
    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_REQUEST_BODY:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        sim = self.server.sim
        self._written = 0
        self._drip_ms = 0
        self._drip_headers = False
        self._reset_after = None
        self._reset_kind = "rst"
        t0 = time.monotonic()
        req = Request(self.command, self.path)
        route(req)
        ok, detail = sim.auth.check(self.headers.get("Authorization"))
        self._entry = sim.log.add({
            "time": time.time(), "conn": self.conn_id, "method": self.command,
            "path": self.path, "auth": ok, "auth_detail": detail, "status": None,
            "fault": None, "fault_id": None, "watch": req.watch,
            "user_agent": self.headers.get("User-Agent"), "host": self.headers.get("Host"),
            "accept": self.headers.get("Accept"),
            "content_type": self.headers.get("Content-Type")})
        pretty_q = (req.q("pretty") or "").lower()
        ua = self.headers.get("User-Agent") or ""
        self._pretty = pretty_q in ("1", "true", "t") if pretty_q else \
            ua.startswith(("curl", "Wget", "Mozilla/5.0"))
        try:
            body = self._read_body()
            req.body = body
            self._handle(req, ok, detail, body)
        except AbortRequest:
            self.close_connection = True
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        finally:
            self._entry["duration_ms"] = round((time.monotonic() - t0) * 1000, 1)

    def _handle(self, req, authed, detail, body):
        sim = self.server.sim
        if req.route == "events" and req.method == "POST" and body:
            try:
                req.name = (json.loads(body).get("metadata") or {}).get("name")
            except (ValueError, AttributeError):
                pass
        latency, (fid, fault) = sim.faults.select(req, authed)
        for f in latency:
            time.sleep(float(f.get("ms", 0)) / 1000.0)
        if latency and not fault:
            self._entry["fault"] = "latency"
        if fault:
            self._entry["fault"] = fault["type"]
            self._entry["fault_id"] = fid
        ftype = fault["type"] if fault else None

        if ftype == "hang":
            sim.faults.hang(sim.stopping)
            if sim.stopping.is_set():
                self.close_connection = True
                return
        elif ftype == "reset" and not fault.get("after_bytes"):
            self._reset_mode = fault.get("mode", "rst")
            self.close_connection = True
            return
        elif ftype == "reset":
            self._reset_after = int(fault["after_bytes"])
            self._reset_kind = fault.get("mode", "rst")
        elif ftype == "drip":
            self._drip_ms = float(fault.get("interval_ms", 100))
            self._drip_headers = bool(fault.get("headers", False))

        if req.body is None:
            return self._send(_Response(413, st_entity_too_large()))
        if ftype == "unauthorized":
            return self._send(_Response(401, st_unauthorized()))
        if not authed:
            if sim.auth.anonymous and detail == "missing":
                if req.path in PUBLIC_PATHS or req.route == "version":
                    pass
                else:
                    return self._send(_Response(403, st_forbidden(
                        "system:anonymous", req.verb or "get", req.resource, req.namespace,
                        req.name, req.path)))
            else:
                return self._send(_Response(401, st_unauthorized()))
        if ftype == "forbidden":
            return self._send(_Response(403, st_forbidden(
                fault.get("user", sim.user), req.verb or "get", req.resource, req.namespace,
                req.name, req.path)))
        if ftype == "status":
            code = fault["code"]
            headers = []
            retry = fault.get("retry_after")
            if code == 429 and retry is None:
                retry = 1
            if retry is not None:
                headers.append(("Retry-After", str(retry)))
            if "body" in fault:
                return self._send(_Response(code, body=str(fault["body"]).encode(),
                                            content_type=fault.get("content_type",
                                                                   "text/plain"),
                                            headers=headers))
            return self._send(_Response(code, status_for_code(
                code, req, fault.get("message"), retry, sim.user), headers=headers))

        if req.watch and req.method == "GET":
            return self._serve_watch(req, fault if ftype in (
                "expired", "oversized", "malformed") else None)
        resp = self._serve(req)
        if ftype in ("oversized", "malformed") and resp.obj is not None:
            resp = self._mangle_response(resp, fault)
        self._send(resp)

    # normal responses ---------------------------------------------------------
    def _serve(self, req):
        sim = self.server.sim
        r = req.route
        if r is None:
            return _Response(404, st_not_found_generic())
        if r == "health":
            return _Response(200, body=b"ok", content_type="text/plain; charset=utf-8")
        if req.method not in ("GET", "HEAD") and not (r == "events" and req.namespace
                                                       and req.method == "POST"):
            return _Response(405, st_method_not_allowed())
        if r == "version":
            return _Response(200, sim.version_obj())
        if r == "api":
            host = "%s:%d" % (self.server.server_address[0], self.server.server_address[1])
            return _Response(200, {"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": [
                                       {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        if r == "apiv1":
            return _Response(200, API_RESOURCES)
        if r == "apis":
            return _Response(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        accept = parse_accept(self.headers.get("Accept"))
        if accept is None:
            return _Response(406, st_not_acceptable())
        if r == "pod":
            pod = sim.store.get_pod(req.namespace, req.name)
            if pod is None:
                return _Response(404, st_not_found("pods", req.name))
            if accept == "table":
                return self._table([pod], int(pod["metadata"]["resourceVersion"]), req)
            return _Response(200, pod)
        if r == "pods":
            return self._list(req, accept)
        if r == "events":
            if req.method == "POST":
                return self._create_event(req)
            return self._list(req, "json")
        if r == "namespace":
            ns = sim.store.get_namespace(req.name)
            if ns is None:
                return _Response(404, st_not_found("namespaces", req.name))
            return _Response(200, ns)
        if r == "namespaces":
            items, rv = sim.store.list_namespaces()
            return _Response(200, {"kind": "NamespaceList", "apiVersion": "v1",
                                   "metadata": {"resourceVersion": str(rv)},
                                   "items": [without_type_meta(i) for i in items]})
        if r == "event":
            ev = sim.store.get_event(req.namespace, req.name)
            if ev is None:
                return _Response(404, st_not_found("events", req.name))
            return _Response(200, ev)
        return _Response(404, st_not_found_generic())

    def _table(self, pods, rv, req, list_meta=None):
        return _Response(200, pod_table(pods, rv, req.q("includeObject", "Metadata"),
                                        list_meta),
                         content_type="application/json;as=Table;v=v1;g=meta.k8s.io")

    def _list(self, req, accept):
        sim = self.server.sim
        try:
            sel = Selector(req.resource, req.namespace, req.q("fieldSelector", ""),
                           req.q("labelSelector", ""))
        except SelectorError as e:
            return _Response(400, st_bad_request(str(e)))
        if req.resource == "pods":
            items, rv = sim.store.list_pods(sel)
        else:
            items, rv = sim.store.list_events(sel)
        meta = {"resourceVersion": str(rv)}
        cont = req.q("continue")
        if cont:
            try:
                token = json.loads(base64.b64decode(cont, validate=False))
                start = token["start"].rstrip("\x00")
                rv = int(token.get("rv", rv))
                meta["resourceVersion"] = str(rv)
            except (ValueError, KeyError, TypeError):
                return _Response(400, st_bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion "
                    "(version meta.k8s.io/v1)"))
            items = [i for i in items if "%s/%s" % (i["metadata"]["namespace"],
                                                    i["metadata"]["name"]) > start]
        try:
            limit = int(req.q("limit") or 0)
        except ValueError:
            limit = 0
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = {"v": "meta.k8s.io/v1", "rv": rv,
                     "start": "%s/%s\x00" % (last["namespace"], last["name"])}
            meta["continue"] = base64.b64encode(
                json.dumps(token, separators=(",", ":")).encode()).decode()
            if not sel.fields and not sel.labels:
                meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if accept == "table":
            return self._table(items, rv, req, meta)
        kind = "PodList" if req.resource == "pods" else "EventList"
        return _Response(200, {"kind": kind, "apiVersion": "v1", "metadata": meta,
                               "items": [without_type_meta(i) for i in items]})

    def _create_event(self, req):
        sim = self.server.sim
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _Response(415, st_unsupported_media_type(ctype))
        if sim.store.get_namespace(req.namespace) is None:
            # The NamespaceLifecycle admission plugin refuses creates there.
            return _Response(404, st_not_found("namespaces", req.namespace))
        result = build_event(req.body, req.namespace, utcnow(),
                             self.headers.get("User-Agent") or "")
        if isinstance(result, _Response):
            return result
        event, warnings = result
        stored = sim.store.add_event(event)
        if stored is None:
            return _Response(409, st_already_exists("events", event["metadata"]["name"]))
        headers = [("Warning", '299 - "unknown field \\"%s\\""' % w) for w in warnings]
        return _Response(201, stored, headers=headers)

    def _mangle_response(self, resp, fault):
        obj = copy.deepcopy(resp.obj)
        if fault["type"] == "oversized":
            return _Response(resp.code, pad_object(obj, int(fault.get("size", 2 * 1024 * 1024))),
                             content_type=resp.content_type)
        variant = fault.get("variant", "truncated")
        if variant == "wrong_types":
            return _Response(resp.code, wrong_types(obj), content_type=resp.content_type)
        if variant == "truncated":
            data = go_json(obj, pretty=self._pretty)
            return _Response(resp.code, body=data[:max(1, len(data) // 2)],
                             content_type=resp.content_type)
        if variant == "empty":
            return _Response(resp.code, body=b"", content_type=resp.content_type)
        return _Response(resp.code, body=b"<html><body><h1>It works!</h1></body></html>\n",
                         content_type="application/json")

    # watch --------------------------------------------------------------------
    def _write_chunk(self, data):
        self._write(b"%x\r\n" % len(data) + data + b"\r\n")

    def _send_stream(self, data, rng):
        """Writes `data` (whole JSON lines) as chunks cut inside objects."""
        sim = self.server.sim
        mode = sim.watch_chunking
        if mode == "line":
            cuts = [i + 1 for i, b in enumerate(data) if b == 0x0A][:-1]
        elif mode == "byte":
            cuts = list(range(1, len(data)))
        else:
            cuts = []
            start = 0
            while start < len(data):
                end = data.index(b"\n", start) + 1
                if end - start > 3:
                    cuts.append(rng.randrange(start + 1, end - 1))
                start = end
        pos = 0
        for cut in cuts + [len(data)]:
            if cut <= pos:
                continue
            self._write_chunk(data[pos:cut])
            pos = cut
            if cut < len(data) and sim.chunk_pause_ms:
                time.sleep(sim.chunk_pause_ms / 1000.0)

    def _event_line(self, etype, obj, fault):
        if fault and fault["type"] == "oversized" and etype != "ERROR":
            obj = pad_object(copy.deepcopy(obj), int(fault.get("size", 2 * 1024 * 1024)))
        elif fault and fault["type"] == "malformed" and etype != "ERROR":
            variant = fault.get("variant", "truncated")
            if variant == "wrong_types":
                obj = wrong_types(copy.deepcopy(obj))
            else:
                line = go_json({"type": etype, "object": obj})
                return line[:len(line) // 2] + b"\n"
        return go_json({"type": etype, "object": obj})

    def _serve_watch(self, req, fault):
        sim = self.server.sim
        try:
            field_text = req.q("fieldSelector", "")
            if req.route == "watchpod":
                field_text = ",".join(x for x in (field_text, "metadata.name=" + req.name) if x)
            sel = Selector("pods", req.namespace, field_text, req.q("labelSelector", ""))
        except SelectorError as e:
            return self._send(_Response(400, st_bad_request(str(e))))
        rv_text = req.q("resourceVersion") or ""
        try:
            since = int(rv_text) if rv_text else 0
        except ValueError:
            return self._send(_Response(400, st_bad_request(
                'invalid resource version: strconv.ParseUint: parsing "%s": invalid syntax'
                % rv_text)))
        timeout = req.q("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout else None
        bookmarks = (req.q("allowWatchBookmarks") or "").lower() == "true"
        initial_end = (req.q("sendInitialEvents") or "").lower() == "true"
        watcher = Watcher(sel, bookmarks)
        expired_msg = None
        if fault and fault["type"] == "expired":
            expired_msg = fault.get("message") or "too old resource version: %d (%d)" % (
                since or 1, sim.store.rv)
            initial = []
        else:
            initial, expired_msg = sim.store.subscribe(watcher, since)
        self._entry["status"] = 200
        headers = self._std_headers("application/json") + [("Transfer-Encoding", "chunked")]
        rng = random.Random(sim.seed + self.conn_id if sim.seed is not None else None)
        try:
            self._write(self._head_bytes(200, headers), drip_ok=self._drip_headers)
            if expired_msg:
                self._send_stream(go_json({"type": "ERROR", "object": st_expired(expired_msg)}),
                                  rng)
                self._write_chunk_end()
                return
            burst = b"".join(self._event_line(t, o, fault) for (_k, t, o) in initial)
            if initial_end:
                burst += go_json({"type": "BOOKMARK", "object": bookmark_obj(
                    sim.store.rv, initial_end=True)})
            if burst:
                self._send_stream(burst, rng)
            while True:
                if sim.stopping.is_set():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if self._client_gone():
                    self.close_connection = True
                    return
                try:
                    item = watcher.q.get(timeout=0.1)
                except queue.Empty:
                    continue
                kind = item[0]
                if kind == "event":
                    self._send_stream(self._event_line(item[1], item[2], fault), rng)
                elif kind == "bookmark" and watcher.bookmarks:
                    self._send_stream(go_json({"type": "BOOKMARK",
                                               "object": bookmark_obj(item[1])}), rng)
                elif kind == "expire":
                    self._send_stream(go_json({"type": "ERROR",
                                               "object": st_expired(item[1])}), rng)
                    break
                elif kind == "close":
                    if item[1] == "rst":
                        self._reset_mode = "rst"
                        self.close_connection = True
                        return
                    break
            self._write_chunk_end()
        finally:
            sim.store.unsubscribe(watcher)

    def _write_chunk_end(self):
        self._write(b"0\r\n\r\n")

    def _client_gone(self):
        """A watch client only ever closes; readable means EOF (or a TLS close_notify)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


def bookmark_obj(rv, initial_end=False):
    meta = {"resourceVersion": str(rv), "creationTimestamp": None}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta,
            "spec": {"containers": None}, "status": {}}


def pad_object(obj, size):
    """Makes obj at least `size` bytes of valid JSON, keeping its kind."""
    target = obj
    if obj.get("kind", "").endswith("List") and obj.get("items"):
        target = obj["items"][0]
    meta = target.setdefault("metadata", {})
    current = len(go_json(obj))
    need = max(0, size - current) + 64
    ann = dict(meta.get("annotations") or {})
    ann["sim.lock-arbiter.io/padding"] = "x" * need
    meta["annotations"] = ann
    return obj


WRONG_TYPES = {"restartCount": "x", "ready": "yes", "started": "no", "startedAt": 12345,
               "exitCode": "137"}


def wrong_types(obj):
    """Same document with values of the wrong JSON types (what a broken proxy might send)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in WRONG_TYPES and not isinstance(v, (dict, list)):
                out[k] = WRONG_TYPES[k]
            elif k == "resourceVersion" and isinstance(v, str):
                out[k] = int(v) if v.isdigit() else 0
            else:
                out[k] = wrong_types(v)
        return out
    if isinstance(obj, list):
        return [wrong_types(v) for v in obj]
    return obj


API_RESOURCES = {
    "kind": "APIResourceList", "groupVersion": "v1",
    "resources": [
        {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event",
         "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                   "watch"], "shortNames": ["ev"], "storageVersionHash": "r2yiGXH7wu8="},
        {"name": "namespaces", "singularName": "namespace", "namespaced": False,
         "kind": "Namespace", "verbs": ["create", "delete", "get", "list", "patch", "update",
                                        "watch"], "shortNames": ["ns"],
         "storageVersionHash": "Q3oi5N2YM8M="},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                   "watch"], "shortNames": ["po"], "categories": ["all"],
         "storageVersionHash": "xPOwRZ+Yhw8="},
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
         "verbs": ["get", "patch", "update"]},
    ]}


# Event fields of core/v1 and their JSON types (for decoding errors like the apiserver's).
EVENT_FIELDS = {"kind": str, "apiVersion": str, "metadata": dict, "involvedObject": dict,
                "reason": str, "message": str, "source": dict, "firstTimestamp": str,
                "lastTimestamp": str, "count": int, "type": str, "eventTime": str,
                "series": dict, "action": str, "related": dict, "reportingComponent": str,
                "reportingInstance": str}
OBJREF_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                 "fieldPath")
GO_TYPE = {str: "string", int: "int32", dict: "object"}
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def build_event(body, namespace, now, user_agent):
    """Validates and stores-prepares a POSTed core/v1 Event.

    Returns (event, unknown_fields) or an error _Response. Decoding errors
    are 400 BadRequest as the apiserver words them. Validation is stricter
    than the apiserver's legacy-event rules on purpose: involvedObject,
    reason, message and a type of Normal or Warning are required (422).
    """
    def bad(msg):
        return _Response(400, st_bad_request('Event in version "v1" cannot be handled as a '
                                             'Event: %s' % msg))
    try:
        ev = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return _Response(400, st_bad_request("the object provided is unrecognized: "
                                             "couldn't get version/kind; json parse error: %s"
                                             % e))
    if not isinstance(ev, dict):
        return bad("json: cannot unmarshal %s into Go value of type struct" % type(ev).__name__)
    if ev.get("kind") not in (None, "Event") or ev.get("apiVersion") not in (None, "v1"):
        return _Response(400, st_bad_request(
            "the API version in the data (%s) does not match the expected API version (v1)"
            % ev.get("apiVersion") if ev.get("apiVersion") not in (None, "v1") else
            "Event in version \"v1\" cannot be handled as a Event: kind %s is not Event"
            % ev.get("kind")))
    unknown = []
    for key, val in ev.items():
        want = EVENT_FIELDS.get(key)
        if want is None:
            unknown.append(key)
            continue
        if val is None:
            continue
        if want is int and (isinstance(val, bool) or not isinstance(val, int)):
            return bad("json: cannot unmarshal %s into Go struct field Event.%s of type int32"
                       % (_json_type(val), key))
        if want is not int and not isinstance(val, want):
            return bad("json: cannot unmarshal %s into Go struct field Event.%s of type %s"
                       % (_json_type(val), key, GO_TYPE[want]))
    meta = dict(ev.get("metadata") or {})
    if meta.get("namespace") and meta["namespace"] != namespace:
        return _Response(400, st_bad_request(
            "the namespace of the provided object does not match the namespace sent on the "
            "request"))
    io = ev.get("involvedObject")
    if isinstance(io, dict):
        for key, val in io.items():
            if key in OBJREF_FIELDS and val is not None and not isinstance(val, str):
                return bad("json: cannot unmarshal %s into Go struct field "
                           "ObjectReference.involvedObject.%s of type string"
                           % (_json_type(val), key))
            if key not in OBJREF_FIELDS:
                unknown.append("involvedObject." + key)
    times = {}
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        if ev.get(key):
            try:
                dt = parse_time(ev[key])
            except ValueError:
                return bad('parsing time "%s" as "2006-01-02T15:04:05Z07:00": cannot parse'
                           % ev[key])
            times[key] = rfc3339_micro(dt) if key == "eventTime" else rfc3339(dt)
    name = meta.get("name") or ""
    if not name and meta.get("generateName"):
        name = meta["generateName"] + "".join(random.choice(NAME_CHARS) for _ in range(5))
    causes = []
    if not name:
        causes.append(("FieldValueRequired", "metadata.name",
                       "Required value: name or generateName is required"))
    elif not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        causes.append(("FieldValueInvalid", "metadata.name",
                       'Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of '
                       "lower case alphanumeric characters, '-' or '.', and must start and "
                       "end with an alphanumeric character" % name))
    if not isinstance(io, dict) or not io:
        causes.append(("FieldValueRequired", "involvedObject", "Required value"))
    elif io.get("namespace", "") != namespace:
        causes.append(("FieldValueInvalid", "involvedObject.namespace",
                       'Invalid value: "%s": does not match event.namespace'
                       % io.get("namespace", "")))
    for key in ("reason", "message"):
        if not ev.get(key):
            causes.append(("FieldValueRequired", key, "Required value"))
    if ev.get("type") not in ("Normal", "Warning"):
        causes.append(("FieldValueNotSupported", "type",
                       'Unsupported value: "%s": supported values: "Normal", "Warning"'
                       % (ev.get("type") or "")))
    if causes:
        return _Response(422, st_invalid("Event", name, causes))

    out_meta = {"name": name}
    if meta.get("generateName"):
        out_meta["generateName"] = meta["generateName"]
    out_meta["namespace"] = namespace
    out_meta["uid"] = str(uuid.uuid4())
    out_meta["resourceVersion"] = ""
    out_meta["creationTimestamp"] = rfc3339(now)
    for key in ("labels", "annotations", "ownerReferences"):
        if meta.get(key):
            out_meta[key] = meta[key]
    manager = (user_agent.split("/", 1)[0] or "unknown") if user_agent else "unknown"
    out_meta["managedFields"] = [{
        "manager": manager, "operation": "Update", "apiVersion": "v1",
        "time": rfc3339(now), "fieldsType": "FieldsV1",
        "fieldsV1": managed_fields({k: v for k, v in ev.items()
                                    if k in EVENT_FIELDS and k not in ("kind", "apiVersion",
                                                                      "metadata")})}]
    event = {"kind": "Event", "apiVersion": "v1", "metadata": out_meta,
             "involvedObject": {k: io[k] for k in OBJREF_FIELDS if io.get(k)}}
    for key in ("reason", "message"):
        event[key] = ev[key]
    event["source"] = {k: v for k, v in (ev.get("source") or {}).items()
                       if k in ("component", "host") and v}
    event["firstTimestamp"] = times.get("firstTimestamp")
    event["lastTimestamp"] = times.get("lastTimestamp")
    if ev.get("count"):
        event["count"] = ev["count"]
    event["type"] = ev["type"]
    event["eventTime"] = times.get("eventTime")
    for key in ("series", "action", "related"):
        if ev.get(key):
            event[key] = ev[key]
    event["reportingComponent"] = ev.get("reportingComponent") or ""
    event["reportingInstance"] = ev.get("reportingInstance") or ""
    return event, unknown


def _json_type(val):
    if isinstance(val, bool):
        return "bool"
    if isinstance(val, (int, float)):
        return "number"
    if isinstance(val, str):
        return "string"
    if isinstance(val, list):
        return "array"
    if isinstance(val, dict):
        return "object"
    return "null"


def managed_fields(obj):
    if isinstance(obj, dict):
        return {"f:" + k: managed_fields(v) for k, v in obj.items() if v is not None}
    return {}


# --------------------------------------------------------------------------
# Control interface (plain HTTP on loopback, no token, no faults)
# --------------------------------------------------------------------------

class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, fmt, *args):
        if self.server.sim.verbose:
            sys.stderr.write("k8s_sim control: %s\n" % (fmt % args))

    def _reply(self, code, obj):
        body = json.dumps(obj, indent=None).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            return self._reply(400, {"error": "body is not JSON: %s" % e})
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            code, obj = self.server.sim.control(self.command, path, query, body)
        except ControlError as e:
            code, obj = e.code, {"error": str(e)}
        except Exception as e:  # a bug in the simulator: report it to the test
            code, obj = 500, {"error": "%s: %s" % (type(e).__name__, e)}
        self._reply(code, obj)


# --------------------------------------------------------------------------
# The simulator: both servers, state and lifecycle
# --------------------------------------------------------------------------

class Simulator:
    def __init__(self, host="127.0.0.1", port=0, control_port=0, pki=None, token_file=None,
                 plain=False, accept_old_tokens=False, anonymous=False, fixtures=None,
                 template=DEFAULT_TEMPLATE, user=DEFAULT_USER,
                 server_version=DEFAULT_SERVER_VERSION, seed=None, verbose=False,
                 watch_chunking="split", chunk_pause_ms=1.0):
        self.verbose = verbose
        self.user = user
        self.server_version = server_version
        self.seed = seed
        self.watch_chunking = watch_chunking
        self.chunk_pause_ms = chunk_pause_ms
        self.stopping = threading.Event()
        self.flowschema_uid = str(uuid.uuid4())
        self.prioritylevel_uid = str(uuid.uuid4())
        self.fixtures = fixtures or default_fixtures_dir()
        self.store = Store(PodFactory(self.fixtures, template))
        self.faults = Faults()
        self.log = RequestLog()
        self.auth = Auth(token_file, accept_old_tokens, anonymous)
        self.plain = plain
        self.ca = None
        tls_ctx = None
        if not plain:
            if not pki:
                raise ValueError("--pki is required unless --plain")
            paths = make_pki(pki)
            self.ca = os.path.abspath(paths["ca"])
            tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            tls_ctx.load_cert_chain(paths["cert"], paths["key"])
            tls_ctx.set_alpn_protocols(["http/1.1"])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.api = SimHTTPServer((host, port), ApiHandler, self, family, tls_ctx)
        ctl_host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.ctl = SimHTTPServer((ctl_host, control_port), ControlHandler, self, family)
        self.host = host
        self._threads = []

    @staticmethod
    def _url(scheme, host, port):
        return "%s://%s:%d" % (scheme, "[%s]" % host if ":" in host else host, port)

    @property
    def url(self):
        return self._url("http" if self.plain else "https", self.host,
                         self.api.server_address[1])

    @property
    def control_url(self):
        return self._url("http", self.ctl.server_address[0], self.ctl.server_address[1])

    def ready_info(self):
        return {"url": self.url, "control": self.control_url, "ca": self.ca,
                "pid": os.getpid()}

    def start(self):
        for srv in (self.api, self.ctl):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self):
        self.stopping.set()
        self.faults.release()
        for srv in (self.api, self.ctl):
            srv.shutdown()
            srv.server_close()

    def version_obj(self):
        v = self.server_version.lstrip("v").split(".")
        return {"major": v[0], "minor": v[1] if len(v) > 1 else "0",
                "gitVersion": self.server_version,
                "gitCommit": hashlib.sha1(self.server_version.encode()).hexdigest(),
                "gitTreeState": "clean", "buildDate": "2024-10-22T20:28:14Z",
                "goVersion": "go1.22.8", "compiler": "gc", "platform": "linux/amd64"}

    # control ----------------------------------------------------------------
    def control(self, method, path, query, body):
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if not parts or parts[0] != "_sim":
            raise ControlError(404, "control paths start with /_sim/")
        parts = parts[1:]
        head = parts[0] if parts else ""
        store = self.store
        if head == "health":
            return 200, {"ok": True, "resourceVersion": str(store.rv)}
        if head == "pods":
            if len(parts) == 1:
                if method == "GET":
                    with store.lock:
                        return 200, {"items": [p for _k, p in sorted(store.pods.items())]}
                if method == "POST":
                    return 201, store.create_pod(body)
            if len(parts) == 3:
                ns, name = parts[1], parts[2]
                if method == "GET":
                    pod = store.get_pod(ns, name)
                    if pod is None:
                        raise ControlError(404, "no pod %s/%s" % (ns, name))
                    return 200, pod
                if method == "DELETE":
                    return 200, store.delete_pod(ns, name)
            if len(parts) == 4 and method == "POST":
                ns, name, op = parts[1], parts[2], parts[3]
                if op == "delete":
                    return 200, store.delete_pod(ns, name)
                if op == "recreate":
                    return 201, store.recreate_pod(ns, name, body)
                if op in POD_OPS:
                    return 200, store.mutate_pod(ns, name, op, body)
                raise ControlError(404, "unknown pod operation %s" % op)
        if head == "namespaces":
            if len(parts) == 1 and method == "GET":
                return 200, {"items": store.list_namespaces()[0]}
            if len(parts) == 1 and method == "POST":
                if not body.get("name"):
                    raise ControlError(400, "name is required")
                return 201, store.ensure_namespace(body["name"])
            if len(parts) == 2 and method == "DELETE":
                store.delete_namespace(parts[1])
                return 200, {"deleted": parts[1]}
        if head == "events":
            if method == "GET":
                sel = Selector("events", (query.get("namespace") or [None])[0])
                return 200, {"items": store.list_events(sel)[0]}
            if method == "DELETE":
                store.clear_events()
                return 200, {"cleared": True}
        if head == "faults":
            if len(parts) == 1:
                if method == "GET":
                    return 200, self.faults.list()
                if method == "POST":
                    return 201, self.faults.add(body)
                if method == "DELETE":
                    self.faults.clear()
                    return 200, {"cleared": True}
            if len(parts) == 2 and parts[1] == "release" and method == "POST":
                return 200, {"released": self.faults.release()}
            if len(parts) == 2 and method == "DELETE":
                try:
                    self.faults.remove(int(parts[1]))
                except ValueError:
                    raise ControlError(400, "fault ids are integers")
                return 200, {"removed": int(parts[1])}
        if head == "requests":
            if method == "GET":
                return 200, {"requests": self.log.snapshot()}
            if method == "DELETE":
                return 200, {"cleared": self.log.clear()}
        if head == "watches":
            if len(parts) == 1 and method == "GET":
                with store.lock:
                    return 200, {"open": len(store.watchers), "resourceVersion": str(store.rv)}
            if len(parts) == 2 and method == "POST":
                op = parts[1]
                if op == "expire":
                    msg = body.get("message") or "too old resource version: %d (%d)" % (
                        store.compacted_rv, store.rv)
                    return 200, {"watches": store.broadcast(("expire", msg))}
                if op == "bookmark":
                    return 200, {"watches": store.broadcast(("bookmark", store.rv))}
                if op == "close":
                    mode = body.get("mode", "end")
                    if mode not in ("end", "rst"):
                        raise ControlError(400, "mode must be end or rst")
                    return 200, {"watches": store.broadcast(("close", mode))}
                if op == "compact":
                    return 200, {"compactedResourceVersion": str(store.compact())}
        if head == "auth" and method == "POST":
            if "accept_old_tokens" in body:
                self.auth.accept_old = bool(body["accept_old_tokens"])
            if "anonymous" in body:
                self.auth.anonymous = bool(body["anonymous"])
            return 200, {"accept_old_tokens": self.auth.accept_old,
                         "anonymous": self.auth.anonymous}
        if head == "config" and method == "POST":
            if "watch_chunking" in body:
                if body["watch_chunking"] not in ("split", "line", "byte"):
                    raise ControlError(400, "watch_chunking is split, line or byte")
                self.watch_chunking = body["watch_chunking"]
            if "chunk_pause_ms" in body:
                self.chunk_pause_ms = float(body["chunk_pause_ms"])
            if "user" in body:
                self.user = str(body["user"])
            if "server_version" in body:
                self.server_version = str(body["server_version"])
            return 200, {"watch_chunking": self.watch_chunking,
                         "chunk_pause_ms": self.chunk_pause_ms, "user": self.user,
                         "server_version": self.server_version}
        raise ControlError(404, "unknown control call %s %s" % (method, path))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Simulated Kubernetes API server for tests.")
    ap.add_argument("--host", default="127.0.0.1", help="API listen address (127.0.0.1, ::1)")
    ap.add_argument("--port", type=int, default=0, help="API port (0: any free port)")
    ap.add_argument("--control-port", type=int, default=0, help="control port (0: any)")
    ap.add_argument("--pki", help="directory with ca.crt, server.crt, server.key "
                                  "(created when missing)")
    ap.add_argument("--token-file", help="bearer token file, re-read on every request; "
                                         "without it no token is required")
    ap.add_argument("--plain", action="store_true", help="plain HTTP, like kubectl proxy")
    ap.add_argument("--accept-old-tokens", action="store_true",
                    help="also accept tokens the token file held earlier")
    ap.add_argument("--anonymous", action="store_true",
                    help="no token means system:anonymous (403) instead of 401")
    ap.add_argument("--fixtures", help="fixture root (default $LOCK_ARBITER_FIXTURES)")
    ap.add_argument("--template", default=DEFAULT_TEMPLATE,
                    help="default pod fixture under FIXTURES/kubernetes/ or a path")
    ap.add_argument("--user", default=DEFAULT_USER, help="user named in 403 messages")
    ap.add_argument("--server-version", default=DEFAULT_SERVER_VERSION)
    ap.add_argument("--seed", type=int, help="seed for watch chunk boundaries")
    ap.add_argument("--watch-chunking", choices=("split", "line", "byte"), default="split")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not args.plain and not args.pki:
        ap.error("--pki is required unless --plain")

    sim = Simulator(host=args.host, port=args.port, control_port=args.control_port,
                    pki=args.pki, token_file=args.token_file, plain=args.plain,
                    accept_old_tokens=args.accept_old_tokens, anonymous=args.anonymous,
                    fixtures=args.fixtures, template=args.template, user=args.user,
                    server_version=args.server_version, seed=args.seed,
                    verbose=args.verbose, watch_chunking=args.watch_chunking)
    done = threading.Event()

    def on_signal(_signo, _frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim.start()
    sys.stdout.write(json.dumps(sim.ready_info()) + "\n")
    sys.stdout.flush()
    while not done.wait(0.5):
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
