#!/usr/bin/env python3
"""Generates the RobustMQ Grafana dashboards from compact panel definitions.

Run from the repository root (Python 3.11, standard library only):

    python3 deploy/grafana/generate.py            # write the dashboards
    python3 deploy/grafana/generate.py --check    # exit 1 if a committed file differs

It (re)writes deploy/grafana/dashboards/*.json deterministically (2-space indent, trailing
newline); edit this script, not the JSON, and commit both.

Conventions every dashboard follows:

* a `datasource` variable (Prometheus) used by every panel and target;
* `cluster`, `namespace`, `pod` variables from `robustmq_build_info` (multi, All = ".*");
  every expression filters `cluster=~"$cluster", namespace=~"$namespace"` and, where the
  series is per process, `pod=~"$pod"` (a `=~".*"` matcher also matches an absent label,
  so `up`, which has no cluster/namespace label locally, still matches);
* the only variables used in expressions are $cluster, $namespace, $pod and
  $__rate_interval, and every expression returns series under normal traffic (no
  expression that only has series when something is wrong, no `or vector(0)`);
* every panel has a description, a unit, a grid position and a unique id; latency panels
  (querying a `*_seconds_bucket`) ask for exemplars, which link to Jaeger through the
  `trace_id` exemplar label (see provisioning/datasources/datasources.yml).
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"

DS = {"type": "prometheus", "uid": "${datasource}"}

BROKER = "mqtt-broker"
PLACEMENT = "placement-center"
JOURNAL = "journal-server"
SERVICES = f"{PLACEMENT}|{JOURNAL}|{BROKER}"

# Extra matchers (kept out of f-string expressions: Python 3.11 forbids quotes there).
GRPC_OK = 'grpc_code="OK"'
LE_100MS = 'le="0.1"'
CONNECT_PACKETS = 'packet_type="connect"'
FAILED_PROPOSALS = 'result=~"timeout|error"'


# --------------------------------------------------------------------------- PromQL helpers


def sel(service: str | None = None, pod: bool = True, extra: str = "") -> str:
    """The label matchers of a selector (without braces)."""
    parts = ['cluster=~"$cluster"', 'namespace=~"$namespace"']
    if service is not None:
        op = "=~" if "|" in service else "="
        parts.append(f'service{op}"{service}"')
    if pod:
        parts.append('pod=~"$pod"')
    if extra:
        parts.append(extra)
    return ", ".join(parts)


def m(name: str, service: str | None = None, pod: bool = True, extra: str = "") -> str:
    """An instant vector selector."""
    return f"{name}{{{sel(service, pod, extra)}}}"


def rate(name: str, service: str | None = None, pod: bool = True, extra: str = "") -> str:
    return f"rate({m(name, service, pod, extra)}[$__rate_interval])"


def increase(name: str, service: str | None = None, pod: bool = True, extra: str = "") -> str:
    return f"increase({m(name, service, pod, extra)}[$__rate_interval])"


def sum_by(by: str, expr: str) -> str:
    return f"sum by ({by}) ({expr})" if by else f"sum({expr})"


def quantile(q: str, hist: str, by: str = "", service: str | None = None, extra: str = "") -> str:
    """`histogram_quantile` of a latency histogram, bucket rates summed by le (and `by`)."""
    keys = "le" if not by else f"le, {by}"
    bucket = rate(f"{hist}_bucket", service, True, extra)
    return f"histogram_quantile({q}, sum by ({keys}) ({bucket}))"


def quantiles(hist: str, service: str | None = None, extra: str = "") -> list[tuple[str, str]]:
    """p50, p99 and p99.9 targets of one histogram over everything selected."""
    return [
        (quantile("0.5", hist, "", service, extra), "p50"),
        (quantile("0.99", hist, "", service, extra), "p99"),
        (quantile("0.999", hist, "", service, extra), "p99.9"),
    ]


# --------------------------------------------------------------------------- panel builders

GREEN_ONLY = [{"color": "green", "value": None}]


def steps(*pairs) -> list[dict]:
    """Threshold steps: steps("green", 0.5, "red") → green below 0.5, red from it."""
    out = [{"color": pairs[0], "value": None}]
    for i in range(1, len(pairs), 2):
        out.append({"color": pairs[i + 1], "value": pairs[i]})
    return out


def _targets(targets, *, instant=False, fmt="time_series"):
    exemplar = any("_seconds_bucket" in expr for expr, _ in targets)
    out = []
    for i, (expr, legend) in enumerate(targets):
        t = {
            "datasource": DS,
            "editorMode": "code",
            "expr": expr,
            "format": fmt,
            "instant": instant,
            "legendFormat": legend,
            "range": not instant,
            "refId": chr(ord("A") + i),
        }
        if exemplar:
            t["exemplar"] = True
        out.append(t)
    return out


def timeseries(title, description, unit, targets, *, w=12, h=8, thresholds=None,
               threshold_style="off", draw="line", stack=False, min_=None, max_=None,
               decimals=None, mappings=None):
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "axisPlacement": "auto",
            "drawStyle": draw,
            "fillOpacity": 10 if draw == "line" else 80,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
            "thresholdsStyle": {"mode": threshold_style},
        },
        "mappings": mappings or [],
        "thresholds": {"mode": "absolute", "steps": thresholds or GREEN_ONLY},
        "unit": unit,
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "calcs": ["mean", "max", "lastNotNull"],
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": _targets(targets),
        "_size": (w, h),
    }


def stat(title, description, unit, targets, *, w=6, h=4, thresholds=None, text_mode="auto",
         color_mode="background", graph_mode="area", decimals=None, mappings=None,
         no_value=None, min_=None, max_=None):
    defaults = {
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
        "thresholds": {"mode": "absolute", "steps": thresholds or GREEN_ONLY},
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": color_mode,
            "graphMode": graph_mode,
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": text_mode,
            "wideLayout": True,
        },
        "targets": _targets(targets),
        "_size": (w, h),
    }


def state_timeline(title, description, unit, targets, mappings, *, w=12, h=6, thresholds=None):
    return {
        "type": "state-timeline",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "custom": {"fillOpacity": 80, "lineWidth": 0},
                "mappings": mappings,
                "thresholds": {"mode": "absolute", "steps": thresholds or GREEN_ONLY},
                "unit": unit,
            },
            "overrides": [],
        },
        "options": {
            "alignValue": "center",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "targets": _targets(targets),
        "_size": (w, h),
    }


def table(title, description, unit, targets, *, w=24, h=7, exclude=()):
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {
            "defaults": {
                "custom": {"align": "auto", "cellOptions": {"type": "auto"}},
                "mappings": [],
                "thresholds": {"mode": "absolute", "steps": GREEN_ONLY},
                "unit": unit,
            },
            "overrides": [],
        },
        "options": {"cellHeight": "sm", "showHeader": True, "sortBy": [{"displayName": "pod", "desc": False}]},
        "targets": _targets(targets, instant=True, fmt="table"),
        "transformations": [
            {
                "id": "organize",
                "options": {"excludeByName": {name: True for name in exclude}, "indexByName": {}, "renameByName": {}},
            }
        ],
        "_size": (w, h),
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "datasource": DS, "panels": [], "_size": (24, 1)}


def value_map(*pairs):
    """Value mappings: value_map((1, "Leader", "green"), (0, "Follower", "blue"))."""
    options = {
        str(value): {"color": color, "index": i, "text": text}
        for i, (value, text, color) in enumerate(pairs)
    }
    return [{"type": "value", "options": options}]


# --------------------------------------------------------------------------- dashboard


def variables() -> list[dict]:
    def query_var(name, label, query):
        return {
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": DS,
            "definition": query,
            "includeAll": True,
            "label": label,
            "multi": True,
            "name": name,
            "options": [],
            "query": query,
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }

    return [
        {
            "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
            "hide": 0,
            "includeAll": False,
            "label": "Data source",
            "multi": False,
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
            "type": "datasource",
        },
        query_var("cluster", "Cluster", "label_values(robustmq_build_info, cluster)"),
        query_var(
            "namespace",
            "Namespace",
            'label_values(robustmq_build_info{cluster=~"$cluster"}, namespace)',
        ),
        query_var(
            "pod",
            "Pod",
            'label_values(robustmq_build_info{cluster=~"$cluster", namespace=~"$namespace"}, pod)',
        ),
    ]


def layout(items: list[dict]) -> list[dict]:
    """Assigns ids and grid positions, left to right, wrapping at 24 columns."""
    panels = []
    x = y = row_h = 0
    for pid, item in enumerate(items, start=1):
        panel = dict(item)
        w, h = panel.pop("_size")
        if panel["type"] == "row" or x + w > 24:
            y += row_h
            x = row_h = 0
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        panel["id"] = pid
        ordered = {k: panel[k] for k in ("id", "type", "title", "description", "datasource", "gridPos") if k in panel}
        ordered.update({k: v for k, v in panel.items() if k not in ordered})
        panels.append(ordered)
        if panel["type"] == "row":
            y += h
        else:
            x += w
            row_h = max(row_h, h)
    return panels


def dashboard(uid: str, title: str, description: str, items: list[dict], links=True) -> dict:
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": ["robustmq"],
                "targetBlank": False,
                "title": "RobustMQ",
                "type": "dashboards",
            }
        ]
        if links
        else [],
        "panels": layout(items),
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["robustmq"],
        "templating": {"list": variables()},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --------------------------------------------------------------------------- shared pieces


def grpc_panels(service: str, what: str, client: bool = True) -> list[dict]:
    """gRPC server rate, latency and error ratio of one service, and its client rate when
    `client` (only where the service certainly makes client calls under normal traffic:
    a family nothing has recorded yet exports no series); else server requests by pod."""
    handled = "robustmq_grpc_server_handled_total"
    panels = [
        timeseries(
            "gRPC server requests by method and code",
            f"RPCs {what} completed per second, by method and status code. Non-OK codes "
            "(Unavailable, DeadlineExceeded, Internal, …) next to a method show what fails; "
            "a drop to zero means callers stopped reaching this service.",
            "reqps",
            [(sum_by("grpc_method, grpc_code", rate(handled, service)), "{{grpc_method}} {{grpc_code}}")],
        ),
        timeseries(
            "gRPC server latency p99 by method",
            f"99th percentile of the time {what} takes to answer each method (to the end of "
            "the response stream; streaming methods are long by design). Click an exemplar "
            "to open the trace of a slow call.",
            "s",
            [(quantile("0.99", "robustmq_grpc_server_handling_seconds", "grpc_method", service), "{{grpc_method}}")],
        ),
        timeseries(
            "gRPC server error ratio",
            "Share of RPCs answered with any code other than OK, per pod (1 − OK / all). "
            "Some NotFound/FailedPrecondition answers can be normal; a sustained rise of "
            "Unavailable or DeadlineExceeded is not.",
            "percentunit",
            [
                (
                    f"1 - {sum_by('pod', rate(handled, service, extra=GRPC_OK))} / "
                    f"{sum_by('pod', rate(handled, service))}",
                    "{{pod}}",
                )
            ],
            min_=0,
            thresholds=steps("green", 0.05, "red"),
            threshold_style="line",
        ),
    ]
    if not client:
        return panels + [
            timeseries(
                "gRPC server requests by pod",
                f"RPCs {what} completed per second on each pod. Shows where callers connect; "
                "writes, linearizable reads and lease renewals that reach a follower are "
                "forwarded to the leader.",
                "reqps",
                [(sum_by("pod", rate(handled, service)), "{{pod}}")],
            )
        ]
    return panels + [
        timeseries(
            "gRPC client requests by method and code",
            f"RPCs {what} sent to other services per second, by method and status code, as "
            "this side saw them (timeouts and refused connections appear as Unavailable or "
            "DeadlineExceeded here even when the server never saw the call).",
            "reqps",
            [
                (
                    sum_by("grpc_method, grpc_code", rate("robustmq_grpc_client_handled_total", service)),
                    "{{grpc_method}} {{grpc_code}}",
                )
            ],
        ),
    ]


def disk_panels(service: str, what: str) -> list[dict]:
    return [
        timeseries(
            "Data directory size",
            f"Bytes of {what} in each pod's data directory. Steady growth without a plateau "
            "means retention or compaction is not keeping up.",
            "bytes",
            [(m("robustmq_storage_disk_usage_bytes", service), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Filesystem free space",
            "Share of the filesystem holding each pod's data directory that is still free. "
            "Writes fail when it reaches 0; the RobustMQDiskAlmostFull alert fires below 5 %.",
            "percentunit",
            [
                (
                    f"{m('robustmq_storage_filesystem_avail_bytes', service)} / "
                    f"{m('robustmq_storage_filesystem_size_bytes', service)}",
                    "{{pod}}",
                )
            ],
            w=8,
            min_=0,
            max_=1,
            thresholds=steps("red", 0.05, "orange", 0.2, "green"),
            threshold_style="line",
        ),
        timeseries(
            "Filesystem free bytes",
            "Bytes free (for unprivileged users) on the filesystem holding each pod's data "
            "directory. A straight downward line predicts when it fills up "
            "(RobustMQDiskFillingUp).",
            "bytes",
            [(m("robustmq_storage_filesystem_avail_bytes", service), "{{pod}}")],
            w=8,
            min_=0,
        ),
    ]


LEADER_MAP = value_map((1, "Leader", "green"), (0, "Follower", "blue"))
UP_MAP = value_map((1, "Up", "green"), (0, "Down", "red"))


# --------------------------------------------------------------------------- cluster overview


def cluster_overview() -> dict:
    def up_count(service, label):
        return stat(
            f"{label} up",
            f"How many of the 3 {service} pods Prometheus can scrape right now (sum of `up`). "
            "Green: all 3; yellow: 2 (still a quorum, no redundancy left); red: fewer than 2 "
            "(no quorum: the service is down or cannot commit).",
            "none",
            [(f"sum({m('up', service, pod=False)})", service)],
            w=4,
            thresholds=steps("red", 2, "yellow", 3, "green"),
            graph_mode="none",
            decimals=0,
            no_value="0",
        )

    received = rate("robustmq_messages_received_total", BROKER)
    delivered = rate("robustmq_messages_delivered_total", BROKER)
    slo_avail = "cluster:robustmq_sli_availability_errors"
    slo_lat = "cluster:robustmq_sli_latency_errors"
    agg = sel(pod=False)
    items = [
        row("Health"),
        up_count(PLACEMENT, "Placement center"),
        up_count(JOURNAL, "Journal servers"),
        up_count(BROKER, "MQTT brokers"),
        stat(
            "Placement-center leader",
            "The placement-center pod that reports itself Raft leader "
            "(robustmq_cluster_leader_status == 1). Empty means no leader: nothing can be "
            "written (sessions, routes, retained messages, leases) — see PlacementCenterNoLeader.",
            "none",
            [(f"max by (pod) ({m('robustmq_cluster_leader_status', PLACEMENT)}) == 1", "{{pod}}")],
            w=4,
            text_mode="name",
            color_mode="background",
            graph_mode="none",
            no_value="no leader",
        ),
        stat(
            "Active connections",
            "MQTT client connections open on the selected brokers right now. A sudden drop "
            "means a broker restarted or clients were cut off.",
            "short",
            [(f"sum({m('robustmq_connections_active', BROKER)})", "connections")],
            w=4,
            color_mode="value",
            decimals=0,
        ),
        stat(
            "Journal under-replicated shards",
            "Journal shards whose in-sync replicas are fewer than their replicas, summed over "
            "the leaders. Anything above 0 for minutes means one more failure can lose "
            "acknowledged QoS 1/2 messages (JournalUnderReplicated).",
            "short",
            [(f"sum({m('robustmq_journal_under_replicated_shards', JOURNAL)})", "under-replicated")],
            w=4,
            thresholds=steps("green", 1, "red"),
            graph_mode="none",
            decimals=0,
        ),
        state_timeline(
            "Scrape targets up",
            "Whether Prometheus reached each RobustMQ pod over time (up). Red stretches are "
            "restarts, crashes or network cuts; compare with the restart panel of the "
            "Process & runtime dashboard.",
            "none",
            [(m("up", SERVICES), "{{pod}}")],
            UP_MAP,
            w=24,
            h=7,
            thresholds=steps("red", 1, "green"),
        ),
        row("Traffic"),
        timeseries(
            "Throughput in / out",
            "Messages per second: PUBLISHes received from clients (in) and messages written to "
            "subscribers (out, one per matching subscription). Out/in is the fan-out; out "
            "falling while in holds means deliveries are being dropped or queued.",
            "ops",
            [(f"sum({received})", "received (in)"), (f"sum({delivered})", "delivered (out)")],
        ),
        timeseries(
            "Active connections by broker",
            "Open MQTT connections per broker pod. An uneven spread is a load-balancer or "
            "client-affinity matter; a broker at 0 while others are busy is unreachable.",
            "short",
            [(m("robustmq_connections_active", BROKER), "{{pod}}")],
        ),
        timeseries(
            "Error ratio",
            "Share of packets the brokers read that were errors (malformed packets, protocol "
            "errors, failed logins, ACL denials), over 5 minutes, from the recording rule "
            "cluster:robustmq_packets_received_error:ratio_rate5m. RobustMQErrorRatioHigh fires "
            "above 5 %.",
            "percentunit",
            [(f"cluster:robustmq_packets_received_error:ratio_rate5m{{{agg}}}", "{{cluster}} {{namespace}}")],
            min_=0,
            thresholds=steps("green", 0.05, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Dropped messages",
            "Messages not delivered to a subscriber per second, by QoS and reason. "
            "no_subscribers and offline (QoS 0) are normal; queue_full for QoS 1/2 is not "
            "(RobustMQReliableMessagesDropped).",
            "ops",
            [
                (
                    sum_by("qos, reason", rate("robustmq_messages_dropped_total", BROKER)),
                    "qos {{qos}} {{reason}}",
                )
            ],
        ),
        row("SLOs"),
        stat(
            "Availability SLI (1h)",
            "Share of CONNECTs and QoS 1/2 PUBLISHes the brokers did not fail for a reason of "
            "their own over the last hour (1 − cluster:robustmq_sli_availability_errors:"
            "ratio_rate1h). Target: 99.9 %. Red below target. Empty when there was no traffic.",
            "percentunit",
            [(f"1 - {slo_avail}:ratio_rate1h{{{agg}}}", "{{namespace}}")],
            w=6,
            decimals=3,
            thresholds=steps("red", 0.999, "green"),
            graph_mode="area",
        ),
        stat(
            "Latency SLI (1h)",
            "Share of deliveries written to the subscriber within 100 ms over the last hour "
            "(1 − cluster:robustmq_sli_latency_errors:ratio_rate1h). Target: 99 %. Red below "
            "target.",
            "percentunit",
            [(f"1 - {slo_lat}:ratio_rate1h{{{agg}}}", "{{namespace}}")],
            w=6,
            decimals=3,
            thresholds=steps("red", 0.99, "green"),
            graph_mode="area",
        ),
        stat(
            "p99 message latency (5m)",
            "99th percentile of PUBLISH read → written to a subscriber over 5 minutes "
            "(cluster:robustmq_message_latency_seconds:p99_5m). Yellow above the 100 ms SLO "
            "bound, red above 1 s (RobustMQMessageLatencyHigh).",
            "s",
            [(f"cluster:robustmq_message_latency_seconds:p99_5m{{{agg}}}", "{{namespace}}")],
            w=6,
            thresholds=steps("green", 0.1, "yellow", 1, "red"),
            color_mode="value",
        ),
        stat(
            "Error budget burn rate (1h)",
            "How fast the 30-day error budgets burn over the last hour: the SLI error ratio "
            "divided by the budget (0.1 % for availability, 1 % for latency). 1 spends the "
            "budget in exactly 30 days; the page-level alerts fire at 14.4 (1h and 5m) and "
            "6 (6h and 30m).",
            "none",
            [
                (f"{slo_avail}:ratio_rate1h{{{agg}}} / 0.001", "availability"),
                (f"{slo_lat}:ratio_rate1h{{{agg}}} / 0.01", "latency"),
            ],
            w=6,
            decimals=2,
            thresholds=steps("green", 1, "yellow", 6, "orange", 14.4, "red"),
            color_mode="value",
        ),
        timeseries(
            "Availability SLI by window",
            "1 − availability error ratio over 5 minutes, 1 hour and 1 day (recording rules). "
            "The red line is the 99.9 % target; the short window reacts first, the long one "
            "says whether the budget is really at risk.",
            "percentunit",
            [
                (f"1 - {slo_avail}:ratio_rate5m{{{agg}}}", "5m"),
                (f"1 - {slo_avail}:ratio_rate1h{{{agg}}}", "1h"),
                (f"1 - {slo_avail}:ratio_rate1d{{{agg}}}", "1d"),
            ],
            thresholds=steps("red", 0.999, "green"),
            threshold_style="line",
            max_=1,
            decimals=3,
        ),
        timeseries(
            "Latency SLI by window",
            "Share of deliveries within 100 ms over 5 minutes, 1 hour and 1 day (1 − the "
            "latency error ratio recording rules). The red line is the 99 % target.",
            "percentunit",
            [
                (f"1 - {slo_lat}:ratio_rate5m{{{agg}}}", "5m"),
                (f"1 - {slo_lat}:ratio_rate1h{{{agg}}}", "1h"),
                (f"1 - {slo_lat}:ratio_rate1d{{{agg}}}", "1d"),
            ],
            thresholds=steps("red", 0.99, "green"),
            threshold_style="line",
            max_=1,
            decimals=3,
        ),
        timeseries(
            "Availability burn rate",
            "Availability error ratio divided by the 0.1 % budget, per window. Lines above 14.4 "
            "(1h and 5m together) page; above 6 (6h and 30m) page too; 3 (1d, 2h) and 1 (3d, "
            "6h) open a ticket.",
            "none",
            [
                (f"{slo_avail}:ratio_rate5m{{{agg}}} / 0.001", "5m"),
                (f"{slo_avail}:ratio_rate1h{{{agg}}} / 0.001", "1h"),
                (f"{slo_avail}:ratio_rate6h{{{agg}}} / 0.001", "6h"),
                (f"{slo_avail}:ratio_rate3d{{{agg}}} / 0.001", "3d"),
            ],
            thresholds=steps("green", 1, "yellow", 6, "orange", 14.4, "red"),
            threshold_style="line",
            min_=0,
        ),
        timeseries(
            "Latency burn rate",
            "Latency error ratio (share of deliveries slower than 100 ms) divided by the 1 % "
            "budget, per window. Same thresholds as the availability burn rate.",
            "none",
            [
                (f"{slo_lat}:ratio_rate5m{{{agg}}} / 0.01", "5m"),
                (f"{slo_lat}:ratio_rate1h{{{agg}}} / 0.01", "1h"),
                (f"{slo_lat}:ratio_rate6h{{{agg}}} / 0.01", "6h"),
                (f"{slo_lat}:ratio_rate3d{{{agg}}} / 0.01", "3d"),
            ],
            thresholds=steps("green", 1, "yellow", 6, "orange", 14.4, "red"),
            threshold_style="line",
            min_=0,
        ),
        row("Throughput by QoS (recording rules)"),
        timeseries(
            "Received and delivered by QoS (5m)",
            "Messages per second received and delivered by QoS over 5 minutes, from the "
            "recording rules cluster_qos:robustmq_messages_{received,delivered}:rate5m "
            "(cluster-wide, independent of the pod selection).",
            "ops",
            [
                (f"cluster_qos:robustmq_messages_received:rate5m{{{agg}}}", "received qos {{qos}}"),
                (f"cluster_qos:robustmq_messages_delivered:rate5m{{{agg}}}", "delivered qos {{qos}}"),
            ],
        ),
        timeseries(
            "Dropped by QoS and reason (5m)",
            "Messages per second not delivered, by QoS and reason, over 5 minutes "
            "(cluster_qos_reason:robustmq_messages_dropped:rate5m). QoS 1/2 queue_full drops "
            "must stay at 0.",
            "ops",
            [
                (
                    f"cluster_qos_reason:robustmq_messages_dropped:rate5m{{{agg}}}",
                    "qos {{qos}} {{reason}}",
                )
            ],
        ),
    ]
    return dashboard(
        "robustmq-cluster-overview",
        "RobustMQ / Cluster overview",
        "Health, leadership, traffic, errors and SLOs of a RobustMQ cluster at a glance.",
        items,
    )


# --------------------------------------------------------------------------- MQTT broker


def mqtt_broker() -> dict:
    B = BROKER
    lat = "robustmq_message_latency_seconds"
    ack = "robustmq_publish_ack_seconds"
    items = [
        row("Latency"),
        timeseries(
            "Message latency (PUBLISH → subscriber)",
            "p50, p99 and p99.9 of the time from reading a PUBLISH from its publisher to "
            "writing it to a subscriber (live deliveries; with durability the journal append "
            "is included for QoS 1/2). Click an exemplar dot to open the trace of a slow message.",
            "s",
            quantiles(lat, B),
        ),
        timeseries(
            "Message latency p99 by QoS",
            "99th percentile of PUBLISH → subscriber latency per delivered QoS. QoS 1/2 wait "
            "for the session log (journal) before delivery, QoS 0 does not: QoS 0 rising too "
            "points at the broker itself (CPU, queues), not storage.",
            "s",
            [(quantile("0.99", lat, "qos", B), "qos {{qos}}")],
        ),
        timeseries(
            "Message latency p99, local vs remote",
            "99th percentile of PUBLISH → subscriber latency by path: local (published and "
            "delivered by the same broker) and remote (published on another broker and "
            "forwarded here, or handed over). The gap is the cost of the cross-node hop.",
            "s",
            [(quantile("0.99", lat, "path", B), "{{path}}")],
        ),
        timeseries(
            "Message latency p99 by broker",
            "99th percentile of PUBLISH → subscriber latency per broker pod: one slow pod "
            "points at that pod (CPU, its journal leader, its peers).",
            "s",
            [(quantile("0.99", lat, "pod", B), "{{pod}}")],
        ),
        timeseries(
            "Deliveries within 100 ms",
            "Share of deliveries written within 100 ms (the latency SLI: the le=\"0.1\" bucket "
            "over all deliveries), per broker. The SLO asks for 99 %.",
            "percentunit",
            [
                (
                    f"{sum_by('pod', rate(lat + '_bucket', B, extra=LE_100MS))} / "
                    f"{sum_by('pod', rate(lat + '_count', B))}",
                    "{{pod}}",
                )
            ],
            max_=1,
            thresholds=steps("red", 0.99, "green"),
            threshold_style="line",
        ),
        timeseries(
            "PUBLISH → PUBACK/PUBREC latency",
            "p50, p99 and p99.9 of the time from reading a QoS 1/2 PUBLISH to queueing its "
            "acknowledgement for the publisher (with durability: the journal and the peers' "
            "answers included). This is what publishers feel as publish latency.",
            "s",
            quantiles(ack, B),
        ),
        timeseries(
            "PUBLISH → PUBACK/PUBREC latency p99 by QoS",
            "99th percentile of the acknowledgement latency per QoS (1: PUBACK, 2: PUBREC).",
            "s",
            [(quantile("0.99", ack, "qos", B), "qos {{qos}}")],
        ),
        timeseries(
            "CONNECT → CONNACK latency",
            "p50, p99 and p99.9 of the time from reading a CONNECT to queueing its successful "
            "CONNACK: authentication and the cluster session claim (a placement-center write) "
            "included. Rises with placement-center write latency.",
            "s",
            quantiles("robustmq_connect_seconds", B),
        ),
        timeseries(
            "Session-log append latency",
            "p50, p99 and p99.9 of one journal append of the session log as the broker sees it "
            "(retries included). It bounds QoS 1/2 acknowledgement latency; compare with the "
            "journal's own append and fsync latency.",
            "s",
            quantiles("robustmq_session_log_append_seconds", B),
        ),
        timeseries(
            "Forward batch latency",
            "p50, p99 and p99.9 of the time from sending a batch of messages to a peer broker to "
            "its answer (cross-node subscriptions). High values delay remote subscribers and, "
            "with durability, QoS 1/2 acknowledgements.",
            "s",
            quantiles("robustmq_cluster_forward_batch_seconds", B),
        ),
        timeseries(
            "Latency observations per second",
            "How many deliveries, acknowledgements, connects, session-log appends and forward "
            "batches the latency panels above are computed from (histogram _count rates): "
            "quantiles over a handful of observations are noisy.",
            "ops",
            [
                (f"sum({rate(lat + '_count', B)})", "deliveries"),
                (f"sum({rate(ack + '_count', B)})", "acks"),
                (f"sum({rate('robustmq_connect_seconds_count', B)})", "connects"),
                (f"sum({rate('robustmq_session_log_append_seconds_count', B)})", "session-log appends"),
                (f"sum({rate('robustmq_cluster_forward_batch_seconds_count', B)})", "forward batches"),
            ],
        ),
        row("Connections"),
        timeseries(
            "Connections active / peak",
            "Open MQTT connections per broker and the highest count each reached since it "
            "started. Active at the peak for long can mean a connection limit is near.",
            "short",
            [
                (m("robustmq_connections_active", B), "{{pod}} active"),
                (m("robustmq_connections_peak", B), "{{pod}} peak"),
            ],
            w=8,
        ),
        timeseries(
            "Connect rate",
            "Connections accepted per second by listener, and CONNECT packets read per second. "
            "A spike is a reconnect storm (after a broker restart or a network cut).",
            "ops",
            [
                (sum_by("listener", rate("robustmq_connections_opened_total", B)), "accepted {{listener}}"),
                (
                    f"sum({rate('robustmq_packets_received_total', B, extra=CONNECT_PACKETS)})",
                    "CONNECT packets",
                ),
            ],
            w=8,
        ),
        timeseries(
            "Connections closed by reason",
            "Connections closed per second by reason: client_disconnect and peer_closed are "
            "normal; keep_alive_timeout, io_error, protocol_error, connect_refused, "
            "session_taken_over or not_durable in numbers need a look.",
            "ops",
            [(sum_by("reason", rate("robustmq_connections_closed_total", B)), "{{reason}}")],
            w=8,
        ),
        timeseries(
            "Sessions by state",
            "Sessions over all brokers: online (a client connected), offline (kept for a "
            "client that is away) and persistent (with a session expiry interval, online or "
            "not). Offline sessions piling up are clients that never come back before expiry.",
            "short",
            [
                (f"sum({m('robustmq_sessions_online', B)})", "online"),
                (f"sum({m('robustmq_sessions_offline', B)})", "offline"),
                (f"sum({m('robustmq_sessions_persistent', B)})", "persistent"),
            ],
            w=6,
        ),
        timeseries(
            "Queued and in-flight deliveries",
            "Deliveries waiting in session queues (offline sessions' backlog, online ones' "
            "beyond the in-flight window) and QoS 1/2 deliveries sent but not yet "
            "acknowledged, per broker. A queue that only grows is a subscriber that cannot "
            "keep up; queue_full drops follow when it hits the limit.",
            "short",
            [
                (m("robustmq_session_queued_messages", B), "queued {{pod}}"),
                (m("robustmq_session_inflight_messages", B), "in flight {{pod}}"),
            ],
            w=6,
        ),
        timeseries(
            "Shared-subscription groups",
            "Shared-subscription groups ($share/<group>/<filter>) with a member on each "
            "broker (a group spanning brokers counts on each).",
            "short",
            [(m("robustmq_shared_subscription_groups", B), "{{pod}}")],
            w=6,
        ),
        timeseries(
            "Topic aliases used",
            "PUBLISH packets per second that carried an MQTT 5 topic alias: in (clients "
            "aliasing their topics to us), out (the broker aliasing topics to subscribers "
            "that allow it).",
            "ops",
            [
                (
                    sum_by("direction", rate("robustmq_topic_alias_used_total", B)),
                    "{{direction}}",
                )
            ],
            w=6,
        ),
        timeseries(
            "Sessions",
            "Sessions held per broker, online and offline (persistent sessions of "
            "disconnected clients included).",
            "short",
            [(m("robustmq_sessions", B), "{{pod}}")],
            w=6,
        ),
        timeseries(
            "Subscriptions",
            "Subscriptions held per broker (shared subscriptions included).",
            "short",
            [(m("robustmq_subscriptions", B), "{{pod}}")],
            w=6,
        ),
        timeseries(
            "Retained messages",
            "Retained messages held per broker. Growth without bound means clients retain "
            "on ever-new topics.",
            "short",
            [(m("robustmq_retained_messages", B), "{{pod}}")],
            w=6,
        ),
        timeseries(
            "Authentication failures",
            "CONNECTs refused per second for bad credentials or authorisation, per broker. A "
            "burst is a misconfigured client or a credential-guessing attempt.",
            "ops",
            [(sum_by("pod", rate("robustmq_auth_failures_total", B)), "{{pod}}")],
            w=6,
        ),
        row("Traffic"),
        timeseries(
            "Messages received / delivered by QoS",
            "PUBLISH messages received from clients and messages written to subscribers per "
            "second, by QoS (delivered by the QoS granted to the subscriber).",
            "ops",
            [
                (sum_by("qos", rate("robustmq_messages_received_total", B)), "received qos {{qos}}"),
                (sum_by("qos", rate("robustmq_messages_delivered_total", B)), "delivered qos {{qos}}"),
            ],
        ),
        timeseries(
            "Bytes in / out",
            "Bytes per second read from and written to clients, per broker (MQTT framing "
            "included, TLS excluded).",
            "binBps",
            [
                (sum_by("pod", rate("robustmq_bytes_received_total", B)), "{{pod}} in"),
                (sum_by("pod", rate("robustmq_bytes_sent_total", B)), "{{pod}} out"),
            ],
        ),
        timeseries(
            "Packets received by type",
            "MQTT control packets read per second, by packet type. PINGREQ dominating means "
            "many idle clients with short keep-alives.",
            "pps",
            [(sum_by("packet_type", rate("robustmq_packets_received_total", B)), "{{packet_type}}")],
            w=8,
        ),
        timeseries(
            "Packets sent by type",
            "MQTT control packets written per second, by packet type.",
            "pps",
            [(sum_by("packet_type", rate("robustmq_packets_sent_total", B)), "{{packet_type}}")],
            w=8,
        ),
        timeseries(
            "Packets received by protocol version and listener",
            "Packets read per second by MQTT protocol version (3.1, 3.1.1, 5.0) and listener: "
            "which clients and transports carry the load.",
            "pps",
            [
                (
                    sum_by("version, listener", rate("robustmq_packets_received_total", B)),
                    "v{{version}} {{listener}}",
                )
            ],
            w=8,
        ),
        row("Errors and drops"),
        timeseries(
            "Packet errors by reason",
            "Bad packets and refused operations per second, by reason (malformed packets, "
            "protocol errors, auth_failed, acl_denied, connection_limit, …).",
            "ops",
            [(sum_by("reason", rate("robustmq_packets_received_error_total", B)), "{{reason}}")],
            w=8,
        ),
        timeseries(
            "Packet error ratio",
            "Errors as a share of everything the selected brokers read (errors / (packets + "
            "errors)), over the panel's rate interval. RobustMQErrorRatioHigh fires above 5 % "
            "cluster-wide.",
            "percentunit",
            [
                (
                    f"sum({rate('robustmq_packets_received_error_total', B)}) / "
                    f"(sum({rate('robustmq_packets_received_total', B)}) + "
                    f"sum({rate('robustmq_packets_received_error_total', B)}))",
                    "error ratio",
                )
            ],
            w=8,
            min_=0,
            thresholds=steps("green", 0.05, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Server errors by operation",
            "Client requests the brokers failed for a reason of their own (the availability "
            "SLI's bad events): connect = the session could not be claimed (CONNACK 0x88/0x89), "
            "publish = a QoS 1/2 message could not be made durable. Should be 0.",
            "ops",
            [(sum_by("operation", rate("robustmq_server_errors_total", B)), "{{operation}}")],
            w=8,
        ),
        timeseries(
            "Messages dropped by QoS and reason",
            "Messages not delivered to a subscriber per second, by QoS and reason. "
            "no_subscribers, offline (QoS 0), expired are expected; queue_full for QoS 1/2 "
            "must never happen; too_large and acl_denied point at clients.",
            "ops",
            [(sum_by("qos, reason", rate("robustmq_messages_dropped_total", B)), "qos {{qos}} {{reason}}")],
        ),
        timeseries(
            "Will messages published",
            "Will messages published per second, per broker: each one is a client that went "
            "away without a DISCONNECT.",
            "ops",
            [(sum_by("pod", rate("robustmq_will_messages_published_total", B)), "{{pod}}")],
        ),
        row("Cluster forwarding"),
        timeseries(
            "Forwarding traffic",
            "Messages per second forwarded to peer brokers (one per peer with a matching "
            "route), received from peers, and received again after a broken stream "
            "(repeated: already delivered, not delivered again).",
            "ops",
            [
                (f"sum({rate('robustmq_cluster_forwarded_messages_total', B)})", "forwarded"),
                (f"sum({rate('robustmq_cluster_forward_received_messages_total', B)})", "received"),
                (f"sum({rate('robustmq_cluster_forward_repeated_messages_total', B)})", "repeated"),
            ],
            w=8,
        ),
        timeseries(
            "Forwarded messages by QoS",
            "Messages forwarded to peer brokers per second, by the QoS they were published "
            "with, per broker.",
            "ops",
            [
                (
                    sum_by("pod, qos", rate("robustmq_cluster_forwarded_messages_total", B)),
                    "{{pod}} qos {{qos}}",
                )
            ],
            w=8,
        ),
        timeseries(
            "Forward drops and refusals by reason",
            "Messages that did not reach a peer broker (dropped: queue_full for QoS 0, "
            "peer_failed, stale_epoch, peer_gone) and forwarded batches this broker refused "
            "(refused: stale_epoch, invalid), per second. QoS 1/2 drops must stay at 0; "
            "refusals mean a stale broker incarnation is still sending.",
            "ops",
            [
                (
                    'label_replace(sum by (qos, reason) '
                    f'({rate("robustmq_cluster_forward_dropped_total", B)}), "kind", "dropped", "", "")'
                    " or "
                    'label_replace(sum by (reason) '
                    f'({rate("robustmq_cluster_forward_refused_total", B)}), "kind", "refused", "", "")',
                    "{{kind}} {{reason}} {{qos}}",
                )
            ],
            w=8,
        ),
        timeseries(
            "Routes",
            "Route-table entries (filter, node) known cluster-wide, as each broker sees them. "
            "Brokers disagreeing for long means one is not receiving route updates.",
            "short",
            [(m("robustmq_cluster_routes", B), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Peers",
            "Other brokers each broker sees registered in the cluster (2 in a 3-node "
            "cluster). A lower value means a broker's lease expired or it cannot reach the "
            "placement center.",
            "short",
            [(m("robustmq_cluster_peers", B), "{{pod}}")],
            w=8,
            decimals=0,
        ),
        timeseries(
            "Route update failures",
            "Route-table writes to the placement center that failed, per second and broker. "
            "Non-zero: subscriptions on this broker may not receive messages from peers.",
            "ops",
            [(sum_by("pod", rate("robustmq_cluster_route_update_failures_total", B)), "{{pod}}")],
            w=8,
        ),
        row("Session log (durability)"),
        timeseries(
            "Session-log records written",
            "Records written to each broker's session log per second (QoS 1/2 messages, "
            "session and subscription changes).",
            "ops",
            [(sum_by("pod", rate("robustmq_session_log_records_total", B)), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Session-log append failures",
            "Session-log appends that failed after retrying, per second: their QoS 1/2 "
            "publishers were refused (RobustMQSessionLogFailing). Should be 0.",
            "ops",
            [(sum_by("pod", rate("robustmq_session_log_append_failures_total", B)), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Sessions recovered / adopted",
            "Sessions rebuilt from the session log of a broker that is gone (recovered) and "
            "sessions of gone brokers taken over before their clients came back (adopted), "
            "per interval. Non-zero after a broker failure, 0 otherwise.",
            "short",
            [
                (sum_by("pod", increase("robustmq_session_log_recovered_sessions_total", B)), "{{pod}} recovered"),
                (sum_by("pod", increase("robustmq_session_log_adopted_sessions_total", B)), "{{pod}} adopted"),
            ],
            w=8,
            draw="bars",
        ),
        row("gRPC (broker-to-broker forwarding, placement client)"),
        *grpc_panels(B, "by the brokers"),
    ]
    return dashboard(
        "robustmq-mqtt-broker",
        "RobustMQ / MQTT broker",
        "Latency, connections, traffic, errors, cluster forwarding and session log of the "
        "RobustMQ MQTT brokers.",
        items,
    )


# --------------------------------------------------------------------------- placement center


def placement_center() -> dict:
    P = PLACEMENT
    proposals = "robustmq_raft_proposals_total"
    items = [
        row("Leadership"),
        stat(
            "Leader",
            "The pod that reports itself Raft leader now. Empty: no leader, nothing can be "
            "written (PlacementCenterNoLeader).",
            "none",
            [(f"max by (pod) ({m('robustmq_cluster_leader_status', P)}) == 1", "{{pod}}")],
            w=6,
            text_mode="name",
            graph_mode="none",
            no_value="no leader",
        ),
        stat(
            "Cluster members",
            "Members of the placement cluster (voters and learners) as the nodes see them "
            "(the highest report). Expected: 3.",
            "none",
            [(f"max({m('robustmq_cluster_nodes_total', P)})", "members")],
            w=6,
            thresholds=steps("red", 3, "green"),
            graph_mode="none",
            decimals=0,
        ),
        stat(
            "Raft term",
            "Highest Raft term among the nodes. It grows by one (or more) with each election; "
            "a term that keeps climbing means repeated elections.",
            "none",
            [(f"max({m('robustmq_raft_term', P)})", "term")],
            w=6,
            color_mode="value",
            decimals=0,
        ),
        stat(
            "Leader changes (1h)",
            "Times the leader known to any node changed in the last hour (the highest "
            "per-node count). More than a few: leadership flaps (PlacementCenterLeaderFlapping).",
            "short",
            [(f"max(increase({m('robustmq_raft_leader_changes_total', P)}[1h]))", "changes")],
            w=6,
            thresholds=steps("green", 1, "yellow", 4, "red"),
            graph_mode="none",
            decimals=0,
        ),
        state_timeline(
            "Leader per pod",
            "Which pod was leader over time (robustmq_cluster_leader_status). Exactly one "
            "green row at any time is healthy; gaps with no leader are elections.",
            "none",
            [(f"max by (pod) ({m('robustmq_cluster_leader_status', P)})", "{{pod}}")],
            LEADER_MAP,
            w=12,
            h=7,
        ),
        timeseries(
            "Raft term by pod",
            "Current Raft term of each node. All nodes should agree; a node behind the others "
            "is partitioned or restarting.",
            "none",
            [(m("robustmq_raft_term", P), "{{pod}}")],
            w=12,
            h=7,
            decimals=0,
        ),
        timeseries(
            "Elections and leader changes",
            "Elections each node started (became candidate) and leader changes it saw, per "
            "interval. Elections without a node failure point at slow disks, CPU starvation "
            "or a flaky network (heartbeats missed).",
            "short",
            [
                (sum_by("pod", increase("robustmq_raft_elections_total", P)), "{{pod}} elections"),
                (sum_by("pod", increase("robustmq_raft_leader_changes_total", P)), "{{pod}} leader changes"),
            ],
            draw="bars",
        ),
        timeseries(
            "Cluster members by pod",
            "Members of the placement cluster each node knows (voters and learners).",
            "none",
            [(m("robustmq_cluster_nodes_total", P), "{{pod}}")],
            decimals=0,
        ),
        row("Log and replication"),
        timeseries(
            "Last log / committed / applied index",
            "Index of the last log entry, the highest committed entry and the highest entry "
            "applied to the state machine, per node. The three should move together; a node "
            "whose lines flatten has stopped replicating or applying.",
            "none",
            [
                (m("robustmq_raft_last_log_index", P), "{{pod}} last log"),
                (m("robustmq_raft_committed_index", P), "{{pod}} committed"),
                (m("robustmq_raft_applied_index", P), "{{pod}} applied"),
            ],
        ),
        timeseries(
            "Apply backlog (committed − applied)",
            "Committed entries not yet applied to the state machine, per node. A growing "
            "backlog means the state machine (RocksDB apply) cannot keep up; reads on that "
            "node are stale.",
            "short",
            [
                (
                    f"{m('robustmq_raft_committed_index', P)} - {m('robustmq_raft_applied_index', P)}",
                    "{{pod}}",
                )
            ],
            min_=0,
        ),
        timeseries(
            "Replication lag per follower",
            "Log entries each follower is behind the leader's last entry, as the leader "
            "reports it (only the leader exports this). A follower that keeps growing is "
            "down, partitioned or too slow; snapshots are sent when it falls behind the purge "
            "point.",
            "short",
            [
                (
                    f"max by (pod, follower) ({m('robustmq_raft_replication_lag_entries', P)})",
                    "leader {{pod}} → follower {{follower}}",
                )
            ],
            min_=0,
        ),
        timeseries(
            "Replication RPC latency p99 by RPC",
            "99th percentile of Raft RPCs sent to peers, by RPC: append_entries (log "
            "replication and heartbeats), vote, install_snapshot. append_entries latency adds "
            "directly to write latency. Exemplars open the trace.",
            "s",
            [(quantile("0.99", "robustmq_raft_replication_rpc_duration_seconds", "rpc", P), "{{rpc}}")],
        ),
        timeseries(
            "Append-entries RPC latency by pod",
            "p50 and p99 of append_entries RPCs sent by each node (the leader sends nearly all "
            "of them). One slow peer shows up in the p99.",
            "s",
            [
                (
                    quantile("0.5", "robustmq_raft_replication_rpc_duration_seconds", "pod", P, 'rpc="append_entries"'),
                    "{{pod}} p50",
                ),
                (
                    quantile("0.99", "robustmq_raft_replication_rpc_duration_seconds", "pod", P, 'rpc="append_entries"'),
                    "{{pod}} p99",
                ),
            ],
        ),
        timeseries(
            "Replication RPCs per second",
            "Raft RPCs sent to peers per second, by RPC and node. Votes outside of elections "
            "or repeated install_snapshot calls are suspicious.",
            "reqps",
            [
                (
                    sum_by("pod, rpc", rate("robustmq_raft_replication_rpc_duration_seconds_count", P)),
                    "{{pod}} {{rpc}}",
                )
            ],
        ),
        row("Writes (proposals)"),
        timeseries(
            "Proposal (write) latency",
            "p50, p99 and p99.9 of client writes from proposal to application on the leader "
            "(replication to a quorum, fsync and apply included). Every broker CONNECT, route "
            "change and lease renewal waits for this.",
            "s",
            quantiles("robustmq_raft_write_duration_seconds", P),
        ),
        timeseries(
            "Proposals by result",
            "Client writes proposed per second, by result: ok, refused (the state machine "
            "said no — an answer, not a failure), not_leader (sent to the leader), timeout "
            "(no quorum in time), error (Raft stopped).",
            "ops",
            [(sum_by("result", rate(proposals, P)), "{{result}}")],
        ),
        timeseries(
            "Proposal failure ratio",
            "Share of proposals that timed out or failed (result timeout|error) over all "
            "proposals. PlacementCenterProposalsFailing fires above 1 %.",
            "percentunit",
            [
                (
                    f"sum({rate(proposals, P, extra=FAILED_PROPOSALS)}) / sum({rate(proposals, P)})",
                    "failure ratio",
                )
            ],
            min_=0,
            thresholds=steps("green", 0.01, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Apply latency",
            "p50, p99 and p99.9 of applying one batch of committed entries to the state "
            "machine (RocksDB write included). Slow applies grow the apply backlog.",
            "s",
            quantiles("robustmq_raft_apply_duration_seconds", P),
        ),
        row("Storage (RocksDB)"),
        timeseries(
            "Storage operation latency p99 by operation",
            "99th percentile of RocksDB operations by operation: log_append, log_read, "
            "log_truncate, log_purge, vote_save, apply, snapshot_build, snapshot_install. "
            "log_append and vote_save are on the write path (fsync).",
            "s",
            [
                (
                    quantile("0.99", "robustmq_storage_operation_duration_seconds", "operation", P),
                    "{{operation}}",
                )
            ],
        ),
        timeseries(
            "Storage operations per second",
            "RocksDB operations per second by operation (histogram counts).",
            "ops",
            [
                (
                    sum_by("operation", rate("robustmq_storage_operation_duration_seconds_count", P)),
                    "{{operation}}",
                )
            ],
        ),
        *disk_panels(P, "RocksDB data (log and state machine)"),
        timeseries(
            "Snapshots built / installed",
            "Snapshots each node built (log compaction) and installed (sent by the leader to "
            "a follower that fell behind), per interval. Frequent installs mean a follower "
            "keeps falling behind.",
            "short",
            [
                (sum_by("pod", increase("robustmq_raft_snapshot_builds_total", P)), "{{pod}} built"),
                (sum_by("pod", increase("robustmq_raft_snapshot_installs_total", P)), "{{pod}} installed"),
            ],
            w=24,
            h=7,
            draw="bars",
        ),
        row("gRPC"),
        *grpc_panels(P, "by the placement center", client=False),
    ]
    return dashboard(
        "robustmq-placement-center",
        "RobustMQ / Placement center",
        "Raft leadership, replication, writes, RocksDB storage and gRPC of the placement "
        "center (the cluster's metadata store).",
        items,
    )


# --------------------------------------------------------------------------- journal server


def journal_server() -> dict:
    J = JOURNAL
    append = "robustmq_journal_append_latency_seconds"
    fsync = "robustmq_journal_fsync_latency_seconds"
    items = [
        row("Write path"),
        timeseries(
            "Append latency",
            "p50, p99 and p99.9 of Append requests, from the request to its acknowledgement "
            "(durable on every in-sync replica, so replication and fsync included). This "
            "bounds broker QoS 1/2 acknowledgement latency.",
            "s",
            quantiles(append, J),
        ),
        timeseries(
            "Append latency p99 by pod",
            "99th percentile of Append latency per journal pod (the shard leaders answer "
            "appends). One slow leader: look at its fsync latency and its followers.",
            "s",
            [(quantile("0.99", append, "pod", J), "{{pod}}")],
        ),
        timeseries(
            "Fsync latency",
            "p50, p99 and p99.9 of one fdatasync of a segment (shared by a group of appends). "
            "JournalFsyncSlow fires when the p99 stays above 100 ms.",
            "s",
            quantiles(fsync, J),
        ),
        timeseries(
            "Fsync latency p99 by pod",
            "99th percentile of fsync latency per pod: a slow or saturated disk shows up here "
            "first.",
            "s",
            [(quantile("0.99", fsync, "pod", J), "{{pod}}")],
        ),
        timeseries(
            "Records appended / read",
            "Records appended per second by each node as leader, and records returned by Read "
            "and Subscribe per second.",
            "ops",
            [
                (sum_by("pod", rate("robustmq_journal_records_appended_total", J)), "{{pod}} appended"),
                (sum_by("pod", rate("robustmq_journal_records_read_total", J)), "{{pod}} read"),
            ],
        ),
        timeseries(
            "Bytes appended / read / replicated",
            "Encoded record bytes appended (as leader), returned to readers, and fetched from "
            "shard leaders (as follower) per second, per pod.",
            "binBps",
            [
                (sum_by("pod", rate("robustmq_journal_appended_bytes_total", J)), "{{pod}} appended"),
                (sum_by("pod", rate("robustmq_journal_read_bytes_total", J)), "{{pod}} read"),
                (sum_by("pod", rate("robustmq_journal_replicated_bytes_total", J)), "{{pod}} replicated"),
            ],
        ),
        timeseries(
            "Fsyncs and appends per second",
            "Append requests and fsyncs per second (histogram counts): the ratio is the group "
            "commit's batching; fsyncs close to appends under load means no batching.",
            "ops",
            [
                (sum_by("pod", rate(append + "_count", J)), "{{pod}} appends"),
                (sum_by("pod", rate(fsync + "_count", J)), "{{pod}} fsyncs"),
            ],
            w=24,
            h=7,
        ),
        row("Replication"),
        stat(
            "Under-replicated shards",
            "Shards led here whose in-sync replicas are fewer than their replicas, summed over "
            "the selected pods. Above 0 for minutes: one more failure can lose acknowledged "
            "records (JournalUnderReplicated).",
            "short",
            [(f"sum({m('robustmq_journal_under_replicated_shards', J)})", "under-replicated")],
            w=6,
            thresholds=steps("green", 1, "red"),
            graph_mode="none",
            decimals=0,
        ),
        stat(
            "Leader shards",
            "Shards led by the selected pods (each shard has exactly one leader).",
            "short",
            [(f"sum({m('robustmq_journal_leader_shards', J)})", "leading")],
            w=6,
            color_mode="value",
            decimals=0,
        ),
        stat(
            "Shard replicas",
            "Shard replicas open on the selected pods (replication factor × shards).",
            "short",
            [(f"sum({m('robustmq_journal_shards', J)})", "replicas")],
            w=6,
            color_mode="value",
            decimals=0,
        ),
        stat(
            "Max replication lag",
            "The largest number of records any follower is behind its leader, over all shards "
            "led by the selected pods.",
            "short",
            [(f"max({m('robustmq_journal_replication_lag_records', J)})", "records")],
            w=6,
            thresholds=steps("green", 1000, "yellow", 100000, "red"),
            color_mode="value",
            decimals=0,
        ),
        timeseries(
            "Shards and leader shards by pod",
            "Shard replicas open on each node and how many of them it leads. Leadership "
            "concentrated on one node after a restart is normal until shards move back.",
            "short",
            [
                (m("robustmq_journal_shards", J), "{{pod}} replicas"),
                (m("robustmq_journal_leader_shards", J), "{{pod}} leading"),
            ],
            decimals=0,
        ),
        timeseries(
            "Under-replicated shards by pod",
            "Shards led by each node with fewer in-sync replicas than replicas.",
            "short",
            [(m("robustmq_journal_under_replicated_shards", J), "{{pod}}")],
            decimals=0,
            thresholds=steps("green", 1, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Replication lag by follower",
            "Records each follower is behind, summed over the shards the leader (pod) leads. "
            "A follower that keeps growing is slow or down and will be removed from the ISR.",
            "short",
            [
                (
                    f"max by (pod, follower) ({m('robustmq_journal_replication_lag_records', J)})",
                    "leader {{pod}} → follower {{follower}}",
                )
            ],
            min_=0,
        ),
        timeseries(
            "ISR shrinks, leader elections, log truncations",
            "Per interval: followers removed from a shard's in-sync replicas for lagging, "
            "shard leader elections won, and divergent log tails cut by a follower. All should "
            "be 0 in steady state; they follow node failures.",
            "short",
            [
                (sum_by("pod", increase("robustmq_journal_isr_shrinks_total", J)), "{{pod}} ISR shrinks"),
                (sum_by("pod", increase("robustmq_journal_leader_elections_total", J)), "{{pod}} elections won"),
                (sum_by("pod", increase("robustmq_journal_log_truncations_total", J)), "{{pod}} truncations"),
            ],
            draw="bars",
        ),
        row("Storage"),
        timeseries(
            "Segments",
            "Segment files open on each node (all shards). Growth without bound means "
            "retention is not deleting old segments.",
            "short",
            [(m("robustmq_journal_segments", J), "{{pod}}")],
            w=12,
            decimals=0,
        ),
        timeseries(
            "Recovery truncated bytes",
            "Bytes cut from torn or corrupt segment tails during startup recovery, per "
            "interval. Non-zero after a crash (an unfinished write); repeated or large values "
            "point at a bad disk.",
            "bytes",
            [(sum_by("pod", increase("robustmq_journal_recovery_truncated_bytes_total", J)), "{{pod}}")],
            w=12,
            draw="bars",
        ),
        *disk_panels(J, "segment files"),
        row("gRPC"),
        *grpc_panels(J, "by the journal servers"),
    ]
    return dashboard(
        "robustmq-journal-server",
        "RobustMQ / Journal server",
        "Append and fsync latency, throughput, replication health and storage of the "
        "journal servers (the replicated segment log behind durable sessions).",
        items,
    )


# --------------------------------------------------------------------------- process & runtime


def process_runtime() -> dict:
    items = [
        row("Process"),
        timeseries(
            "CPU usage",
            "CPU time used per second by each process (1.0 = 100 % = one full core). "
            "RobustMQHighCPU fires above 0.9 cores for 15 minutes.",
            "percentunit",
            [(rate("process_cpu_seconds_total"), "{{pod}}")],
            min_=0,
            thresholds=steps("green", 0.9, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Resident memory",
            "Resident memory (RSS) of each process. RobustMQHighMemory fires above 1.5 GiB "
            "(the Kubernetes limit is 2 GiB); a steady climb is a leak or an unbounded queue.",
            "bytes",
            [(m("process_resident_memory_bytes"), "{{pod}}")],
            min_=0,
            thresholds=steps("green", 1.5 * 1024**3, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Virtual memory",
            "Virtual memory size of each process (address space, mostly reserved and not "
            "resident: large values are normal for Tokio and RocksDB).",
            "bytes",
            [(m("process_virtual_memory_bytes"), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Open file descriptors vs max",
            "Open file descriptors (sockets, segment and RocksDB files) and the soft limit of "
            "each process. New connections and files fail when open reaches max.",
            "short",
            [
                (m("process_open_fds"), "{{pod}} open"),
                (m("process_max_fds"), "{{pod}} max"),
            ],
            w=8,
        ),
        timeseries(
            "File descriptor usage",
            "Open file descriptors as a share of the limit. Above 80 %: raise the limit or "
            "look for leaked connections.",
            "percentunit",
            [(f"{m('process_open_fds')} / {m('process_max_fds')}", "{{pod}}")],
            w=8,
            min_=0,
            thresholds=steps("green", 0.8, "red"),
            threshold_style="line",
        ),
        timeseries(
            "OS threads",
            "OS threads of each process (Tokio workers, blocking pool, RocksDB background "
            "threads).",
            "short",
            [(m("process_threads"), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Restarts (1h)",
            "Times each process restarted in the last hour (changes of its start time). "
            "RobustMQRestartingTooOften fires above 3: a crash loop or OOM kills.",
            "short",
            [(f"changes({m('process_start_time_seconds')}[1h])", "{{pod}}")],
            w=8,
            decimals=0,
            thresholds=steps("green", 1, "yellow", 4, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Uptime",
            "Time since each process started. A sawtooth is a process that keeps restarting.",
            "s",
            [(f"time() - {m('process_start_time_seconds')}", "{{pod}}")],
            w=8,
        ),
        row("Tokio runtime"),
        timeseries(
            "Worker busy ratio",
            "Share of time the Tokio worker threads were busy (busy seconds per second / "
            "workers). Near 100 %: the runtime is saturated and every task waits; look at CPU "
            "and the global queue depth.",
            "percentunit",
            [
                (
                    f"{rate('robustmq_tokio_worker_busy_seconds_total')} / {m('robustmq_tokio_workers')}",
                    "{{pod}}",
                )
            ],
            min_=0,
            max_=1,
            thresholds=steps("green", 0.8, "red"),
            threshold_style="line",
        ),
        timeseries(
            "Tokio workers",
            "Number of Tokio worker threads of each process (fixed at start, usually one per "
            "core).",
            "short",
            [(m("robustmq_tokio_workers"), "{{pod}}")],
            decimals=0,
        ),
        timeseries(
            "Worker park rate",
            "Times per second the workers parked (went idle). A high park rate with low busy "
            "ratio is a lightly loaded runtime; parks falling to 0 while busy is 100 % means "
            "saturation.",
            "ops",
            [(rate("robustmq_tokio_worker_park_total"), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Alive tasks",
            "Tokio tasks alive in each process (about one per connection plus background "
            "tasks). Growth without a matching connection count is a task leak.",
            "short",
            [(m("robustmq_tokio_alive_tasks"), "{{pod}}")],
            w=8,
        ),
        timeseries(
            "Global queue depth",
            "Tasks waiting in the Tokio global (injection) queue. Sustained non-zero values "
            "mean the workers cannot keep up with spawned or woken tasks.",
            "short",
            [(m("robustmq_tokio_global_queue_depth"), "{{pod}}")],
            w=8,
        ),
        row("Build"),
        table(
            "Build info",
            "Version and identity of every running process (robustmq_build_info). Mixed "
            "versions are expected only during a rolling upgrade.",
            "none",
            [(m("robustmq_build_info"), "")],
            exclude=("Time", "Value", "__name__", "job", "instance"),
        ),
    ]
    return dashboard(
        "robustmq-process-runtime",
        "RobustMQ / Process & runtime",
        "CPU, memory, file descriptors, restarts and Tokio runtime of every RobustMQ process.",
        items,
    )


DASHBOARDS = {
    "cluster-overview.json": cluster_overview,
    "mqtt-broker.json": mqtt_broker,
    "placement-center.json": placement_center,
    "journal-server.json": journal_server,
    "process-runtime.json": process_runtime,
}


def main() -> None:
    """Writes the dashboards; with --check, only says which differ (exit status 1)."""
    import sys

    check = "--check" in sys.argv[1:]
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("not what generate.py writes: " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
