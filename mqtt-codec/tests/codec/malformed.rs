//! Every spec rule the decoder enforces, one row per violation: the bytes, the version
//! the connection speaks (`None` = before CONNECT) and the expected error kind.

use mqtt_codec::{DecodeError, ProtocolVersion};

use crate::{decode_one, hex};

const NONE: Option<ProtocolVersion> = None;
const V31: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1);
const V311: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1_1);
const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);

const MAL: &str = "malformed";
const PROTO: &str = "protocol_error";
const UTF8: &str = "invalid_utf8";
const TOPIC: &str = "topic_name_invalid";

fn run(table: &[(&str, Option<ProtocolVersion>, &str, &str)]) {
    for &(what, version, bytes, kind) in table {
        let bytes = hex(bytes);
        let whole = mqtt_codec::check(&bytes, mqtt_codec::MAX_PACKET_SIZE);
        if kind != MAL || whole.is_ok() {
            assert_eq!(whole, Ok(Some(bytes.len())), "{what}: test vector framing");
        }
        match decode_one(&bytes, version) {
            Err(e) => assert_eq!(e.kind(), kind, "{what}: got {e:?}"),
            Ok(p) => panic!("{what}: decoded {p:?}, expected {kind}"),
        }
    }
}

#[test]
fn fixed_header() {
    run(&[
        ("PUBREL flags 0", V311, "60 02 0001", MAL),
        ("PUBREL flags 3", V5, "63 02 0001", MAL),
        ("SUBSCRIBE flags 0", V311, "80 06 0001 0001 61 00", MAL),
        ("UNSUBSCRIBE flags 0", V311, "a0 05 0001 0001 61", MAL),
        (
            "CONNECT flags",
            NONE,
            "11 0c 0004 4d515454 04 02 003c 0000",
            MAL,
        ),
        ("CONNACK flags", V311, "21 02 00 00", MAL),
        ("PUBACK flags", V311, "41 02 0001", MAL),
        ("PUBREC flags", V5, "52 02 0001", MAL),
        ("PUBCOMP flags", V5, "78 02 0001", MAL),
        ("SUBACK flags", V311, "91 03 0001 00", MAL),
        ("UNSUBACK flags", V311, "b1 02 0001", MAL),
        ("PINGREQ flags", V311, "c1 00", MAL),
        ("PINGRESP flags", V5, "d8 00", MAL),
        ("DISCONNECT flags", V5, "e2 00", MAL),
        ("AUTH flags", V5, "f1 00", MAL),
        ("MQTT 3.1 PINGREQ with DUP", V31, "c8 00", MAL),
        ("PUBLISH QoS 3", V311, "36 05 0001 61 0001", MAL),
        ("PUBLISH QoS 0 with DUP", V311, "38 03 0001 61", MAL),
        ("packet type 0", V311, "00 00", MAL),
        ("packet type 0 before CONNECT", NONE, "00 00", MAL),
        ("AUTH in 3.1.1", V311, "f0 00", MAL),
        ("AUTH in 3.1", V31, "f0 00", MAL),
        ("PINGREQ before CONNECT", NONE, "c0 00", PROTO),
        ("PUBLISH before CONNECT", NONE, "30 03 0001 61", PROTO),
        ("AUTH before CONNECT", NONE, "f0 00", PROTO),
        (
            "remaining length of 5 bytes",
            V311,
            "30 ff ff ff ff 01",
            MAL,
        ),
        ("non-minimal remaining length", V311, "c0 80 00", MAL),
        ("PINGREQ with a body", V311, "c0 01 00", MAL),
    ]);
}

#[test]
fn mqtt_31_tolerates_dup_on_resent_packets() {
    for bytes in ["6a 02 0001", "8a 06 0001 0001 61 00", "aa 05 0001 0001 61"] {
        assert!(decode_one(&hex(bytes), V31).is_ok(), "{bytes}");
        assert!(decode_one(&hex(bytes), V311).is_err(), "{bytes}");
    }
}

