"""MQTT 5 topic aliases through paho: the broker aliases topics towards a client that
sent Topic Alias Maximum (paho leaves resolving them to us), and resolves the client's."""

from common import Client, PacketTypes, check, props

sub = Client("paho-alias-sub")
sub.connect(properties=props(PacketTypes.CONNECT, TopicAliasMaximum=2))
sub.subscribe("paho/alias/#")
pub = Client("paho-alias-pub")
_, _, connack = pub.connect()
check(getattr(connack, "TopicAliasMaximum", 0) > 0, "CONNACK offers topic aliases")

for _ in range(3):
    pub.publish("paho/alias/a", b"x")
first, second, third = sub.message(), sub.message(), sub.message()
alias = getattr(first.properties, "TopicAlias", None)
check(first.topic == "paho/alias/a" and alias in (1, 2), f"first delivery sets up alias {alias}")
for m in (second, third):
    check(m.topic == "" and getattr(m.properties, "TopicAlias", None) == alias, "later deliveries use the alias alone")

pub.publish("paho/alias/b", b"y", properties=props(PacketTypes.PUBLISH, TopicAlias=1))
pub.publish("", b"z", properties=props(PacketTypes.PUBLISH, TopicAlias=1))
m1, m2 = sub.message(), sub.message()
aliases = {alias: "paho/alias/a"}
topics = []
for m in (m1, m2):
    a = getattr(m.properties, "TopicAlias", None)
    if m.topic:
        if a is not None:
            aliases[a] = m.topic
        topics.append(m.topic)
    else:
        topics.append(aliases[a])
check(topics == ["paho/alias/b", "paho/alias/b"], f"the client's alias resolved by the broker: {topics}")
