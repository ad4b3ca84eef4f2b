//! Durability: kill -9 of a broker loses no acknowledged QoS 1/2 message. Its persistent
//! sessions, with what they had not acknowledged, are rebuilt from its session log in
//! the journal by whichever broker their clients reconnect to, or, once its lease has
//! expired, adopted by the live broker with the lowest id, which queues for them and
//! publishes the wills of the connections that died with the broker.

use cluster_tests::{start_cluster, unique, Client, Received, WAIT};
use local_cluster::Service;
use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;

fn persistent(o: &mut MqttOptions) {
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(300));
    // Reconnecting right after the kill waits for the dead broker's lease (5 s).
    o.set_connection_timeout(20);
}

fn payloads(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_loses_no_acknowledged_message() {
    let mut c = start_cluster().await;
    let topic = unique("durable");
    let filter = format!("{topic}/#");
    let (offline_id, unacked_id) = (unique("offline"), unique("unacked"));

    // Two persistent sessions on broker 2: one goes offline; one stays connected and
    // never acknowledges what it gets, so its messages stay in flight.
    let mut offline = Client::connect_with(c.mqtt(2), &offline_id, persistent).await;
    offline.subscribe(&filter, QoS::AtLeastOnce).await;
    offline.client.disconnect().await.unwrap();
    drop(offline);
    let mut unacked = Client::connect_with(c.mqtt(2), &unacked_id, |o| {
        persistent(o);
        o.set_manual_acks(true);
    })
    .await;
    unacked.subscribe(&filter, QoS::ExactlyOnce).await;

    // QoS 1 from broker 1 (forwarded to broker 2) and QoS 2 on broker 2 itself; each
    // publish returns once acknowledged (PUBACK, or PUBREC..PUBCOMP).
    let mut remote = Client::connect(c.mqtt(1), &unique("remote-pub")).await;
    let mut local = Client::connect(c.mqtt(2), &unique("local-pub")).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let payload = format!("m{i}");
        if i % 2 == 0 {
            let t = format!("{topic}/remote");
            remote
                .publish(&t, QoS::AtLeastOnce, false, payload.clone())
                .await;
        } else {
            let t = format!("{topic}/local");
            local
                .publish(&t, QoS::ExactlyOnce, false, payload.clone())
                .await;
        }
        sent.push(payload);
    }
    let mut in_flight = Vec::new();
    while in_flight.len() < sent.len() {
        in_flight.push(unacked.received().await);
    }
    assert_eq!(
        payloads(&in_flight),
        sent,
        "delivered before the kill, unacknowledged"
    );

    c.cluster
        .kill(Service::MqttBroker, 2)
        .await
        .expect("SIGKILL broker 2");
    unacked.kill();

    // Both clients come back, on other brokers, at once: every acknowledged message is
    // there, in order, once.
    let mut offline = Client::connect_with(c.mqtt(3), &offline_id, persistent).await;
    assert!(
        offline.session_present,
        "session recovered on broker 3\n{}",
        c.log("mqtt-broker-3")
    );
    assert_eq!(payloads(&offline.drain().await), sent);
    let mut unacked = Client::connect_with(c.mqtt(1), &unacked_id, persistent).await;
    assert!(unacked.session_present, "{}", c.log("mqtt-broker-1"));
    let again = unacked.drain().await;
    assert_eq!(payloads(&again), sent);
    assert!(again.iter().all(|r| r.qos != QoS::AtMostOnce));

    // Each session was rebuilt from the log once: by the broker its client came back
    // to, or by broker 1 adopting it when broker 2's lease expired (then handed over).
    let mut recovered = 0.0;
    for node in [1, 3] {
        recovered += c
            .broker_metric(node, "robustmq_session_log_recovered_sessions_total")
            .await;
    }
    assert_eq!(recovered, 2.0);

    // Their subscriptions came with them; acknowledged messages do not come back.
    remote
        .publish(&format!("{topic}/remote"), QoS::AtLeastOnce, false, "after")
        .await;
    assert_eq!(payloads(&offline.drain().await), ["after"]);
    assert_eq!(payloads(&unacked.drain().await), ["after"]);
    drop((offline, unacked));
    let mut twice = Client::connect_with(c.mqtt(3), &offline_id, persistent).await;
    assert!(twice.session_present);
    assert!(
        twice.drain().await.is_empty(),
        "acknowledged messages stay acknowledged"
    );
    c.cluster.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_brokers_sessions_keep_queueing_until_their_clients_return() {
    let mut c = start_cluster().await;
    let topic = unique("adopted");
    let id = unique("away");
    let mut away = Client::connect_with(c.mqtt(3), &id, persistent).await;
    away.subscribe(&topic, QoS::AtLeastOnce).await;
    away.client.disconnect().await.unwrap();
    drop(away);
    let mut publisher = Client::connect(c.mqtt(2), &unique("pub")).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "before")
        .await;
    // A client with a will (and no session to keep) is connected to broker 3 when it
    // dies: its connection ends without DISCONNECT, so the will must go out.
    let will_topic = unique("will");
    let mut watcher = Client::connect(c.mqtt(2), &unique("watcher")).await;
    watcher.subscribe(&will_topic, QoS::AtLeastOnce).await;
    let will = will_topic.clone();
    let _doomed = Client::connect_with(c.mqtt(3), &unique("doomed"), move |o| {
        o.set_last_will(LastWill::new(
            will,
            "broker died",
            QoS::AtLeastOnce,
            false,
            None,
        ));
    })
    .await;

    c.cluster
        .kill(Service::MqttBroker, 3)
        .await
        .expect("SIGKILL broker 3");
    // Once broker 3's lease expires, broker 1 (the lowest live id) adopts its session:
    // the subscription is routed to broker 1, which queues for the absent client.
    let deadline = tokio::time::Instant::now() + WAIT;
    while c
        .broker_metric(1, "robustmq_session_log_adopted_sessions_total")
        .await
        < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker 1 did not adopt the session\n{}",
            c.log("mqtt-broker-1")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "while away")
        .await;
    let got = watcher.received().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        (will_topic.as_str(), &b"broker died"[..])
    );

    // The client comes back on broker 2: broker 1 hands the session over.
    let mut back = Client::connect_with(c.mqtt(2), &id, persistent).await;
    assert!(back.session_present, "{}", c.log("mqtt-broker-1"));
    assert_eq!(payloads(&back.drain().await), ["before", "while away"]);
    c.cluster.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_log_outlives_its_journal_leader() {
    let mut c = start_cluster().await;
    let topic = unique("journaled");
    let id = unique("patient");
    let mut away = Client::connect_with(c.mqtt(2), &id, persistent).await;
    away.subscribe(&topic, QoS::AtLeastOnce).await;
    away.client.disconnect().await.unwrap();
    drop(away);
    let mut publisher = Client::connect(c.mqtt(1), &unique("pub")).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let payload = format!("before-{i}");
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
            .await;
        sent.push(payload);
    }

    // Kill the journal node leading broker 2's session log: the remaining in-sync
    // replicas elect a leader and the appends (and so the PUBACKs) go on.
    let journal: Vec<_> = (1..=3)
        .map(|n| c.cluster.node(Service::JournalServer, n).unwrap().grpc)
        .collect();
    let leader = journal_client::JournalClient::new(journal.iter().map(|a| a.to_string()))
        .find_leader("mqtt-sessions-2")
        .await
        .expect("the session log has a leader");
    let leader_node = 1 + journal
        .iter()
        .position(|a| a.to_string() == leader)
        .expect("the leader is one of the journal nodes") as u64;
    c.cluster
        .kill(Service::JournalServer, leader_node)
        .await
        .expect("SIGKILL the journal leader");
    for i in 0..5 {
        let payload = format!("after-{i}");
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
            .await;
        sent.push(payload);
    }
    assert_eq!(
        c.broker_metric(2, "robustmq_session_log_append_failures_total")
            .await,
        0.0
    );

    // Both halves are in the log: broker 2's death loses none of them.
    c.cluster
        .kill(Service::MqttBroker, 2)
        .await
        .expect("SIGKILL broker 2");
    let addr = c.mqtt(3);
    let idc = id.clone();
    let connect = tokio::spawn(async move { Client::connect_with(addr, &idc, persistent).await });
    let mut back = match connect.await {
        Ok(back) => back,
        Err(e) => panic!(
            "{e}\nBROKER3\n{}\nBROKER1\n{}",
            c.log("mqtt-broker-3"),
            c.log("mqtt-broker-1")
        ),
    };
    assert!(back.session_present, "{}", c.log("mqtt-broker-3"));
    assert_eq!(payloads(&back.drain().await), sent);
}
