#!/usr/bin/env python3
"""Offline checks of everything deploy/ gives Kubernetes, standing in for a real cluster.

    python3 deploy/k8s/validate.py [--kubernetes-version 1.32.0] [--self-test]

1. `kubectl kustomize deploy/k8s/overlays/kind` renders.
2. Every rendered object validates against the Kubernetes OpenAPI schemas of that version
   (PyPI's kubernetes-validate, strict: unknown fields fail), and the ServiceMonitor and
   PrometheusRule against the schemas in deploy/k8s/crds/.
3. Pods in a namespace that enforces the "restricted" Pod Security Standard meet it.
4. References hold (and the image tag is the workspace's version): ConfigMaps and keys that pods mount or read, Services' target
   ports, the headless Services the config files name, the OTLP endpoint.
5. The Fluent Bit and OpenTelemetry Collector configs are well formed (no tool for
   either here: their structure is checked).
6. deploy/compose/compose.yaml runs the same commands with the same config files and the
   same environment as the StatefulSets, pod by pod.

--self-test breaks a copy of the rendering in ways each check must catch, and fails if
one goes unnoticed. Exit status 0 when everything holds; otherwise each problem is
printed, one per line.
"""

import argparse
import copy
import json
import os
import re
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OVERLAY = os.path.join(ROOT, "deploy", "k8s", "overlays", "kind")
CRDS = os.path.join(ROOT, "deploy", "k8s", "crds")
COMPOSE = os.path.join(ROOT, "deploy", "compose", "compose.yaml")
SERVICES = ["placement-center", "journal-server", "mqtt-broker"]


def render(directory):
    out = subprocess.run(["kubectl", "kustomize", directory], check=True,
                         capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def name_of(obj):
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def crd_schemas():
    schemas = {}
    for file in sorted(os.listdir(CRDS)):
        if file.endswith(".schema.json"):
            with open(os.path.join(CRDS, file)) as f:
                schema = json.load(f)
            schemas[schema["properties"]["kind"]["const"]] = schema
    return schemas


def check_schemas(objects, version):
    problems = []
    crds = crd_schemas()
    for obj in objects:
        if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            schema = crds.get(obj.get("kind"))
            if schema is None:
                problems.append(f"{name_of(obj)}: no CRD schema in deploy/k8s/crds")
                continue
            for e in jsonschema.Draft202012Validator(schema).iter_errors(obj):
                path = ".".join(str(p) for p in e.absolute_path)
                problems.append(f"{name_of(obj)}: {path}: {e.message}")
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"{name_of(obj)}: {path}: {e.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
            problems.append(f"{name_of(obj)}: no schema: {e}")
    return problems


def pod_specs(objects):
    """(object, pod spec) for every workload."""
    for obj in objects:
        if obj["kind"] in ("StatefulSet", "Deployment", "DaemonSet"):
            yield obj, obj["spec"]["template"]["spec"]


def check_pod_security(objects):
    """The "restricted" Pod Security Standard, where a namespace enforces it."""
    restricted = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"
                  and o["metadata"].get("labels", {}).get(
                      "pod-security.kubernetes.io/enforce") == "restricted"}
    problems = []
    for obj, spec in pod_specs(objects):
        if obj["metadata"].get("namespace") not in restricted:
            continue
        pod_sc = spec.get("securityContext", {})
        for v in spec.get("volumes", []):
            if "hostPath" in v:
                problems.append(f"{name_of(obj)}: hostPath volume {v['name']} (restricted)")
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            where = f"{name_of(obj)}: container {c['name']}"
            if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))):
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities do not drop ALL")
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: no RuntimeDefault seccomp profile")
            if not sc.get("readOnlyRootFilesystem"):
                problems.append(f"{where}: root filesystem is writable")
    return problems


