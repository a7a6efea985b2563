"""One HTTP contract (tests/contract/contract.yml), checked against both the stand-in
(TEST FIXTURE) and the real Opengram 0.2.1 release where its tarball is on this host.

A stand-in that drifts from the real app fails here; so does a contract entry that the real
app does not honour. The contract is data; this file only interprets it. Vocabulary:

setups:   name -> {config: <opengram.config.json>, env: {...}}; one process per
          (target, setup), shared by that setup's cases, which run in file order.
cases:    [{name, setup, steps: [...]}]; a step is one of
  request:  {method, path, headers, json | raw | multipart | json_upload, chunked}
            multipart: {content: SPEC, filename, content_type, field, total_size}
            json_upload: {fileName, contentType, content: SPEC | base64: "..."}
            SPEC = {size: N, pattern: "ab"} (pattern repeated to N bytes)
            with expect: {status, headers (null = absent), header_contains, json (subset),
            json_equals, json_keys, json_absent, json_nonempty_strings, json_item: {path, match},
            body_equals, body_contains, body_content: SPEC, openapi_paths: {path: [methods]}}
            and save: {var: dotted.path}; "${var}" is substituted anywhere in later steps.
  sse:      {path, headers}, expect {status, headers}, first: "<first block>",
            while_open: [steps], events: [{event, data (subset), data_keys, id_is_data_id}]
  config_file: {json (subset), json_equals, absent: [paths], indent2: true, unchanged_since: NAME}
  snapshot_config: NAME
  data_file: {path (relative to OPENGRAM_HOME), content: SPEC}
Responses with content-encoding gzip/deflate are decoded before the body is checked.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
import signal
import time
import zlib
from pathlib import Path

import pytest
import yaml

from opengram_instances import EventStreamReader, Instance, multipart_body, multipart_body_of_size, parse_event

CONTRACT_PATH = Path(__file__).with_name("contract.yml")
CONTRACT = yaml.safe_load(CONTRACT_PATH.read_text())
TARGETS = ("standin", "real")
VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


# --- instances, one per (target, setup) ------------------------------------------------------


class Running:
    """Starts instances lazily; stops them all at the end of the session."""

    def __init__(self, request, tmp_path_factory):
        self.request = request
        self.tmp = tmp_path_factory
        self.instances: dict[tuple[str, str], Instance] = {}
        self.vars: dict[tuple[str, str], dict[str, str]] = {}

    def package(self, target: str):
        return self.request.getfixturevalue("real_package" if target == "real" else "standin_package")

    def get(self, target: str, setup_name: str) -> Instance:
        key = (target, setup_name)
        if key not in self.instances:
            package = self.package(target)
            setup = CONTRACT["setups"][setup_name]
            home = self.tmp.mktemp(f"{target}-{setup_name}") / "home"
            home.mkdir()
            (home / "opengram.config.json").write_text(json.dumps(setup["config"], indent=2) + "\n")
            instance = Instance(package.command, home, dict(setup.get("env", {})))
            self.instances[key] = instance
            self.vars[key] = {}
            instance.start()
        return self.instances[key]

    def stop_all(self):
        for instance in self.instances.values():
            instance.stop()


@pytest.fixture(scope="session")
def running(request, tmp_path_factory):
    registry = Running(request, tmp_path_factory)
    yield registry
    registry.stop_all()


# --- interpreting the contract -----------------------------------------------------------------


def substitute(value, variables):
    if isinstance(value, str):
        def replace(match):
            name = match.group(1)
            if name not in variables:
                pytest.fail(f"contract uses ${{{name}}} before saving it")
            return str(variables[name])
        return VAR.sub(replace, value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def content_bytes(spec) -> bytes:
    pattern = spec.get("pattern", "x").encode()
    size = spec["size"]
    return (pattern * (size // len(pattern) + 1))[:size]


MISSING = object()


def dig(data, path: str):
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return MISSING
    return data


def subset_problems(expected, actual, where="$") -> list[str]:
    """Dicts: every expected key matches; lists: same length, item by item; else equal."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += subset_problems(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        return [p for i, (e, a) in enumerate(zip(expected, actual)) for p in subset_problems(e, a, f"{where}[{i}]")]
    if expected != actual or type(expected) is not type(actual):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    return []