#[test]
fn connect() {
    run(&[
        (
            "reserved flag",
            NONE,
            "10 0c 0004 4d515454 04 03 003c 0000",
            MAL,
        ),
        (
            "will QoS without will",
            NONE,
            "10 0c 0004 4d515454 04 0a 003c 0000",
            MAL,
        ),
        (
            "will retain without will",
            NONE,
            "10 0c 0004 4d515454 04 22 003c 0000",
            MAL,
        ),
        (
            "will QoS 3",
            NONE,
            "10 13 0004 4d515454 04 1e 003c 0000 0001 77 0002 6869",
            MAL,
        ),
        (
            "password without user name (3.1.1)",
            NONE,
            "10 10 0004 4d515454 04 42 003c 0000 0002 7077",
            MAL,
        ),
        (
            "password without user name (3.1)",
            NONE,
            "10 10 0006 4d5149736470 03 42 003c 0000 0000",
            MAL,
        ),
        (
            "user name flag, no user name",
            NONE,
            "10 0c 0004 4d515454 04 82 003c 0000",
            MAL,
        ),
        (
            "password flag, no password (v5)",
            NONE,
            "10 0d 0004 4d515454 05 40 003c 00 0000",
            MAL,
        ),
        (
            "will flag, no will",
            NONE,
            "10 0c 0004 4d515454 04 06 003c 0000",
            MAL,
        ),
        (
            "trailing byte",
            NONE,
            "10 0d 0004 4d515454 04 02 003c 0000 00",
            MAL,
        ),
        (
            "user name without flag",
            NONE,
            "10 10 0004 4d515454 04 02 003c 0000 0002 7575",
            MAL,
        ),
        ("truncated", NONE, "10 03 0004 4d", MAL),
        (
            "client id not UTF-8",
            NONE,
            "10 0d 0004 4d515454 04 02 003c 0001 ff",
            UTF8,
        ),
        (
            "client id with U+0000",
            NONE,
            "10 0d 0004 4d515454 04 02 003c 0001 00",
            UTF8,
        ),
        (
            "user name with U+0000",
            NONE,
            "10 11 0004 4d515454 04 82 003c 0000 0003 610062",
            UTF8,
        ),
        (
            "will topic with wildcard",
            NONE,
            "10 13 0004 4d515454 04 06 003c 0000 0003 612f2b 0000",
            TOPIC,
        ),
        (
            "empty will topic",
            NONE,
            "10 10 0004 4d515454 04 06 003c 0000 0000 0000",
            TOPIC,
        ),
        (
            "v5 auth data without method",
            NONE,
            "10 11 0004 4d515454 05 02 003c 04 16 0001 78 0000",
            PROTO,
        ),
        (
            "v5 duplicate receive maximum",
            NONE,
            "10 13 0004 4d515454 05 02 003c 06 21 0001 21 0002 0000",
            PROTO,
        ),
        (
            "v5 receive maximum 0",
            NONE,
            "10 10 0004 4d515454 05 02 003c 03 21 0000 0000",
            PROTO,
        ),
        (
            "v5 max packet size 0",
            NONE,
            "10 12 0004 4d515454 05 02 003c 05 27 00000000 0000",
            PROTO,
        ),
        (
            "v5 request problem info 2",
            NONE,
            "10 0f 0004 4d515454 05 02 003c 02 17 02 0000",
            PROTO,
        ),
        (
            "v5 unknown property",
            NONE,
            "10 0f 0004 4d515454 05 02 003c 02 7f 00 0000",
            MAL,
        ),
        (
            "v5 topic alias in CONNECT",
            NONE,
            "10 10 0004 4d515454 05 02 003c 03 23 0001 0000",
            MAL,
        ),
        (
            "v5 property length past the end",
            NONE,
            "10 0d 0004 4d515454 05 02 003c 09 0000",
            MAL,
        ),
        (
            "v5 non-minimal property length",
            NONE,
            "10 0e 0004 4d515454 05 02 003c 80 00 0000",
            MAL,
        ),
        (
            "v5 session expiry in will properties",
            NONE,
            "10 18 0004 4d515454 05 06 003c 00 0000 05 11 00000001 0001 77 0000",
            MAL,
        ),
        (
            "v5 will response topic with wildcard",
            NONE,
            "10 17 0004 4d515454 05 06 003c 00 0000 04 08 0001 23 0001 77 0000",
            PROTO,
        ),
    ]);
}