def index(objects, kind):
    return {(o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for o in objects if o["kind"] == kind}


def check_references(objects):
    problems = []
    configmaps = index(objects, "ConfigMap")
    services = index(objects, "Service")
    for obj, spec in pod_specs(objects):
        ns = obj["metadata"].get("namespace")
        where = name_of(obj)
        labels = obj["spec"]["template"]["metadata"].get("labels", {})
        selector = obj["spec"]["selector"]["matchLabels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{where}: the selector does not match the pod labels")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"])
                if v is None and m["name"] not in claims:
                    problems.append(f"{where}: mounts {m['name']}, which is no volume")
                    continue
                if v and "configMap" in v:
                    cm = configmaps.get((ns, v["configMap"]["name"]))
                    if cm is None:
                        problems.append(f"{where}: no ConfigMap {v['configMap']['name']}")
                        continue
                    keys = [i["key"] for i in v["configMap"].get("items", [])] or \
                        ([m["subPath"]] if "subPath" in m else [])
                    for key in keys:
                        if key not in cm.get("data", {}):
                            problems.append(f"{where}: ConfigMap {cm['metadata']['name']} has no key {key}")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    cm = configmaps.get((ns, ref["name"]))
                    if cm is None or ref["key"] not in cm.get("data", {}):
                        problems.append(f"{where}: env {e['name']}: no ConfigMap key {ref['name']}/{ref['key']}")
                field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", "")
                m = re.fullmatch(r"metadata\.labels\['(.+)'\]", field)
                if m and m.group(1) not in labels:
                    problems.append(f"{where}: env {e['name']} reads label {m.group(1)}, which the pod lacks")
            for r in c.get("envFrom", []):
                ref = r.get("configMapRef")
                if ref and (ns, ref["name"]) not in configmaps:
                    problems.append(f"{where}: envFrom: no ConfigMap {ref['name']}")
            names = {p.get("name") for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in names:
                    problems.append(f"{where}: {probe} port {port} is no container port")
        if obj["kind"] == "StatefulSet":
            headless = services.get((ns, obj["spec"]["serviceName"]))
            if headless is None or headless["spec"].get("clusterIP") != "None":
                problems.append(f"{where}: serviceName {obj['spec']['serviceName']} is no headless Service")
            elif not headless["spec"].get("publishNotReadyAddresses"):
                problems.append(f"{where}: its headless Service hides pods that are not ready "
                                f"(peers must resolve each other to become ready)")
    # Every Service selects a workload and targets named ports it has.
    for (ns, name), svc in services.items():
        sel = svc["spec"].get("selector", {})
        backends = [spec for obj, spec in pod_specs(objects)
                    if obj["metadata"].get("namespace") == ns and all(
                        obj["spec"]["template"]["metadata"].get("labels", {}).get(k) == v
                        for k, v in sel.items())]
        if not backends:
            problems.append(f"Service/{ns}/{name}: selects no pods")
            continue
        ports = {p.get("name") for spec in backends for c in spec["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                problems.append(f"Service/{ns}/{name}: targetPort {p['targetPort']} is no container port")
    # The ServiceMonitor finds Services with a `metrics` port.
    for sm in (o for o in objects if o["kind"] == "ServiceMonitor"):
        ns = sm["metadata"].get("namespace")
        want = sm["spec"]["selector"].get("matchLabels", {})
        found = [s for (n, _), s in services.items() if n == ns and all(
            s["metadata"].get("labels", {}).get(k) == v for k, v in want.items())]
        for svc in ["placement-center", "journal-server", "mqtt-broker"]:
            if not any(s["metadata"]["name"] == svc for s in found):
                problems.append(f"{name_of(sm)}: does not select the {svc} Service")
        for s in found:
            for ep in sm["spec"]["endpoints"]:
                if ep["port"] not in {p.get("name") for p in s["spec"]["ports"]}:
                    problems.append(f"{name_of(sm)}: Service {s['metadata']['name']} has no port {ep['port']}")
    # Host names in the services' config files are pods behind headless Services.
    config = configmaps_by_prefix(objects, "robustmq-config")
    for key, text in (config or {}).items():
        for host, port in re.findall(r"([a-z0-9-]+-\d+\.[a-z0-9-]+):(\d+)", text):
            pod, svc_name = host.split(".", 1)
            svc = next((s for (_, n), s in services.items() if n == svc_name), None)
            if svc is None or svc["spec"].get("clusterIP") != "None":
                problems.append(f"config {key}: {host}: {svc_name} is no headless Service")
            elif int(port) not in [p["port"] for p in svc["spec"]["ports"]]:
                problems.append(f"config {key}: {host}:{port}: the Service has no port {port}")
    return problems


def check_version(objects):
    """The image tag and the version label are the workspace's version (Cargo.toml)."""
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    problems = []
    for obj, spec in pod_specs(objects):
        if obj["metadata"]["name"] not in SERVICES:
            continue
        label = obj["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/version")
        if label != version:
            problems.append(f"{name_of(obj)}: app.kubernetes.io/version {label!r} is not {version}")
        for c in spec["containers"]:
            if c["image"] != f"robustmq:{version}":
                problems.append(f"{name_of(obj)}: image {c['image']} is not robustmq:{version}")
    return problems


def configmaps_by_prefix(objects, prefix):
    for o in objects:
        if o["kind"] == "ConfigMap" and re.fullmatch(rf"{prefix}(-[a-z0-9]{{10}})?", o["metadata"]["name"]):
            return o.get("data", {})
    return None


def parse_fluent_bit(text):
    """Classic-mode sections: [(name, [(key, value)])], plus @INCLUDEs."""
    sections, includes = [], []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@INCLUDE"):
            includes.append(line.split(None, 1)[1])
        elif re.fullmatch(r"\[[A-Z_]+\]", line):
            sections.append((line[1:-1], []))
        elif sections and raw.startswith((" ", "\t")):
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise ValueError(f"line {n}: `{line}` is not `Key Value`")
            sections[-1][1].append((parts[0], parts[1]))
        else:
            raise ValueError(f"line {n}: `{raw}` is outside a section")
    return sections, includes


def check_fluent_bit(objects):
    problems = []
    ds = next((o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "fluent-bit"), None)
    if ds is None:
        return ["no fluent-bit DaemonSet"]
    data = configmaps_by_prefix(objects, "fluent-bit-config")
    if data is None:
        return ["no fluent-bit-config ConfigMap"]
    known = {"SERVICE", "INPUT", "FILTER", "OUTPUT", "PARSER", "MULTILINE_PARSER"}
    parsed = {}
    for key, text in data.items():
        try:
            parsed[key] = parse_fluent_bit(text)
        except ValueError as e:
            problems.append(f"fluent-bit {key}: {e}")
    if problems:
        return problems
    for key, (sections, includes) in parsed.items():
        for name, _ in sections:
            if name not in known:
                problems.append(f"fluent-bit {key}: unknown section [{name}]")
        for inc in includes:
            if inc not in data:
                problems.append(f"fluent-bit {key}: @INCLUDE {inc} is not in the ConfigMap")
    main = parsed.get("fluent-bit.conf")
    if main is None:
        return problems + ["fluent-bit: no fluent-bit.conf"]
    sections = [s for _, (secs, _) in parsed.items() for s in secs]
    get = lambda kv, k: next((v for kk, v in kv if kk.lower() == k.lower()), None)
    for name, kv in sections:
        if name in ("INPUT", "FILTER", "OUTPUT", "PARSER") and not get(kv, "Name"):
            problems.append(f"fluent-bit: a [{name}] without Name")
    parsers = {get(kv, "Name") for name, kv in sections if name == "PARSER"}
    for name, kv in sections:
        for k in ("Parser", "Merge_Parser"):
            p = get(kv, k)
            if p and p not in parsers:
                problems.append(f"fluent-bit: [{name}] {k} {p} is not defined")
    tags = [get(kv, "Tag") for name, kv in sections if name == "INPUT"]
    for name, kv in sections:
        match = get(kv, "Match")
        if name in ("FILTER", "OUTPUT") and match:
            rx = re.escape(match).replace(r"\*", ".*")
            if not any(t and re.fullmatch(rx, t.replace("*", "x")) for t in tags):
                problems.append(f"fluent-bit: [{name}] {get(kv, 'Name')} matches no input tag ({match})")
    if not any(name == "OUTPUT" for name, _ in sections):
        problems.append("fluent-bit: no [OUTPUT]")
    # Files named in the config are where the DaemonSet mounts them.
    mounts = {m["mountPath"].rstrip("/") for c in ds["spec"]["template"]["spec"]["containers"]
              for m in c.get("volumeMounts", [])}
    containers = ds["spec"]["template"]["spec"]["containers"]
    env = {e["name"] for c in containers for e in c.get("env", [])}
    for r in (r for c in containers for r in c.get("envFrom", [])):
        cm = next((o for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"] == r["configMapRef"]["name"]), None)
        env |= set((cm or {}).get("data", {}))
    for name, kv in sections:
        for k in ("Parsers_File",):
            path = get(kv, k)
            if path and os.path.dirname(path) not in mounts:
                problems.append(f"fluent-bit: {k} {path} is not on a mounted volume")
        path = get(kv, "Path") if name == "INPUT" else None
        if path and not any(path.startswith(m + "/") for m in mounts):
            problems.append(f"fluent-bit: input path {path} is not mounted")
        env_vars = re.findall(r"\$\{([A-Z_]+)\}", " ".join(v for _, v in kv))
        for var in env_vars:
            if var not in env:
                problems.append(f"fluent-bit: [{name}] uses ${{{var}}}, which the pod does not set")
    return problems


def check_collector(objects):
    data = configmaps_by_prefix(objects, "robustmq-config") or {}
    if "otel-collector.yaml" not in data:
        return ["no otel-collector.yaml in robustmq-config"]
    problems = []
    cfg = yaml.safe_load(data["otel-collector.yaml"])
    kinds = ("receivers", "processors", "exporters", "connectors", "extensions")
    defined = {k: set((cfg.get(k) or {})) for k in kinds}
    used = {k: set() for k in kinds}
    service = cfg.get("service") or {}
    for ext in service.get("extensions", []):
        used["extensions"].add(ext)
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("otel-collector: no pipelines")
    for pname, p in pipelines.items():
        if pname.split("/")[0] not in ("traces", "metrics", "logs"):
            problems.append(f"otel-collector: pipeline {pname} is not traces, metrics or logs")
        for k in ("receivers", "processors", "exporters"):
            for comp in p.get(k, []):
                used[k].add(comp)
                if comp not in defined[k] and comp not in defined["connectors"]:
                    problems.append(f"otel-collector: pipeline {pname} uses undefined {k[:-1]} {comp}")
        if not p.get("receivers") or not p.get("exporters"):
            problems.append(f"otel-collector: pipeline {pname} needs receivers and exporters")
    for k in ("receivers", "processors", "exporters", "extensions"):
        for comp in defined[k] - used[k]:
            problems.append(f"otel-collector: {k[:-1]} {comp} is defined but not used")
    # Where it listens is what its Service offers; where it sends is a Service.
    services = index(objects, "Service")
    svc = next((s for (_, n), s in services.items() if n == "otel-collector"), None)
    grpc = (((cfg.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("grpc") or {}
    port = int(str(grpc.get("endpoint", ":4317")).rsplit(":", 1)[1])
    if svc is None or port not in [p["port"] for p in svc["spec"]["ports"]]:
        problems.append(f"otel-collector: no Service offers its OTLP/gRPC port {port}")
    for name, exp in (cfg.get("exporters") or {}).items():
        endpoint = (exp or {}).get("endpoint")
        if endpoint and name.startswith("otlp"):
            host, p = endpoint.rsplit(":", 1)
            target = next((s for (_, n), s in services.items() if n == host), None)
            if target is None or int(p) not in [x["port"] for x in target["spec"]["ports"]]:
                problems.append(f"otel-collector: exporter {name} sends to {endpoint}, which no Service offers")
    # The services send to it.
    cluster = configmaps_by_prefix(objects, "robustmq-cluster") or {}
    otlp = cluster.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not re.fullmatch(rf"http://otel-collector:{port}", otlp):
        problems.append(f"OTEL_EXPORTER_OTLP_ENDPOINT={otlp!r} is not the collector (port {port})")
    return problems


def check_compose(objects, compose):
    """The compose containers run like the StatefulSets' pods, env and files alike."""
    problems = []
    statefulsets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "StatefulSet"}
    namespace = None
    cluster = configmaps_by_prefix(objects, "robustmq-cluster") or {}
    for svc in SERVICES:
        sts = statefulsets.get(svc)
        if sts is None:
            problems.append(f"no StatefulSet {svc}")
            continue
        namespace = sts["metadata"]["namespace"]
        spec = sts["spec"]["template"]["spec"]
        container = spec["containers"][0]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for i in range(sts["spec"]["replicas"]):
            pod = f"{svc}-{i}"
            c = compose["services"].get(pod)
            if c is None:
                problems.append(f"compose: no service {pod}")
                continue
            if c.get("command") != container.get("command"):
                problems.append(f"compose {pod}: command {c.get('command')} is not {container.get('command')}")
            env = c.get("environment") or {}
            want = {}
            for e in container.get("env", []):
                if "value" in e:
                    want[e["name"]] = re.sub(r"\$\(POD_NAME\)", pod, e["value"])
                    continue
                ref = e["valueFrom"]
                field = ref.get("fieldRef", {}).get("fieldPath")
                if field == "metadata.name":
                    want[e["name"]] = pod
                elif field == "metadata.namespace":
                    want[e["name"]] = namespace
                elif e["name"] in ("NODE_NAME", "CLUSTER_NAME"):
                    want[e["name"]] = None  # differs by design: where it runs
                elif e["name"] == "APP_VERSION":
                    want[e["name"]] = None  # the image sets it from its label
                elif e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT":
                    want[e["name"]] = "absent"  # no collector in compose
                else:
                    want[e["name"]] = cluster.get(ref.get("configMapKeyRef", {}).get("key"))
            for name, value in want.items():
                got = env.get(name)
                if value == "absent":
                    if got is not None:
                        problems.append(f"compose {pod}: {name} is set, but compose has no collector")
                elif name == "APP_VERSION":
                    continue
                elif got is None:
                    problems.append(f"compose {pod}: {name} is missing (the StatefulSet sets it)")
                elif value is not None and str(got) != value:
                    problems.append(f"compose {pod}: {name}={got!r}, the StatefulSet's pod has {value!r}")
            for name in env:
                if name not in want:
                    problems.append(f"compose {pod}: {name} is not set in the StatefulSet")
            # The same config files at the same paths.
            mounts = [m for m in container.get("volumeMounts", [])
                      if "configMap" in volumes.get(m["name"], {})]
            binds = [v for v in c.get("volumes", []) if isinstance(v, str) and v.startswith("../")]
            for m in mounts:
                expected = f"../k8s/base/config/{m['subPath']}:{m['mountPath']}:ro"
                if expected not in binds:
                    problems.append(f"compose {pod}: does not mount {expected}")
            for m in container.get("volumeMounts", []):
                if m["name"] not in volumes:  # a volumeClaimTemplate
                    if not any(isinstance(v, str) and v == f"{pod}:{m['mountPath']}"
                               for v in c.get("volumes", [])):
                        problems.append(f"compose {pod}: no volume at {m['mountPath']}")
            aliases = ((c.get("networks") or {}).get("robustmq") or {}).get("aliases", [])
            if f"{pod}.{sts['spec']['serviceName']}" not in aliases:
                problems.append(f"compose {pod}: not reachable as {pod}.{sts['spec']['serviceName']}")
            sec = container.get("securityContext", {})
            if sec.get("readOnlyRootFilesystem") and not c.get("read_only"):
                problems.append(f"compose {pod}: root filesystem writable (read-only in Kubernetes)")
            if "ALL" in sec.get("capabilities", {}).get("drop", []) and "ALL" not in c.get("cap_drop", []):
                problems.append(f"compose {pod}: keeps capabilities (Kubernetes drops ALL)")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if c.get("stop_grace_period") != f"{grace}s":
                problems.append(f"compose {pod}: stop_grace_period is not {grace}s")
    if compose["services"].get("placement-center-0", {}).get("environment", {}).get("POD_NAMESPACE") != namespace:
        problems.append(f"compose: POD_NAMESPACE is not {namespace}")
    return problems


def load_compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def check_all(objects, compose, version):
    return (check_schemas(objects, version) + check_pod_security(objects)
            + check_references(objects) + check_version(objects) + check_fluent_bit(objects)
            + check_collector(objects) + check_compose(objects, compose))


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name))


def self_test(objects, compose, version):
    """Each breakage must be reported; returns those that were not."""
    def sts(o, name):
        return find(o, "StatefulSet", name)["spec"]

    def container(o, name):
        return sts(o, name)["template"]["spec"]["containers"][0]

    breakages = {
        "unknown StatefulSet field": lambda o, c: sts(o, "journal-server").update(bogus=1),
        "misspelt ServiceMonitor field": lambda o, c: find(o, "ServiceMonitor", "robustmq")["spec"]["endpoints"][0].update(intervall="30s"),
        "PrometheusRule with a bad duration": lambda o, c: find(o, "PrometheusRule", "robustmq")["spec"]["groups"][1]["rules"][0].update({"for": "5 minutes"}),
        "writable root filesystem": lambda o, c: container(o, "mqtt-broker")["securityContext"].update(readOnlyRootFilesystem=False),
        "probe on a missing port": lambda o, c: container(o, "placement-center")["readinessProbe"]["httpGet"].update(port="health"),
        "missing ConfigMap key": lambda o, c: container(o, "mqtt-broker")["volumeMounts"][0].update(subPath="broker.toml"),
        "headless Service hiding unready pods": lambda o, c: find(o, "Service", "placement-center-headless")["spec"].pop("publishNotReadyAddresses"),
        "fluent-bit output matching nothing": lambda o, c: find(o, "ConfigMap", "fluent-bit-config")["data"].update({"output.conf": "[OUTPUT]\n    Name stdout\n    Match app.*\n"}),
        "collector exporter unused": lambda o, c: yaml_edit(find(o, "ConfigMap", "robustmq-config"), "otel-collector.yaml", lambda y: y["exporters"].update(debug={})),
        "stale image tag": lambda o, c: container(o, "journal-server").update(image="robustmq:0.0.9"),
        "compose env differs": lambda o, c: c["services"]["journal-server-1"]["environment"].update(JOURNAL_SERVER_NODE_ID="2"),
        "compose env missing": lambda o, c: c["services"]["mqtt-broker-2"]["environment"].pop("MQTT_BROKER_ADVERTISE_GRPC"),
        "compose without the config file": lambda o, c: c["services"]["placement-center-1"].update(volumes=["placement-center-1:/var/lib/robustmq"]),
    }
    missed = []
    for what, breakage in breakages.items():
        o, c = copy.deepcopy(objects), copy.deepcopy(compose)
        breakage(o, c)
        if not check_all(o, c, version):
            missed.append(what)
    return missed


def yaml_edit(configmap, key, edit):
    doc = yaml.safe_load(configmap["data"][key])
    edit(doc)
    configmap["data"][key] = yaml.safe_dump(doc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kubernetes-version", default="1.32.0")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    objects = render(OVERLAY)
    compose = load_compose()
    problems = check_all(objects, compose, args.kubernetes_version)
    for p in problems:
        print(p)
    kinds = sorted({o["kind"] for o in objects})
    print(f"{len(objects)} objects ({', '.join(kinds)}) checked against Kubernetes "
          f"{args.kubernetes_version}: {len(problems)} problems")
    if args.self_test:
        missed = self_test(objects, compose, args.kubernetes_version)
        for m in missed:
            print(f"self-test: not caught: {m}")
        print(f"self-test: {len(missed)} breakages went unnoticed")
        problems += missed
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