def decode(response) -> bytes:
    encoding = response.headers.get("content-encoding")
    if encoding == "gzip":
        return gzip.decompress(response.body)
    if encoding == "deflate":
        return zlib.decompress(response.body)
    return response.body


def build_request(spec):
    headers = dict(spec.get("headers", {}))
    body = None
    if "json" in spec:
        body = json.dumps(spec["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "raw" in spec:
        body = spec["raw"].encode()
    elif "multipart" in spec:
        mp = spec["multipart"]
        boundary = "----contract-boundary-7MA4YWxkTrZu0gW"
        content = content_bytes(mp["content"])
        if "total_size" in mp:
            body = multipart_body_of_size(mp["total_size"], content, boundary)
        else:
            body = multipart_body(content, boundary, filename=mp.get("filename", "blob.bin"),
                                  content_type=mp.get("content_type", "application/octet-stream"),
                                  field_name=mp.get("field", "file"))
        headers.setdefault("Content-Type", f"multipart/form-data; boundary={boundary}")
    elif "json_upload" in spec:
        up = dict(spec["json_upload"])
        if "content" in up:
            up["base64Data"] = base64.b64encode(content_bytes(up.pop("content"))).decode()
        body = json.dumps(up).encode()
        headers.setdefault("Content-Type", "application/json")
    if spec.get("chunked") and body is not None:
        data = body
        body = (data[i:i + 65536] for i in range(0, len(data), 65536))
    return spec["method"], spec["path"], body, headers


def check_response(response, expect, context) -> list[str]:
    problems = []
    if "status" in expect and response.status != expect["status"]:
        problems.append(f"status {response.status}, expected {expect['status']}")
    for name, value in expect.get("headers", {}).items():
        actual = response.headers.get(name)
        if value is None and actual is not None:
            problems.append(f"header {name}: expected absent, got {actual!r}")
        elif value is not None and actual != value:
            problems.append(f"header {name}: expected {value!r}, got {actual!r}")
    for name, value in expect.get("header_contains", {}).items():
        if value not in (response.headers.get(name) or ""):
            problems.append(f"header {name}: expected to contain {value!r}, got {response.headers.get(name)!r}")
    body = decode(response)
    if "body_equals" in expect and body.decode(errors="replace") != expect["body_equals"]:
        problems.append(f"body {body[:200]!r}, expected {expect['body_equals']!r}")
    for text in expect.get("body_contains", []):
        if text not in body.decode(errors="replace"):
            problems.append(f"body lacks {text!r}: {body[:300]!r}")
    if "body_content" in expect and body != content_bytes(expect["body_content"]):
        problems.append(f"body is not the expected content ({len(body)} bytes)")
    json_checks = ("json", "json_equals", "json_keys", "json_absent", "json_nonempty_strings", "json_item", "openapi_paths")
    if any(key in expect for key in json_checks):
        try:
            data = json.loads(body)
        except ValueError:
            return problems + [f"body is not JSON: {body[:200]!r}"]
        problems += json_shape_problems(data, "JSON", exact=expect.get("json_equals", MISSING),
                                        subset=expect.get("json", MISSING), present=expect.get("json_keys", ()),
                                        absent=expect.get("json_absent", ()),
                                        nonempty=expect.get("json_nonempty_strings", ()))
        if "json_item" in expect:
            items = dig(data, expect["json_item"]["path"])
            if not isinstance(items, list) or not any(not subset_problems(expect["json_item"]["match"], i) for i in items):
                problems.append(f"no item of {expect['json_item']['path']} matches {expect['json_item']['match']!r}")
        for path, methods in expect.get("openapi_paths", {}).items():
            operations = data.get("paths", {}).get(path)
            if operations is None:
                problems.append(f"OpenAPI document lacks path {path}")
            else:
                problems += [f"OpenAPI {path} lacks {m}" for m in methods if m not in operations]
    return [f"{context}: {p}" for p in problems]


def json_shape_problems(data, what, *, exact=MISSING, subset=MISSING, present=(), absent=(), nonempty=()):
    """The shape checks a response body and the config file share; `what` names the document."""
    problems = [] if subset is MISSING else subset_problems(subset, data)
    if exact is not MISSING and data != exact:
        problems.append(f"{what} {data!r}, expected exactly {exact!r}")
    problems += [f"{what} lacks {path}" for path in present if dig(data, path) is MISSING]
    problems += [f"{what} has {path} (must not)" for path in absent if dig(data, path) is not MISSING]
    for path in nonempty:
        value = dig(data, path)
        if not isinstance(value, str) or not value:
            problems.append(f"{what} {path} is not a non-empty string: {value!r}")
    return problems


def run_request(instance, step, variables, context):
    method, path, body, headers = build_request(step["request"])
    response = instance.request(method, path, body=body, headers=headers, chunked=bool(step["request"].get("chunked")))
    problems = check_response(response, step.get("expect", {}), context)
    if not problems:
        for name, path_ in step.get("save", {}).items():
            value = dig(json.loads(decode(response)), path_)
            if value is MISSING:
                problems.append(f"{context}: cannot save {name} from {path_}")
            variables[name] = value
    return problems


def run_sse(instance, step, variables, running_steps, context):
    spec = step["sse"]
    reader = EventStreamReader(instance, spec["path"], spec.get("headers"))
    try:
        fake = type("R", (), {"status": reader.response.status, "headers": reader.response.headers, "body": b""})
        problems = check_response(fake, {k: v for k, v in step.get("expect", {}).items() if k in ("status", "headers")}, context)
        if problems or reader.response.status != 200:
            return problems
        if "first" in step:
            _, block = reader.next_block()
            if block != step["first"]:
                problems.append(f"{context}: first block {block!r}, expected {step['first']!r}")
        problems += running_steps(step.get("while_open", []))
        for index, expected in enumerate(step.get("events", [])):
            _, block = reader.next_block()
            if block is None:
                problems.append(f"{context}: stream ended before event {index}")
                break
            event, data, event_id = parse_event(block)
            if event != expected["event"]:
                problems.append(f"{context}: event {index} is {event!r}, expected {expected['event']!r}")
            expected = substitute(copy.deepcopy(expected), variables)
            problems += [f"{context}: event {index}: {p}" for p in subset_problems(expected.get("data", {}), data)]
            if "data_keys" in expected and sorted(data) != sorted(expected["data_keys"]):
                problems.append(f"{context}: event {index} data keys {sorted(data)}, expected {sorted(expected['data_keys'])}")
            if expected.get("id_is_data_id") and event_id != data.get("id"):
                problems.append(f"{context}: event {index} id line {event_id!r} != data id {data.get('id')!r}")
            if "save" in expected:
                for name, path_ in expected["save"].items():
                    variables[name] = dig(data, path_)
        return problems
    finally:
        reader.close()


def run_config_file(instance, spec, snapshots, context):
    text = instance.config_path.read_text()
    data = json.loads(text)
    problems = []
    if spec.get("indent2") and text != json.dumps(data, indent=2, ensure_ascii=False) + "\n":
        problems.append("the config file is not JSON with 2-space indent and a final newline")
    problems += json_shape_problems(data, "config file", exact=spec.get("json_equals", MISSING),
                                    subset=spec.get("json", MISSING), absent=spec.get("absent", ()),
                                    nonempty=spec.get("nonempty_strings", ()))
    if "unchanged_since" in spec and text != snapshots[spec["unchanged_since"]]:
        problems.append(f"config file changed since snapshot {spec['unchanged_since']!r}")
    return [f"{context}: {p}" for p in problems]


def run_steps(instance, steps, variables, snapshots, prefix):
    problems = []
    for index, raw_step in enumerate(steps):
        # An event stream's inner steps and events are substituted when they run (they use
        # variables saved while the stream is open).
        late = {k: raw_step[k] for k in ("while_open", "events") if "sse" in raw_step and k in raw_step}
        step = substitute({k: v for k, v in copy.deepcopy(raw_step).items() if k not in late}, variables)
        step.update(late)
        context = f"{prefix}step {index + 1}"
        if "request" in step:
            context += f" ({step['request']['method']} {step['request']['path']})"
            problems += run_request(instance, step, variables, context)
        elif "sse" in step:
            problems += run_sse(
                instance, step, variables,
                lambda inner: run_steps(instance, inner, variables, snapshots, f"{context} > "), f"{context} (SSE)")
        elif "config_file" in step:
            problems += run_config_file(instance, step["config_file"], snapshots, f"{context} (config file)")
        elif "snapshot_config" in step:
            snapshots[step["snapshot_config"]] = instance.config_path.read_text()
        elif "data_file" in step:
            path = instance.home / step["data_file"]["path"]
            if not path.is_file():
                problems.append(f"{context}: {path} missing")
            elif "content" in step["data_file"] and path.read_bytes() != content_bytes(step["data_file"]["content"]):
                problems.append(f"{context}: {path} does not hold the uploaded bytes")
        else:
            pytest.fail(f"{context}: unknown step {sorted(step)}")
    return problems


CASES = [(target, case) for target in TARGETS for case in CONTRACT["cases"]]


@pytest.mark.parametrize(
    ("target", "case"), CASES, ids=[f"{target}-{case['setup']}-{case['name']}" for target, case in CASES]
)
def test_contract(running, target, case):
    instance = running.get(target, case["setup"])
    variables = running.vars[(target, case["setup"])]
    snapshots: dict[str, str] = {}
    problems = run_steps(instance, case["steps"], variables, snapshots, "")
    assert not problems, f"{target} breaks the contract ({case['name']}):\n  " + "\n  ".join(problems)


def test_contract_covers_what_the_brief_asks():
    names = " ".join(case["name"] for case in CONTRACT["cases"])
    for topic in ("secret", "readEndpoints", "fieldErrors", "401 before 400", "upload limit", "event", "bootstrap", "doc", "gzip"):
        assert topic in names, f"no contract case about {topic}"


# --- process behaviour, checked against both --------------------------------------------------

PROCESS_CONFIG = CONTRACT["setups"]["open"]["config"]


def start(running_registry, target, tmp_path, env=None) -> Instance:
    package = running_registry.package(target)
    home = tmp_path / "home"
    home.mkdir()
    (home / "opengram.config.json").write_text(json.dumps(PROCESS_CONFIG, indent=2) + "\n")
    return Instance(package.command, home, env or {}).start()


@pytest.mark.parametrize("target", TARGETS)
def test_sigterm_with_an_open_event_stream_exits_0_after_about_two_seconds(running, target, tmp_path):
    instance = start(running, target, tmp_path)
    reader = EventStreamReader(instance)
    try:
        assert reader.next_block()[1] == ": stream opened"
        sent = time.monotonic()
        instance.process.send_signal(signal.SIGTERM)
        code = instance.process.wait(6)
        elapsed = time.monotonic() - sent
    finally:
        reader.close()
    assert code == 0
    assert 1.5 <= elapsed < 4.0, f"exited {elapsed:.2f} s after SIGTERM"


@pytest.mark.parametrize("target", TARGETS)
def test_sigterm_without_streams_exits_0_at_once_and_requests_are_not_logged(running, target, tmp_path):
    instance = start(running, target, tmp_path)
    instance.request("GET", "/api/v1/chats?token=og_do_not_log")
    instance.request("POST", "/api/v1/chats", {"agentIds": ["agent-a"], "modelId": "model-m"})
    sent = time.monotonic()
    instance.process.send_signal(signal.SIGTERM)
    assert instance.process.wait(6) == 0
    assert time.monotonic() - sent < 1.5
    log = instance.log()
    assert "/api/v1/chats" not in log and "og_do_not_log" not in log, "Opengram logs no request lines"
    assert f"OpenGram server listening on http://localhost:{instance.port}" in log
