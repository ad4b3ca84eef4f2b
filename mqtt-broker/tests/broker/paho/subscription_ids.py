"""MQTT 5 subscription identifiers and overlapping subscriptions through paho: one
delivery at the highest QoS carrying every matching identifier."""

from common import Client, PacketTypes, check, props

sub = Client("paho-ids")
sub.connect()
sub.subscribe("paho/ids/+", qos=0, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
sub.subscribe("paho/ids/#", qos=2, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=300000))
pub = Client("paho-ids-pub")
pub.connect()
pub.publish("paho/ids/x", b"x", qos=2)
m = sub.message()
check(m.qos == 2, "delivered once at the highest granted QoS")
check(sorted(m.properties.SubscriptionIdentifier) == [7, 300000], f"both identifiers: {m.properties.SubscriptionIdentifier}")
sub.no_message(what="no second copy for the overlapping subscription")
