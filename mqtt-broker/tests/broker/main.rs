//! Integration tests of the broker: each test starts an in-process broker on
//! 127.0.0.1:0 (`harness::TestBroker`) and drives it with real clients — rumqttc for
//! MQTT 3.1.1 and 5.0, Python paho-mqtt where rumqttc cannot express a case, and a raw
//! socket for what no client library sends. One binary, so the suite links once.

mod harness;

mod auth_acl;
mod bad_input;
mod paho;
mod pubsub;
mod qos;
mod retained;
mod sessions;
mod shared;
mod sys_and_metrics;
mod transports;
mod v5_features;
mod will;
