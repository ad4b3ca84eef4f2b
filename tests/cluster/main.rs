//! End-to-end: a real cluster (3 placement-center, 3 journal-server, 3 mqtt-broker
//! processes on loopback) driven by real MQTT 5 clients. Clients on different brokers
//! talk to each other as if on one broker; a broker or the placement-center leader dying
//! does not stop the others; a session follows its client from broker to broker; a
//! replaced incarnation of a broker is fenced off; a killed broker loses no acknowledged
//! message; a message is one trace across brokers; a peer that stops taking forwarded
//! messages holds QoS 1 publishers back and costs QoS 0 only counted drops.

mod access;
mod backpressure;
mod delivery;
mod durability;
mod failover;
mod fencing;
mod sessions;
mod traces;
