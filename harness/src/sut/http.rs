//! HTTP to a run's nodes by name: what a system's status and fsync shaping
//! (`System::status`, `System::fsync`) send, and what the probe builds
//! on. A leaf of the layer: it knows no system.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Requests to the nodes of a run, each bounded by the client's timeout.
#[derive(Clone, Debug)]
pub struct NodeHttp {
    http: reqwest::Client,
    /// (name, base URL); nodes the `member` nemesis starts are appended.
    nodes: Arc<RwLock<Vec<(String, String)>>>,
    /// Member id → node name, for systems that name the leader by an id of
    /// their own (etcd).
    members: Arc<Mutex<BTreeMap<String, String>>>,
}

impl NodeHttp {
    /// Requests to `nodes` (name, base URL), each bounded by `timeout`.
    pub fn new(nodes: Vec<(String, String)>, timeout: Duration) -> anyhow::Result<NodeHttp> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(NodeHttp {
            http,
            nodes: Arc::new(RwLock::new(nodes)),
            members: Default::default(),
        })
    }

    /// The node's base URL, when it is known.
    pub fn url(&self, node: &str) -> Option<String> {
        self.names_urls()
            .into_iter()
            .find(|(n, _)| n == node)
            .map(|(_, u)| u)
    }

    /// Every node known, (name, base URL), in the order they were added.
    pub fn names_urls(&self) -> Vec<(String, String)> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds a node (one the `member` nemesis started).
    pub fn add_node(&self, name: &str, url: &str) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if nodes.iter().all(|(n, _)| n != name) {
            nodes.push((name.to_string(), url.to_string()));
        }
    }

    /// `GET path` on a node as JSON.
    pub async fn get_json(&self, node: &str, path: &str) -> Option<Value> {
        let url = self.url(node)?;
        answer_json(self.http.get(format!("{url}{path}"))).await
    }

    /// `POST path` with an empty JSON body on a node (etcd's gateway).
    pub async fn post_json(&self, node: &str, path: &str) -> Option<Value> {
        let url = self.url(node)?;
        answer_json(self.http.post(format!("{url}{path}")).json(&json!({}))).await
    }

    /// `method path` with a JSON body (none for `DELETE`) on a node: the
    /// answer's status and body (`null` when not JSON), or why no answer
    /// came.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        node: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let url = self
            .url(node)
            .ok_or_else(|| format!("{node} is not a node of this run"))?;
        let mut request = self.http.request(method.clone(), format!("{url}{path}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| format!("{method} {path} on {node}: {e}"))?;
        let status = answer.status().as_u16();
        Ok((status, answer.json().await.unwrap_or(Value::Null)))
    }

    /// `GET path` on a node as text (Prometheus metrics).
    pub async fn get_text(&self, node: &str, path: &str) -> Option<String> {
        let url = self.url(node)?;
        match self.http.get(format!("{url}{path}")).send().await {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        }
    }

    /// The node name a member id stands for, when learnt.
    pub fn member(&self, id: &str) -> Option<String> {
        self.members.lock().expect("members lock").get(id).cloned()
    }

    /// Remembers the node name of a member id.
    pub fn learn_member(&self, id: &str, name: &str) {
        self.members
            .lock()
            .expect("members lock")
            .insert(id.to_string(), name.to_string());
    }
}

/// Sends a request and reads its answer as JSON; `None` when either fails.
async fn answer_json(request: reqwest::RequestBuilder) -> Option<Value> {
    request.send().await.ok()?.json().await.ok()
}
