"""MQTT 5 session expiry set at DISCONNECT, Will Delay Interval cancelled by a
reconnect, and DISCONNECT with reason 0x04 (publish the will), through paho."""

from common import Client, PacketTypes, ReasonCode, check, props, sleep

# Session Expiry 0 at DISCONNECT ends a session that CONNECT asked to keep.
c = Client("paho-expiry")
present, _, _ = c.connect(clean_start=True, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
c.subscribe("paho/expiry")
c.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
c = Client("paho-expiry")
present, _, _ = c.connect(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
check(not present, "Session Expiry 0 at DISCONNECT ended the session")
c.disconnect()

watcher = Client("paho-will-watcher")
watcher.connect()
watcher.subscribe("paho/will/#")

will = ("paho/will/flaky", b"gone", props(PacketTypes.WILLMESSAGE, WillDelayInterval=1))
session = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
flaky = Client("paho-flaky")
flaky.connect(clean_start=True, properties=session, will=will)
flaky.kill()
flaky = Client("paho-flaky")
present, _, _ = flaky.connect(clean_start=False, properties=session, will=will)
check(present, "session resumed within the will delay")
sleep(1.5)
watcher.no_message(what="no will: the client came back within the Will Delay Interval")

flaky.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
m = watcher.message("the will after DISCONNECT 0x04 and the delay")
check(m.topic == "paho/will/flaky" and m.payload == b"gone", "will published")
