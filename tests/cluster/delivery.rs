//! Cross-node delivery: QoS 0/1/2 with downgrade, retained messages, wills, shared
//! subscriptions spread over nodes. One cluster serves every scenario (each uses its
//! own topics and client ids), because starting nine processes is the slow part.

use std::collections::HashMap;

use cluster_tests::{start_cluster, unique, Client, TestCluster};
use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::v5::mqttbytes::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_brokers_talk_as_on_one() {
    let cluster = start_cluster().await;
    qos_levels_cross_nodes(&cluster).await;
    retained_messages_are_cluster_wide(&cluster).await;
    wills_reach_other_nodes(&cluster).await;
    shared_groups_span_nodes_with_one_delivery_each(&cluster).await;
    unsubscribe_removes_the_route(&cluster).await;
    cluster.cluster.stop().await.expect("graceful stop");
}

async fn qos_levels_cross_nodes(c: &TestCluster) {
    let topic = unique("xnode");
    let mut sub2 = Client::connect(c.mqtt(2), &unique("sub2")).await;
    let mut sub3 = Client::connect(c.mqtt(3), &unique("sub3")).await;
    sub2.subscribe(&format!("{topic}/#"), QoS::ExactlyOnce)
        .await;
    // Subscribed at QoS 1: QoS 2 messages arrive downgraded.
    sub3.subscribe(&format!("{topic}/+"), QoS::AtLeastOnce)
        .await;
    let mut publisher = Client::connect(c.mqtt(1), &unique("pub")).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish(&format!("{topic}/{i}"), qos, false, format!("m{i}"))
            .await;
        let got = sub2.received().await;
        assert_eq!(got.topic, format!("{topic}/{i}"));
        assert_eq!(&got.payload[..], format!("m{i}").as_bytes());
        assert_eq!(got.qos, qos, "node 2 subscribed at QoS 2");
        let got = sub3.received().await;
        assert_eq!(
            got.qos,
            qos.min_qos(QoS::AtLeastOnce),
            "node 3 subscribed at QoS 1"
        );
    }
    assert!(sub2.drain().await.is_empty(), "one copy per subscriber");
    assert!(sub3.drain().await.is_empty(), "one copy per subscriber");
}

/// `min` for rumqttc's QoS, which is not `Ord`.
trait MinQos {
    fn min_qos(self, other: QoS) -> QoS;
}

impl MinQos for QoS {
    fn min_qos(self, other: QoS) -> QoS {
        if (self as u8) <= (other as u8) {
            self
        } else {
            other
        }
    }
}

async fn retained_messages_are_cluster_wide(c: &TestCluster) {
    let topic = unique("retained");
    let mut publisher = Client::connect(c.mqtt(1), &unique("rpub")).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, true, "kept")
        .await;
    // Subscribing after the PUBACK, on another node, gets it at once.
    for node in [2, 3, 1] {
        let mut sub = Client::connect(c.mqtt(node), &unique("rsub")).await;
        sub.subscribe(&topic, QoS::AtLeastOnce).await;
        let got = sub.received().await;
        assert!(got.retain, "delivered as retained on node {node}");
        assert_eq!(&got.payload[..], b"kept");
    }
    // An empty retained payload clears it everywhere.
    publisher.publish(&topic, QoS::AtLeastOnce, true, "").await;
    let mut sub = Client::connect(c.mqtt(3), &unique("rsub")).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    assert!(
        sub.drain().await.is_empty(),
        "cleared retained message not delivered"
    );
}

async fn wills_reach_other_nodes(c: &TestCluster) {
    let topic = unique("will");
    let mut watcher = Client::connect(c.mqtt(3), &unique("watcher")).await;
    watcher.subscribe(&topic, QoS::AtLeastOnce).await;
    let will_topic = topic.clone();
    let dying = Client::connect_with(c.mqtt(1), &unique("dying"), move |o| {
        o.set_last_will(LastWill::new(
            will_topic,
            "gone",
            QoS::AtLeastOnce,
            false,
            None,
        ));
    })
    .await;
    dying.kill();
    let got = watcher.received().await;
    assert_eq!(got.topic, topic);
    assert_eq!(&got.payload[..], b"gone");
}

async fn shared_groups_span_nodes_with_one_delivery_each(c: &TestCluster) {
    let topic = unique("jobs");
    let filter = format!("$share/workers/{topic}/+");
    let mut members = Vec::new();
    for node in [2, 3] {
        let mut m = Client::connect(c.mqtt(node), &unique("worker")).await;
        m.subscribe(&filter, QoS::AtLeastOnce).await;
        members.push(m);
    }
    // An ordinary subscriber on node 2 gets every message besides the group's copy.
    let mut audit = Client::connect(c.mqtt(2), &unique("audit")).await;
    audit
        .subscribe(&format!("{topic}/+"), QoS::AtLeastOnce)
        .await;
    let mut publisher = Client::connect(c.mqtt(1), &unique("jpub")).await;
    let n = 12;
    for i in 0..n {
        publisher
            .publish(
                &format!("{topic}/{i}"),
                QoS::AtLeastOnce,
                false,
                format!("{i}"),
            )
            .await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_member = Vec::new();
    for m in &mut members {
        let got = m.drain().await;
        per_member.push(got.len());
        for r in got {
            *seen.entry(r.topic).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), n, "every message reached the group: {seen:?}");
    assert!(
        seen.values().all(|&k| k == 1),
        "exactly once per group: {seen:?}"
    );
    assert!(
        per_member.iter().all(|&k| k > 0),
        "members on both nodes take turns: {per_member:?}"
    );
    assert_eq!(audit.drain().await.len(), n, "ordinary subscriber gets all");
}

async fn unsubscribe_removes_the_route(c: &TestCluster) {
    let topic = unique("unsub");
    let mut sub = Client::connect(c.mqtt(2), &unique("usub")).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(c.mqtt(1), &unique("upub")).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "1")
        .await;
    assert_eq!(&sub.received().await.payload[..], b"1");
    sub.client.unsubscribe(&topic).await.unwrap();
    sub.expect("UNSUBACK", |p| {
        matches!(p, rumqttc::v5::mqttbytes::v5::Packet::UnsubAck(_)).then_some(())
    })
    .await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, "2")
        .await;
    assert!(
        sub.drain().await.is_empty(),
        "no delivery after UNSUBSCRIBE"
    );
}
