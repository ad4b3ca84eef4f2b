"""MQTT 3.1.1 through paho: QoS 2 round trip, retained message, persistent session
queueing while offline, and the will on an abrupt close."""

from common import Client, check, mqtt

a = Client("paho311-a", protocol=mqtt.MQTTv311, clean_session=True)
a.connect()
a.subscribe("paho311/q2", qos=2)
a.publish("paho311/q2", b"exactly", qos=2)
m = a.message()
check(m.qos == 2 and m.payload == b"exactly", "QoS 2 round trip")

a.publish("paho311/retained", b"kept", qos=1, retain=True)
b = Client("paho311-b", protocol=mqtt.MQTTv311, clean_session=True)
b.connect()
b.subscribe("paho311/retained", qos=1)
m = b.message()
check(m.retain and m.payload == b"kept", "retained message on subscribe")

p = Client("paho311-persistent", protocol=mqtt.MQTTv311, clean_session=False)
p.connect()
p.subscribe("paho311/queue", qos=1)
p.disconnect()
a.publish("paho311/queue", b"while away", qos=1)
p = Client("paho311-persistent", protocol=mqtt.MQTTv311, clean_session=False)
present, _, _ = p.connect()
check(present, "session present")
check(p.message().payload == b"while away", "queued message delivered after reconnect")

d = Client("paho311-dying", protocol=mqtt.MQTTv311, clean_session=True)
b.subscribe("paho311/will", qos=1)
d.connect(will=("paho311/will", b"dead", None))
d.kill()
m = b.message()
check(m.topic == "paho311/will" and m.payload == b"dead", "will published on abrupt close")
