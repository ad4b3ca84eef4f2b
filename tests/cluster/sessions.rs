//! Sessions across nodes: a client that reconnects to another broker with clean start
//! off finds its session there (subscriptions, messages queued while it was away), and
//! the broker it was connected to lets go of it.

use cluster_tests::{start_cluster, unique, Client};
use rumqttc::v5::mqttbytes::QoS;

fn persistent(o: &mut rumqttc::v5::MqttOptions) {
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_follows_its_client_to_another_broker() {
    let cluster = start_cluster().await;
    let id = unique("roamer");
    let topic = unique("mail");

    // Connected to broker 1: subscribe, then go away without unsubscribing.
    let mut first = Client::connect_with(cluster.mqtt(1), &id, persistent).await;
    assert!(!first.session_present);
    first.subscribe(&topic, QoS::AtLeastOnce).await;
    first.client.disconnect().await.unwrap();
    drop(first);

    // Messages published on broker 2 meanwhile are queued in the session on broker 1.
    let mut publisher = Client::connect(cluster.mqtt(2), &unique("sender")).await;
    for i in 0..3 {
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, format!("queued-{i}"))
            .await;
    }

    // Back on broker 3: the session, its subscription and the queued messages are there.
    let mut again = Client::connect_with(cluster.mqtt(3), &id, persistent).await;
    assert!(again.session_present, "session handed over from broker 1");
    for i in 0..3 {
        let got = again.received().await;
        assert_eq!(got.payload, format!("queued-{i}").into_bytes());
    }
    // The subscription now lives on broker 3: new messages come straight here, once.
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "live")
        .await;
    assert_eq!(&again.received().await.payload[..], b"live");
    assert!(again.drain().await.is_empty(), "no duplicates");

    // A connection with the same client id on broker 1 takes the session over: the
    // broker 3 connection is told so.
    let mut thief = Client::connect_with(cluster.mqtt(1), &id, persistent).await;
    assert!(thief.session_present);
    let why = again.closed().await;
    assert!(why.contains("SessionTakenOver"), "{why}");
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "moved")
        .await;
    assert_eq!(&thief.received().await.payload[..], b"moved");

    // Clean start elsewhere discards the session: nothing queued comes back.
    thief.client.disconnect().await.unwrap();
    drop(thief);
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "dropped")
        .await;
    let mut fresh = Client::connect(cluster.mqtt(2), &id).await;
    assert!(!fresh.session_present);
    assert!(fresh.drain().await.is_empty());
    cluster.cluster.stop().await.expect("graceful stop");
}
