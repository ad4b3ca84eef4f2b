"""MQTT 5 request/response through paho: Request Response Information in CONNECT, and
Response Topic, Correlation Data, User Properties, Content Type and Payload Format
Indicator passed through in both directions."""

from common import Client, PacketTypes, check, props

responder = Client("paho-responder")
responder.connect(properties=props(PacketTypes.CONNECT, RequestResponseInformation=1))
responder.subscribe("paho/svc/request")
requester = Client("paho-requester")
_, rc, connack = requester.connect(properties=props(PacketTypes.CONNECT, RequestResponseInformation=1))
check(rc == 0, "Request Response Information accepted")
requester.subscribe("paho/svc/response/paho-requester")

request = props(
    PacketTypes.PUBLISH,
    ResponseTopic="paho/svc/response/paho-requester",
    CorrelationData=b"\x01req-42",
    UserProperty=[("trace", "abc"), ("trace", "def"), ("app", "test")],
    ContentType="application/json",
    PayloadFormatIndicator=1,
    MessageExpiryInterval=120,
)
requester.publish("paho/svc/request", b'{"op":"ping"}', properties=request)
req = responder.message("the request")
p = req.properties
check(p.ResponseTopic == "paho/svc/response/paho-requester", "response topic passed through")
check(p.CorrelationData == b"\x01req-42", "correlation data passed through")
check(p.UserProperty == [("trace", "abc"), ("trace", "def"), ("app", "test")], f"user properties in order: {p.UserProperty}")
check(p.ContentType == "application/json", "content type passed through")
check(p.PayloadFormatIndicator == 1, "payload format indicator passed through")
check(0 < p.MessageExpiryInterval <= 120, f"message expiry forwarded: {p.MessageExpiryInterval}")

responder.publish(p.ResponseTopic, b'{"op":"pong"}', properties=props(PacketTypes.PUBLISH, CorrelationData=p.CorrelationData))
resp = requester.message("the response")
check(resp.payload == b'{"op":"pong"}' and resp.properties.CorrelationData == b"\x01req-42", "response correlated")
