//! The client of etcd (3.4) for the register workload, through etcd's v3
//! JSON gateway (`/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn`): read =
//! range, write = put, cas = a txn comparing the value. Keys and values
//! travel base64-encoded; a register's value is its JSON number as text.
//!
//! Sorting answers into ok / fail / info follows one rule: a read changes
//! nothing, so any read that did not answer is `fail`; a write or cas that
//! may have reached the leader is `info` unless etcd said plainly that it
//! did not apply (a txn whose compare failed, a 400).

use crate::{Completion, Invocation, Op, Outcome};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// How an etcd read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// Through the leader's read index: linearizable.
    Linearizable,
    /// From the member's local state: may be stale (etcd's `serializable`).
    Serializable,
}

impl ReadMode {
    /// Parses `linearizable` or `serializable`.
    pub fn parse(text: &str) -> Option<ReadMode> {
        [ReadMode::Linearizable, ReadMode::Serializable]
            .into_iter()
            .find(|m| m.as_str() == text)
    }

    /// The name in flags.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Linearizable => "linearizable",
            ReadMode::Serializable => "serializable",
        }
    }
}

/// Talks to the members of one etcd cluster.
#[derive(Debug)]
pub struct EtcdClient {
    http: reqwest::Client,
    nodes: Vec<(String, String)>,
    read_mode: ReadMode,
}

fn b64(text: &str) -> String {
    B64.encode(text.as_bytes())
}

/// The register value a stored etcd value encodes (`null` when absent).
fn decode_value(kvs: Option<&Value>) -> Result<Value, String> {
    let Some(kv) = kvs.and_then(Value::as_array).and_then(|a| a.first()) else {
        return Ok(Value::Null);
    };
    let raw = kv.get("value").and_then(Value::as_str).unwrap_or("");
    let bytes = B64
        .decode(raw)
        .map_err(|e| format!("value is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| format!("value is not UTF-8: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("value `{text}` is not JSON: {e}"))
}

impl EtcdClient {
    /// A client for `nodes` (name, base URL of the client port).
    pub fn new(
        nodes: Vec<(String, String)>,
        read_mode: ReadMode,
        request_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::http_client(request_timeout)?;
        Ok(Self {
            http,
            nodes,
            read_mode,
        })
    }

    /// Carries out one register invocation against member `node_index`.
    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|(n, _)| n == name)
    }

    /// Carries out one invocation against node `node_index`.
    pub async fn invoke(&self, inv: &Invocation, node_index: usize) -> Completion {
        let (name, url) = &self.nodes[node_index % self.nodes.len()];
        let key = b64(inv.key.as_deref().unwrap_or(""));
        let outcome = match inv.f {
            Op::Read => self.read(url, &key).await,
            Op::Write => self.write(url, &key, &inv.value).await,
            Op::Cas => self.cas(url, &key, &inv.value).await,
            Op::Submit | Op::Deliver => {
                Outcome::Fail(format!("etcd has no operation {}", inv.f.as_str()))
            }
        };
        Completion {
            outcome,
            node: name.clone(),
        }
    }

    async fn read(&self, url: &str, key: &str) -> Outcome {
        let body = json!({
            "key": key,
            "serializable": self.read_mode == ReadMode::Serializable,
        });
        match self.post(url, "/v3/kv/range", &body).await {
            Ok(answer) => match decode_value(answer.get("kvs")) {
                Ok(v) => Outcome::Ok(v),
                Err(e) => Outcome::Fail(format!("unreadable range answer: {e}")),
            },
            // A read has no effect: whatever happened, it did not happen.
            Err(Outcome::Info(e)) => Outcome::Fail(e),
            Err(other) => other,
        }
    }

    async fn write(&self, url: &str, key: &str, value: &Value) -> Outcome {
        let body = json!({"key": key, "value": b64(&value.to_string())});
        match self.post(url, "/v3/kv/put", &body).await {
            Ok(_) => Outcome::Ok(value.clone()),
            Err(outcome) => outcome,
        }
    }

    async fn cas(&self, url: &str, key: &str, value: &Value) -> Outcome {
        let (Some(old), Some(new)) = (value.get(0), value.get(1)) else {
            return Outcome::Fail(format!("cas needs [old, new], got {value}"));
        };
        let body = json!({
            "compare": [{
                "key": key,
                "target": "VALUE",
                "result": "EQUAL",
                "value": b64(&old.to_string()),
            }],
            "success": [{"request_put": {"key": key, "value": b64(&new.to_string())}}],
        });
        match self.post(url, "/v3/kv/txn", &body).await {
            // proto3 JSON leaves `succeeded: false` out.
            Ok(answer) if answer.get("succeeded").and_then(Value::as_bool) == Some(true) => {
                Outcome::Ok(value.clone())
            }
            Ok(_) => Outcome::Fail("cas compare failed".to_string()),
            Err(outcome) => outcome,
        }
    }

    async fn post(&self, url: &str, path: &str, body: &Value) -> Result<Value, Outcome> {
        let response = self
            .http
            .post(format!("{url}{path}"))
            .json(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    Outcome::Unavailable(format!("connect: {e}"))
                } else if e.is_timeout() {
                    Outcome::Info("timeout".to_string())
                } else {
                    Outcome::Info(format!("request: {e}"))
                }
            })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| Outcome::Info(format!("http {status}, unreadable body: {e}")))?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| Outcome::Info(format!("http {status}, body is not JSON: {e}")))?;
        match status {
            200 if answer.get("error").is_none() => Ok(answer),
            400 => Err(Outcome::Fail(format!("http 400: {}", error_text(&answer)))),
            _ => Err(Outcome::Info(format!(
                "http {status}: {}",
                error_text(&answer)
            ))),
        }
    }
}

fn error_text(answer: &Value) -> String {
    answer
        .get("message")
        .or_else(|| answer.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_decode_to_register_values() {
        let kvs = json!([{"key": b64("k1"), "value": b64("17")}]);
        assert_eq!(decode_value(Some(&kvs)), Ok(json!(17)));
        assert_eq!(decode_value(None), Ok(Value::Null));
        assert_eq!(decode_value(Some(&json!([]))), Ok(Value::Null));
        let bad = json!([{"value": "!!"}]);
        assert!(decode_value(Some(&bad)).unwrap_err().contains("base64"));
        let not_json = json!([{"value": b64("seventeen")}]);
        assert!(decode_value(Some(&not_json))
            .unwrap_err()
            .contains("seventeen"));
    }

    #[test]
    fn read_modes_parse() {
        assert_eq!(
            ReadMode::parse("serializable"),
            Some(ReadMode::Serializable)
        );
        assert_eq!(
            ReadMode::parse("linearizable"),
            Some(ReadMode::Linearizable)
        );
        assert_eq!(ReadMode::parse("stale"), None);
    }
}
