"""MQTT 5 subscription options through paho: Retain Handling 1 and 2, Retain As
Published, No Local."""

from common import Client, check

pub = Client("paho-opts-pub")
pub.connect()
pub.publish("paho/rh", b"kept", retain=True)

rh1 = Client("paho-rh1")
rh1.connect()
rh1.subscribe("paho/rh", rh=1)
m = rh1.message("retained message on a new subscription (RH 1)")
check(m.retain and m.payload == b"kept", "RH 1: sent with RETAIN on the first SUBSCRIBE")
rh1.subscribe("paho/rh", rh=1)
rh1.no_message(what="RH 1: not sent again when the subscription exists")

rh2 = Client("paho-rh2")
rh2.connect()
rh2.subscribe("paho/rh", rh=2)
rh2.no_message(what="RH 2: never sent")

rap = Client("paho-rap")
rap.connect()
rap.subscribe("paho/rap", rap=True, rh=2)
plain = Client("paho-plain")
plain.connect()
plain.subscribe("paho/rap", rap=False, rh=2)
pub.publish("paho/rap", b"r", retain=True)
check(rap.message().retain, "RAP 1 keeps RETAIN on live delivery")
check(not plain.message().retain, "RAP 0 clears RETAIN on live delivery")

nl = Client("paho-nolocal")
nl.connect()
nl.subscribe("paho/nl", no_local=True)
nl.publish("paho/nl", b"mine")
nl.no_message(what="No Local: own message not delivered")
pub.publish("paho/nl", b"theirs")
check(nl.message().payload == b"theirs", "No Local: other clients' messages delivered")