#[test]
fn connect_protocol_name_and_level() {
    let err = |bytes| decode_one(&hex(bytes), NONE).unwrap_err();
    assert_eq!(
        err("10 0c 0004 4d515458 04 02 003c 0000"),
        DecodeError::InvalidProtocolName
    );
    assert_eq!(
        err("10 0c 0004 6d717474 04 02 003c 0000"),
        DecodeError::InvalidProtocolName
    );
    assert_eq!(
        err("10 0c 0004 4d515454 06 02 003c 0000"),
        DecodeError::UnsupportedProtocolVersion(6)
    );
    assert_eq!(
        err("10 0c 0004 4d515454 03 02 003c 0000"),
        DecodeError::UnsupportedProtocolVersion(3)
    );
    assert_eq!(
        err("10 0e 0006 4d5149736470 04 02 003c 0000"),
        DecodeError::UnsupportedProtocolVersion(4)
    );
    assert_eq!(DecodeError::InvalidProtocolName.reason_code().0, 0x84);
    assert_eq!(
        DecodeError::UnsupportedProtocolVersion(6)
            .reason_code()
            .to_v3_connack(),
        0x01
    );
}

#[test]
fn strings() {
    run(&[
        ("length past the end", V311, "30 03 0005 61", MAL),
        ("length prefix cut", V311, "30 01 00", MAL),
        ("incomplete sequence", V311, "30 03 0001 c3", UTF8),
        ("surrogate U+D800", V311, "30 05 0003 eda080", UTF8),
        ("overlong '/'", V311, "30 04 0002 c0af", UTF8),
        ("U+0000", V5, "30 05 0002 6100 00", UTF8),
        ("beyond U+10FFFF", V311, "30 06 0004 f4908080", UTF8),
    ]);
}

#[test]
fn publish() {
    run(&[
        ("'#' in topic", V311, "30 05 0003 612f23", TOPIC),
        ("'+' in topic", V5, "30 06 0003 2b2f61 00", TOPIC),
        ("empty topic (3.1.1)", V311, "30 02 0000", TOPIC),
        ("empty topic (3.1)", V31, "30 02 0000", TOPIC),
        ("empty topic without alias (v5)", V5, "30 03 0000 00", PROTO),
        ("packet id 0", V311, "32 05 0001 61 0000", PROTO),
        ("QoS 1 without packet id", V311, "32 03 0001 61", MAL),
        (
            "v5 subscription identifier 0",
            V5,
            "30 06 0001 61 02 0b 00",
            PROTO,
        ),
        (
            "v5 topic alias 0",
            V5,
            "30 07 0001 61 03 23 0000",
            "topic_alias_invalid",
        ),
        (
            "v5 response topic with wildcard",
            V5,
            "30 09 0001 61 05 08 0002 2f23",
            PROTO,
        ),
        (
            "v5 payload format indicator 2",
            V5,
            "30 06 0001 61 02 01 02",
            PROTO,
        ),
        (
            "v5 session expiry in PUBLISH",
            V5,
            "30 09 0001 61 05 11 00000001",
            MAL,
        ),
        (
            "v5 duplicate message expiry",
            V5,
            "30 0e 0001 61 0a 02 00000001 02 00000002",
            PROTO,
        ),
        ("v5 properties past the end", V5, "30 04 0001 61 05", MAL),
        ("v5 missing property length", V5, "30 03 0001 61", MAL),
        (
            "v5 user property value cut",
            V5,
            "30 0b 0001 61 06 26 0001 61 0002 62",
            MAL,
        ),
    ]);
}

#[test]
fn acknowledgements() {
    run(&[
        ("PUBACK packet id 0", V311, "40 02 0000", PROTO),
        ("PUBCOMP packet id 0", V5, "70 02 0000", PROTO),
        ("PUBACK truncated", V311, "40 01 00", MAL),
        ("3.x PUBACK with reason code", V311, "40 03 0001 00", MAL),
        ("PUBREL reason 0x10", V5, "62 03 0001 10", PROTO),
        ("PUBACK reason 0x92", V5, "40 03 0001 92", PROTO),
        ("PUBACK reason 0x01", V5, "40 03 0001 01", PROTO),
        (
            "PUBACK topic alias property",
            V5,
            "40 07 0001 00 03 23 0001",
            MAL,
        ),
        (
            "PUBACK property length past end",
            V5,
            "40 06 0001 00 05 1f 00",
            MAL,
        ),
        ("PUBACK trailing byte", V5, "40 05 0001 00 00 00", MAL),
        ("CONNACK reserved bits", V311, "20 02 02 00", MAL),
        ("CONNACK return code 6", V311, "20 02 00 06", PROTO),
        (
            "CONNACK session present on failure",
            V311,
            "20 02 01 05",
            PROTO,
        ),
        ("CONNACK 3.1.1 too long", V311, "20 03 00 00 00", MAL),
        ("v5 CONNACK reason 0x01", V5, "20 03 00 01 00", PROTO),
        (
            "v5 CONNACK maximum QoS 2",
            V5,
            "20 05 00 00 02 24 02",
            PROTO,
        ),
        ("v5 CONNACK without properties", V5, "20 02 00 00", MAL),
        ("v5 CONNACK topic alias", V5, "20 06 00 00 03 23 0001", MAL),
        ("SUBACK return code 3", V311, "90 03 0001 03", PROTO),
        ("SUBACK without codes", V311, "90 02 0001", PROTO),
        ("v5 SUBACK reason 0x10", V5, "90 04 0001 00 10", PROTO),
        ("UNSUBACK 3.x with payload", V311, "b0 03 0001 00", MAL),
        ("v5 UNSUBACK without codes", V5, "b0 03 0001 00", PROTO),
        ("v5 UNSUBACK reason 0x01", V5, "b0 04 0001 00 01", PROTO),
    ]);
    // MQTT 3.1 has no Session Present flag: the byte is ignored.
    assert!(decode_one(&hex("20 02 ff 00"), V31).is_ok());
}

