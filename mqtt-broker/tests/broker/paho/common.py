"""Helpers for the paho-mqtt scripts: a client that queues what it receives, and
`check`, which prints what was verified and exits non-zero on the first failure.

Every script is run as `python3 SCRIPT.py HOST PORT` by tests/broker/paho.rs."""

import queue
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = sys.argv[1]
PORT = int(sys.argv[2])
WAIT = 10.0  # for what must happen
QUIET = 0.5  # for what must not

__all__ = ["Client", "check", "props", "mqtt", "PacketTypes", "ReasonCode", "WAIT", "QUIET"]


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def props(packet_type, **values):
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def _get(q, what, timeout=WAIT):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        check(False, f"{what} within {timeout}s")


class Client:
    def __init__(self, client_id, protocol=mqtt.MQTTv5, clean_session=None):
        kwargs = {"clean_session": clean_session} if protocol != mqtt.MQTTv5 else {}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)
        self.protocol = protocol
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.c.on_connect = lambda c, u, flags, rc, p: self.connacks.put((flags.session_present, rc, p))
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.c.on_disconnect = lambda c, u, flags, rc, p: self.disconnects.put(rc)

    def connect(self, clean_start=True, properties=None, will=None, keepalive=60):
        """Connects; returns (session_present, reason_code, connack_properties)."""
        if will is not None:
            topic, payload, will_props = will
            self.c.will_set(topic, payload, qos=1, properties=will_props)
        if self.protocol == mqtt.MQTTv5:
            self.c.connect(HOST, PORT, keepalive, clean_start=clean_start, properties=properties)
        else:
            self.c.connect(HOST, PORT, keepalive)
        self.c.loop_start()
        present, rc, p = _get(self.connacks, "CONNACK")
        check(not rc.is_failure, f"CONNACK success for {self.c._client_id.decode()}")
        return present, rc, p

    def subscribe(self, topic, qos=1, no_local=False, rap=False, rh=0, properties=None):
        if self.protocol == mqtt.MQTTv5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap, retainHandling=rh)
            self.c.subscribe(topic, options=opts, properties=properties)
        else:
            self.c.subscribe(topic, qos)
        return _get(self.subacks, f"SUBACK for {topic}")

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(WAIT)
        check(info.is_published(), f"publish to {topic!r} acknowledged")

    def message(self, what="a message"):
        return _get(self.messages, what)

    def no_message(self, timeout=QUIET, what="no message"):
        try:
            m = self.messages.get(timeout=timeout)
            check(False, f"{what} (got {m.topic} {m.payload!r})")
        except queue.Empty:
            check(True, what)

    def disconnect(self, reasoncode=None, properties=None):
        self.c.disconnect(reasoncode=reasoncode, properties=properties)
        _get(self.disconnects, "the connection to close")
        self.c.loop_stop()

    def kill(self):
        """Drops the connection without DISCONNECT."""
        self.c.loop_stop()
        self.c.socket().close()


def sleep(seconds):
    """Lets time pass for a timer under test (never used to wait for readiness)."""
    time.sleep(seconds)
