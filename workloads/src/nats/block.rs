//! A stored message as the ordering history records it: one position of
//! the stream is one "block" holding one transaction, `{"number": <stream
//! sequence>, "txs": [{"id": <Nats-Msg-Id>, "payload": <data>}]}`, with no
//! hashes (docs/nats.md, "What the checker needs").

use async_nats::header::{NATS_MESSAGE_ID, NATS_SEQUENCE};
use async_nats::HeaderMap;
use serde_json::{json, Value};

/// The id recorded for a stored message without a `Nats-Msg-Id` header
/// (none of ours): the checker reports it as unsubmitted.
pub const NO_MESSAGE_ID: &str = "<no Nats-Msg-Id>";

/// The block for the message stored at `sequence`.
pub fn block(sequence: u64, headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Value, String> {
    let id = headers
        // By the header's constant: async-nats 0.46 files a header it
        // parsed under its standard name, and `get("Nats-Msg-Id")` looks
        // for a custom one, which is never found.
        .and_then(|h| h.get(NATS_MESSAGE_ID))
        .map_or(NO_MESSAGE_ID, |v| v.as_str());
    let payload = std::str::from_utf8(payload)
        .map_err(|e| format!("message {sequence}: payload is not UTF-8: {e}"))?;
    Ok(json!({"number": sequence, "txs": [{"id": id, "payload": payload}]}))
}

/// The block of a direct get's answer to a request for `sequence`, checked
/// against the sequence the answer names (`Nats-Sequence`).
pub fn from_direct_get(
    sequence: u64,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<Value, String> {
    let named = headers
        .and_then(|h| h.get(NATS_SEQUENCE))
        .and_then(|v| v.as_str().parse::<u64>().ok());
    if named != Some(sequence) {
        return Err(format!(
            "direct get {sequence}: answered for sequence {named:?}"
        ));
    }
    block(sequence, headers, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_a_block_of_one_transaction() {
        let mut h = HeaderMap::new();
        h.insert(NATS_MESSAGE_ID, "s1-t4");
        h.insert(NATS_SEQUENCE, "9");
        let b = from_direct_get(9, Some(&h), b"payload-s1-t4").unwrap();
        assert_eq!(
            b,
            json!({"number": 9, "txs": [{"id": "s1-t4", "payload": "payload-s1-t4"}]})
        );
        let e = from_direct_get(8, Some(&h), b"x").unwrap_err();
        assert_eq!(e, "direct get 8: answered for sequence Some(9)");
        let b = block(3, None, b"").unwrap();
        assert_eq!(b["txs"][0]["id"], NO_MESSAGE_ID);
        assert!(block(3, None, &[0xff]).unwrap_err().contains("not UTF-8"));
    }
}