#[test]
fn subscribe() {
    run(&[
        ("no filters (3.1.1)", V311, "82 02 0001", PROTO),
        ("no filters (v5)", V5, "82 03 0001 00", PROTO),
        ("packet id 0", V311, "82 06 0000 0001 61 00", PROTO),
        ("missing options byte", V311, "82 05 0001 0001 61", MAL),
        ("3.x options bit 2", V311, "82 06 0001 0001 61 04", MAL),
        ("3.x options bit 7", V311, "82 06 0001 0001 61 80", MAL),
        ("3.x QoS 3", V311, "82 06 0001 0001 61 03", MAL),
        ("v5 reserved bit 6", V5, "82 07 0001 00 0001 61 40", MAL),
        ("v5 reserved bit 7", V5, "82 07 0001 00 0001 61 80", MAL),
        (
            "v5 retain handling 3",
            V5,
            "82 07 0001 00 0001 61 30",
            PROTO,
        ),
        ("v5 QoS 3", V5, "82 07 0001 00 0001 61 03", PROTO),
        (
            "v5 subscription identifier 0",
            V5,
            "82 09 0001 02 0b 00 0001 61 00",
            PROTO,
        ),
        (
            "v5 two subscription identifiers",
            V5,
            "82 0b 0001 04 0b 01 0b 02 0001 61 00",
            PROTO,
        ),
        (
            "v5 subscription identifier too long",
            V5,
            "82 0c 0001 05 0b ffffffff 01 0001 61",
            MAL,
        ),
        (
            "v5 No Local on a shared subscription",
            V5,
            "82 10 0001 00 000a 2473686172652f672f61 04",
            PROTO,
        ),
        (
            "v5 reason string in SUBSCRIBE",
            V5,
            "82 0b 0001 04 1f 0001 78 0001 61 00",
            MAL,
        ),
        ("filter not UTF-8", V311, "82 06 0001 0001 ff 00", UTF8),
        ("filter with U+0000", V311, "82 06 0001 0001 00 00", UTF8),
    ]);
}

#[test]
fn unsubscribe_disconnect_auth() {
    run(&[
        ("UNSUBSCRIBE without filters", V311, "a2 02 0001", PROTO),
        ("v5 UNSUBSCRIBE without filters", V5, "a2 03 0001 00", PROTO),
        ("UNSUBSCRIBE packet id 0", V311, "a2 05 0000 0001 61", PROTO),
        (
            "v5 UNSUBSCRIBE subscription identifier",
            V5,
            "a2 08 0001 02 0b 01 0001 61",
            MAL,
        ),
        ("UNSUBSCRIBE filter cut", V311, "a2 05 0001 0005 61", MAL),
        ("3.x DISCONNECT with a body", V311, "e0 01 00", MAL),
        ("v5 DISCONNECT reason 0x01", V5, "e0 01 01", PROTO),
        ("v5 DISCONNECT topic alias", V5, "e0 05 00 03 23 0001", MAL),
        (
            "v5 DISCONNECT properties past end",
            V5,
            "e0 03 00 05 11",
            MAL,
        ),
        ("AUTH remaining length 1", V5, "f0 01 18", MAL),
        ("AUTH reason 0x80", V5, "f0 02 80 00", PROTO),
        ("AUTH session expiry", V5, "f0 07 18 05 11 00000001", MAL),
        (
            "AUTH duplicate method",
            V5,
            "f0 0a 18 08 15 0001 61 15 0001 62",
            PROTO,
        ),
    ]);
}
